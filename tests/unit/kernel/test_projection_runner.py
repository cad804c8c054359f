"""A projection as a StreamRunner stage (external offsets) on the in-memory log and an
in-memory store: batches with their offsets, crashes, rebalances, dead letters, the
one-by-one fallback. Each test runs in milliseconds."""

from __future__ import annotations

import asyncio

import pytest

from kernel.exceptions import DeadLetterTopicMissing
from kernel.log import LogRecord, OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.projection_stage import BatchRejected, MemoryProjectionStore, ProjectionStage
from kernel.runner import StreamRunner
from schemas.errors import DecodeError

pytestmark = pytest.mark.asyncio(loop_scope="session")

IN, DLQ, PARTS = "events", "events.dlq", 3


class Crash(Exception):
    pass


def _decode(record: LogRecord) -> tuple[str, int]:
    """`<key>:<n>` → (key, n); anything else is undecodable."""
    try:
        key, n = (record.value or b"").decode().split(":")
        return key, int(n)
    except ValueError as exc:
        raise DecodeError("not-an-event", repr(record.value)) from exc


def _sum(rows: dict[str, object], event: tuple[str, int]) -> None:
    """A read model summing each key's numbers; 13 is refused by the store."""
    key, n = event
    if n == 13:
        raise BatchRejected("13 violates a constraint")
    rows[key] = int(rows.get(key, 0)) + n  # type: ignore[call-overload]


def _log() -> MemoryLog:
    return MemoryLog({IN: PARTS, DLQ: 1})


async def _produce(log: MemoryLog, values: list[bytes], *, partition: int | None = None) -> None:
    await log.producer(client_id="feed").send_many(
        IN, [OutRecord(v.split(b":")[0], v, partition=partition) for v in values])


class _Store(MemoryProjectionStore[tuple[str, int]]):
    crash_after: int | None = None  # writes before a crash (the process dies mid-stream)

    async def write(self, events, offsets):  # type: ignore[no-untyped-def]
        if self.crash_after is not None and self.writes >= self.crash_after:
            raise Crash
        await super().write(events, offsets)


async def _runner(log: MemoryLog, store: _Store, *, max_batch: int = 500
                  ) -> tuple[StreamRunner, ProjectionStage[tuple[str, int]]]:
    stage = ProjectionStage(store, _decode, name="projection-sums",
                            dead_letter_topic=lambda t: t + ".dlq")
    r = StreamRunner(log, stage, name="projection-sums", group_id="projection-sums",
                     topics=[IN], mode="external", dead_letter_topic=lambda t: t + ".dlq",
                     max_batch=max_batch)
    await r.start()
    stage.producer = r.producer
    return r, stage


def _expected(values: list[bytes]) -> dict[str, object]:
    rows: dict[str, object] = {}
    for v in values:
        key, n = v.decode().split(":")
        if n != "13":
            rows[key] = int(rows.get(key, 0)) + int(n)  # type: ignore[call-overload]
    return rows


def _ends(log: MemoryLog) -> dict[TopicPartition, int]:
    return {TopicPartition(IN, p): len(log.records(IN, p)) for p in range(PARTS)}


VALUES = [f"k{i % 5}:{i}".encode() for i in range(1, 60) if i != 13]


async def test_a_batch_is_written_with_its_offsets_and_kafka_holds_none() -> None:
    log, store = _log(), _Store(_sum)
    await _produce(log, VALUES)
    r, stage = await _runner(log, store)
    assert await r.run(until_idle=True) == len(VALUES)
    assert store.rows == _expected(VALUES)
    assert store.stored == _ends(log)
    assert store.writes == 1  # one batch, one transaction
    assert log.committed("projection-sums") == {}
    assert stage.applied == len(VALUES)
    await r.stop()


async def test_a_crash_mid_stream_redelivers_and_applies_each_event_once() -> None:
    log, store = _log(), _Store(_sum)
    await _produce(log, VALUES)
    doomed, _ = await _runner(log, store, max_batch=7)
    store.crash_after = 3
    with pytest.raises(Crash):
        await doomed.run(until_idle=True)
    log.crash(doomed.consumer)  # type: ignore[arg-type]
    assert 0 < sum(store.stored.values()) < len(VALUES)
    store.crash_after = None
    heir, _ = await _runner(log, store, max_batch=7)
    await heir.run(until_idle=True)
    assert store.rows == _expected(VALUES)  # nothing lost, nothing applied twice
    assert store.stored == _ends(log)
    await heir.stop()


async def test_a_rebalance_seeks_each_partition_to_its_stored_offset() -> None:
    log, store = _log(), _Store(_sum)
    first = VALUES[:30]
    await _produce(log, first)
    a, _ = await _runner(log, store)
    await a.run(until_idle=True)
    await _produce(log, VALUES[30:])
    b, _ = await _runner(log, store)  # joins: the partitions are shared out again
    await a.run(until_idle=True)
    await b.run(until_idle=True)
    await a.run(until_idle=True)
    assert a.consumer is not None and b.consumer is not None
    assert a.consumer.assignment() | b.consumer.assignment() == set(_ends(log))
    assert store.rows == _expected(VALUES)
    assert store.stored == _ends(log)
    await a.stop()
    await b.stop()


async def test_an_undecodable_record_is_dead_lettered_with_its_origin_and_the_partition_goes_on(
) -> None:
    log, store = _log(), _Store(_sum)
    await _produce(log, [b"k1:1", b"garbage", b"k1:2"], partition=0)
    r, _ = await _runner(log, store)
    await r.run(until_idle=True)
    assert store.rows == {"k1": 3}
    assert store.stored[TopicPartition(IN, 0)] == 3
    [letter] = log.records(DLQ)
    headers = dict(letter.headers)
    assert letter.value == b"garbage"
    assert (headers["x-origin-topic"], headers["x-origin-partition"],
            headers["x-origin-offset"]) == (b"events", b"0", b"1")
    assert headers["x-consumer"] == b"projection-sums"
    assert headers["x-error-reason"] == b"not-an-event"
    await r.stop()


async def test_a_refused_batch_is_applied_one_by_one_and_only_the_refused_event_is_parked(
) -> None:
    log, store = _log(), _Store(_sum)
    values = [b"k1:1", b"k2:2", b"k1:13", b"k2:4", b"k1:5"]
    await _produce(log, values, partition=1)
    r, _ = await _runner(log, store)
    await r.run(until_idle=True)
    assert store.rows == {"k1": 6, "k2": 6}
    assert store.stored[TopicPartition(IN, 1)] == len(values)
    [letter] = log.records(DLQ)
    headers = dict(letter.headers)
    assert letter.value == b"k1:13"
    assert headers["x-origin-offset"] == b"2"
    assert b"constraint" in headers["x-error"]
    # Offsets stay with the rows: a restart applies nothing again.
    await r.stop()
    again, _ = await _runner(log, store)
    assert await again.run(until_idle=True) == 0
    assert store.rows == {"k1": 6, "k2": 6}
    await again.stop()


# Overlap (a rebuild): the stage decodes in flush while the previous batch is written --------


class _SlowStore(_Store):
    """A store whose writes take a few loop turns, as a PostgreSQL transaction does; it
    records how many writes were in flight at once."""

    inflight = 0
    most = 0

    async def write(self, events, offsets):  # type: ignore[no-untyped-def]
        self.inflight += 1
        self.most = max(self.most, self.inflight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            await super().write(events, offsets)
        finally:
            self.inflight -= 1


async def test_overlapped_batches_are_written_one_at_a_time_in_order_poison_included() -> None:
    log, store = _log(), _SlowStore(_sum)
    values = [*VALUES[:20], b"garbage", *VALUES[20:], b"k3:13", b"k3:1"]
    await _produce(log, values, partition=2)
    r, stage = await _runner(log, store, max_batch=7)
    stage.overlap, stage.chunk = True, 3
    await r.run(until_idle=True)
    await stage.drain()
    assert store.most == 1  # never two transactions at once
    assert store.rows == _expected([v for v in values if v != b"garbage"])
    assert store.stored[TopicPartition(IN, 2)] == len(values)
    assert stage.positions[TopicPartition(IN, 2)] == len(values)
    assert sorted(letter.value for letter in log.records(DLQ)) == [b"garbage", b"k3:13"]
    [bad] = [letter for letter in log.records(DLQ) if letter.value == b"garbage"]
    assert dict(bad.headers)["x-error-reason"] == b"not-an-event"
    await r.stop()


async def test_an_overlapped_write_that_fails_is_raised_by_drain_and_nothing_is_stored_past_it(
) -> None:
    log, store = _log(), _Store(_sum)
    await _produce(log, VALUES)
    r, stage = await _runner(log, store, max_batch=7)
    stage.overlap = True
    store.crash_after = 2
    with pytest.raises(Crash):
        await r.run(until_idle=True)
        await stage.drain()
    stored = dict(store.stored)
    assert 0 < sum(stored.values()) < len(VALUES)
    await stage.drain()  # nothing left in flight
    log.crash(r.consumer)  # type: ignore[arg-type]
    store.crash_after = None
    heir, heir_stage = await _runner(log, store, max_batch=7)
    heir_stage.overlap = True
    await heir.run(until_idle=True)
    await heir_stage.drain()
    assert store.rows == _expected(VALUES)
    assert store.stored == _ends(log)
    await heir.stop()


async def test_a_projection_whose_dead_letter_topic_is_missing_refuses_to_start() -> None:
    # As the projection runner starts its stage: every partition assigned, external offsets.
    log, store = MemoryLog({IN: PARTS}), _Store(_sum)
    await _produce(log, [b"garbage", b"k1:1"], partition=0)
    stage = ProjectionStage(store, _decode, name="projection-sums",
                            dead_letter_topic=lambda t: t + ".dlq")
    r = StreamRunner(log, stage, name="projection-sums", group_id="projection-sums",
                     topics=[IN], mode="external", dead_letter_topic=stage.dead_letter_topic,
                     assign_all=True)
    with pytest.raises(DeadLetterTopicMissing, match=r"'events\.dlq'"):
        await r.start()
    assert r.consumer is None and store.writes == 0 and stage.positions == {}
    await r.stop()
