"""A small batch of a projection in one statement: its rows and its offsets, atomically.

On the live path (a command's event every few milliseconds) a projection sees batches of one
or two events, and a transaction of BEGIN, COPY into a stage, INSERT … ON CONFLICT, the offsets
and COMMIT costs five or six PostgreSQL round trips for a row or two: most of the projection's
CPU per command went on those round trips. A batch of at most `SMALL_BATCH` events is written
instead as one statement, on a connection in autocommit:

    WITH n0 AS (INSERT INTO t (…) VALUES (…)),                       -- keys with no row yet
         u0 AS (INSERT INTO t (…) VALUES (…) ON CONFLICT (key) DO UPDATE SET …)
    INSERT INTO projection_offsets … ON CONFLICT … DO UPDATE SET next_offset = …

One statement is atomic by itself: the rows and the offsets are both written or neither is,
as with the transaction. What is stored does not change: rows of keys the writer knows have
none are plain INSERTs (a key that has one after all fails the statement, as the COPY into the
table fails the transaction), the others are upserted as `kernel.pg.copy_upsert` does. The
statement text depends only on the batch's shape (rows per part, offsets), so each shape is
composed once and psycopg prepares it after a few uses; it is sent on a raw cursor with
PostgreSQL's `$n` placeholders, so psycopg does not parse it either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from kernel.log import TopicPartition

# Batches of at most this many events (so at most this many changed rows) take the one-statement
# path; larger ones (catching up, a rebuild) keep the COPY transaction. Measured with
# bench.projection_small_batches.
SMALL_BATCH = 50


@dataclass(frozen=True, slots=True)
class RowChanges:
    """What a batch changes in one table: rows of keys that had none (`new`, inserted) and
    rows of keys that had one (`existing`, upserted on `key`). Rows are in column order."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    new: Sequence[Sequence[object]]
    existing: Sequence[Sequence[object]]


Shape = tuple[tuple[tuple[str, int, int], ...], int]


class SmallBatchStatement:
    """Composes (and keeps, per shape) the one statement of a small batch."""

    def __init__(self, projection: str) -> None:
        self.projection = projection
        self.known: dict[Shape, bytes] = {}

    def build(self, conn: psycopg.AsyncConnection, changes: Sequence[RowChanges],
              offsets: Mapping[TopicPartition, int]) -> tuple[bytes, list[Any]] | None:
        """The statement and its parameters; None when there is nothing to write."""
        parts = tuple(c for c in changes if c.new or c.existing)
        if not parts and not offsets:
            return None
        shape: Shape = (tuple((c.table, len(c.new), len(c.existing)) for c in parts),
                        len(offsets))
        query = self.known.get(shape)
        if query is None:
            query = self.known[shape] = self._compose(parts, len(offsets)).as_bytes(conn)
        params: list[Any] = []
        for c in parts:
            for row in c.new:
                params.extend(row)
            for row in c.existing:
                params.extend(row)
        name = self.projection
        for tp, offset in offsets.items():
            params += (name, tp.topic, tp.partition, offset)
        return query, params

    def _compose(self, parts: Sequence[RowChanges], n_offsets: int) -> sql.Composed:
        ctes: list[sql.Composable] = []
        n = _Numbers()
        for i, c in enumerate(parts):
            target = sql.Identifier(c.table)
            cols = sql.SQL(", ").join(sql.Identifier(col) for col in c.columns)
            if c.new:
                ctes.append(sql.SQL("{} AS (INSERT INTO {} ({}) VALUES {})").format(
                    sql.Identifier(f"n{i}"), target, cols, n.values(len(c.columns), len(c.new))))
            if c.existing:
                updates = sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(col), sql.Identifier(col))
                    for col in c.columns if col not in c.key)
                ctes.append(sql.SQL(
                    "{} AS (INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {})"
                ).format(sql.Identifier(f"u{i}"), target, cols,
                         n.values(len(c.columns), len(c.existing)),
                         sql.SQL(", ").join(sql.Identifier(k) for k in c.key), updates))
        if n_offsets:
            main: sql.Composable = sql.SQL(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
                "VALUES {} ON CONFLICT (projection, topic, partition) "
                "DO UPDATE SET next_offset = EXCLUDED.next_offset").format(n.values(4, n_offsets))
        else:
            main = sql.SQL("SELECT 1")
        if not ctes:
            return sql.Composed([main])
        return sql.Composed([sql.SQL("WITH "), sql.SQL(", ").join(ctes), sql.SQL(" "), main])


class _Numbers:
    """PostgreSQL's own placeholders ($1, $2, …), numbered through the statement: it runs on
    a raw cursor, so psycopg never parses it for `%s` (which it caches only for statements of
    at most 50 parameters; a batch of four rows has more)."""

    def __init__(self) -> None:
        self.next = 1

    def values(self, columns: int, rows: int) -> sql.Composable:
        out = []
        for _ in range(rows):
            first, self.next = self.next, self.next + columns
            out.append("(" + ", ".join(f"${k}" for k in range(first, self.next)) + ")")
        return sql.SQL(", ".join(out))
