"""The instruments read model's fold: idempotent by sequence, faithful to the events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.adapters.instruments_projection import Row, fold
from kernel.projection import Applied
from schemas.envelope import EventPayload, make_event
from schemas.instrument import (
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = InstrumentSpec(symbol="EUR-USD", venue="simulator", asset_class="fx",
                      tick_size=Decimal("0.00001"), lot_size=Decimal("1000"),
                      quote_currency="USD")


def applied(payload: EventPayload, sequence: int) -> Applied:
    cause = uuid.uuid4()
    env = make_event(payload, aggregate_id="EUR-USD", sequence=sequence,
                     occurred_at=T0 + timedelta(seconds=sequence), correlation_id=cause,
                     causation_id=cause, event_id=uuid.uuid4())
    return Applied(env, payload)


def run(*events: Applied) -> Row | None:
    row: Row | None = None
    for event in events:
        row = fold(row, event)
    return row


def test_registered_creates_an_active_row() -> None:
    row = run(applied(InstrumentRegistered(spec=SPEC), 1))
    assert row is not None
    assert (row.symbol, row.status, row.version, row.tick_size) == (
        "EUR-USD", "active", 1, Decimal("0.00001"))
    assert row.registered_at == row.updated_at == T0 + timedelta(seconds=1)


def test_each_event_kind_changes_the_row() -> None:
    row = run(
        applied(InstrumentRegistered(spec=SPEC), 1),
        applied(InstrumentUpdated(changes=InstrumentChanges(tick_size=Decimal("0.0001"))), 2),
        applied(InstrumentHalted(reason="maintenance"), 3),
    )
    assert row is not None
    assert (row.tick_size, row.status, row.halt_reason, row.version) == (
        Decimal("0.0001"), "halted", "maintenance", 3)
    resumed = fold(row, applied(InstrumentResumed(), 4))
    assert resumed is not None and (resumed.status, resumed.halt_reason) == ("active", None)


def test_an_event_at_or_below_the_row_version_is_skipped() -> None:
    registered = applied(InstrumentRegistered(spec=SPEC), 1)
    halted = applied(InstrumentHalted(reason="x"), 2)
    row = run(registered, halted)
    assert fold(row, halted) is row
    assert fold(row, registered) is row


def test_a_rejection_before_registration_creates_no_row() -> None:
    rejection = InstrumentCommandRejected(command_id=uuid.uuid4(), command_type="instrument.halt",
                                          reason="instrument-not-registered")
    assert run(applied(rejection, 1)) is None
    row = run(applied(rejection, 1), applied(InstrumentRegistered(spec=SPEC), 2))
    assert row is not None and row.version == 2
