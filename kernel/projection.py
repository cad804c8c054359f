"""The projection runtime: events from Kafka into PostgreSQL read models, exactly once.

Each batch is applied and the next offsets are stored in the same transaction, so a restart
resumes where the last commit left off and a message already applied is never applied again.
A message that cannot be decoded or applied goes to its dead-letter topic; the rest go on.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from psycopg import sql

from kernel.dlq import dead_letter_topic
from kernel.log import Log, LogConsumer, LogRecord, TopicPartition
from kernel.observability import get_logger
from kernel.pg import apply_ddl, connect, copy_into, copy_upsert
from kernel.projection_small import SMALL_BATCH, RowChanges, SmallBatchStatement
from kernel.projection_stage import BatchRejected, ProjectionStage
from kernel.runner import StreamRunner
from kernel.settings import Settings
from schemas.codec import MAX_MESSAGE_BYTES, decode_event
from schemas.envelope import EventEnvelope, EventPayload
from schemas.errors import PropstreamError
from schemas.fastcodec import Fallback, FastEvent, FastEvents
from schemas.registry import TypeRegistry

log = get_logger(__name__)

OFFSETS_DDL = """
CREATE TABLE IF NOT EXISTS projection_offsets (
    projection TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (projection, topic, partition)
)
"""


class ProjectionLeaseHeld(PropstreamError):
    """Another process runs this projection (it holds the lease)."""


def lease_key(namespace: str, projection: str) -> int:
    """The advisory lock key of one projection in one namespace (locks are per database, and
    namespaces share the database): 63 bits of SHA-256, a signed bigint as PostgreSQL wants."""
    digest = hashlib.sha256(f"propstream-projection\n{namespace}\n{projection}".encode())
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


class ProjectionLease:
    """The right to write one projection's tables: a PostgreSQL session advisory lock on a
    connection of its own. The live runner holds it for its whole life and `replay` must take
    it before dropping anything, so a rebuild never runs under a live runner (which would
    write rows and offsets into the tables being rebuilt). A process that dies loses its
    connection, and so its lease, at once; nothing has to expire."""

    def __init__(self, settings: Settings, projection: str) -> None:
        self.settings = settings
        self.projection = projection
        self.key = lease_key(settings.namespace, projection)
        self.conn: psycopg.AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self.conn is not None and not self.conn.closed

    async def try_acquire(self) -> bool:
        """Take the lease if free; False (and no connection kept) when another holds it."""
        if self.held:
            return True
        conn = await psycopg.AsyncConnection.connect(
            self.settings.database_url, autocommit=True,
            application_name=f"propstream lease {self.projection}")
        try:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            row = await cur.fetchone()
        except BaseException:
            await conn.close()
            raise
        if row is None or not row[0]:
            await conn.close()
            return False
        self.conn = conn
        return True

    async def acquire(self, *, poll_s: float = 1.0) -> None:
        """Wait until the lease is free and take it (a replay or an old replica may hold it)."""
        waited = False
        while not await self.try_acquire():
            if not waited:
                log.warning("projection lease held by another process; waiting",
                            projection=self.projection)
                waited = True
            await asyncio.sleep(poll_s)

    async def release(self) -> None:
        if self.conn is not None:
            await self.conn.close()  # ends the session, and with it the lock
            self.conn = None


@dataclass(frozen=True)
class Applied:
    envelope: EventEnvelope
    payload: EventPayload
    # Where the event is on the log, for a projection that records it (the account history:
    # its snapshots name the offset a time travel reads on from); -1 where not read from one.
    partition: int = -1
    offset: int = -1


# What a projection folds: the pydantic envelope and payload, or — for a projection with a
# fast path (`fast`) — the fast decoder's `FastEvent` (envelope and payload Structs, no model).
Event = Applied | FastEvent


class Projection(Protocol):
    """A read model: its tables, and how a batch of events changes them.

    Optional attributes make it faster (read with `getattr`): `gather_ms`, for a read model
    nobody waits on, lets each fetch wait that long to gather a larger batch (fewer fetches,
    transactions and wake-ups per event; `Log.consumer`); `fast`, a
    `schemas.fastcodec.FastEvents` whose `FastEvent`s `apply` then receives among the
    `Applied` (anything it does not take is decoded by pydantic as before, so refusals are
    unchanged); `cache`, a `RowCache` of its rows that the store keeps to what is
    committed; and `changes`, an async `(conn, events) -> Sequence[RowChanges]` that folds a
    batch without writing it (e.g. `RowTable.changes`), with which the store writes a small
    batch's rows and offsets as one statement (`kernel.projection_small`)."""

    name: str
    topics: tuple[str, ...]  # catalogue names
    tables: tuple[str, ...]

    def ddl(self) -> Sequence[str]: ...

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Event]) -> None:
        """Apply events in log order; must skip events already reflected (by sequence)."""


ProgressFn = Callable[[int, int], None]

R = TypeVar("R", bound=tuple[Any, ...])
E = TypeVar("E")


class RowCache(Generic[R]):
    """A read model's rows as committed, kept by its only writer (the projection's lease
    holder) so that a batch selects only the keys it has not seen yet; `None` records a key
    known to have no row. `complete` means every row of the table is here (the table was empty
    when the runner started, as after `replay`'s drop): then nothing is selected at all.

    A batch's changed rows wait in `pending` and join `rows` only once its transaction has
    committed (`commit`); any failed write forgets everything (`reset`), and the next batches
    select again. Past `limit` keys the cache is emptied (and is no longer complete)."""

    def __init__(self, table: RowTable[R], *, limit: int = 100_000) -> None:
        self.table = table
        self.limit = limit
        self.rows: dict[str, R | None] = {}
        self.pending: dict[str, R] = {}
        self.complete = False

    async def start(self, conn: psycopg.AsyncConnection) -> None:
        """Forget everything; complete if the table is empty now."""
        self.reset()
        cur = await conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(
            sql.Identifier(self.table.table)))
        row = await cur.fetchone()
        await conn.commit()
        self.complete = bool(row and row[0])

    def reset(self) -> None:
        self.rows.clear()
        self.pending.clear()
        self.complete = False

    def commit(self) -> None:
        self.rows.update(self.pending)
        self.pending.clear()
        if len(self.rows) > self.limit:
            self.rows.clear()
            self.complete = False


@dataclass(frozen=True)
class RowTable(Generic[R]):
    """A read-model table of one row per aggregate, keyed by the aggregate id (first column).

    Rows are named tuples in column order. A batch loads the rows its events touch in one
    query, folds every event in memory in log order, and writes back only the rows that
    changed with one COPY-upsert: three round trips per batch, whatever its size. With a
    `RowCache` and `fold_batch`, keys already held are not selected again and rows of keys
    known to have none are COPYed straight into the table.
    """

    table: str
    columns: tuple[str, ...]
    row: Callable[..., R]
    key_type: str = "text"  # the key column's SQL type
    as_text: frozenset[str] = frozenset()  # jsonb columns, read back as the text stored
    binary: bool = False  # save with a binary COPY (see kernel.pg.copy_upsert)

    async def load(self, conn: psycopg.AsyncConnection, ids: Collection[str]) -> dict[str, R]:
        select = sql.SQL(", ").join(
            sql.SQL("{}::text").format(sql.Identifier(c)) if c in self.as_text
            else sql.Identifier(c) for c in self.columns)
        query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::{}[])").format(
            select, sql.Identifier(self.table), sql.Identifier(self.columns[0]),
            sql.SQL(self.key_type))  # a fixed name, not input
        cur = await conn.execute(query, (sorted(ids),))
        return {str(record[0]): self.row(*record) for record in await cur.fetchall()}

    async def save(self, conn: psycopg.AsyncConnection, rows: Iterable[R]) -> None:
        await copy_upsert(conn, table=self.table, columns=self.columns,
                          key=(self.columns[0],), rows=rows, binary=self.binary)

    async def _rows_of(self, conn: psycopg.AsyncConnection, keys: set[str],
                       cache: RowCache[R] | None) -> Mapping[str, R | None]:
        """The rows of `keys`: from `cache` where it holds them (loading what it lacks into
        it), else from the table."""
        if cache is None:
            return await self.load(conn, keys)
        held = cache.rows
        if not cache.complete:
            missing = keys - held.keys()
            if missing:
                loaded = await self.load(conn, missing)
                for k in missing:  # committed state: this writer wrote nothing yet
                    held[k] = loaded.get(k)
        return held

    async def fold_batch(self, conn: psycopg.AsyncConnection, events: Sequence[E], *,
                         key: Callable[[E], str],
                         fold: Callable[[Mapping[str, R | None], Sequence[E]], dict[str, R]],
                         cache: RowCache[R] | None = None) -> dict[str, R]:
        """Load the rows of the batch's keys (from `cache` where it holds them), let `fold`
        turn the whole batch into the changed rows (one per key: its state after the batch),
        save them; returns them.

        `fold(rows, events)` reads `rows` (every key of the batch: its row, or None/absent
        for none) without changing it, and must skip events at or below a row's version, so
        a replayed batch changes nothing. Rows of keys known to have none are COPYed straight
        into the table; the others go through the COPY-upsert."""
        rows = await self._rows_of(conn, {key(e) for e in events}, cache)
        changed = fold(rows, events)
        if changed:
            new = [r for k, r in changed.items() if rows.get(k) is None]
            if len(new) == len(changed):
                await self.insert(conn, new)
            elif new:
                await self.insert(conn, new)
                await self.save(conn, [r for k, r in changed.items() if rows.get(k) is not None])
            else:
                await self.save(conn, changed.values())
            if cache is not None:
                cache.pending.update(changed)
        return changed

    async def changes(self, conn: psycopg.AsyncConnection, events: Sequence[E], *,
                      key: Callable[[E], str],
                      fold: Callable[[Mapping[str, R | None], Sequence[E]], dict[str, R]],
                      cache: RowCache[R] | None = None) -> list[RowChanges]:
        """`fold_batch` without the write, for a small batch: the changed rows, split into
        keys known to have no row (to insert) and the others (to upsert), for the store to
        write in one statement with the offsets (`kernel.projection_small`)."""
        rows = await self._rows_of(conn, {key(e) for e in events}, cache)
        changed = fold(rows, events)
        new: list[R] = []
        existing: list[R] = []
        for k, r in changed.items():
            (new if rows.get(k) is None else existing).append(r)
        if cache is not None:
            cache.pending.update(changed)
        return [RowChanges(self.table, self.columns, (self.columns[0],), new, existing)]

    async def step_changes(self, conn: psycopg.AsyncConnection, events: Sequence[Applied],
                           step: Callable[[R | None, Applied], R | None]) -> list[RowChanges]:
        """`fold` without the write, for a small batch (`changes` of a projection folded
        event by event): the batch's rows loaded in one query, `step` applied in log order,
        the changed rows split into keys that had none (to insert) and the others."""
        loaded = await self.load(conn, {a.envelope.aggregate_id for a in events})
        rows: dict[str, R | None] = dict(loaded)
        changed: dict[str, R] = {}
        for applied in events:
            key = applied.envelope.aggregate_id
            before = rows.get(key)
            after = step(before, applied)
            if after is not None and after is not before:
                rows[key] = changed[key] = after
        new = [r for k, r in changed.items() if k not in loaded]
        existing = [r for k, r in changed.items() if k in loaded]
        return [RowChanges(self.table, self.columns, (self.columns[0],), new, existing)]

    async def insert(self, conn: psycopg.AsyncConnection, rows: Iterable[R]) -> None:
        """COPY rows of keys that have none yet straight into the table (no stage, no
        conflict clause): a key that has one after all fails the batch, which is retried."""
        await copy_into(conn, table=self.table, columns=self.columns, rows=rows,
                        binary=self.binary)

    async def fold(self, conn: psycopg.AsyncConnection, events: Sequence[Applied],
                   step: Callable[[R | None, Applied], R | None]) -> dict[str, R]:
        """Load, apply `step` to every event, save what changed; returns the changed rows.

        `step` returns the row after one event (the same object when nothing changed) and
        must skip events at or below the row's version, so a replayed batch changes nothing.
        """
        rows: dict[str, R | None] = dict(
            await self.load(conn, {a.envelope.aggregate_id for a in events}))
        changed: dict[str, R] = {}
        for applied in events:
            key = applied.envelope.aggregate_id
            before = rows.get(key)
            after = step(before, applied)
            if after is not None and after is not before:
                rows[key] = changed[key] = after
        if changed:
            await self.save(conn, changed.values())
        return changed


class PgProjectionStore:
    """The production `ProjectionStore`: a projection's tables and its rows of
    `projection_offsets`, written in one PostgreSQL transaction on one connection.

    A batch of at most `small_batch` events, of a projection with `changes`, is written as
    one statement in autocommit instead (`kernel.projection_small`): the same rows and
    offsets, atomically, in one round trip instead of five or six. `ProjectionRunner` sets
    `small_batch` to 0 while catching up, so a rebuild's batches all keep the COPY path."""

    def __init__(self, projection: Projection, *, small_batch: int = SMALL_BATCH) -> None:
        self.projection = projection
        self.conn: psycopg.AsyncConnection | None = None
        self.cache: RowCache[Any] | None = getattr(projection, "cache", None)
        self.changes: Callable[[psycopg.AsyncConnection, Sequence[Event]],
                               Awaitable[Sequence[RowChanges]]] | None = getattr(
            projection, "changes", None)
        self.small_batch = small_batch
        self.statement = SmallBatchStatement(projection.name)
        self._raw: psycopg.AsyncRawCursor[Any] | None = None  # `$n` placeholders, not `%s`

    async def offsets(self) -> dict[TopicPartition, int]:
        assert self.conn is not None
        cur = await self.conn.execute(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = %s",
            (self.projection.name,))
        rows = await cur.fetchall()
        await self.conn.commit()
        return {TopicPartition(t, p): o for t, p, o in rows}

    async def write(self, events: Sequence[Event],
                    offsets: Mapping[TopicPartition, int]) -> None:
        assert self.conn is not None
        if self.changes is not None and len(events) <= self.small_batch:
            await self._write_small(events, offsets)
            return
        cache = self.cache
        try:
            try:
                async with self.conn.transaction():
                    if events:
                        await self.projection.apply(self.conn, events)
                    await self._store_offsets(offsets)
            except psycopg.OperationalError:
                raise  # the database is gone: let the supervisor restart us
            except psycopg.Error as exc:
                raise BatchRejected(str(exc)[:1000]) from exc
        except BaseException:
            if cache is not None:  # nothing of the batch is committed: forget what it held
                cache.reset()
            raise
        if cache is not None:
            cache.commit()

    async def _write_small(self, events: Sequence[Event],
                           offsets: Mapping[TopicPartition, int]) -> None:
        """`write` of a small batch: fold it (selecting only keys the cache lacks), then its
        rows and offsets in one statement, atomic by itself in autocommit. Refusals and the
        row cache as in `write`: a refused statement wrote nothing (`BatchRejected`, the
        stage then applies the batch one by one and dead-letters what is refused), a lost
        connection propagates; either way the cache forgets the batch."""
        conn, cache, changes = self.conn, self.cache, self.changes
        assert conn is not None and changes is not None
        try:
            if not conn.autocommit:  # no round trip; `transaction()` still opens its own
                await conn.set_autocommit(True)
            try:
                rows = await changes(conn, events) if events else ()
                statement = self.statement.build(conn, rows, offsets)
                if statement is not None:
                    cursor = self._raw
                    if cursor is None or cursor.connection is not conn or cursor.closed:
                        cursor = self._raw = psycopg.AsyncRawCursor(conn)
                    await cursor.execute(*statement)
            except psycopg.OperationalError:
                raise  # the database is gone: let the supervisor restart us
            except psycopg.Error as exc:
                raise BatchRejected(str(exc)[:1000]) from exc
        except BaseException:
            if cache is not None:  # nothing of the batch is committed: forget what it held
                cache.reset()
            raise
        if cache is not None:
            cache.commit()

    async def _store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        assert self.conn is not None
        if not offsets:
            return
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO projection_offsets (projection, topic, partition, next_offset) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (projection, topic, partition) "
                "DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(self.projection.name, tp.topic, tp.partition, o) for tp, o in offsets.items()],
            )


def record_decoder(registry: TypeRegistry,
                   fast: FastEvents | None) -> Callable[[LogRecord], Event]:
    """How a projection reads a record: its fast decoder's `FastEvent` when that takes the
    record, else pydantic's envelope and payload, which accept or refuse exactly as they
    always did (the same `DecodeError`, reason and message)."""
    event_payload = registry.event_payload

    def slow(value: bytes | None, partition: int = -1, offset: int = -1) -> Applied:
        env = decode_event(value)
        return Applied(env, event_payload(env), partition, offset)

    if fast is None:
        return lambda record: slow(record.value, record.partition, record.offset)
    fast_decode = fast.decode

    def decode(record: LogRecord) -> Event:
        value = record.value
        if value is not None and len(value) <= MAX_MESSAGE_BYTES:
            try:
                return fast_decode(value)
            except Fallback:
                pass
        return slow(value, record.partition, record.offset)

    return decode


class ProjectionRunner:
    """A projection on the `StreamRunner`, external offsets: each batch's rows and next
    offsets in one PostgreSQL transaction (`PgProjectionStore`), every partition assigned to
    the lease holder and sought to its stored offset."""

    def __init__(self, settings: Settings, projection: Projection, registry: TypeRegistry, *,
                 max_batch: int = 5000, log_: Log | None = None) -> None:
        self.settings = settings
        self.projection = projection
        self.registry = registry
        self.max_batch = max_batch
        self.name = f"projection-{projection.name}"
        self.topics = [settings.topic(t) for t in projection.topics]
        self.log = log_
        self.conn: psycopg.AsyncConnection | None = None
        self.store = PgProjectionStore(projection)
        self.fast: FastEvents | None = getattr(projection, "fast", None)
        self._decode = record_decoder(registry, self.fast)
        self.stage: ProjectionStage[Event] = ProjectionStage(
            self.store, self._decode, name=self.name,
            dead_letter_topic=lambda topic: dead_letter_topic(settings, topic))
        self.stream: StreamRunner | None = None
        self.lease = ProjectionLease(settings, projection.name)
        self.overlap = True  # catching up: decode a batch while the previous one is written
        self.async_commit = True  # catching up: commits do not wait for the WAL flush
        # A worker of a partition-parallel rebuild (kernel.rebuild) sets these three: it reads
        # only `only`, takes no lease (its coordinator holds it, and creates the tables), and
        # with `fresh` (the tables were dropped just before) its row cache is complete for its
        # keys without a look at the table, which other workers are filling meanwhile.
        self.only: frozenset[TopicPartition] | None = None
        self.under_lease = False
        self.fresh = False

    def decode(self, record: LogRecord) -> Event:
        return self._decode(record)

    @property
    def applied(self) -> int:
        return self.stage.applied

    @property
    def consumer(self) -> LogConsumer | None:
        return None if self.stream is None else self.stream.consumer

    @property
    def partitions(self) -> list[TopicPartition]:
        return sorted(self.consumer.assignment()) if self.consumer is not None else []

    async def take_lease(self) -> None:
        """Take the projection's lease now, or raise `ProjectionLeaseHeld` (for `replay`)."""
        if not await self.lease.try_acquire():
            raise ProjectionLeaseHeld(
                f"projection {self.projection.name!r} is being run by another process (it "
                f"holds the projection's lease in PostgreSQL): stop that process first (the "
                f"`propstream run projection {self.projection.name}` process, or scale its "
                f"Deployment to 0), replay, then start it again; it resumes from the rebuilt "
                f"tables")

    async def start(self) -> None:
        # Before anything is read or written: the tables are the lease holder's alone.
        if not self.under_lease:
            await self.lease.acquire()
        self.conn = await connect(self.settings)
        if not self.under_lease:
            await self.ensure_tables(self.conn)
        cache = self.store.cache
        if cache is not None:
            if self.fresh:  # rows are disjoint by key, and keys by partition
                cache.reset()
                cache.complete = True
            else:
                await cache.start(self.conn)
        self.store.conn = self.conn
        if self.log is None:
            from kernel.kafkalog import KafkaLog
            self.log = KafkaLog(self.settings)
        self.stream = StreamRunner(
            self.log, self.stage, name=self.name, group_id=self.name, topics=self.topics,
            mode="external", dead_letter_topic=self.stage.dead_letter_topic,
            max_batch=self.max_batch, poll_timeout=0.2, assign_all=True, only=self.only,
            gather_ms=getattr(self.projection, "gather_ms", 0))
        try:
            await self.stream.start()  # refuses without the dead-letter topics
        except BaseException:
            await self.stop()  # the lease and the connection are not kept for nothing
            raise
        self.stage.producer = self.stream.producer
        log.info("projection started", projection=self.projection.name,
                 partitions=len(self.partitions))

    async def stop(self) -> None:
        try:
            await self.stage.drain()
        finally:
            if self.stream is not None:
                await self.stream.stop()
            if self.conn is not None:
                await self.conn.close()
            await self.lease.release()

    async def ensure_tables(self, conn: psycopg.AsyncConnection) -> None:
        await apply_ddl(conn, [OFFSETS_DDL, *self.projection.ddl()])

    async def stored_offsets(self, conn: psycopg.AsyncConnection) -> dict[TopicPartition, int]:
        store = PgProjectionStore(self.projection)
        store.conn = conn
        return await store.offsets()

    async def drop(self) -> None:
        """Drop the read model and forget its offsets (the log is untouched). Takes the
        projection's lease first, and keeps it for the rebuild that follows (`start`); raises
        `ProjectionLeaseHeld` while a live runner holds it."""
        await self.take_lease()
        if self.store.cache is not None:
            self.store.cache.reset()
        conn = await connect(self.settings)
        try:
            async with conn.transaction():
                await apply_ddl(conn, [OFFSETS_DDL, *(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
                    for table in self.projection.tables)])
                await conn.execute("DELETE FROM projection_offsets WHERE projection = %s",
                                   (self.projection.name,))
        finally:
            await conn.close()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        assert self.consumer is not None
        return await self.consumer.end_offsets(self.partitions)

    async def _positions(self) -> dict[TopicPartition, int]:
        """Where each partition stands: the next offset stored (the stage's view), which is
        what a restart resumes from."""
        assert self.stream is not None
        await self.stream._prepare()  # seeks (and learns stored offsets) if not done yet
        return {tp: self.stage.positions.get(tp, 0) for tp in self.partitions}

    async def _reached(self) -> dict[TopicPartition, int]:
        """How far each partition has been read: the stored offset, or the consumer's
        position where it is further. Transactional producers (the deciders) leave commit
        markers that take an offset but are never delivered, so the stored offset of a fully
        applied partition can stay below its end offset; the consumer's position moves past
        a marker once a poll has gone over it."""
        assert self.consumer is not None
        stored = await self._positions()
        return {tp: max(stored[tp], await self.consumer.position(tp)) for tp in stored}

    async def lag(self) -> int:
        ends = await self.end_offsets()
        reached = await self._reached()
        return sum(max(0, ends[tp] - reached[tp]) for tp in ends)

    async def run(self, *, count: int | None = None, timeout: float | None = None,
                  until_caught_up: bool = False, progress: ProgressFn | None = None) -> int:
        """Apply events until `count`, `timeout`, the end offsets seen at start, or forever."""
        assert self.stream is not None
        if not until_caught_up:
            return await self.stream.run(count=count, timeout=timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        targets = await self.end_offsets()
        total_target = sum(targets.values())
        done = 0
        # Catching up (a rebuild): each batch is decoded while the previous one's transaction
        # runs (kernel.projection_stage, "Overlap"); everything is committed before returning.
        self.stage.overlap = self.overlap
        await self._commit_mode(asynchronous=self.async_commit)
        # Every batch in a COPY transaction while catching up, a short one at the end too.
        small_batch, self.store.small_batch = self.store.small_batch, 0
        try:
            while count is None or done < count:
                if deadline is not None and loop.time() >= deadline:
                    break
                positions = await self._reached()
                if all(positions[tp] >= targets[tp] for tp in targets):
                    break
                if progress is not None:
                    progress(sum(positions.values()), total_target)
                left = None if count is None else count - done
                done += await self.stream.run(count=left, until_idle=True)
        finally:
            self.stage.overlap = False
            try:
                await self.stage.drain()
            finally:
                self.store.small_batch = small_batch
                await self._commit_mode(asynchronous=False)
        return done

    async def _commit_mode(self, *, asynchronous: bool) -> None:
        """Catching up, a commit need not wait for its WAL flush (`synchronous_commit`
        off, this session only): a crash of PostgreSQL may then lose the last few
        transactions, but each holds its rows *and* its offsets, so what is lost is replayed
        from the log, never torn. The live loop keeps the server's setting."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            return  # a lost connection takes its session settings with it
        await self.conn.execute("SET synchronous_commit TO off" if asynchronous
                                else "RESET synchronous_commit")
        await self.conn.commit()
