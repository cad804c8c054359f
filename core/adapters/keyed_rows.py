"""Read models of the account family whose rows are keyed by what an event names: an order, a
fill, a position, an equity bucket, or the account itself.

Every such row belongs to one account (one aggregate, one partition), so a partition-parallel
rebuild writes disjoint rows. A row's `version` is the account sequence of the last event
that changed it: the account's events arrive in sequence order, so an event at or below a
row's version has been folded into it already (a replay, a duplicate) and is skipped.

Each projection is a pure `step(row, applied) -> row` and a `key(applied) -> str | None`
(None: the event does not touch this table). The batch folds key by key on the rows a
`RowCache` holds (no select when the table was empty at start, as after `replay`'s drop),
through `RowTable.fold_batch` (COPY while catching up) and `RowTable.changes` (one statement
for a small live batch: "The projection fast path" in docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, cast

import psycopg

from kernel.projection import Applied, Event, RowCache, RowTable
from kernel.projection_small import RowChanges

Step = Callable[[Any, Applied], Any]
Key = Callable[[Applied], str | None]


def at_ns(ns: int) -> datetime:
    """A domain time (ns since the epoch) as a UTC timestamp, truncated to the microsecond
    (PostgreSQL keeps no finer), in integer arithmetic."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def fold_keyed(rows: Mapping[str, Any], events: Sequence[Applied], *, key: Key,
               step: Step) -> dict[str, Any]:
    """The rows a batch changes, each in its state after the batch; `rows` is not changed."""
    state: dict[str, Any] = {}
    for applied in events:
        k = key(applied)
        if k is None:
            continue
        before = state[k] if k in state else rows.get(k)
        after = step(before, applied)
        if after is not None and after is not before:
            state[k] = after
    return state


class KeyedProjection:
    """A projection of `account.events` into one `RowTable` keyed by `key`, folded by `step`
    (both given by the subclass as static methods)."""

    name: ClassVar[str]
    table: ClassVar[RowTable[Any]]
    ddl_statements: ClassVar[tuple[str, ...]]
    topics: tuple[str, ...] = ("account.events",)
    tables: tuple[str, ...]

    def __init__(self) -> None:
        self.cache: RowCache[Any] = RowCache(self.table)

    @staticmethod
    def key(applied: Applied) -> str | None:
        raise NotImplementedError

    @staticmethod
    def step(row: Any, applied: Applied) -> Any:
        raise NotImplementedError

    def ddl(self) -> Sequence[str]:
        return self.ddl_statements

    def _relevant(self, events: Sequence[Event]) -> list[Applied]:
        """The events this table folds. Without a `fast` decoder every event is `Applied`."""
        key = self.key
        return [e for e in cast("Sequence[Applied]", events) if key(e) is not None]

    def _fold(self, rows: Mapping[str, Any], events: Sequence[Applied]) -> dict[str, Any]:
        return fold_keyed(rows, events, key=self.key, step=self.step)

    def _key(self, applied: Applied) -> str:
        k = self.key(applied)
        assert k is not None  # only relevant events get here
        return k

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Event]) -> None:
        mine = self._relevant(events)
        if mine:
            await self.table.fold_batch(conn, mine, key=self._key, fold=self._fold,
                                        cache=self.cache)

    async def changes(self, conn: psycopg.AsyncConnection,
                      events: Sequence[Event]) -> list[RowChanges]:
        """A small batch's rows, unwritten: the store writes them with its offsets in one
        statement (kernel.projection_small)."""
        mine = self._relevant(events)
        if not mine:
            return []
        return await self.table.changes(conn, mine, key=self._key, fold=self._fold,
                                        cache=self.cache)
