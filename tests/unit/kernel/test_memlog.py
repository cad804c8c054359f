"""The in-memory log keeps Kafka's semantics: placement, groups, read-committed, fencing."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2

from kernel.log import CommitFailed, OutRecord, ProducerFenced, TopicPartition
from kernel.memlog import MemoryLog

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


async def _read_all(log: MemoryLog, tps: list[TopicPartition]) -> list[bytes | None]:
    reader = log.consumer(client_id="r")
    await reader.start()
    reader.assign(tps)
    batch = await reader.poll(max_records=10_000, timeout=0)
    return [r.value for tp in tps for r in batch.get(tp, [])]


async def test_keys_land_where_kafkas_murmur2_puts_them() -> None:
    log = MemoryLog({"t": 12})
    producer = log.producer(client_id="p")
    keys = [f"acc-{i}".encode() for i in range(100)]
    sent = await producer.send_many("t", [OutRecord(k, b"v") for k in keys])
    assert [s.partition for s in sent] == [(murmur2(k) & 0x7FFFFFFF) % 12 for k in keys]


async def test_offsets_grow_per_partition_and_order_is_kept() -> None:
    log = MemoryLog({"t": 2})
    producer = log.producer(client_id="p")
    sent = await producer.send_many("t", [OutRecord(None, str(i).encode(), partition=i % 2)
                                          for i in range(6)])
    assert [(s.partition, s.offset) for s in sent] == [(0, 0), (1, 0), (0, 1), (1, 1),
                                                       (0, 2), (1, 2)]
    assert await _read_all(log, [T0]) == [b"0", b"2", b"4"]


async def test_group_members_share_partitions_and_resume_at_the_commit() -> None:
    log = MemoryLog({"t": 2})
    await log.producer(client_id="p").send_many(
        "t", [OutRecord(None, b"a", partition=0), OutRecord(None, b"b", partition=1)])
    first = log.consumer(client_id="c1", group_id="g")
    first.subscribe(["t"])
    await first.start()
    batch = await first.poll(max_records=10, timeout=0)
    assert first.assignment() == {T0, T1} and len(batch) == 2
    await first.commit({T0: 1})
    second = log.consumer(client_id="c2", group_id="g")
    second.subscribe(["t"])
    await second.start()
    # The first member learns of the rebalance at its next poll.
    with pytest.raises(CommitFailed):
        await first.commit({T1: 1})
    await first.poll(max_records=10, timeout=0)
    await second.poll(max_records=10, timeout=0)
    assert first.assignment() | second.assignment() == {T0, T1}
    assert first.assignment().isdisjoint(second.assignment())
    # T1 was never committed: whoever owns it now reads "b" again.
    owner = first if T1 in first.assignment() else second
    owner.seek(T1, 0)
    assert [r.value for r in (await owner.poll(max_records=10, timeout=0))[T1]] == [b"b"]


async def test_a_crashed_member_leaves_and_its_work_is_redelivered() -> None:
    log = MemoryLog({"t": 1})
    await log.producer(client_id="p").send_many("t", [OutRecord(None, b"x", partition=0)])
    doomed = log.consumer(client_id="c1", group_id="g")
    doomed.subscribe(["t"])
    await doomed.start()
    assert await doomed.poll(max_records=10, timeout=0)
    log.crash(doomed)
    heir = log.consumer(client_id="c2", group_id="g")
    heir.subscribe(["t"])
    await heir.start()
    assert [r.value for r in (await heir.poll(max_records=10, timeout=0))[T0]] == [b"x"]


async def test_open_and_aborted_transactions_are_invisible_and_markers_take_offsets() -> None:
    log = MemoryLog({"t": 1})
    tx = log.transactional_producer(client_id="p", transactional_id="tx")
    await tx.start()
    await tx.begin()
    await tx.send_many("t", [OutRecord(None, b"aborted", partition=0)])
    await tx.abort()
    await tx.begin()
    await tx.send_many("t", [OutRecord(None, b"open", partition=0)])
    plain = log.producer(client_id="plain")
    await plain.send_many("t", [OutRecord(None, b"after-open", partition=0)])
    reader = log.consumer(client_id="r")
    reader.assign([T0])
    assert await reader.poll(max_records=10, timeout=0) == {}  # stable offset is "open"
    assert (await reader.end_offsets([T0]))[T0] == 2
    await tx.commit()
    got = await reader.poll(max_records=10, timeout=0)
    assert [(r.offset, r.value) for r in got[T0]] == [(2, b"open"), (3, b"after-open")]
    # aborted 0, its abort marker 1, open 2, plain 3, the commit marker 4
    assert reader.highwater(T0) == 5
    assert [r.offset for r in log.records("t", committed_only=False)] == [0, 2, 3]


async def test_offsets_sent_in_a_transaction_commit_with_it() -> None:
    log = MemoryLog({"t": 1, "out": 1})
    tx = log.transactional_producer(client_id="p", transactional_id="tx")
    await tx.start()
    await tx.begin()
    await tx.send_many("out", [OutRecord(None, b"o", partition=0)])
    await tx.send_offsets({T0: 7}, "g")
    assert log.committed("g") == {}
    await tx.abort()
    assert log.committed("g") == {}
    await tx.begin()
    await tx.send_offsets({T0: 7}, "g")
    await tx.commit()
    assert log.committed("g") == {T0: 7}


async def test_a_newer_producer_fences_the_old_one_and_aborts_its_transaction() -> None:
    log = MemoryLog({"t": 1})
    old = log.transactional_producer(client_id="old", transactional_id="tx")
    await old.start()
    await old.begin()
    await old.send_many("t", [OutRecord(None, b"zombie", partition=0)])
    new = log.transactional_producer(client_id="new", transactional_id="tx")
    await new.start()
    assert log.open_transactions() == []
    with pytest.raises(ProducerFenced):
        await old.send_many("t", [OutRecord(None, b"more", partition=0)])
    with pytest.raises(ProducerFenced):
        await old.commit()
    await new.begin()
    await new.send_many("t", [OutRecord(None, b"heir", partition=0)])
    await new.commit()
    assert [r.value for r in log.records("t")] == [b"heir"]
