"""One contract, two logs: the same scenarios on Kafka (`kafkalog`) and in memory (`memlog`),
so that what the runner tests prove on memory holds on the broker."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from kernel.exceptions import DeadLetterTopicMissing
from kernel.kafka import delete_namespace_topics
from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogConsumer, LogRecord, OutRecord, ProducerFenced, TopicPartition
from kernel.memlog import MemoryLog
from kernel.runner import Emit, StageBase, StreamRunner
from propstream.settings import PlatformSettings as Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Harness:
    log: Log
    topic: str
    out: str
    settings: Settings | None = None  # Kafka's; None in memory

    async def create_topic(self, name: str, partitions: int) -> None:
        if isinstance(self.log, MemoryLog):
            self.log.create_topic(name, partitions)
            return
        assert self.settings is not None
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()


@pytest_asyncio.fixture(loop_scope="session", params=["memlog", "kafkalog"])
async def harness(request: pytest.FixtureRequest,
                  base_settings: Settings) -> AsyncIterator[Harness]:
    if request.param == "memlog":
        yield Harness(MemoryLog({"in": 3, "out": 3}), "in", "out")
        return
    settings = base_settings.model_copy(update={"namespace": "c" + uuid.uuid4().hex[:10]})
    topic, out = settings.topic("contract.in"), settings.topic("contract.out")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(out, 3, 1)])
    finally:
        await admin.close()
    try:
        yield Harness(KafkaLog(settings, max_poll_interval_ms=30_000), topic, out, settings)
    finally:
        await delete_namespace_topics(settings)


async def _drain(consumer: LogConsumer, want: int, *, seconds: float = 20) -> list[LogRecord]:
    got: list[LogRecord] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        for records in (await consumer.poll(max_records=1000, timeout=0.2)).values():
            got += records
    return got


async def _reader(h: Harness, topic: str) -> LogConsumer:
    reader = h.log.consumer(client_id="reader")
    await reader.start()
    reader.assign(await reader.partitions_for(topic))
    return reader


async def test_keyed_records_land_on_murmur2_partitions_and_a_group_resumes_at_its_commit(
        harness: Harness) -> None:
    producer = harness.log.producer(client_id="p")
    await producer.start()
    keys = [f"k{i}".encode() for i in range(12)]
    sent = await producer.send_many(harness.topic, [OutRecord(k, k) for k in keys])
    assert [s.partition for s in sent] == [(murmur2(k) & 0x7FFFFFFF) % 3 for k in keys]
    member = harness.log.consumer(client_id="m1", group_id="contract-g",
                                  session_timeout_ms=6000)
    await member.start()
    member.subscribe([harness.topic])
    first = await _drain(member, 12)
    assert sorted(r.value or b"" for r in first) == sorted(keys)
    await member.commit({r.tp: r.offset + 1 for r in first if r.value != b"k0"}
                        | {TopicPartition(harness.topic, sent[0].partition): sent[0].offset})
    await member.stop()
    await producer.send_many(harness.topic, [OutRecord(b"k0", b"later")])
    heir = harness.log.consumer(client_id="m2", group_id="contract-g", session_timeout_ms=6000)
    await heir.start()
    heir.subscribe([harness.topic])
    again = await _drain(heir, 2)
    # k0 was left uncommitted; on its partition everything after it comes again.
    p0 = sent[0].partition
    expected = [r.value for r in first if r.partition == p0 and r.offset >= sent[0].offset]
    assert [r.value for r in again] == [*expected, b"later"]
    await heir.stop()
    await producer.stop()


async def test_aborted_records_are_invisible_and_offsets_commit_with_the_transaction(
        harness: Harness) -> None:
    tx = harness.log.transactional_producer(client_id="tx", transactional_id="contract-tx-a")
    await tx.start()
    await tx.begin()
    await tx.send_many(harness.out, [OutRecord(None, b"aborted", partition=0)])
    await tx.abort()
    await tx.begin()
    await tx.send_many(harness.out, [OutRecord(None, b"kept", partition=0)])
    await tx.send_offsets({TopicPartition(harness.topic, 1): 42}, "contract-gt")
    await tx.commit()
    reader = await _reader(harness, harness.out)
    got = await _drain(reader, 1, seconds=3)
    assert [r.value for r in got] == [b"kept"]
    assert got[0].offset == 2  # the abort marker took offset 1
    await reader.stop()
    member = harness.log.consumer(client_id="g", group_id="contract-gt")
    await member.start()
    member.assign([TopicPartition(harness.topic, 1)])
    assert await member.committed(TopicPartition(harness.topic, 1)) == 42
    await member.stop()
    await tx.stop()


async def test_a_newer_transactional_producer_fences_the_older_one(harness: Harness) -> None:
    old = harness.log.transactional_producer(client_id="old", transactional_id="contract-tx-f")
    await old.start()
    await old.begin()
    await old.send_many(harness.out, [OutRecord(None, b"zombie", partition=2)])
    new = harness.log.transactional_producer(client_id="new", transactional_id="contract-tx-f")
    await new.start()  # aborts what the old one left open
    with pytest.raises(ProducerFenced):
        await old.send_many(harness.out, [OutRecord(None, b"late", partition=2)])
        await old.commit()
    await new.begin()
    await new.send_many(harness.out, [OutRecord(None, b"heir", partition=2)])
    await new.commit()
    reader = await _reader(harness, harness.out)
    got = await _drain(reader, 1, seconds=3)
    assert [r.value for r in got] == [b"heir"]
    await reader.stop()
    await new.stop()
    with contextlib.suppress(Exception):  # a fenced aiokafka producer may complain on exit
        await old.stop()


class _Picky(StageBase):
    """Refuses (dead-letters) every record whose value is b"poison"."""

    def step(self, record: LogRecord) -> Sequence[Emit]:
        if record.value == b"poison":
            raise ValueError("poison")
        return ()


async def test_a_runner_refuses_to_start_until_its_dead_letter_topic_exists(
        harness: Harness) -> None:
    producer = harness.log.producer(client_id="feed")
    await producer.start()
    await producer.send_many(harness.topic, [OutRecord(b"k", b"poison", partition=0),
                                             OutRecord(b"k", b"fine", partition=0)])
    await producer.stop()
    dlq = harness.topic + ".dlq"
    group = f"contract-dlq-{uuid.uuid4().hex[:8]}"

    def runner() -> StreamRunner:
        return StreamRunner(harness.log, _Picky(), name="picky", group_id=group,
                            topics=[harness.topic], mode="transactional",
                            dead_letter_topic=lambda topic: topic + ".dlq",
                            session_timeout_ms=6000)

    refused = runner()
    with pytest.raises(DeadLetterTopicMissing, match=re.escape(repr(dlq))):
        await refused.start()
    assert refused.consumer is None and refused.txn == {}
    await refused.stop()
    await harness.create_topic(dlq, 1)
    started = runner()
    await started.start()
    loop = asyncio.get_running_loop()
    deadline, handled = loop.time() + 30, 0
    while handled < 2 and loop.time() < deadline:
        handled += await started.run(count=2 - handled, timeout=1)
    assert handled == 2  # the poison record did not stall its partition
    await started.stop()
    reader = await _reader(harness, dlq)
    [letter] = await _drain(reader, 1)
    await reader.stop()
    headers = dict(letter.headers)
    assert letter.value == b"poison"
    assert (headers["x-origin-topic"], headers["x-origin-partition"],
            headers["x-origin-offset"]) == (harness.topic.encode(), b"0", b"0")
    member = harness.log.consumer(client_id="check", group_id=group)
    await member.start()
    member.assign([TopicPartition(harness.topic, 0)])
    assert await member.committed(TopicPartition(harness.topic, 0)) == 2
    await member.stop()


class _Ticks(StageBase):
    """Writes `<bc partition>:<offset>` to `out` on each due input partition."""

    def __init__(self, out: str) -> None:
        self.out = out

    def step(self, record: LogRecord) -> Sequence[Emit]:
        return ()

    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[Emit]]:
        value = f"{record.partition}:{record.offset}".encode()
        return {tp: [Emit(self.out, None, value, partition=tp.partition)] for tp in due}


async def test_broadcast_positions_commit_in_each_partitions_transaction_and_a_heir_resumes(
        harness: Harness) -> None:
    bc = harness.topic + ".bc"
    for name, count in ((bc, 2), (bc + ".dlq", 1), (harness.topic + ".dlq", 1)):
        await harness.create_topic(name, count)
    group = f"contract-bc-{uuid.uuid4().hex[:8]}"
    feed = harness.log.producer(client_id="feed")
    await feed.start()
    loop = asyncio.get_running_loop()

    async def runner(name: str) -> StreamRunner:
        r = StreamRunner(harness.log, _Ticks(harness.out), name=name, group_id=group,
                         topics=[harness.topic], mode="transactional",
                         dead_letter_topic=lambda topic: topic + ".dlq",
                         session_timeout_ms=6000, broadcast=[bc], poll_timeout=0.05)
        await r.start()
        deadline = loop.time() + 30
        while len(r.txn) < 3 and loop.time() < deadline:  # owns the 3 input partitions
            await r.run(timeout=0.2)
        assert len(r.txn) == 3
        return r

    first = await runner("bc-first")
    await feed.send_many(bc, [OutRecord(None, b"t", partition=i % 2) for i in range(10)])
    deadline = loop.time() + 30
    while len(await _acted_now(harness)) < 30 and loop.time() < deadline:
        await first.run(timeout=0.3)
    await first.stop()
    await feed.send_many(bc, [OutRecord(None, b"t", partition=i % 2) for i in range(6)])
    heir = await runner("bc-heir")
    deadline = loop.time() + 30
    while len(await _acted_now(harness)) < 48 and loop.time() < deadline:
        await heir.run(timeout=0.3)
    await heir.stop()
    await feed.stop()
    expected = sorted(f"{p}:{o}".encode() for p in range(2) for o in range(8))
    by_partition = {}
    for r in await _acted_now(harness):
        by_partition.setdefault(r.partition, []).append(r.value or b"")
    assert {p: sorted(v) for p, v in by_partition.items()} == {p: expected for p in range(3)}


async def _acted_now(harness: Harness) -> list[LogRecord]:
    reader = await _reader(harness, harness.out)
    ends = await reader.end_offsets(sorted(reader.assignment()))
    got: list[LogRecord] = []
    while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
        for records in (await reader.poll(max_records=1000, timeout=0.2)).values():
            got += records
    await reader.stop()
    return got
