"""core.handlers.instruments: the answer after a command is what the read model will show."""

from __future__ import annotations

import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.adapters.instruments_projection import Row, fold
from core.domain.instruments import InstrumentAggregate
from core.handlers import instruments as handlers
from core.views.instruments import InstrumentPublic
from kernel.application import Accepted, Command, Decided, Outcome, Pending, Rejected
from kernel.projection import Applied
from schemas.envelope import CommandPayload
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentSpec,
    RegisterInstrument,
    ResolveInstrument,
    ResumeInstrument,
    TradingHours,
)
from tests.support.deciding_bus import DecidingBus

SPEC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                      tick_size="0.01", lot_size="0.0001", quote_currency="USD",
                      description="Bitcoin / US dollar")
# A binary contract under the bus's one aggregate id: "will BTC-USD close above 100k?"
PREDICTION = InstrumentSpec.model_validate({
    **SPEC.model_dump(), "asset_class": "prediction", "venue": "kalshi", "lot_size": "1",
    "commission_per_unit": "0.01"})


def bus() -> DecidingBus:
    return DecidingBus({handlers.COMMANDS_TOPIC: InstrumentAggregate()})


def read_model(b: DecidingBus) -> InstrumentPublic | None:
    """The instruments projection's row after the whole log, as the view reads it."""
    row: Row | None = None
    for env in b.events_of("BTC-USD"):
        row = fold(row, Applied(env, b.registry.event_payload(env)))
    if row is None:
        return None
    return InstrumentPublic.model_validate(
        {**row._asdict(), "trading_hours": orjson.loads(row.trading_hours)})


def command(payload: CommandPayload) -> Command[CommandPayload]:
    return Command(payload=payload, aggregate_id="BTC-USD", command_id=uuid.uuid4(),
                   actor="admin-1")


async def register(b: DecidingBus, spec: InstrumentSpec = SPEC) -> Outcome[object]:
    return await handlers.register(b, b.registry, command(RegisterInstrument(spec=spec)))


async def change(b: DecidingBus, payload: CommandPayload) -> Outcome[object]:
    async def read() -> InstrumentPublic | None:
        return read_model(b)
    return await handlers.change(b, b.registry, command(payload),  # type: ignore[arg-type]
                                 read=read)


@pytest.mark.asyncio
async def test_register_answers_the_instrument_the_read_model_will_show() -> None:
    b = bus()
    outcome = await register(b)
    assert isinstance(outcome, Decided)
    answer = handlers.public(outcome.known)
    assert answer == read_model(b)
    assert (answer.status, answer.version, answer.halt_reason) == ("active", 1, None)


@pytest.mark.asyncio
async def test_halt_then_resume_answer_the_changed_row() -> None:
    b = bus()
    await register(b)
    halted = await change(b, HaltInstrument(reason="exchange outage"))
    assert isinstance(halted, Decided)
    assert handlers.public(halted.known) == read_model(b)
    assert halted.known.state.halt_reason == "exchange outage"  # type: ignore[attr-defined]
    resumed = await change(b, ResumeInstrument())
    assert isinstance(resumed, Decided)
    assert handlers.public(resumed.known).status == "active"


@pytest.mark.asyncio
async def test_registering_twice_is_rejected_with_the_deciders_reason() -> None:
    b = bus()
    await register(b)
    again = await register(b)
    assert isinstance(again, Rejected) and again.reason == "instrument-already-registered"


@pytest.mark.asyncio
async def test_a_change_to_an_unknown_instrument_is_rejected() -> None:
    outcome = await change(bus(), HaltInstrument(reason="x"))
    assert isinstance(outcome, Rejected) and outcome.reason == "instrument-not-registered"


@pytest.mark.asyncio
async def test_an_undecided_registration_is_pending() -> None:
    b = bus()
    b.undecided.add("instrument.register")
    assert isinstance(await register(b), Pending)


@pytest.mark.asyncio
async def test_a_late_duplicate_without_events_is_accepted_not_made_up() -> None:
    b = bus()
    cmd = command(RegisterInstrument(spec=SPEC))
    await handlers.register(b, b.registry, cmd)  # type: ignore[arg-type]
    b.trim = True
    again = await handlers.register(b, b.registry, cmd)  # type: ignore[arg-type]
    assert isinstance(again, Accepted) and again.duplicate


CHANGES = st.one_of(
    st.builds(lambda r: HaltInstrument(reason=r), st.sampled_from(["outage", "audit"])),
    st.just(ResumeInstrument()),
    st.builds(lambda d, t: _update(description=d, tick_size=t),
              st.sampled_from([None, "Bitcoin", "BTC"]),
              st.sampled_from([None, "0.01", "0.5"])),
    st.builds(lambda tz: _update(trading_hours=TradingHours(timezone=tz)),
              st.sampled_from(["UTC", "Europe/London"])),
    st.builds(lambda u, r, t: _update(commission_per_unit=u, commission_rate=r,
                                      slippage_ticks=t),
              st.sampled_from([None, "0", "0.25"]), st.sampled_from([None, "0.001"]),
              st.sampled_from([None, 0, 2])),
    st.builds(lambda o: ResolveInstrument(outcome=o), st.sampled_from([0, 1])),
)


def _update(**values: object) -> CommandPayload:
    from schemas.instrument import UpdateInstrument

    given_values = {k: v for k, v in values.items() if v is not None}
    return UpdateInstrument(changes=InstrumentChanges(**given_values or {"venue": "simulator"}))


@settings(max_examples=80, deadline=None)
@given(st.lists(CHANGES, max_size=8), st.sampled_from([SPEC, PREDICTION]))
def test_every_decided_answer_equals_the_read_model_after_it(
        changes: list[CommandPayload], spec: InstrumentSpec) -> None:
    import asyncio

    async def run() -> None:
        b = bus()
        first = await register(b, spec)
        assert isinstance(first, Decided)
        for payload in changes:
            outcome = await change(b, payload)
            if isinstance(outcome, Decided):
                assert handlers.public(outcome.known) == read_model(b)
            else:
                assert isinstance(outcome, Rejected)

    asyncio.run(run())


@pytest.mark.asyncio
async def test_resolve_answers_the_resolved_row_and_a_second_resolve_is_refused() -> None:
    b = bus()
    await register(b, PREDICTION)
    resolved = await change(b, ResolveInstrument(outcome=1, source="kalshi"))
    assert isinstance(resolved, Decided)
    answer = handlers.public(resolved.known)
    assert answer == read_model(b)
    assert (answer.status, answer.outcome, answer.resolution_source) == ("resolved", 1, "kalshi")
    assert str(answer.commission_per_unit) == "0.01"
    same = await change(b, ResolveInstrument(outcome=1))
    assert isinstance(same, Rejected) and same.reason == "instrument-already-resolved"
    other = await change(b, ResolveInstrument(outcome=0))
    assert isinstance(other, Rejected) and other.reason == "resolution-conflict"


@pytest.mark.asyncio
async def test_resolve_of_a_linear_instrument_is_refused() -> None:
    b = bus()
    await register(b)
    outcome = await change(b, ResolveInstrument(outcome=0))
    assert isinstance(outcome, Rejected) and outcome.reason == "instrument-not-resolvable"
