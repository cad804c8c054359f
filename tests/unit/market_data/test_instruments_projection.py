"""Market data's own instruments read model: the fold keeps the columns its API reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from kernel.projection import Applied
from market_data.adapters.instruments_projection import (
    COLUMNS,
    MarketInstrumentsProjection,
    Row,
    fold,
)
from market_data.views.instruments import InstrumentInfo
from schemas.envelope import EventPayload, make_event
from schemas.instrument import (
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
    TradingHours,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = InstrumentSpec(symbol="EUR-USD", venue="simulator", asset_class="fx",
                      tick_size=Decimal("0.00001"), lot_size=Decimal("1000"),
                      quote_currency="USD", description="Euro / US dollar")


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


def test_registered_creates_an_active_row_the_api_can_read() -> None:
    row = run(applied(InstrumentRegistered(spec=SPEC), 1))

    assert row is not None
    info = InstrumentInfo.model_validate(
        {**row._asdict(), "trading_hours": orjson.loads(row.trading_hours)})
    assert (info.symbol, info.venue, info.asset_class, info.tick_size, info.lot_size,
            info.quote_currency, info.description, info.status) == (
        "EUR-USD", "simulator", "fx", Decimal("0.00001"), Decimal("1000"), "USD",
        "Euro / US dollar", "active")
    assert info.trading_hours == SPEC.trading_hours
    assert row.version == 1


def test_update_halt_and_resume_change_the_row() -> None:
    hours = TradingHours(timezone="Europe/London", sessions=())
    row = run(
        applied(InstrumentRegistered(spec=SPEC), 1),
        applied(InstrumentUpdated(changes=InstrumentChanges(tick_size=Decimal("0.0001"),
                                                            trading_hours=hours)), 2),
        applied(InstrumentHalted(reason="maintenance"), 3),
    )
    assert row is not None
    assert (row.tick_size, row.status, row.version) == (Decimal("0.0001"), "halted", 3)
    assert orjson.loads(row.trading_hours)["timezone"] == "Europe/London"
    resumed = fold(row, applied(InstrumentResumed(), 4))
    assert resumed is not None
    assert (resumed.status, resumed.version) == ("active", 4)


def test_an_event_at_or_below_the_rows_version_is_skipped() -> None:
    row = run(applied(InstrumentRegistered(spec=SPEC), 1),
              applied(InstrumentHalted(reason="x"), 2))
    assert fold(row, applied(InstrumentResumed(), 2)) is row
    assert fold(row, applied(InstrumentRegistered(spec=SPEC), 1)) is row


def test_a_rejection_only_advances_the_version() -> None:
    row = run(applied(InstrumentRegistered(spec=SPEC), 1))
    rejected = InstrumentCommandRejected(command_id=uuid.uuid4(), command_type="x",
                                         reason="instrument-already-registered")
    after = fold(row, applied(rejected, 2))
    assert after is not None and row is not None
    assert after == row._replace(version=2)


def test_a_resolution_ends_the_instrument_and_costs_are_not_market_datas() -> None:
    row = run(applied(InstrumentRegistered(spec=SPEC), 1))
    priced = fold(row, applied(InstrumentUpdated(changes=InstrumentChanges(
        slippage_ticks=2)), 2))
    assert priced is not None and row is not None
    assert priced == row._replace(version=2)  # trading costs are core's, not market data's
    resolved = fold(priced, applied(InstrumentResolved(
        outcome=0, source="kalshi", resolved_at=datetime(2026, 11, 4, tzinfo=UTC)), 3))
    assert resolved is not None and (resolved.status, resolved.version) == ("resolved", 3)


def test_events_of_an_unregistered_instrument_make_no_row() -> None:
    assert run(applied(InstrumentHalted(reason="x"), 1)) is None


def test_the_projection_reads_instrument_events_into_its_own_table() -> None:
    projection = MarketInstrumentsProjection()
    assert projection.topics == ("instrument.events",)
    assert projection.tables == ("market_instruments",)
    assert "CREATE TABLE IF NOT EXISTS market_instruments" in projection.ddl()[0]
    assert set(InstrumentInfo.model_fields) <= set(COLUMNS)
