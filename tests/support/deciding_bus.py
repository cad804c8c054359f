"""A command bus that decides in memory with the real aggregates, as the decider would.

It implements `kernel.application.CommandSender`: each topic is served by one pure aggregate;
a command is decided against the aggregate's state, its events get the decider's sequences
and ids, and the reply is built by the decider's own `outcome_of` with the registry's
redaction. A command id already decided gets its first outcome again (`duplicate=True`).
`log` holds every event as the projection would read it, rejections included.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kernel.aggregate import Aggregate, DecideContext
from kernel.decider_state import Outcome, outcome_of
from schemas import default_registry
from schemas.envelope import CommandEnvelope, EventEnvelope, derive_event_id, make_event
from schemas.registry import TypeRegistry
from schemas.replies import CommandReply

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class DecidingBus:
    aggregates: dict[str, Aggregate[Any]]  # commands topic -> its aggregate
    registry: TypeRegistry = field(default_factory=default_registry)
    undecided: set[str] = field(default_factory=set)  # command types left without a reply
    trim: bool = False  # duplicates come without their events (the decider's byte budget)
    # What decide may know besides the command (the account engine's market and quotes);
    # None: the plain DecideContext.
    context: Callable[[CommandEnvelope, datetime], DecideContext] | None = None
    sent: list[CommandEnvelope] = field(default_factory=list)
    log: list[EventEnvelope] = field(default_factory=list)
    _states: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    _decided: dict[uuid.UUID, Outcome] = field(default_factory=dict)

    def now(self) -> datetime:
        return T0 + timedelta(seconds=len(self.log))

    def events_of(self, aggregate_id: str) -> list[EventEnvelope]:
        return [e for e in self.log if e.aggregate_id == aggregate_id]

    async def send(self, topic: str, command: CommandEnvelope, *,
                   wait_ms: int | None = None) -> CommandReply | None:
        self.sent.append(command)
        known = self._decided.get(command.command_id)
        if known is not None:
            events = () if self.trim else known.events
            return CommandReply(command_id=command.command_id,
                                aggregate_id=command.aggregate_id, status=known.status,
                                reason=known.reason, detail=known.detail, events=events,
                                duplicate=True, actor=known.actor)
        aggregate = self.aggregates[topic]
        key = (topic, command.aggregate_id)
        version, state = self._states.get(key, (0, aggregate.initial(command.aggregate_id)))
        ctx = (DecideContext(now=self.now(), command_id=command.command_id,
                             actor=command.actor)
               if self.context is None else self.context(command, self.now()))
        payloads = aggregate.decide(self.registry.command_payload(command), state, ctx)
        events = []
        for i, payload in enumerate(payloads):
            events.append(make_event(
                payload, aggregate_id=command.aggregate_id, sequence=version + i + 1,
                occurred_at=ctx.now, correlation_id=command.correlation_id,
                causation_id=command.command_id,
                event_id=derive_event_id(command.command_id, i), actor=command.actor))
            state = aggregate.evolve(state, payload)
        self._states[key] = (version + len(events), state)
        self.log += events
        outcome = outcome_of(events, aggregate.rejection.TYPE, redact=self.registry.redacted,
                             decided_at=ctx.now, sender=command.actor)
        self._decided[command.command_id] = outcome
        if command.type in self.undecided or wait_ms == 0:
            return None
        return CommandReply(command_id=command.command_id, aggregate_id=command.aggregate_id,
                            status=outcome.status, reason=outcome.reason,
                            detail=outcome.detail, events=outcome.events, duplicate=False,
                            actor=outcome.actor)
