"""The account history: per account, snapshots of its trading state with the log offset each
covers, from which a time travel (`GET /accounts/{id}?as_of=`) reads only a bounded tail.

Two tables. `account_history` holds one row per account: its state after its last event
(what the next batch folds on), that event's offset and time, and where its last snapshot is.
`account_snapshots` holds the snapshots: the state after event `version`, `events_offset`
(the offset after that event: the tail starts there), `prev_offset` (the offset after the
account's event before it: a time travel from the previous snapshot reads up to there) and
`at`, the newest event time folded (never decreasing with the version, so the snapshot of an
instant is found by index). When to snapshot is `core.domain.trading.history.snapshot_due`:
the first event, every `every_events` events of the account, and its first event
`every_records` records or more after its last snapshot; so the events between two
snapshots of an account lie within `every_records` records of the first.

Rows and offsets commit in one transaction (`kernel.projection`); an event at or below a
row's version is skipped and a snapshot already written is kept, so a replay changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import psycopg

from core.domain import trading
from core.domain.trading.history import dump_for_history, snapshot_due
from kernel.projection import Applied

EVERY_EVENTS = 100
EVERY_RECORDS = 2_000

DDL = (
    """
    CREATE TABLE IF NOT EXISTS account_history (
        account_id UUID PRIMARY KEY,
        partition INT NOT NULL,
        version BIGINT NOT NULL,
        events_offset BIGINT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        snapshot_version BIGINT NOT NULL,
        snapshot_offset BIGINT NOT NULL,
        state JSONB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS account_snapshots (
        account_id UUID NOT NULL,
        version BIGINT NOT NULL,
        partition INT NOT NULL,
        events_offset BIGINT NOT NULL,
        prev_offset BIGINT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        state JSONB NOT NULL,
        PRIMARY KEY (account_id, version)
    )
    """,
    "CREATE INDEX IF NOT EXISTS account_snapshots_by_time ON account_snapshots "
    "(account_id, at DESC, version DESC)",
)


class Current(NamedTuple):
    """An account's history row, with its state loaded."""

    partition: int
    version: int
    events_offset: int
    at: datetime
    snapshot_version: int
    snapshot_offset: int
    state: trading.TradingAccount


class Snapshot(NamedTuple):
    account_id: str
    version: int
    partition: int
    events_offset: int
    prev_offset: int
    at: datetime
    state: bytes


def fold_history(current: dict[str, Current | None], events: Sequence[Applied], *,
                 every_events: int, every_records: int) -> tuple[dict[str, Current],
                                                                 list[Snapshot]]:
    """Fold a batch (log order) onto the accounts' rows (updated in place in `current`);
    return the rows that changed and the snapshots that fell due. Pure."""
    changed: dict[str, Current] = {}
    snapshots: list[Snapshot] = []
    for applied in events:
        env = applied.envelope
        key = env.aggregate_id
        row = current.get(key)
        if row is not None and env.sequence <= row.version:
            continue  # already folded (a replayed batch)
        if applied.offset < 0:
            raise ValueError("the account history needs each event's log offset")
        state = trading.initial(key) if row is None else row.state
        trading.evolve(state, applied.payload)
        if state.finished:  # not part of any answer, and it grows with every order
            state.finished.clear()
        at = env.occurred_at if row is None or env.occurred_at > row.at else row.at
        prev_offset = -1 if row is None else row.events_offset
        snap_version = 0 if row is None else row.snapshot_version
        snap_offset = 0 if row is None else row.snapshot_offset
        offset = applied.offset + 1
        if snapshot_due(version=env.sequence, snapshot_version=snap_version,
                        records_since=offset - snap_offset, every_events=every_events,
                        every_records=every_records):
            snapshots.append(Snapshot(key, env.sequence, applied.partition, offset,
                                      max(prev_offset, 0), at,
                                      orjson.dumps(dump_for_history(state))))
            snap_version, snap_offset = env.sequence, offset
        row = Current(applied.partition, env.sequence, offset, at, snap_version, snap_offset,
                      state)
        current[key] = changed[key] = row
    return changed, snapshots


class StateCache:
    """The accounts' rows as committed, kept by the projection's only writer, so a batch loads
    (and parses) only the states of accounts it has not met yet. A batch folds the states in
    place, so a batch that fails to commit leaves them ahead of the table: the store then
    calls `reset` and the next batch loads them again (`kernel.projection.PgProjectionStore`
    drives it as it drives a `RowCache`). `complete` (set on a rebuild's fresh tables): an
    account not here has no row."""

    def __init__(self, *, limit: int = 20_000) -> None:
        self.limit = limit
        self.rows: dict[str, Current | None] = {}
        self.complete = False

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows.clear()
        self.complete = False

    def commit(self) -> None:
        if len(self.rows) > self.limit:
            self.reset()


class AccountHistoryProjection:
    name = "account-history"
    topics: tuple[str, ...] = ("account.events",)
    tables: tuple[str, ...] = ("account_history", "account_snapshots")
    # Nobody waits on it: a time travel reads the log on from the newest snapshot it finds,
    # so a history 250 ms behind answers the same. Its fetches gather up to 250 ms (at 200
    # orders/s: a few batches a second instead of one per engine transaction).
    gather_ms = 250

    def __init__(self, *, every_events: int = EVERY_EVENTS,
                 every_records: int = EVERY_RECORDS) -> None:
        self.every_events = every_events
        self.every_records = every_records
        self.cache = StateCache()

    def ddl(self) -> Sequence[str]:
        return DDL

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Any]) -> None:
        batch = [e for e in events if isinstance(e, Applied)]
        current = self.cache.rows
        missing = sorted({a.envelope.aggregate_id for a in batch} - current.keys())
        if missing and not self.cache.complete:
            cur = await conn.execute(
                "SELECT account_id::text, partition, version, events_offset, at, "
                "snapshot_version, snapshot_offset, state::text FROM account_history "
                "WHERE account_id = ANY(%s::uuid[])", (missing,))
            for r in await cur.fetchall():
                current[r[0]] = Current(r[1], r[2], r[3], r[4], r[5], r[6],
                                        trading.load(orjson.loads(r[7])))
        changed, snapshots = fold_history(current, batch, every_events=self.every_events,
                                          every_records=self.every_records)
        async with conn.cursor() as c:
            if changed:
                await c.executemany(
                    "INSERT INTO account_history (account_id, partition, version, "
                    "events_offset, at, snapshot_version, snapshot_offset, state) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb) "
                    "ON CONFLICT (account_id) DO UPDATE SET partition = EXCLUDED.partition, "
                    "version = EXCLUDED.version, events_offset = EXCLUDED.events_offset, "
                    "at = EXCLUDED.at, snapshot_version = EXCLUDED.snapshot_version, "
                    "snapshot_offset = EXCLUDED.snapshot_offset, state = EXCLUDED.state",
                    [(k, r.partition, r.version, r.events_offset, r.at, r.snapshot_version,
                      r.snapshot_offset, orjson.dumps(dump_for_history(r.state)).decode())
                     for k, r in changed.items()])
            if snapshots:
                await c.executemany(
                    "INSERT INTO account_snapshots (account_id, version, partition, "
                    "events_offset, prev_offset, at, state) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) "
                    "ON CONFLICT (account_id, version) DO NOTHING",
                    [(s.account_id, s.version, s.partition, s.events_offset, s.prev_offset,
                      s.at, s.state.decode()) for s in snapshots])
