"""What an aggregate family gives the decider runtime: pure functions, no IO."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from schemas.envelope import CommandPayload, EventPayload

S = TypeVar("S")


@dataclass(frozen=True, kw_only=True)
class DecideContext:
    """What a pure decider may know besides the command and the state."""

    now: datetime
    command_id: uuid.UUID
    actor: str | None


class Aggregate(Protocol[S]):
    """The pure part of an aggregate family, as the runtime drives it."""

    family: str
    rejection: type[EventPayload]

    def initial(self, aggregate_id: str) -> S: ...

    def decide(self, command: CommandPayload, state: S, ctx: DecideContext) -> list[EventPayload]:
        ...

    def evolve(self, state: S, event: EventPayload) -> S: ...

    def dump(self, state: S) -> dict[str, Any]:
        """The state as JSON-ready data, for snapshots."""
        ...

    def load(self, data: dict[str, Any]) -> S:
        """The state back from `dump`."""
        ...
