"""Time travel, pure: an account as it was at an instant, from a snapshot and the events after.

An account's events are totally ordered on its partition, but their clocks are not: a decided
command carries the engine's wall clock, a tick-driven fill the tick's venue time, which can
be a little older. So "the account at `as_of`" is the longest prefix of its events whose times
are all at or before `as_of`: fold in log order and stop at the first event past it. That is
always a state the account really was in, and it equals folding every event whose running
maximum time (`Rewound.at`) is at or before `as_of`, which is what a snapshot's time records.

No IO here: the projection decides when to snapshot (`snapshot_due`), the reader feeds events
to `Rewind` and stops when it says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.domain.trading.state import TradingAccount, dump, evolve, initial, load
from schemas.envelope import EventEnvelope, EventPayload


@dataclass(slots=True)
class Rewound:
    """An account's state after its event `version`; `at` is the newest time among them."""

    state: TradingAccount
    version: int = 0
    at: datetime | None = None

    @classmethod
    def start(cls, account_id: str) -> Rewound:
        return cls(initial(account_id))


class Rewind:
    """Folds one account's events, in log order, up to the instant `as_of`."""

    def __init__(self, start: Rewound, as_of: datetime) -> None:
        self.now = start
        self.as_of = as_of
        self.done = start.at is not None and start.at > as_of
        self.folded = 0

    def feed(self, envelope: EventEnvelope, payload: EventPayload) -> bool:
        """Fold one event of the account unless it is past `as_of`; False once one was (the
        fold is then finished and later events change nothing)."""
        if self.done:
            return False
        now = self.now
        if envelope.sequence <= now.version:
            return True  # already in the snapshot the fold started from
        if envelope.occurred_at > self.as_of:
            self.done = True
            return False
        evolve(now.state, payload)
        now.version = envelope.sequence
        if now.at is None or envelope.occurred_at > now.at:
            now.at = envelope.occurred_at
        self.folded += 1
        return True


def snapshot_due(*, version: int, snapshot_version: int, records_since: int,
                 every_events: int, every_records: int) -> bool:
    """Whether the projection snapshots an account right after its event `version`.

    The first event always; then every `every_events` of its events, and at its first event
    `every_records` or more records of the partition after its last snapshot. So the events
    of an account after a snapshot, up to its next one, lie within `every_records` records of
    it: a time travel reads at most that many records of the log, whatever the account did."""
    return (snapshot_version == 0 or version - snapshot_version >= every_events
            or records_since >= every_records)


def dump_for_history(state: TradingAccount) -> dict[str, Any]:
    """The state for a snapshot, without the ids of every order that ever finished: they
    grow with the account's life, and nothing a time travel answers reads them (the history
    projection also drops them from the states it keeps)."""
    return {**dump(state), "finished": []}


def load_from_history(data: dict[str, Any]) -> TradingAccount:
    return load(data)
