"""kernel.application: the pure fold of reply events, and dispatch over an in-memory decider."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.aggregate import DecideContext
from kernel.application import (
    Accepted,
    Channel,
    Command,
    Decided,
    Fact,
    Known,
    Pending,
    Rejected,
    decide_state,
    dispatch,
    dispatch_change,
    facts,
    fold,
    outcome_of,
)
from schemas.envelope import CommandPayload, EventPayload
from schemas.registry import build_registry
from schemas.replies import CommandReply
from schemas.sensitive import PERSONAL
from tests.support.deciding_bus import T0, DecidingBus

# A tiny family of our own: the kernel is tested without any service's aggregate.


class Add(CommandPayload):
    TYPE = "counter.add"
    amount: int


class Name(CommandPayload):
    TYPE = "counter.name"
    name: str


class Added(EventPayload):
    TYPE = "counter.added"
    amount: int


class Named(EventPayload):
    TYPE = "counter.named"
    name: Annotated[str, PERSONAL]


class Refused(EventPayload):
    TYPE = "counter.command-rejected"
    command_id: uuid.UUID
    command_type: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Counter:
    counter_id: str
    total: int = 0
    steps: int = 0
    name: str | None = None


class CounterAggregate:
    """Adds amounts; an amount above 10 is decided as two events (a multi-event fold)."""

    family = "counter"
    rejection: type[EventPayload] = Refused

    def initial(self, aggregate_id: str) -> Counter:
        return Counter(aggregate_id)

    def decide(self, command: CommandPayload, state: Counter,
               ctx: DecideContext) -> list[EventPayload]:
        match command:
            case Add(amount=amount) if amount <= 0:
                return [Refused(command_id=ctx.command_id, command_type=command.TYPE,
                                reason="amount-not-positive", detail=f"{amount}")]
            case Add(amount=amount) if amount > 10:
                return [Added(amount=amount // 2), Added(amount=amount - amount // 2)]
            case Add(amount=amount):
                return [Added(amount=amount)]
            case Name(name=name):
                return [Named(name=name)]
        raise TypeError(command.TYPE)

    def evolve(self, state: Counter, event: EventPayload) -> Counter:
        match event:
            case Added(amount=amount):
                return replace(state, total=state.total + amount, steps=state.steps + 1)
            case Named(name=name):
                return replace(state, name=name)
            case Refused():
                return state
        raise TypeError(event.TYPE)

    def dump(self, state: Counter) -> dict[str, Any]:
        return {"counter_id": state.counter_id, "total": state.total, "steps": state.steps,
                "name": state.name}

    def load(self, data: dict[str, Any]) -> Counter:
        return Counter(**data)


AGG = CounterAggregate()
REGISTRY = build_registry([[Add, Name, Added, Named, Refused]])
CHANNEL = Channel(topic="counter.commands", aggregate=AGG, registry=REGISTRY)


def bus() -> DecidingBus:
    return DecidingBus({"counter.commands": AGG}, registry=REGISTRY)


def command(payload: CommandPayload, *, actor: str | None = "u1",
            command_id: uuid.UUID | None = None) -> Command[CommandPayload]:
    return Command(payload=payload, aggregate_id="c1", actor=actor,
                   command_id=command_id or uuid.uuid4())


def initial() -> Known[Counter]:
    return Known(state=AGG.initial("c1"))


def reply_events(b: DecidingBus) -> list[Fact]:
    return [Fact(envelope=e, payload=REGISTRY.event_payload(e)) for e in b.log]


async def decided(b: DecidingBus, payload: CommandPayload,
                  before: Known[Counter] | None = None) -> Decided[Counter]:
    outcome = await dispatch(b, CHANNEL, command(payload), before=before or initial())
    assert isinstance(outcome, Decided)
    return outcome


# The pure fold -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_create_folds_from_the_initial_state_with_its_times_and_version() -> None:
    b = bus()
    out = await decided(b, Add(amount=3))
    assert out.state == Counter("c1", total=3, steps=1)
    assert (out.version, out.known.created_at, out.known.updated_at) == (1, T0, T0)
    assert [f.payload for f in out.facts] == [Added(amount=3)]


@pytest.mark.asyncio
async def test_several_events_of_one_command_fold_in_order() -> None:
    b = bus()
    first = await decided(b, Add(amount=1))
    out = await decided(b, Add(amount=15), before=first.known)
    assert out.state == Counter("c1", total=16, steps=3)
    assert out.version == 3 and out.known.created_at == T0
    assert out.known.updated_at == b.log[-1].occurred_at


@pytest.mark.asyncio
async def test_events_the_known_state_already_shows_are_not_folded_twice() -> None:
    b = bus()
    first = await decided(b, Add(amount=1))
    second = await decided(b, Add(amount=15), before=first.known)
    # A read model already at version 3 knows both events of the second command.
    assert fold(AGG.evolve, second.known, second.facts) == second.known
    # One at version 2 knows only the first of them.
    halfway = fold(AGG.evolve, first.known, second.facts[:1])
    assert halfway is not None and halfway.version == 2
    assert fold(AGG.evolve, halfway, second.facts) == second.known


@pytest.mark.asyncio
async def test_a_gap_between_the_known_version_and_the_events_is_no_state() -> None:
    b = bus()
    await decided(b, Add(amount=1))
    second = await dispatch(b, CHANNEL, command(Add(amount=2)), before=initial())
    # Decided at version 2 while the caller knew version 0: folding would skip event 1.
    assert isinstance(second, Accepted)
    assert second.version == 2 and second.first == 2
    assert fold(AGG.evolve, initial(), second.facts or ()) is None


@given(st.lists(st.integers(min_value=-3, max_value=30), min_size=1, max_size=12))
def test_folding_each_reply_onto_the_last_gives_the_state_of_the_whole_log(
        amounts: list[int]) -> None:
    import asyncio

    async def run() -> None:
        b = bus()
        known = initial()
        for amount in amounts:
            outcome = await dispatch(b, CHANNEL, command(Add(amount=amount)), before=known)
            if isinstance(outcome, Decided):
                known = outcome.known
            else:
                assert isinstance(outcome, Rejected) and amount <= 0
                # A refusal is an event on the log too: the next fold starts after it.
                known = replace(known, version=len(b.log))
        whole = fold(AGG.evolve, initial(), reply_events(b))
        assert whole is not None
        assert known.state == whole.state and known.version == whole.version
        assert known.state.total == sum(a for a in amounts if a > 0)

    asyncio.run(run())


def test_redacted_or_unknown_events_cannot_be_decoded() -> None:
    b = bus()
    import asyncio

    asyncio.run(b.send("counter.commands", command(Name(name="Ada")).envelope(T0)))
    redacted = REGISTRY.redacted(b.log[0].model_dump(mode="json"))
    assert redacted["payload"] == {}  # its one field is personal
    assert facts(REGISTRY, [redacted]) is None
    assert facts(build_registry([]), [b.log[0].model_dump(mode="json")]) is None
    assert facts(REGISTRY, [b.log[0].model_dump(mode="json")]) is not None


@pytest.mark.asyncio
async def test_a_command_whose_events_are_redacted_is_accepted_without_a_state() -> None:
    outcome = await dispatch(bus(), CHANNEL, command(Name(name="Ada")), before=initial())
    assert isinstance(outcome, Accepted)
    assert outcome.facts is None and outcome.version == 1
    assert outcome.reply.events[0]["type"] == "counter.named"


# Outcomes of a reply -------------------------------------------------------------------------


def test_no_reply_within_the_wait_is_pending() -> None:
    cmd = command(Add(amount=1))
    assert outcome_of(REGISTRY, cmd, None) == Pending(command_id=cmd.command_id)


def test_a_reply_decided_for_another_actor_is_not_this_callers() -> None:
    cmd = command(Add(amount=1), actor="intruder")
    reply = CommandReply(command_id=cmd.command_id, aggregate_id="c1", status="accepted",
                         actor="owner")
    out = outcome_of(REGISTRY, cmd, reply)
    assert isinstance(out, Rejected) and out.foreign and out.reason == "command-id-taken"


@pytest.mark.asyncio
async def test_a_refusal_carries_the_deciders_reason_and_detail() -> None:
    out = await dispatch(bus(), CHANNEL, command(Add(amount=0)), before=initial())
    assert isinstance(out, Rejected) and not out.foreign
    assert (out.reason, out.detail) == ("amount-not-positive", "0")


@pytest.mark.asyncio
async def test_a_duplicate_is_decided_alike_and_says_so() -> None:
    b = bus()
    cmd = command(Add(amount=4))
    first = await dispatch(b, CHANNEL, cmd, before=initial())
    again = await dispatch(b, CHANNEL, cmd, before=initial())
    assert isinstance(first, Decided) and isinstance(again, Decided)
    assert again.duplicate and again.known == first.known and len(b.log) == 1


@pytest.mark.asyncio
async def test_a_duplicate_whose_events_were_trimmed_is_accepted_without_a_state() -> None:
    b = bus()
    cmd = command(Add(amount=4))
    await dispatch(b, CHANNEL, cmd, before=initial())
    b.trim = True
    again = await dispatch(b, CHANNEL, cmd, before=initial())
    assert isinstance(again, Accepted) and again.duplicate and again.facts == ()


@pytest.mark.asyncio
async def test_an_undecided_command_is_pending() -> None:
    b = bus()
    b.undecided.add("counter.add")
    out = await dispatch(b, CHANNEL, command(Add(amount=1)), before=initial())
    assert isinstance(out, Pending)


# A change folded onto the read model ---------------------------------------------------------


class ReadModel:
    """A read model that catches up with the log `lag` reads late."""

    def __init__(self, b: DecidingBus, *, lag: int = 0, never: bool = False) -> None:
        self.bus, self.lag, self.never, self.reads = b, lag, never, 0
        self.frozen: Known[Counter] | None = None

    def now(self) -> Known[Counter] | None:
        if not self.bus.log or self.never:
            return self.frozen
        return fold(AGG.evolve, initial(), reply_events(self.bus))

    async def read(self) -> Known[Counter] | None:
        self.reads += 1
        if self.reads <= self.lag:
            return self.frozen
        return self.now()


def change(b: DecidingBus, model: ReadModel,
           wait_s: float = 0.2) -> Callable[[int], Awaitable[Any]]:
    async def run(amount: int) -> Any:
        return await dispatch_change(b, CHANNEL, command(Add(amount=amount)), read=model.read,
                                     wait_s=wait_s)
    return run


@pytest.mark.asyncio
async def test_a_change_on_a_read_model_in_step_is_decided_at_once() -> None:
    b = bus()
    await decided(b, Add(amount=2))
    model = ReadModel(b)
    out = await change(b, model)(3)
    assert isinstance(out, Decided) and out.state.total == 5 and out.version == 2
    assert model.reads == 1


@pytest.mark.asyncio
async def test_a_change_on_a_lagging_read_model_waits_for_it_then_folds() -> None:
    b = bus()
    await decided(b, Add(amount=2))
    model = ReadModel(b, lag=3)  # reads nothing three times, then the whole log
    out = await change(b, model)(3)
    assert isinstance(out, Decided) and out.state.total == 5 and out.version == 2


@pytest.mark.asyncio
async def test_a_change_the_read_model_never_shows_is_accepted() -> None:
    b = bus()
    await decided(b, Add(amount=2))
    model = ReadModel(b, never=True)
    out = await change(b, model, wait_s=0.05)(3)
    assert isinstance(out, Accepted) and out.version == 2


@pytest.mark.asyncio
async def test_a_change_stuck_behind_a_stale_row_is_accepted_not_folded_wrongly() -> None:
    b = bus()
    await decided(b, Add(amount=2))
    await dispatch(b, CHANNEL, command(Add(amount=1)), before=initial())  # version 2
    model = ReadModel(b, never=True)
    model.frozen = Known(state=Counter("c1", total=2, steps=1), version=1)
    out = await change(b, model, wait_s=0.05)(4)
    assert isinstance(out, Accepted) and out.first == 3


def test_decide_state_keeps_the_accepted_outcome_when_it_has_no_events() -> None:
    reply = CommandReply(command_id=uuid.uuid4(), aggregate_id="c1", status="accepted",
                         duplicate=True)
    accepted = Accepted(command_id=reply.command_id, aggregate_id="c1", version=0, facts=(),
                        reply=reply, duplicate=True)
    assert decide_state(AGG, accepted, initial()) is accepted


@pytest.mark.asyncio
@pytest.mark.parametrize("amount", [1, 12])
async def test_the_command_on_the_log_is_the_typed_command(amount: int) -> None:
    b = bus()
    cmd = command(Add(amount=amount), actor="admin-7")
    await dispatch(b, CHANNEL, cmd, before=initial())
    (sent,) = b.sent
    assert (sent.command_id, sent.aggregate_id, sent.actor, sent.type, sent.payload) == (
        cmd.command_id, "c1", "admin-7", "counter.add", {"amount": amount})
