"""The application side of a command: send it, wait for its decision, and rebuild the decided
state with the aggregate's own `evolve`.

A handler (a service's `handlers/` package) builds a typed `Command`, names the state it knows
before the command (`Known`: for a create, `aggregate.initial(id)` at version 0; for a change,
the read model's row at its version) and calls `dispatch`, which answers one of:

- `Decided[S]`: accepted, and the state after it, folded from the reply's events;
- `Accepted`: accepted, but the state after it cannot be rebuilt here: the reply's events were
  trimmed (a late duplicate), unreadable (redacted personal fields: a user's), or begin after
  a gap from the known version (the read model lags). The caller reads the read model;
- `Rejected`: refused, with the decider's machine-readable reason (or `foreign`: the command
  id was decided for another actor, so that outcome is not this caller's);
- `Pending`: not decided within the wait; the reply stays pollable at /commands/{id}.

`facts`, `fold`, `decide_state` and `outcome_of` are pure; the async functions do IO only
through the bus and the caller's `read` of its read model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from kernel.aggregate import Aggregate
from schemas.envelope import (
    CommandEnvelope,
    CommandPayload,
    EventEnvelope,
    EventPayload,
    make_command,
)
from schemas.errors import DecodeError
from schemas.registry import TypeRegistry
from schemas.replies import CommandReply

S = TypeVar("S")
T = TypeVar("T")
C = TypeVar("C", bound=CommandPayload)
READ_YOUR_WRITES_S = 2.0  # how long a change waits for the read model to show its state


class CommandSender(Protocol):
    """What dispatch needs of `kernel.commands.CommandBus` (a fake in unit tests)."""

    async def send(self, topic: str, command: CommandEnvelope, *,
                   wait_ms: int | None = None) -> CommandReply | None: ...


@dataclass(frozen=True, kw_only=True)
class Command(Generic[C]):
    """A command as a handler takes it: the payload, its aggregate, who asks (the actor the
    log records and who may read the outcome), and its id (derived from the caller's
    Idempotency-Key by `kernel.commands.command_id_for`, or fixed by a saga step)."""

    payload: C
    aggregate_id: str
    command_id: uuid.UUID
    actor: str | None

    def envelope(self, now: datetime) -> CommandEnvelope:
        return make_command(self.payload, aggregate_id=self.aggregate_id,
                            command_id=self.command_id, issued_at=now, actor=self.actor)


@dataclass(frozen=True, kw_only=True)
class Fact:
    """A decided event: its envelope (sequence, time, actor) and its typed payload."""

    envelope: EventEnvelope
    payload: EventPayload

    @property
    def sequence(self) -> int:
        return self.envelope.sequence


@dataclass(frozen=True, kw_only=True)
class Known(Generic[S]):
    """An aggregate's state as of `version` (the sequence of the last event it reflects),
    with when it began (its first event; None if unknown) and when it last changed."""

    state: S
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Decided(Generic[S]):
    """Accepted; `known` is the state after the command (and any event the caller's state
    had beyond it), `facts` what the command decided."""

    command_id: uuid.UUID
    aggregate_id: str
    known: Known[S]
    facts: tuple[Fact, ...]
    duplicate: bool = False

    @property
    def state(self) -> S:
        return self.known.state

    @property
    def version(self) -> int:
        return self.known.version


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """Accepted, but the state after it is not known here (see the module docstring)."""

    command_id: uuid.UUID
    aggregate_id: str
    version: int  # the last decided event's sequence; 0 when the reply carries none
    facts: tuple[Fact, ...] | None  # None: the reply's events could not all be read
    reply: CommandReply  # as it came, its events redacted: for what no fold can give
    duplicate: bool = False

    @property
    def first(self) -> int:
        """The sequence of the command's first event (0 when unknown)."""
        return self.facts[0].sequence if self.facts else 0


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """Refused: `reason` is the decider's (a family's rejection reason) or, with `foreign`,
    `command-id-taken`: the id was decided for another actor's command."""

    command_id: uuid.UUID
    reason: str
    detail: str = ""
    foreign: bool = False


@dataclass(frozen=True, kw_only=True)
class Pending:
    """On the log, not decided within the wait."""

    command_id: uuid.UUID


Outcome = Decided[S] | Accepted | Rejected | Pending


@dataclass(frozen=True, kw_only=True)
class Channel(Generic[S]):
    """Where a family's commands go and how its decided events fold back into its state."""

    topic: str  # catalogue name of the commands topic
    aggregate: Aggregate[S]
    registry: TypeRegistry


def facts(registry: TypeRegistry, events: Sequence[dict[str, Any]]) -> tuple[Fact, ...] | None:
    """The reply's events, decoded and upcast through the registry, in order; None when any
    cannot be read (a payload whose personal fields were redacted, or of an unknown type)."""
    decoded: list[Fact] = []
    for raw in events:
        try:
            envelope = EventEnvelope.model_validate(raw)
            decoded.append(Fact(envelope=envelope, payload=registry.event_payload(envelope)))
        except (DecodeError, ValidationError):
            return None
    decoded.sort(key=lambda f: f.sequence)
    return tuple(decoded)


def fold(evolve: Callable[[S, EventPayload], S], before: Known[S],
         decided: Sequence[Fact]) -> Known[S] | None:
    """`before` with `decided` applied by `evolve`; events `before` already reflects are
    skipped. None when the first event it lacks does not follow its version (a gap: the
    state before the command is not the one known)."""
    known = before
    for fact in decided:
        if fact.sequence <= known.version:
            continue
        if fact.sequence != known.version + 1:
            return None
        at = fact.envelope.occurred_at
        known = replace(known, state=evolve(known.state, fact.payload), version=fact.sequence,
                        created_at=at if fact.sequence == 1 else known.created_at,
                        updated_at=at)
    return known


def decide_state(aggregate: Aggregate[S], accepted: Accepted,
                 before: Known[S]) -> Decided[S] | Accepted:
    """The state after an accepted command from the state known before it, or `accepted`
    as it is when that cannot be rebuilt (no readable events, or a gap)."""
    if not accepted.facts:
        return accepted
    after = fold(aggregate.evolve, before, accepted.facts)
    if after is None:
        return accepted
    return Decided(command_id=accepted.command_id, aggregate_id=accepted.aggregate_id,
                   known=after, facts=accepted.facts, duplicate=accepted.duplicate)


def outcome_of(registry: TypeRegistry | None, command: Command[Any],
               reply: CommandReply | None) -> Accepted | Rejected | Pending:
    """What a reply (None: none within the wait) says about `command`; without a registry
    the events are not decoded (`facts` None: the caller folds nothing from them)."""
    if reply is None:
        return Pending(command_id=command.command_id)
    if reply.actor is not None and reply.actor != command.actor:
        # The id was decided for someone else's command: its outcome is not this caller's.
        return Rejected(command_id=command.command_id, reason="command-id-taken",
                        detail="send the request with another Idempotency-Key", foreign=True)
    if reply.status == "rejected":
        return Rejected(command_id=command.command_id, reason=reply.reason or "rejected",
                        detail=reply.detail or "")
    decoded = None if registry is None else facts(registry, reply.events)
    version = max((int(e["sequence"]) for e in reply.events), default=0)
    return Accepted(command_id=command.command_id, aggregate_id=reply.aggregate_id,
                    version=version, facts=decoded, reply=reply, duplicate=reply.duplicate)


async def send(bus: CommandSender, topic: str, registry: TypeRegistry | None,
               command: Command[Any], *,
               wait_ms: int | None = None,
               now: Callable[[], datetime] = lambda: datetime.now(UTC),
               ) -> Accepted | Rejected | Pending:
    """Publish `command` and wait (up to `wait_ms`, else the bus's default) for its decision."""
    reply = await bus.send(topic, command.envelope(now()), wait_ms=wait_ms)
    return outcome_of(registry, command, reply)


async def dispatch(bus: CommandSender, channel: Channel[S], command: Command[Any], *,
                   before: Known[S], wait_ms: int | None = None,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Outcome[S]:
    """Send `command` and answer its typed outcome, the decided state folded onto `before`."""
    outcome = await send(bus, channel.topic, channel.registry, command, wait_ms=wait_ms,
                         now=now)
    if isinstance(outcome, Accepted):
        return decide_state(channel.aggregate, outcome, before)
    return outcome


async def dispatch_change(bus: CommandSender, channel: Channel[S], command: Command[Any], *,
                          read: Callable[[], Awaitable[Known[S] | None]],
                          wait_s: float = READ_YOUR_WRITES_S) -> Outcome[S]:
    """Send a change to an existing aggregate, folding its events onto the read model's state.

    The state before a change comes from the read model (`read`): the API holds no aggregate
    state of its own, and the reply carries only the command's events. When the row is
    exactly the state the command was decided on (or newer), the answer is immediate; when it
    lags, this waits up to `wait_s` for it to show at least that state. Still behind (or no
    row at all): `Accepted`, for the caller to point at where the state will appear.
    """
    before = await read()
    outcome = await dispatch(bus, channel, command, before=before or Known(
        state=channel.aggregate.initial(command.aggregate_id)))
    if not isinstance(outcome, Accepted):
        return outcome
    enough = outcome.version if not outcome.facts else outcome.first - 1
    now = await read_your_write(read, lambda known: known.version >= enough, wait=wait_s)
    if now is None:
        return outcome
    again = decide_state(channel.aggregate, outcome, now)
    if isinstance(again, Decided):
        return again
    if now.version >= outcome.version:  # its events unknown here, but the row shows them
        return Decided(command_id=outcome.command_id, aggregate_id=outcome.aggregate_id,
                       known=now, facts=(), duplicate=outcome.duplicate)
    return outcome


async def read_your_write(read: Callable[[], Awaitable[T | None]], done: Callable[[T], bool],
                          wait: float = READ_YOUR_WRITES_S) -> T | None:
    """The read model's answer once `done` holds, or the freshest answer after `wait`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        current = await read()
        if (current is not None and done(current)) or loop.time() >= deadline:
            return current
        await asyncio.sleep(0.01)
