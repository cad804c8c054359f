"""Resume: what a client that comes back with its last (epoch, seq) receives.

Every channel has an epoch (a random u32 drawn when its history starts) and a sequence that
only grows (the message's position on the log). The history keeps the latest messages and
the `floor`: the highest sequence it has dropped. A client is owed exactly the messages
after its sequence when its epoch is the channel's and its sequence is at or above the
floor; otherwise it gets a snapshot, then the deltas after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ws_gateway.domain.protocol import Position


@dataclass(frozen=True, slots=True)
class HistoryState:
    """A channel's history as read from Redis: epoch (0 when none), floor, entries in order."""

    epoch: int
    floor: int
    entries: Sequence[tuple[int, bytes]]  # (seq, message)


@dataclass(frozen=True, slots=True)
class Gap:
    """Exactly the messages missed, oldest first."""

    messages: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    reason: Literal["epoch-changed", "history-exceeded", "no-history"]


def plan_resume(since: Position, history: HistoryState) -> Gap | Snapshot:
    """The gap after `since` when the history still reaches back to it, else a snapshot."""
    if history.epoch == 0:
        return Snapshot("no-history")
    if since.epoch != history.epoch:
        return Snapshot("epoch-changed")
    if since.seq < history.floor:
        return Snapshot("history-exceeded")
    return Gap(tuple((seq, msg) for seq, msg in history.entries if seq > since.seq))
