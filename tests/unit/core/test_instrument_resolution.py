"""Given events, when `instrument.resolve`, then events: a prediction market resolves once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.domain.instruments import Instrument, InstrumentAggregate
from kernel.aggregate import DecideContext
from schemas.envelope import CommandPayload, EventPayload
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentSpec,
    ResolveInstrument,
    ResumeInstrument,
    UpdateInstrument,
)

AGG = InstrumentAggregate()
NOW = datetime(2026, 11, 4, 3, 0, tzinfo=UTC)
CTX = DecideContext(now=NOW, command_id=uuid.UUID(int=7), actor=None)
ELECTION = InstrumentSpec(symbol="PM:ELECTION-2026", venue="polymarket",
                          asset_class="prediction", tick_size=Decimal("0.001"),
                          lot_size=Decimal(1), quote_currency="USD")
BTC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                     tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), quote_currency="USD")


def given(*events: EventPayload, symbol: str = ELECTION.symbol) -> Instrument:
    state = AGG.initial(symbol)
    for event in events:
        state = AGG.evolve(state, event)
    return state


def when(state: Instrument, command: CommandPayload) -> list[EventPayload]:
    return AGG.decide(command, state, CTX)


def _reason(events: list[EventPayload]) -> str:
    assert len(events) == 1 and isinstance(events[0], InstrumentCommandRejected)
    return events[0].reason


def test_resolve_a_prediction_instrument_is_resolved_at_the_decision_time() -> None:
    events = when(given(InstrumentRegistered(spec=ELECTION)), ResolveInstrument(outcome=1))
    assert events == [InstrumentResolved(outcome=1, source="admin", resolved_at=NOW)]
    after = AGG.evolve(given(InstrumentRegistered(spec=ELECTION)), events[0])
    assert (after.status, after.outcome, after.resolution_source) == ("resolved", 1, "admin")


def test_resolve_from_a_venue_keeps_the_venues_time_and_name() -> None:
    at = datetime(2026, 11, 4, 2, 59, 30, tzinfo=UTC)
    events = when(given(InstrumentRegistered(spec=ELECTION)),
                  ResolveInstrument(outcome=0, source="polymarket", resolved_at=at))
    assert events == [InstrumentResolved(outcome=0, source="polymarket", resolved_at=at)]


def test_resolve_a_halted_prediction_instrument_is_resolved() -> None:
    state = given(InstrumentRegistered(spec=ELECTION), InstrumentHalted(reason="venue paused"))
    assert isinstance(when(state, ResolveInstrument(outcome=0))[0], InstrumentResolved)


def test_resolve_a_linear_instrument_is_rejected_as_not_resolvable() -> None:
    state = given(InstrumentRegistered(spec=BTC), symbol="BTC-USD")
    assert _reason(when(state, ResolveInstrument(outcome=1))) == "instrument-not-resolvable"


def test_resolve_an_unregistered_instrument_is_rejected() -> None:
    assert _reason(when(given(), ResolveInstrument(outcome=1))) == "instrument-not-registered"


def test_resolve_again_with_the_same_outcome_is_recognised_and_changes_nothing() -> None:
    resolved = InstrumentResolved(outcome=1, source="admin", resolved_at=NOW)
    state = given(InstrumentRegistered(spec=ELECTION), resolved)
    events = when(state, ResolveInstrument(outcome=1, source="kalshi"))
    assert _reason(events) == "instrument-already-resolved"
    assert AGG.evolve(state, events[0]) == state


def test_resolve_again_with_another_outcome_is_refused_as_a_conflict() -> None:
    state = given(InstrumentRegistered(spec=ELECTION),
                  InstrumentResolved(outcome=1, source="admin", resolved_at=NOW))
    assert _reason(when(state, ResolveInstrument(outcome=0))) == "resolution-conflict"
    assert state.outcome == 1


@pytest.mark.parametrize("command", [HaltInstrument(reason="late"), ResumeInstrument()])
def test_halt_or_resume_of_a_resolved_instrument_is_refused(command: CommandPayload) -> None:
    state = given(InstrumentRegistered(spec=ELECTION),
                  InstrumentResolved(outcome=0, source="admin", resolved_at=NOW))
    assert _reason(when(state, command)) == "instrument-resolved"


def test_a_resolved_instrument_survives_dump_and_load() -> None:
    state = given(InstrumentRegistered(spec=ELECTION),
                  InstrumentResolved(outcome=1, source="kalshi", resolved_at=NOW))
    assert AGG.load(AGG.dump(state)) == state


def test_a_snapshot_written_before_resolutions_loads_as_unresolved() -> None:
    data = AGG.dump(given(InstrumentRegistered(spec=ELECTION)))
    for key in ("outcome", "resolution_source", "resolved_at"):
        del data[key]
    assert AGG.load(data).outcome is None


def test_update_changes_the_costs_and_only_the_costs_that_differ() -> None:
    state = given(InstrumentRegistered(spec=ELECTION.model_copy(
        update={"commission_rate": Decimal("0.001")})))
    events = when(state, UpdateInstrument(changes=InstrumentChanges(
        commission_rate=Decimal("0.001"), commission_per_unit=Decimal("0.02"),
        slippage_ticks=2)))
    assert len(events) == 1 and not isinstance(events[0], InstrumentCommandRejected)
    after = AGG.evolve(state, events[0])
    assert after.spec is not None
    assert (after.spec.commission_per_unit, after.spec.commission_rate,
            after.spec.slippage_ticks) == (Decimal("0.02"), Decimal("0.001"), 2)
    assert set(events[0].changes.model_fields_set) == {  # type: ignore[attr-defined]
        "commission_per_unit", "slippage_ticks"}


@pytest.mark.parametrize("field,value", [
    ("commission_per_unit", "-0.01"), ("commission_rate", "0.5"), ("slippage_ticks", -1),
    ("slippage_ticks", 1001), ("commission_per_unit", "NaN"), ("commission_rate", "Infinity"),
])
def test_a_cost_out_of_bounds_is_refused_by_the_spec(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        InstrumentSpec.model_validate({**ELECTION.model_dump(), field: value})
