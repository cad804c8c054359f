"""What a decider holds per owned partition, and its snapshot form. Pure: no IO."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

import orjson

from kernel.aggregate import Aggregate
from schemas.envelope import EventEnvelope

S = TypeVar("S")


@dataclass
class Versioned(Generic[S]):
    version: int
    value: S


@dataclass(frozen=True)
class Outcome:
    status: Literal["accepted", "rejected"]
    reason: str | None
    detail: str | None
    events: tuple[dict[str, Any], ...]
    decided_at: datetime
    actor: str | None = None  # who sent the command decided: only they may read the reply

    def dump(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "detail": self.detail,
                "events": list(self.events), "decided_at": self.decided_at.isoformat(),
                "actor": self.actor}

    @classmethod
    def load(cls, data: dict[str, Any]) -> Outcome:
        return cls(data["status"], data["reason"], data["detail"], tuple(data["events"]),
                   datetime.fromisoformat(data["decided_at"]), data.get("actor"))


@dataclass
class PartitionState(Generic[S]):
    """Aggregates and decided commands of one partition.

    Every decided command id is kept for the commands' retention (that is what makes a
    redelivery a duplicate), but the events of its outcome, only within a byte budget
    (`remember`): past it the oldest outcomes keep their status and lose their events, so a
    very late duplicate is answered without them instead of the process growing without bound.
    """

    aggregates: dict[str, Versioned[S]] = field(default_factory=dict)
    decided: dict[uuid.UUID, Outcome] = field(default_factory=dict)
    next_event_offset: int = 0  # the events-partition offset this state has folded up to
    since_snapshot: int = 0
    decided_bytes: int = 0  # bytes (as JSON) of the events held in `decided`
    _with_events: deque[tuple[uuid.UUID, int]] = field(default_factory=deque, init=False,
                                                        repr=False, compare=False)

    def remember(self, command_id: uuid.UUID, outcome: Outcome, *,
                 budget: int | None = None) -> None:
        """Record a decided command; trim the oldest outcomes' events beyond `budget` bytes."""
        self.decided[command_id] = outcome
        if outcome.events:
            size = len(orjson.dumps(outcome.events))
            self.decided_bytes += size
            self._with_events.append((command_id, size))
        if budget is not None:
            self.trim_to(budget)

    def trim_to(self, budget: int) -> None:
        """Drop the events of the oldest outcomes until those held fit in `budget` bytes."""
        while self.decided_bytes > budget and self._with_events:
            command_id, size = self._with_events.popleft()
            self.decided_bytes -= size
            outcome = self.decided.get(command_id)
            if outcome is not None and outcome.events:
                self.decided[command_id] = replace(outcome, events=())

    def forget_decided_before(self, cutoff: datetime) -> int:
        """Drop outcomes older than the commands' retention: they can no longer be redelivered."""
        old = {cid for cid, o in self.decided.items() if o.decided_at < cutoff}
        for cid in old:
            del self.decided[cid]
        if old:
            kept = deque((cid, size) for cid, size in self._with_events if cid not in old)
            self.decided_bytes = sum(size for _, size in kept)
            self._with_events = kept
        return len(old)


def _as_is(event: dict[str, Any]) -> dict[str, Any]:
    return event


def outcome_of(events: list[EventEnvelope], rejection_type: str, *,
               redact: Callable[[dict[str, Any]], dict[str, Any]] = _as_is,
               decided_at: datetime | None = None, sender: str | None = None) -> Outcome:
    """The answer to a command, from the events it produced; `redact` makes each event fit
    for a reply (the decider leaves out the sensitive fields: TypeRegistry.redacted).

    A command that changed nothing (no events: halting an account already halted) is
    accepted with none, decided at `decided_at` for `sender`; it leaves no trace on the log,
    so only the decider that decided it remembers it."""
    if not events:
        if decided_at is None:
            raise ValueError("a command decided without events needs decided_at")
        return Outcome("accepted", None, None, (), decided_at, sender)
    at = events[-1].occurred_at
    actor = events[0].actor
    if len(events) == 1 and events[0].type == rejection_type:
        payload = events[0].payload
        return Outcome("rejected", str(payload.get("reason")),
                       str(payload.get("detail") or ""), (), at, actor)
    return Outcome("accepted", None, None,
                   tuple(redact(e.model_dump(mode="json")) for e in events), at, actor)


def dump_items(state: PartitionState[S], aggregate: Aggregate[S]) -> list[list[Any]]:
    """Flatten a partition state into JSON-ready items, for chunked snapshots."""
    items: list[list[Any]] = [
        ["a", agg_id, v.version, aggregate.dump(v.value)]
        for agg_id, v in sorted(state.aggregates.items())
    ]
    items += [["d", str(cid), o.dump()] for cid, o in state.decided.items()]
    return items


def load_items(items: list[list[Any]], aggregate: Aggregate[S], *,
               next_event_offset: int) -> PartitionState[S]:
    state: PartitionState[S] = PartitionState(next_event_offset=next_event_offset)
    for item in items:
        if item[0] == "a":
            state.aggregates[item[1]] = Versioned(int(item[2]), aggregate.load(item[3]))
        elif item[0] == "d":
            state.remember(uuid.UUID(item[1]), Outcome.load(item[2]))
        else:
            raise ValueError(f"unknown snapshot item kind {item[0]!r}")
    return state


DEDUPE_WINDOW = timedelta(days=7)  # the commands topics' retention (schemas/topics.py)
