"""Given events, when a command, then events: the instrument aggregate's pure decisions."""

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
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
    RegisterInstrument,
    ResumeInstrument,
    UpdateInstrument,
)

AGG = InstrumentAggregate()
CTX = DecideContext(now=datetime(2026, 1, 1, tzinfo=UTC), command_id=uuid.UUID(int=1), actor=None)
SPEC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), quote_currency="USD")


def given(*events: EventPayload, symbol: str = "BTC-USD") -> Instrument:
    state = AGG.initial(symbol)
    for event in events:
        state = AGG.evolve(state, event)
    return state


def when(state: Instrument, command: CommandPayload) -> list[EventPayload]:
    return AGG.decide(command, state, CTX)




def test_register_when_unregistered_is_registered() -> None:
    assert when(given(), RegisterInstrument(spec=SPEC)) == [InstrumentRegistered(spec=SPEC)]


def test_register_when_already_registered_is_rejected() -> None:
    events = when(given(InstrumentRegistered(spec=SPEC)), RegisterInstrument(spec=SPEC))
    assert events == [InstrumentCommandRejected(
        command_id=CTX.command_id, command_type="instrument.register",
        reason="instrument-already-registered", detail="BTC-USD is already registered")]


def test_register_with_another_symbol_than_the_aggregate_is_rejected() -> None:
    events = when(given(symbol="ETH-USD"), RegisterInstrument(spec=SPEC))
    assert isinstance(events[0], InstrumentCommandRejected)
    assert events[0].reason == "symbol-mismatch"


@pytest.mark.parametrize("command", [
    UpdateInstrument(changes=InstrumentChanges(tick_size=Decimal("0.5"))),
    HaltInstrument(reason="outage"),
    ResumeInstrument(),
])
def test_change_when_unregistered_is_rejected(command: CommandPayload) -> None:
    events = when(given(), command)
    assert isinstance(events[0], InstrumentCommandRejected)
    assert events[0].reason == "instrument-not-registered"


def test_update_keeps_only_attributes_that_change() -> None:
    state = given(InstrumentRegistered(spec=SPEC))
    events = when(state, UpdateInstrument(changes=InstrumentChanges(
        tick_size=Decimal("0.01"), lot_size=Decimal("0.1"))))
    assert events == [InstrumentUpdated(changes=InstrumentChanges(lot_size=Decimal("0.1")))]
    after = AGG.evolve(state, events[0])
    assert after.spec is not None and after.spec.lot_size == Decimal("0.1")
    assert after.spec.tick_size == Decimal("0.01")


def test_update_that_changes_nothing_is_rejected() -> None:
    state = given(InstrumentRegistered(spec=SPEC))
    events = when(state, UpdateInstrument(changes=InstrumentChanges(tick_size=Decimal("0.01"))))
    assert isinstance(events[0], InstrumentCommandRejected)
    assert events[0].reason == "nothing-to-change"


def test_halt_then_resume_round_trip() -> None:
    state = given(InstrumentRegistered(spec=SPEC))
    assert when(state, HaltInstrument(reason="outage")) == [InstrumentHalted(reason="outage")]
    halted = given(InstrumentRegistered(spec=SPEC), InstrumentHalted(reason="outage"))
    assert halted.status == "halted" and halted.halt_reason == "outage"
    assert when(halted, ResumeInstrument()) == [InstrumentResumed()]
    resumed = AGG.evolve(halted, InstrumentResumed())
    assert resumed.status == "active" and resumed.halt_reason is None


def test_halt_when_halted_and_resume_when_active_are_rejected() -> None:
    halted = given(InstrumentRegistered(spec=SPEC), InstrumentHalted(reason="x"))
    active = given(InstrumentRegistered(spec=SPEC))
    assert when(halted, HaltInstrument(reason="y"))[0].reason == "instrument-already-halted"  # type: ignore[attr-defined]
    assert when(active, ResumeInstrument())[0].reason == "instrument-not-halted"  # type: ignore[attr-defined]


def test_a_rejection_does_not_change_the_state() -> None:
    state = given(InstrumentRegistered(spec=SPEC))
    rejection = when(state, RegisterInstrument(spec=SPEC))[0]
    assert AGG.evolve(state, rejection) == state
