"""Time travel: an account as it was at an instant, from its newest snapshot at or before the
instant (`account_snapshots`) and the bounded tail of its partition after it.

The outcomes: `AccountAsOf` (the account then), `NotOpenYet` (nothing had happened to it by
then: its first event is later), `HistoryPending` (the history projection has not seen the
account yet). A tail longer than the reader's cap raises `TailTooLong`; every reader busy
raises `ReadersBusy`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg

from core.adapters.account_log import AccountLogReader
from core.domain.trading.history import Rewind, Rewound
from core.views.account_history import (
    AccountAsOf,
    HistoryPoint,
    account_as_of,
    history_point,
)


@dataclass(frozen=True)
class NotOpenYet:
    """The account's first event is after the instant."""


@dataclass(frozen=True)
class HistoryPending:
    """The history projection has not seen the account yet."""


@dataclass(frozen=True)
class Travelled:
    account: AccountAsOf
    records_read: int


async def travel(conn: psycopg.AsyncConnection, reader: AccountLogReader,
                 account_id: uuid.UUID, as_of: datetime
                 ) -> Travelled | NotOpenYet | HistoryPending:
    """The account at `as_of`. An instant later than the log's newest event answers the
    account as the log stands now."""
    point = await history_point(conn, account_id, as_of, events_topic=reader.topic)
    if point is None:
        return HistoryPending()
    if point.snapshot is None or point.snapshot_offset is None:
        return NotOpenYet()
    assert point.snapshot_version is not None
    rewind = Rewind(Rewound(point.snapshot, point.snapshot_version, point.snapshot_at), as_of)
    read = await reader.fold(rewind, account_id=str(account_id), partition=point.partition,
                             ranges=tail_ranges(point, as_of))
    now = rewind.now
    if now.state.status == "none":
        return NotOpenYet()
    return Travelled(account_as_of(now.state, version=now.version, last_event_at=now.at,
                                   as_of=as_of), read)


def tail_ranges(point: HistoryPoint, as_of: datetime) -> list[tuple[int, int | None]]:
    """The offsets of the account's partition to read after its snapshot (to None: the end of
    the log). At most `every_records` of the history projection, plus what it has not read."""
    assert point.snapshot_offset is not None
    if point.next_prev_offset is not None:
        # Up to the account's last event before its next snapshot (which is past `as_of`).
        return [(point.snapshot_offset, point.next_prev_offset)]
    if as_of < point.at:
        # An event the projection saw is past the instant: the fold stops at it, or before.
        return [(point.snapshot_offset, point.events_offset)]
    # Up to the account's last event the projection saw, then whatever it has not read yet.
    return [(point.snapshot_offset, point.events_offset),
            (max(point.projection_offset, point.events_offset), None)]
