"""An in-memory log with Kafka's semantics, for driving runners in unit tests.

Deterministic and without sleeps: partitions with offsets, murmur2 key placement, consumer
groups that rebalance when a member joins, leaves or crashes, read-committed consumers,
transactions whose commit/abort markers take an offset, and fencing by transactional id.

A rebalance takes effect at once for the group; each member learns of it at its next
`poll` (revoking everything it held, then receiving its new share, as Kafka's eager
protocol does). Until then a slow member still believes it owns its old partitions — the
zombie of a real cluster: its plain commits fail (`CommitFailed`) and, once a new owner
started a producer with the same transactional id, its transactional writes are fenced.
`MemoryLog.crash` makes a client vanish without committing or aborting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kernel.log import (
    Batch,
    CommitFailed,
    LogError,
    LogRecord,
    Offsets,
    OutRecord,
    ProducerFenced,
    RebalanceListener,
    Sent,
    TopicPartition,
    partition_for,
)

TxnState = Literal["open", "committed", "aborted"]


@dataclass(eq=False)
class _Txn:
    transactional_id: str
    state: TxnState = "open"
    first: dict[TopicPartition, int] = field(default_factory=dict)
    offsets: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Entry:
    record: LogRecord | None  # None: a commit or abort marker
    txn: _Txn | None


@dataclass
class _Group:
    members: list[MemoryConsumer] = field(default_factory=list)
    generation: int = 0
    assignment: dict[int, set[TopicPartition]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)


class MemoryLog:
    """Topics, groups and transactional ids, all in memory. Implements `kernel.log.Log`."""

    def __init__(self, topics: dict[str, int] | None = None, *,
                 now_ms: Callable[[], int] | None = None, waiting_polls: bool = False) -> None:
        # An empty poll returns at once, unless `waiting_polls`: then it waits (up to its
        # timeout) for a record to become visible, as a Kafka consumer's does, so a test can
        # measure what a poll's wait costs a runner.
        self.waiting_polls = waiting_polls
        self._waiters: list[asyncio.Future[None]] = []
        self._topics: dict[str, list[list[_Entry]]] = {}
        self._groups: dict[str, _Group] = {}
        self._epochs: dict[str, int] = {}
        self._open: dict[str, _Txn] = {}
        # Transactional ids whose producer was stopped with its transaction open: aiokafka
        # never finishes such a transaction (the caller hangs), so a runner must not do it.
        self.stopped_mid_transaction: list[str] = []
        self._ids = itertools.count(1)
        ticks = itertools.count(1_700_000_000_000)
        self._now_ms = now_ms or (lambda: next(ticks))
        for name, count in (topics or {}).items():
            self.create_topic(name, count)

    # -- administration and inspection --------------------------------------------------------

    def create_topic(self, name: str, partitions: int) -> None:
        if name in self._topics:
            raise LogError(f"topic {name!r} exists")
        self._topics[name] = [[] for _ in range(partitions)]

    def partition_count(self, topic: str) -> int:
        return len(self._partitions(topic))

    def records(self, topic: str, partition: int | None = None, *,
                committed_only: bool = True) -> list[LogRecord]:
        """Every record of a topic (or one partition) in offset order, markers left out."""
        parts = range(len(self._topics[topic])) if partition is None else [partition]
        out = []
        for p in parts:
            for entry in self._topics[topic][p]:
                if entry.record is not None and (not committed_only or _visible(entry)):
                    out.append(entry.record)
        return out

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        return dict(self._group(group_id).committed)

    def open_transactions(self) -> list[str]:
        return sorted(self._open)

    def crash(self, *clients: MemoryConsumer | MemoryProducer) -> None:
        """Make clients vanish as a killed process would: a consumer leaves its group without
        committing; a producer's open transaction stays open until a newer instance with the
        same transactional id fences it."""
        for client in clients:
            client._crashed = True
            if isinstance(client, MemoryConsumer):
                self._leave(client)

    # -- Log factory --------------------------------------------------------------------------

    def consumer(self, *, client_id: str, group_id: str | None = None,
                 session_timeout_ms: int = 10_000, gather_ms: int = 0) -> MemoryConsumer:
        return MemoryConsumer(self, client_id=client_id, group_id=group_id)

    def producer(self, *, client_id: str) -> MemoryProducer:
        return MemoryProducer(self, client_id=client_id, transactional_id=None)

    def transactional_producer(self, *, client_id: str,
                               transactional_id: str) -> MemoryProducer:
        return MemoryProducer(self, client_id=client_id, transactional_id=transactional_id)

    # -- internals ----------------------------------------------------------------------------

    def _partitions(self, topic: str) -> list[list[_Entry]]:
        try:
            return self._topics[topic]
        except KeyError:
            raise LookupError(f"topic {topic!r} does not exist") from None

    def _group(self, group_id: str) -> _Group:
        return self._groups.setdefault(group_id, _Group())

    def _lso(self, tp: TopicPartition) -> int:
        entries = self._partitions(tp.topic)[tp.partition]
        firsts = [t.first[tp] for t in self._open.values() if tp in t.first]
        return min(firsts) if firsts else len(entries)

    def _join(self, member: MemoryConsumer) -> None:
        assert member.group_id is not None
        group = self._group(member.group_id)
        if member not in group.members:
            group.members.append(member)
            self._rebalance(group)

    def _leave(self, member: MemoryConsumer) -> None:
        if member.group_id is None:
            return
        group = self._group(member.group_id)
        if member in group.members:
            group.members.remove(member)
            self._rebalance(group)

    def _rebalance(self, group: _Group) -> None:
        group.generation += 1
        self._changed()
        topics = sorted({t for m in group.members for t in m._topics})
        tps = [TopicPartition(t, p) for t in topics
               for p in range(len(self._partitions(t)))]
        members = sorted(group.members, key=lambda m: m.member_id)
        group.assignment = {m.member_id: set() for m in members}
        for i, tp in enumerate(tps):
            if members:
                owner = members[i % len(members)]
                if tp.topic in owner._topics:
                    group.assignment[owner.member_id].add(tp)

    def _append(self, tp: TopicPartition, out: OutRecord, txn: _Txn | None) -> int:
        entries = self._partitions(tp.topic)[tp.partition]
        offset = len(entries)
        record = LogRecord(tp.topic, tp.partition, offset, out.key, out.value,
                           tuple(out.headers), self._now_ms())
        entries.append(_Entry(record, txn))
        if txn is not None:
            txn.first.setdefault(tp, offset)
        else:
            self._changed()
        return offset

    def _changed(self) -> None:
        """Wake the polls waiting for records (`waiting_polls`)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_change(self, timeout: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    def _end(self, txn: _Txn, state: TxnState) -> None:
        txn.state = state
        self._open.pop(txn.transactional_id, None)
        for tp in txn.first:
            self._partitions(tp.topic)[tp.partition].append(_Entry(None, txn))
        if state == "committed":
            for group_id, offsets in txn.offsets.items():
                self._group(group_id).committed.update(offsets)
            self._changed()


def _visible(entry: _Entry) -> bool:
    return entry.record is not None and (entry.txn is None or entry.txn.state == "committed")


class MemoryConsumer:
    """A read-committed consumer of a `MemoryLog` (implements `kernel.log.LogConsumer`)."""

    def __init__(self, log: MemoryLog, *, client_id: str, group_id: str | None) -> None:
        self.log = log
        self.client_id = client_id
        self.group_id = group_id
        self.member_id = next(log._ids)
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None
        self._owned: set[TopicPartition] = set()
        self._generation = 0
        self._syncing: asyncio.Future[None] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._started = False
        self._crashed = False

    def _check(self) -> None:
        if self._crashed:
            raise LogError(f"consumer {self.client_id} crashed")

    async def start(self) -> None:
        self._check()
        self._started = True
        if self._topics:
            self.log._join(self)

    async def stop(self) -> None:
        if self._crashed:
            return
        if self._listener is not None and self._owned:
            await self._listener.on_revoked(sorted(self._owned))
        self._owned = set()
        self.log._leave(self)
        self._started = False

    def subscribe(self, topics: Sequence[str], *,
                  listener: RebalanceListener | None = None) -> None:
        if self.group_id is None:
            raise LogError("subscribe needs a group id")
        for t in topics:
            self.log._partitions(t)
        self._topics = list(topics)
        self._listener = listener
        if self._started:
            self.log._join(self)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._owned = set(partitions)
        self._positions = {tp: self._positions.get(tp, 0) for tp in partitions}

    def assignment(self) -> set[TopicPartition]:
        return set(self._owned)

    async def _sync_group(self) -> None:
        if self.group_id is None or not self._topics:
            return
        group = self.log._group(self.group_id)
        if self._generation == group.generation:
            return
        # Eager protocol: revoke everything held, then take the new share.
        if self._listener is not None and self._owned:
            await self._listener.on_revoked(sorted(self._owned))
        self._generation = group.generation
        self._owned = set(group.assignment.get(self.member_id, set()))
        self._positions = {tp: group.committed.get(tp, 0) for tp in self._owned}
        if self._listener is not None:
            await self._listener.on_assigned(sorted(self._owned))

    async def poll(self, *, max_records: int, timeout: float) -> Batch:
        self._check()
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Cancel-safe, as the Kafka consumer's poll is (the runner cancels a poll when
            # another one has records): a group sync (with the rebalance listener in it) runs
            # to its end even if this poll is cancelled, and the next poll waits for it.
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.ensure_future(self._sync_group())
            await asyncio.shield(self._syncing)
            batch = self._fetch(max_records)
            left = deadline - loop.time()
            if batch or not self.log.waiting_polls or left <= 0:
                return batch
            await self.log._wait_change(left)  # a cancel here takes nothing: fetch is sync

    def _fetch(self, max_records: int) -> Batch:
        batch: Batch = {}
        left = max_records
        for tp in sorted(self._owned):
            if left <= 0:
                break
            entries = self.log._partitions(tp.topic)[tp.partition]
            stable = self.log._lso(tp)
            pos = self._positions.get(tp, 0)
            got: list[LogRecord] = []
            while pos < stable and left > 0:
                entry = entries[pos]
                pos += 1
                if _visible(entry):
                    assert entry.record is not None
                    got.append(entry.record)
                    left -= 1
            self._positions[tp] = pos
            if got:
                batch[tp] = got
        return batch

    async def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._owned:
            raise LogError(f"{tp} is not assigned to {self.client_id}")
        self._positions[tp] = offset

    def highwater(self, tp: TopicPartition) -> int | None:
        return len(self.log._partitions(tp.topic)[tp.partition])

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.log._lso(tp) for tp in tps}

    async def partitions_for(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(len(self.log._partitions(topic)))]

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        self._check()
        return sorted(set(topics) - set(self.log._topics))

    async def commit(self, offsets: Offsets) -> None:
        self._check()
        if self.group_id is None:
            raise LogError("commit needs a group id")
        group = self.log._group(self.group_id)
        mine = group.assignment.get(self.member_id, set())
        if self._generation != group.generation or not set(offsets) <= mine:
            raise CommitFailed(f"{self.client_id}: the group rebalanced; "
                               f"{sorted(set(offsets) - mine)} are not this member's")
        group.committed.update(offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        if self.group_id is None:
            return None
        return self.log._group(self.group_id).committed.get(tp)


class MemoryProducer:
    """A producer of a `MemoryLog`, transactional when given a transactional id."""

    def __init__(self, log: MemoryLog, *, client_id: str,
                 transactional_id: str | None) -> None:
        self.log = log
        self.client_id = client_id
        self.transactional_id = transactional_id or ""
        self._epoch = 0
        self._txn: _Txn | None = None
        self._crashed = False

    def _check(self) -> None:
        if self._crashed:
            raise LogError(f"producer {self.client_id} crashed")
        if self.transactional_id and self.log._epochs.get(self.transactional_id) != self._epoch:
            self._txn = None
            raise ProducerFenced(f"transactional id {self.transactional_id!r} has a newer "
                                 "producer")

    async def start(self) -> None:
        if not self.transactional_id:
            return
        tid = self.transactional_id
        self._epoch = self.log._epochs.get(tid, 0) + 1
        self.log._epochs[tid] = self._epoch
        left = self.log._open.get(tid)
        if left is not None:
            self.log._end(left, "aborted")

    async def stop(self) -> None:
        if self._crashed:
            return
        if self._txn is not None and self._txn.state == "open" and self.transactional_id and \
                self.log._epochs.get(self.transactional_id) == self._epoch:
            self.log.stopped_mid_transaction.append(self.transactional_id)
            self.log._end(self._txn, "aborted")
        self._txn = None

    async def partition_count(self, topic: str) -> int:
        return len(self.log._partitions(topic))

    async def send_many(self, topic: str, records: Sequence[OutRecord]) -> list[Sent]:
        self._check()
        await asyncio.sleep(0)
        if self.transactional_id and self._txn is None:
            raise LogError("a transactional producer sends only inside a transaction")
        count = len(self.log._partitions(topic))
        placed = []
        for out in records:
            if out.partition is not None:
                p = out.partition
            elif out.key is not None:
                p = partition_for(out.key, count)
            else:
                raise ValueError("send_many needs a key for every record, or a partition")
            if not 0 <= p < count:
                raise LookupError(f"{topic!r} has no partition {p}")
            placed.append(Sent(p, self.log._append(TopicPartition(topic, p), out, self._txn)))
        return placed

    async def begin(self) -> None:
        self._check()
        if self._txn is not None:
            raise LogError("a transaction is already open")
        self._txn = _Txn(self.transactional_id)
        self.log._open[self.transactional_id] = self._txn

    async def send_offsets(self, offsets: Offsets, group_id: str) -> None:
        self._check()
        if self._txn is None:
            raise LogError("send_offsets outside a transaction")
        self._txn.offsets.setdefault(group_id, {}).update(offsets)

    async def commit(self) -> None:
        self._check()
        if self._txn is None:
            raise LogError("commit outside a transaction")
        txn, self._txn = self._txn, None
        self.log._end(txn, "committed")

    async def abort(self) -> None:
        self._check()
        if self._txn is None:
            return
        txn, self._txn = self._txn, None
        self.log._end(txn, "aborted")
