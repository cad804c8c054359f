"""The log port: what a stream runner needs from a partitioned, replicated log.

Two implementations: `kernel.kafkalog` (aiokafka, the platform) and `kernel.memlog` (memory,
deterministic, for tests that drive a runner in milliseconds). Both give the same guarantees:

* records of a partition are read in offset order; a key lands on the partition Kafka's
  murmur2 partitioner picks;
* consumers read committed only: records of an open or aborted transaction are invisible,
  and a transaction's commit or abort marker takes an offset (offsets have gaps);
* a group member owns partitions until a rebalance revokes them; offsets committed by the
  group (directly, or inside a producer's transaction) are where the next owner resumes;
* a transactional producer's sends and `send_offsets` become visible together at `commit`;
  a newer producer with the same transactional id fences the older one (`ProducerFenced`)
  and aborts whatever it left open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import msgspec

from schemas.errors import PropstreamError

Header = tuple[str, bytes]


class TopicPartition(NamedTuple):
    """A partition of a topic (equal to aiokafka's `TopicPartition`, also a named tuple)."""

    topic: str
    partition: int


class LogRecord(msgspec.Struct, frozen=True, gc=False):
    """A record as read from the log. A frozen msgspec Struct, not a frozen dataclass: one is
    built per record read, and the dataclass's `__init__` cost 2.0 µs against 0.18 µs
    (~1 µs per event of a projection rebuild, bench/RESULTS.md). Untracked by the cyclic
    collector (`gc=False`: its fields are strings, numbers, bytes and tuples of them, so it
    can be in no cycle): 0.13 µs to build, and thousands per batch fewer for it to walk."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0  # milliseconds since the epoch

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record to append; with no `partition`, the key's murmur2 partition."""

    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a record landed."""

    partition: int
    offset: int


Batch = dict[TopicPartition, list[LogRecord]]
Offsets = Mapping[TopicPartition, int]


class LogError(PropstreamError):
    """The log refused an operation."""


class ProducerFenced(LogError):
    """A newer producer with the same transactional id exists: this one must stop writing,
    and whatever it decided in memory since its last commit is not on the log."""


class CommitFailed(LogError):
    """The group moved on (rebalance): this member no longer owns what it tried to commit."""


class RebalanceListener(Protocol):
    async def on_revoked(self, partitions: list[TopicPartition]) -> None: ...

    async def on_assigned(self, partitions: list[TopicPartition]) -> None: ...


class LogConsumer(Protocol):
    """A reader: a group member (`subscribe`) or a plain reader of given partitions
    (`assign`). Reads committed only; starts at the group's committed offset, or earliest."""

    group_id: str | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: Sequence[str], *,
                  listener: RebalanceListener | None = None) -> None: ...

    def assign(self, partitions: Sequence[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def poll(self, *, max_records: int, timeout: float) -> Batch:
        """Up to `max_records` records by partition; {} after `timeout` seconds without."""
        ...

    async def position(self, tp: TopicPartition) -> int: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def highwater(self, tp: TopicPartition) -> int | None: ...

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The offsets a read-committed reader reaches at most now (last stable offsets)."""
        ...

    async def partitions_for(self, topic: str) -> list[TopicPartition]: ...

    async def missing_topics(self, topics: Sequence[str]) -> list[str]:
        """Those of `topics` the log does not have, sorted (works before `subscribe`)."""
        ...

    async def commit(self, offsets: Offsets) -> None:
        """Commit the group's next offsets; `CommitFailed` if the group moved on."""
        ...

    async def committed(self, tp: TopicPartition) -> int | None: ...


class LogProducer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def partition_count(self, topic: str) -> int: ...

    async def send_many(self, topic: str, records: Sequence[OutRecord]) -> list[Sent]:
        """Append `records` (order kept per partition) and wait for them; where each landed,
        in input order. In a transaction they become visible at commit."""
        ...


class TransactionalProducer(LogProducer, Protocol):
    """A producer whose sends and consumer offsets commit atomically. `start` registers its
    transactional id, fencing (and aborting the open transaction of) any older instance."""

    transactional_id: str

    async def begin(self) -> None: ...

    async def send_offsets(self, offsets: Offsets, group_id: str) -> None: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class Log(Protocol):
    """Makes consumers and producers of one log (a Kafka cluster, or memory)."""

    def consumer(self, *, client_id: str, group_id: str | None = None,
                 session_timeout_ms: int = 10_000, gather_ms: int = 0) -> LogConsumer:
        """`gather_ms` > 0: a fetch may wait that long to gather records (a reader nobody
        waits on, taking fewer, larger batches); 0 answers as soon as one record is there."""
        ...

    def producer(self, *, client_id: str) -> LogProducer: ...

    def transactional_producer(self, *, client_id: str,
                               transactional_id: str) -> TransactionalProducer: ...


def partition_for(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner (murmur2, positive) gives `key`."""
    return (_murmur2(key) & 0x7FFFFFFF) % count


def _murmur2(data: bytes) -> int:
    # The Java client's murmur2 (as aiokafka.partitioner.murmur2), kept here so the port and
    # the in-memory log need no aiokafka import.
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = seed ^ length
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + \
            ((data[i4 + 2] & 0xFF) << 16) + ((data[i4 + 3] & 0xFF) << 24)
        k &= 0xFFFFFFFF
        k *= m
        k &= 0xFFFFFFFF
        k ^= (k % 0x100000000) >> r
        k &= 0xFFFFFFFF
        k *= m
        k &= 0xFFFFFFFF
        h *= m
        h &= 0xFFFFFFFF
        h ^= k
        h &= 0xFFFFFFFF
    extra = length % 4
    if extra >= 3:
        h ^= (data[(length & ~3) + 2] & 0xFF) << 16
        h &= 0xFFFFFFFF
    if extra >= 2:
        h ^= (data[(length & ~3) + 1] & 0xFF) << 8
        h &= 0xFFFFFFFF
    if extra >= 1:
        h ^= data[length & ~3] & 0xFF
        h &= 0xFFFFFFFF
        h *= m
        h &= 0xFFFFFFFF
    h ^= (h % 0x100000000) >> 13
    h &= 0xFFFFFFFF
    h *= m
    h &= 0xFFFFFFFF
    h ^= (h % 0x100000000) >> 15
    h &= 0xFFFFFFFF
    return h
