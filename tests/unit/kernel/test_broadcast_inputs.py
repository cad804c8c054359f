"""Broadcast inputs on the in-memory log: every owned partition acts once on every broadcast
record, in its own transaction, across crashes, rebalances and fencing; warm-up records fill
shared state and act nowhere; a poison broadcast record is parked once."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Collection, Mapping, Sequence

import pytest

from kernel.broadcast import checkpoint_group
from kernel.exceptions import DeadLetterTopicMissing
from kernel.log import LogRecord, OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.runner import Emit, StreamRunner
from schemas.errors import DecodeError
from tests.unit.kernel.toy_stage import DLQ, IN, OUT, EchoStage

pytestmark = pytest.mark.asyncio(loop_scope="session")

BC, BC_DLQ = "bc", "bc.dlq"
PARTS = 3


class TickStage(EchoStage):
    """Echoes its inputs (as `EchoStage`) and, for every broadcast record `act:<n>`, writes
    `b:<bc partition>:<offset>` to `out` on each due input partition. Keeps the newest
    broadcast offset it met per broadcast partition, as a quote table would."""

    def __init__(self, log: MemoryLog) -> None:
        super().__init__(log)
        self.newest: dict[TopicPartition, int] = {}
        self.met: list[tuple[str, int, int, tuple[int, ...]]] = []

    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[Emit]]:
        if record.value == b"poison":
            raise DecodeError("not-a-tick", "poison")
        if record.offset > self.newest.get(record.tp, -1):
            self.newest[record.tp] = record.offset
        self.met.append((record.topic, record.partition, record.offset,
                         tuple(tp.partition for tp in due)))
        value = b"b:%d:%d" % (record.partition, record.offset)
        return {tp: [Emit(OUT, b"t", value, partition=tp.partition)] for tp in due}


def _log() -> MemoryLog:
    return MemoryLog({IN: PARTS, OUT: PARTS, DLQ: 1, BC: 2, BC_DLQ: 1})


def _runner(log: MemoryLog, stage: EchoStage, *, name: str = "engine", warmup: int = 0,
            checkpoint_ms: float = 1000.0, max_batch: int = 500) -> StreamRunner:
    return StreamRunner(log, stage, name=name, group_id="g", topics=[IN], mode="transactional",
                        dead_letter_topic=lambda topic: topic + ".dlq", max_batch=max_batch,
                        broadcast=[BC], broadcast_warmup=warmup,
                        broadcast_checkpoint_ms=checkpoint_ms)


async def _ticks(log: MemoryLog, values: Sequence[bytes], *, partition: int | None = None
                 ) -> None:
    await log.producer(client_id="market").send_many(BC, [
        OutRecord(b"sym%d" % (i % 4), v, partition=partition) for i, v in enumerate(values)])


async def _inputs(log: MemoryLog, ids: range) -> None:
    await log.producer(client_id="api").send_many(
        IN, [OutRecord(f"k{i % 5}".encode(), f"id:{i}".encode()) for i in ids])


def _acted(log: MemoryLog) -> dict[int, list[bytes]]:
    """What each input partition wrote for broadcast records, in log order."""
    return {p: [r.value for r in log.records(OUT, p) if r.value and r.value.startswith(b"b:")]
            for p in range(PARTS)}


def _expected(log: MemoryLog, *, skip: int = 0) -> list[bytes]:
    """Every broadcast record from offset `skip` of each partition, as `b:<p>:<offset>`."""
    return sorted(b"b:%d:%d" % (r.partition, r.offset) for r in log.records(BC)
                  if r.offset >= skip)


async def _started(log: MemoryLog, stage: EchoStage, **kw: object) -> StreamRunner:
    r = _runner(log, stage, **kw)  # type: ignore[arg-type]
    await r.start()
    await r.run(until_idle=True)  # joins the group and takes its partitions
    return r


async def test_each_owned_partition_acts_once_on_each_record_in_its_own_transaction() -> None:
    log = _log()
    stage = TickStage(log)
    r = await _started(log, stage)
    await _ticks(log, [b"act"] * 10)
    await _inputs(log, range(6))
    await r.run(until_idle=True)
    acted = _acted(log)
    for p in range(PARTS):
        assert sorted(acted[p]) == _expected(log)  # every record, once, on every partition
    assert sorted(r.value for r in log.records(OUT) if r.value and r.value.startswith(b"id:")) \
        == sorted(f"id:{i}".encode() for i in range(6))
    ends = {TopicPartition(BC, p): len(log.records(BC, p)) for p in range(2)}
    for p in range(PARTS):  # each partition's position committed with its outputs
        assert log.committed(checkpoint_group("g", TopicPartition(IN, p))) == ends
    assert log.open_transactions() == []
    await r.stop()


async def test_a_fresh_partition_starts_at_the_end_and_warmup_records_act_nowhere() -> None:
    log = _log()
    await _ticks(log, [b"old"] * 8)  # before any engine: 4 per broadcast partition
    stage = TickStage(log)
    r = await _started(log, stage, warmup=2)
    # The last 2 of each partition were met for shared state, acted on by none.
    assert sorted((p, o) for _, p, o, _ in stage.met) == [(0, 2), (0, 3), (1, 2), (1, 3)]
    assert all(due == () for *_, due in stage.met)
    assert stage.newest == {TopicPartition(BC, 0): 3, TopicPartition(BC, 1): 3}
    assert _acted(log) == {p: [] for p in range(PARTS)}
    await _ticks(log, [b"act"] * 4)
    await r.run(until_idle=True)
    for p in range(PARTS):
        assert sorted(_acted(log)[p]) == _expected(log, skip=4)
    await r.stop()


async def test_a_crash_resumes_each_partition_where_its_last_transaction_left_it() -> None:
    log = _log()
    doomed_stage = TickStage(log)
    doomed = await _started(log, doomed_stage, max_batch=3)
    await _ticks(log, [b"act"] * 20)
    await doomed.run(count=0, timeout=0)  # nothing: count 0
    # Handle a few broadcast batches, then die with the rest unread.
    assert doomed.bcast is not None
    for _ in range(2):
        await doomed.handle_broadcast(await doomed.bcast.poll(max_records=3, timeout=0))
    acted_before = _acted(log)
    assert 0 < len(acted_before[0]) < 20
    log.crash(*([doomed.consumer] if doomed.consumer else []),  # type: ignore[arg-type]
              *doomed.txn.values())  # type: ignore[arg-type]
    heir = await _started(log, TickStage(log), name="heir")
    for p in range(PARTS):
        assert sorted(_acted(log)[p]) == _expected(log)  # nothing lost, nothing twice
    await heir.stop()


async def test_a_moved_partition_keeps_acting_once_and_a_zombie_writes_nothing() -> None:
    log = _log()
    first = await _started(log, TickStage(log), max_batch=4)
    await _ticks(log, [b"act"] * 12)
    await first.run(until_idle=True)
    second = await _started(log, TickStage(log), name="second", max_batch=4)
    await _ticks(log, [b"act"] * 12)
    await first.run(until_idle=True)
    await second.run(until_idle=True)
    assert first.consumer is not None and second.consumer is not None
    assert first.consumer.assignment() and second.consumer.assignment()
    for p in range(PARTS):
        assert sorted(_acted(log)[p]) == _expected(log)
    # `second` pauses with a broadcast batch in hand and is dropped from the group ...
    await _ticks(log, [b"act"] * 6)
    assert second.bcast is not None
    batch = await second.bcast.poll(max_records=100, timeout=0)
    log.crash(second.consumer)  # type: ignore[arg-type]
    await first.run(until_idle=True)  # takes every partition, acts on the 6
    # ... and resumes: fenced, it writes nothing.
    assert await second.handle_broadcast(batch) == 6
    for p in range(PARTS):
        assert sorted(_acted(log)[p]) == _expected(log)
    assert log.open_transactions() == []
    await first.stop()


async def test_a_position_that_moved_without_outputs_is_committed_within_the_interval(
) -> None:
    class Quiet(TickStage):
        def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                           ) -> Mapping[TopicPartition, Sequence[Emit]]:
            super().step_broadcast(record, due)
            return {}

    log = _log()
    r = await _started(log, Quiet(log), checkpoint_ms=0)
    await _ticks(log, [b"act"] * 6)
    await r.run(until_idle=True)
    ends = {TopicPartition(BC, p): len(log.records(BC, p)) for p in range(2)}
    assert log.committed(checkpoint_group("g", TopicPartition(IN, 0))) == ends
    assert _acted(log) == {p: [] for p in range(PARTS)}
    await r.stop()


async def test_an_own_record_after_broadcast_records_carries_the_position_along() -> None:
    class Quiet(TickStage):
        def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                           ) -> Mapping[TopicPartition, Sequence[Emit]]:
            super().step_broadcast(record, due)
            return {}

    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1, BC: 2, BC_DLQ: 1})
    r = await _started(log, Quiet(log))  # an hour between progress-only checkpoints
    await _ticks(log, [b"act"] * 4)
    await r.run(until_idle=True)
    assert log.committed(checkpoint_group("g", TopicPartition(IN, 0))) == {}
    await _inputs(log, range(1))
    await r.run(until_idle=True)
    # The input's transaction took the partition's broadcast position with it.
    assert log.committed(checkpoint_group("g", TopicPartition(IN, 0))) == {
        TopicPartition(BC, 0): 2, TopicPartition(BC, 1): 2}
    await r.stop()


async def test_a_poison_broadcast_record_is_parked_once_and_the_rest_acted_on() -> None:
    log = _log()
    r = await _started(log, TickStage(log))
    await _ticks(log, [b"act", b"poison", b"act"], partition=0)
    await r.run(until_idle=True)
    [letter] = log.records(BC_DLQ)
    assert letter.value == b"poison" and dict(letter.headers)["x-origin-offset"] == b"1"
    for p in range(PARTS):
        assert _acted(log)[p] == [b"b:0:0", b"b:0:2"]
    await r.stop()


async def test_broadcast_inputs_need_the_transactional_mode() -> None:
    with pytest.raises(ValueError, match="transactional"):
        StreamRunner(_log(), TickStage(_log()), name="x", group_id="g", topics=[IN],
                     mode="at-least-once", dead_letter_topic=lambda t: t + ".dlq",
                     broadcast=[BC])


async def test_a_broadcast_topic_without_dead_letters_refuses_to_start() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1, BC: 1})
    with pytest.raises(DeadLetterTopicMissing, match=re.escape("'bc.dlq' (for 'bc')")):
        await _runner(log, TickStage(log)).start()


async def test_warmup_per_topic_none_reads_a_topic_whole_before_anything_acts() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1, BC: 2, BC_DLQ: 1, "specs": 1, "specs.dlq": 1})
    await _ticks(log, [b"old"] * 6)
    await log.producer(client_id="ref").send_many(
        "specs", [OutRecord(b"s", b"spec%d" % i, partition=0) for i in range(5)])
    stage = TickStage(log)
    r = StreamRunner(log, stage, name="engine", group_id="g", topics=[IN],
                     mode="transactional", dead_letter_topic=lambda topic: topic + ".dlq",
                     broadcast=[BC, "specs"], broadcast_warmup={BC: 1, "specs": None})
    await r.start()
    await r.run(until_idle=True)
    assert stage.newest == {TopicPartition(BC, 0): 2, TopicPartition(BC, 1): 2,
                            TopicPartition("specs", 0): 4}
    # The last tick of each partition, and every spec from the first.
    assert sorted((t, p, o) for t, p, o, _ in stage.met) == [
        (BC, 0, 2), (BC, 1, 2), *(("specs", 0, o) for o in range(5))]
    assert all(due == () for *_, due in stage.met)
    await r.stop()


class OrderedStage(TickStage):
    """Notes, in order, each input record stepped and each broadcast record met."""

    def __init__(self, log: MemoryLog) -> None:
        super().__init__(log)
        self.order: list[str] = []

    def step(self, record: LogRecord) -> Sequence[Emit]:
        self.order.append("input")
        return super().step(record)

    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[Emit]]:
        self.order.append(f"bc:{record.partition}:{record.offset}")
        return super().step_broadcast(record, due)


async def test_an_heir_meets_the_broadcast_it_missed_before_any_input() -> None:
    log = _log()
    first = await _started(log, TickStage(log))
    await _ticks(log, [b"act"] * 4)
    await first.run(until_idle=True)
    # The process dies; the broadcast goes on while nobody runs.
    log.crash(*([first.consumer] if first.consumer else []),  # type: ignore[arg-type]
              *first.txn.values())  # type: ignore[arg-type]
    await _ticks(log, [b"act"] * 600)  # more than one poll's worth (max_batch 100 below)
    await _inputs(log, range(30))
    stage = OrderedStage(log)
    heir = await _started(log, stage, max_batch=100, name="heir")
    first_input = stage.order.index("input")
    missed = {f"bc:{r.partition}:{r.offset}" for r in log.records(BC) if r.offset >= 2}
    assert missed <= set(stage.order[:first_input]), "an input was stepped before catch-up"
    for p in range(PARTS):  # and every partition still acted on each record exactly once
        assert sorted(_acted(log)[p]) == _expected(log)
    await heir.stop()


async def test_a_steady_stream_of_inputs_does_not_starve_the_broadcast() -> None:
    log = _log()
    stage = OrderedStage(log)
    r = await _started(log, stage, max_batch=10)
    # Inputs always waiting: 200 of them, 10 per batch, and one tick queued behind them.
    await _inputs(log, range(200))
    await _ticks(log, [b"act"])
    await r.run(until_idle=True)
    tick = next(i for i, what in enumerate(stage.order) if what.startswith("bc:"))
    assert stage.order[:tick].count("input") <= 20, "the tick waited for every input"
    await r.stop()


def _count(log: MemoryLog, what: bytes) -> int:
    return sum(1 for r in log.records(OUT) if r.value and r.value.startswith(what))


async def _waited(log: MemoryLog, *, before: int, what: bytes) -> float:
    """Seconds until `out` holds more than `before` records starting with `what`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while _count(log, what) <= before:
        assert loop.time() - start < 5, f"{what!r} never written"
        await asyncio.sleep(0.005)
    return loop.time() - start


async def test_an_idle_engine_acts_on_either_at_once_not_after_the_other_polls_wait() -> None:
    """Polls that wait as Kafka's do (a 2 s poll timeout here): an order arriving while the
    engine waits for ticks, and a tick arriving while it waits for orders, are each handled
    within milliseconds. They used to wait out the other poll (half the timeout each, in
    turn: up to 1 s here), so one of the two delays after each prime below waited ~0.6 s."""
    log = MemoryLog({IN: PARTS, OUT: PARTS, DLQ: 1, BC: 2, BC_DLQ: 1}, waiting_polls=True)
    stage = TickStage(log)
    r = StreamRunner(log, stage, name="engine", group_id="g", topics=[IN], mode="transactional",
                     dead_letter_topic=lambda topic: topic + ".dlq", broadcast=[BC],
                     poll_timeout=2.0)
    await r.start()
    task = asyncio.create_task(r.run())
    n = 100

    async def send(kind: str) -> float:
        nonlocal n
        what = b"id:" if kind == "input" else b"b:"
        before = _count(log, what)
        if kind == "input":
            n += 1
            await _inputs(log, range(n, n + 1))
        else:
            await _ticks(log, [b"act"])
        return await _waited(log, before=before, what=what)

    took: dict[tuple[str, float], float] = {}
    try:
        await asyncio.sleep(0.3)  # joined, caught up, idle
        for delay in (0.4, 1.2):
            for kind, prime in (("input", "broadcast"), ("broadcast", "input")):
                await send(prime)
                await asyncio.sleep(delay)
                took[kind, delay] = await send(kind)
        assert max(took.values()) < 0.2, took
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await r.stop()
