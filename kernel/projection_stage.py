"""A projection as a `StreamRunner` stage in external-offset mode, over a small store port.

The runner polls and steps; `step` only decodes (an undecodable record raises, and the runner
parks it on its dead-letter topic with its origin). `flush` hands the batch's decoded events
and the next offsets to the store, which writes both in one transaction. When the store
rejects a batch for its data (`BatchRejected`), the events are written one by one with their
own offsets and each one the store rejects is dead-lettered; the batch's offsets are stored
last, so the partition goes on. On assignment the runner seeks to the store's offsets (the
beginning where it has none): Kafka's group offsets are not used.

Overlap (`overlap = True`, what a rebuild uses): `step` only keeps the record, and `flush`
decodes the batch itself, yielding to the event loop every `chunk` records so that the
previous batch's transaction, started as a task, goes on in PostgreSQL meanwhile; then it
waits for that transaction and starts its own. Transactions stay one at a time and in log
order; undecodable records are dead-lettered by the stage (as the runner would) before the
batch's offsets can be stored. `flush` thus returns before its batch is committed: `drain`
waits for the last one (and raises what it raised); `positions` and `applied` move only when
a batch has committed.

`ProjectionStore` is the port: `PgProjectionStore` (in `kernel.projection`) is the
production store; `MemoryProjectionStore` drives the stage in unit tests on `kernel.memlog`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from kernel.dlq import counted, dead_letter
from kernel.log import LogProducer, LogRecord, OutRecord, TopicPartition
from kernel.observability import MESSAGES, get_logger
from kernel.runner import Emit, StageBase
from schemas.errors import DecodeError, PropstreamError

log = get_logger(__name__)

A = TypeVar("A")
A_contra = TypeVar("A_contra", contravariant=True)


class BatchRejected(PropstreamError):
    """The store refused a batch for its data (a constraint, a bad value); nothing of it was
    written. Infrastructure failures are not this: they propagate and the process restarts."""


class ProjectionStore(Protocol[A_contra]):
    """Where a projection's rows and its next offsets live, written together."""

    async def offsets(self) -> dict[TopicPartition, int]:
        """The stored next offset of every partition the projection has seen."""
        ...

    async def write(self, events: Sequence[A_contra],
                    offsets: Mapping[TopicPartition, int]) -> None:
        """Apply `events` (log order) and store `offsets`, in one transaction; raise
        `BatchRejected` (and write nothing) when the data is refused."""
        ...


@dataclass
class MemoryProjectionStore(Generic[A]):
    """A store in memory, for tests: `apply` folds events into `rows`, and may raise
    `BatchRejected` to refuse an event; a refused write changes nothing."""

    apply: Callable[[dict[str, object], A], None]
    rows: dict[str, object] = field(default_factory=dict)
    stored: dict[TopicPartition, int] = field(default_factory=dict)
    writes: int = 0

    async def offsets(self) -> dict[TopicPartition, int]:
        return dict(self.stored)

    async def write(self, events: Sequence[A], offsets: Mapping[TopicPartition, int]) -> None:
        rows = dict(self.rows)
        for event in events:
            self.apply(rows, event)  # raises BatchRejected: nothing below happens
        self.rows = rows
        self.stored.update(offsets)
        self.writes += 1


class ProjectionStage(StageBase, Generic[A]):
    """Decode in `step`, write rows + offsets in `flush`, seek to stored offsets on
    assignment. `producer` is the runner's (set after `StreamRunner.start`), used for the
    dead letters of events the store refuses one by one."""

    def __init__(self, store: ProjectionStore[A], decode: Callable[[LogRecord], A], *,
                 name: str, dead_letter_topic: Callable[[str], str]) -> None:
        self.store = store
        self.decode = decode
        self.name = name
        self.dead_letter_topic = dead_letter_topic
        self.producer: LogProducer | None = None
        self.pending: list[tuple[LogRecord, A]] = []
        self.applied = 0
        self.positions: dict[TopicPartition, int] = {}  # next offset stored, per partition
        self.overlap = False
        self.chunk = 500  # records decoded between two yields to the loop (overlap)
        self.raw: list[LogRecord] = []  # overlap: records of the batch, not yet decoded
        self.inflight: asyncio.Task[None] | None = None  # overlap: the previous batch's write

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        stored = await self.store.offsets()
        resume = {tp: stored.get(tp, 0) for tp in partitions}
        self.positions.update(resume)
        return resume

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        await self.drain()
        gone = set(partitions)
        self.pending = [(r, a) for r, a in self.pending if r.tp not in gone]
        self.raw = [r for r in self.raw if r.tp not in gone]

    def step(self, record: LogRecord) -> Sequence[Emit]:
        if self.overlap:
            self.raw.append(record)
        else:
            self.pending.append((record, self.decode(record)))
        return ()

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.raw or self.inflight is not None:
            await self._flush_overlapped(offsets)
            return
        batch, self.pending = self.pending, []
        await self._write(batch, offsets)

    async def drain(self) -> None:
        """Wait for the batch still being written (overlap), raising what it raised."""
        task, self.inflight = self.inflight, None
        if task is not None:
            await task

    async def _flush_overlapped(self, offsets: Mapping[TopicPartition, int]) -> None:
        records, self.raw = self.raw, []
        batch: list[tuple[LogRecord, A]] = list(self.pending)
        self.pending = []
        decode, chunk = self.decode, self.chunk
        refused: list[tuple[LogRecord, Exception]] = []
        for i, record in enumerate(records):
            if i % chunk == chunk - 1:
                await asyncio.sleep(0)  # the previous batch's SQL goes on meanwhile
            try:
                batch.append((record, decode(record)))
            except Exception as exc:  # a poison record: park it, never stall the partition
                if not isinstance(exc, DecodeError):
                    log.exception("decode failed", projection=self.name, topic=record.topic,
                                  partition=record.partition, offset=record.offset)
                refused.append((record, exc))
        for record, error in refused:  # before this batch's offsets can be stored
            await self._dead_letter(record, error)
        await self.drain()
        self.inflight = asyncio.create_task(self._write(batch, offsets))

    async def _write(self, batch: list[tuple[LogRecord, A]],
                     offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self.store.write([a for _, a in batch], offsets)
        except BatchRejected as exc:
            log.warning("batch refused, applying one by one", projection=self.name,
                        error=str(exc)[:300])
            await self._one_by_one(batch, offsets)
        self.applied += len(batch)
        self.positions.update(offsets)

    async def _one_by_one(self, batch: Sequence[tuple[LogRecord, A]],
                          offsets: Mapping[TopicPartition, int]) -> None:
        for record, applied in batch:
            try:
                await self.store.write([applied], {record.tp: record.offset + 1})
            except BatchRejected as exc:
                await self._dead_letter(record, exc)
        await self.store.write([], offsets)

    async def _dead_letter(self, record: LogRecord, exc: BaseException) -> None:
        if self.producer is None:
            raise RuntimeError(f"{self.name}: no producer for dead letters (runner not started)")
        MESSAGES.labels(self.name, record.topic, "dead-lettered").inc()
        letter: OutRecord = dead_letter(record, exc, consumer=self.name)
        await self.producer.send_many(self.dead_letter_topic(record.topic), [letter])
        counted(record, exc, consumer=self.name)
