"""What a slow client is owed: the latest tick per instrument, and a bounded JSON queue."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ws_gateway.domain.frames import TickEntry


@dataclass(slots=True)
class Pending:
    """Messages held back while a client's socket buffer is full.

    Ticks are conflated: a newer tick of an instrument replaces the older one (counted as a
    drop). Other messages (orders, fills, bars) cannot be conflated: they queue up to
    `limit`, and `offer` returns False once the queue is full (the client is then closed).
    """

    limit: int
    ticks: dict[int, TickEntry] = field(default_factory=dict)
    messages: deque[bytes] = field(default_factory=deque)
    dropped: int = 0

    def add_ticks(self, entries: list[TickEntry]) -> int:
        """Keep the latest of each instrument; returns how many older ticks were dropped."""
        before = len(self.ticks)
        for entry in entries:
            self.ticks[entry.instrument_id] = entry
        dropped = len(entries) - (len(self.ticks) - before)
        self.dropped += dropped
        return dropped

    def offer(self, message: bytes) -> bool:
        if len(self.messages) >= self.limit:
            return False
        self.messages.append(message)
        return True

    def __len__(self) -> int:
        return len(self.ticks) + len(self.messages)

    def take(self) -> tuple[list[TickEntry], list[bytes]]:
        ticks = sorted(self.ticks.values(), key=lambda e: (e.instrument_id, e.seq))
        messages = list(self.messages)
        self.ticks.clear()
        self.messages.clear()
        return ticks, messages
