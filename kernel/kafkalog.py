"""The log port on Kafka, through aiokafka (`kernel.log` says what each call guarantees).

Consumers read committed only and never auto-commit. Producers are idempotent (acks=all);
a transactional producer registers its transactional id at `start`, which bumps the id's
epoch on the broker: an older producer with that id is fenced, and its open transaction
aborted. `send_offsets` is aiokafka's `send_offsets_to_transaction`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import CommitFailedError, InvalidProducerEpoch
from aiokafka.errors import ProducerFenced as KafkaProducerFenced

from kernel.kafka import make_consumer, make_producer, partitions_of, send_batch_closed
from kernel.log import (
    Batch,
    CommitFailed,
    LogRecord,
    Offsets,
    OutRecord,
    ProducerFenced,
    RebalanceListener,
    Sent,
    TopicPartition,
    partition_for,
)
from kernel.settings import KernelSettings

# AddPartitionsToTxn is retried while the previous transaction's markers are written;
# aiokafka's default 100 ms backoff then dominates a transaction's latency (KAFKA-5477).
TXN_RETRY_BACKOFF_MS = 5

_FENCED = (KafkaProducerFenced, InvalidProducerEpoch)

# How long a topic may be missing from the metadata before `missing_topics` reports it.
METADATA_SETTLE_S = 2.0


class KafkaLog:
    """Consumers and producers of the Kafka cluster the settings name (implements `Log`)."""

    def __init__(self, settings: KernelSettings, *,
                 txn_retry_backoff_ms: int = TXN_RETRY_BACKOFF_MS,
                 max_poll_interval_ms: int = 120_000) -> None:
        self.settings = settings
        self.txn_retry_backoff_ms = txn_retry_backoff_ms
        self.max_poll_interval_ms = max_poll_interval_ms

    def consumer(self, *, client_id: str, group_id: str | None = None,
                 session_timeout_ms: int = 10_000, gather_ms: int = 0) -> KafkaConsumer:
        kwargs: dict[str, Any] = {}
        if group_id is not None:
            kwargs = {"session_timeout_ms": session_timeout_ms,
                      "heartbeat_interval_ms": max(100, min(1000, session_timeout_ms // 3)),
                      "max_poll_interval_ms": self.max_poll_interval_ms}
        if gather_ms > 0:  # the broker holds a fetch until 1 MiB or gather_ms
            kwargs.update(fetch_max_wait_ms=gather_ms, fetch_min_bytes=1024 * 1024)
        return KafkaConsumer(make_consumer(self.settings, client_id=client_id,
                                           group_id=group_id, **kwargs), group_id)

    def producer(self, *, client_id: str) -> KafkaProducer:
        return KafkaProducer(make_producer(self.settings, client_id=client_id))

    def transactional_producer(self, *, client_id: str,
                               transactional_id: str) -> KafkaTransactionalProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=client_id,
            transactional_id=transactional_id,
            acks="all",
            linger_ms=0,
            max_batch_size=1024 * 1024,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=30000,
            retry_backoff_ms=self.txn_retry_backoff_ms,
        )
        return KafkaTransactionalProducer(producer, transactional_id)


def _ours(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _theirs(tp: TopicPartition) -> KafkaTP:
    return KafkaTP(tp.topic, tp.partition)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        await self.listener.on_revoked(sorted(_ours(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        await self.listener.on_assigned(sorted(_ours(tp) for tp in assigned))


class KafkaConsumer:
    """`LogConsumer` on an `AIOKafkaConsumer` (read committed, no auto-commit)."""

    def __init__(self, consumer: AIOKafkaConsumer, group_id: str | None) -> None:
        self.consumer = consumer
        self.group_id = group_id

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    def subscribe(self, topics: Sequence[str], *,
                  listener: RebalanceListener | None = None) -> None:
        if listener is None:
            self.consumer.subscribe(list(topics))
        else:
            self.consumer.subscribe(list(topics), listener=_Listener(listener))

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.consumer.assign([_theirs(tp) for tp in partitions])

    def assignment(self) -> set[TopicPartition]:
        return {_ours(tp) for tp in self.consumer.assignment()}

    async def poll(self, *, max_records: int, timeout: float) -> Batch:
        got = await self.consumer.getmany(timeout_ms=int(timeout * 1000),
                                          max_records=max_records)
        return {
            TopicPartition(tp.topic, tp.partition): [
                LogRecord(m.topic, m.partition, m.offset, m.key, m.value,
                          tuple((k, bytes(v)) for k, v in m.headers) if m.headers else (),
                          m.timestamp)
                for m in messages]
            for tp, messages in got.items()}

    async def position(self, tp: TopicPartition) -> int:
        return int(await self.consumer.position(_theirs(tp)))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.consumer.seek(_theirs(tp), offset)

    def highwater(self, tp: TopicPartition) -> int | None:
        high = self.consumer.highwater(_theirs(tp))
        return None if high is None else int(high)

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        ends = await self.consumer.end_offsets([_theirs(tp) for tp in tps])
        return {_ours(tp): int(offset) for tp, offset in ends.items()}

    async def partitions_for(self, topic: str) -> list[TopicPartition]:
        return [_ours(tp) for tp in await partitions_of(self.consumer, topic)]

    async def missing_topics(self, topics: Sequence[str], *,
                             settle_s: float = METADATA_SETTLE_S) -> list[str]:
        """From the cluster's metadata. A topic created a moment ago can be missing from
        the answering broker's metadata for a short while, so what looks missing is asked
        again for up to `settle_s` seconds before it is reported."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s
        while True:
            missing = sorted(set(topics) - set(await self.consumer.topics()))
            if not missing or loop.time() >= deadline:
                return missing
            await asyncio.sleep(0.2)

    async def commit(self, offsets: Offsets) -> None:
        try:
            await self.consumer.commit({_theirs(tp): o for tp, o in offsets.items()})
        except CommitFailedError as exc:
            raise CommitFailed(str(exc)) from exc

    async def committed(self, tp: TopicPartition) -> int | None:
        offset = await self.consumer.committed(_theirs(tp))
        return None if offset is None else int(offset)


async def _send_many(producer: AIOKafkaProducer, topic: str,
                     records: Sequence[OutRecord]) -> list[Sent]:
    """Whole batches per partition (per-record `send()` costs ~8x the CPU in aiokafka)."""
    if not records:
        return []
    count = 0
    targets: list[int] = []
    for out in records:
        if out.partition is not None:
            targets.append(out.partition)
            continue
        if out.key is None:
            raise ValueError("send_many needs a key for every record, or a partition")
        if not count:
            count = len(await producer.partitions_for(topic))
        targets.append(partition_for(out.key, count))
    by_partition: dict[int, list[int]] = {}
    for index, p in enumerate(targets):
        by_partition.setdefault(p, []).append(index)
    pending: list[tuple[list[int], asyncio.Future[Any]]] = []
    for p, indexes in by_partition.items():
        batch = producer.create_batch()
        members: list[int] = []
        for index in indexes:
            out = records[index]
            headers = list(out.headers)
            if batch.append(key=out.key, value=out.value, timestamp=None,
                            headers=headers) is None:
                pending.append((members, await send_batch_closed(producer, batch, topic, p)))
                batch, members = producer.create_batch(), []
                if batch.append(key=out.key, value=out.value, timestamp=None,
                                headers=headers) is None:
                    size = len(out.value or b"")
                    raise ValueError(f"a record of {size} bytes does not fit in a batch")
            members.append(index)
        if members:
            pending.append((members, await send_batch_closed(producer, batch, topic, p)))
    placed: list[Sent | None] = [None] * len(records)
    results = await asyncio.gather(*(future for _, future in pending))
    for (members, _), meta in zip(pending, results, strict=True):
        for i, index in enumerate(members):
            placed[index] = Sent(meta.partition, meta.offset + i)
    return [s for s in placed if s is not None]


class KafkaProducer:
    """`LogProducer` on an idempotent `AIOKafkaProducer`."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def partition_count(self, topic: str) -> int:
        return len(await self.producer.partitions_for(topic))

    async def send_many(self, topic: str, records: Sequence[OutRecord]) -> list[Sent]:
        return await _send_many(self.producer, topic, records)


class KafkaTransactionalProducer(KafkaProducer):
    """`TransactionalProducer` on aiokafka's transactional producer."""

    def __init__(self, producer: AIOKafkaProducer, transactional_id: str) -> None:
        super().__init__(producer)
        self.transactional_id = transactional_id

    async def send_many(self, topic: str, records: Sequence[OutRecord]) -> list[Sent]:
        try:
            return await _send_many(self.producer, topic, records)
        except _FENCED as exc:
            raise ProducerFenced(str(exc)) from exc

    async def begin(self) -> None:
        try:
            await self.producer.begin_transaction()
        except _FENCED as exc:
            raise ProducerFenced(str(exc)) from exc

    async def send_offsets(self, offsets: Offsets, group_id: str) -> None:
        try:
            await self.producer.send_offsets_to_transaction(
                {_theirs(tp): o for tp, o in offsets.items()}, group_id)
        except _FENCED as exc:
            raise ProducerFenced(str(exc)) from exc

    async def commit(self) -> None:
        try:
            await self.producer.commit_transaction()
        except _FENCED as exc:
            raise ProducerFenced(str(exc)) from exc

    async def abort(self) -> None:
        try:
            await self.producer.abort_transaction()
        except _FENCED as exc:
            raise ProducerFenced(str(exc)) from exc
