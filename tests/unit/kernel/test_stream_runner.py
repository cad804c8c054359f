"""The stream runner on the in-memory log: commit modes, dead letters, crashes, rebalances,
fencing. Each test runs in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from kernel.exceptions import DeadLetterTopicMissing
from kernel.log import OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.runner import StreamRunner
from tests.unit.kernel.toy_stage import DLQ, IN, OUT, Crash, EchoStage, runner

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARTS = 3


def _log() -> MemoryLog:
    return MemoryLog({IN: PARTS, OUT: PARTS, DLQ: 1})


async def _produce(log: MemoryLog, ids: range, *, keys: int = 5) -> None:
    await log.producer(client_id="feed").send_many(
        IN, [OutRecord(f"k{i % keys}".encode(), f"id:{i}".encode()) for i in ids])


def _outs(log: MemoryLog) -> list[bytes | None]:
    return [r.value for r in log.records(OUT)]


def _exactly_once(log: MemoryLog, ids: range) -> None:
    outs = _outs(log)
    assert sorted(outs) == sorted(f"id:{i}".encode() for i in ids)  # none lost, none doubled
    for p in range(log.partition_count(IN)):  # and in input order on every partition
        inputs = [r.value for r in log.records(IN, p)]
        assert [r.value for r in log.records(OUT, p)] == inputs


async def _started(log: MemoryLog, stage: EchoStage, **kw: object) -> StreamRunner:
    r = runner(log, stage, **kw)  # type: ignore[arg-type]
    await r.start()
    return r


async def test_transactional_outputs_and_offsets_commit_together() -> None:
    log = _log()
    await _produce(log, range(40))
    r = await _started(log, EchoStage(log))
    assert await r.run(until_idle=True) == 40
    _exactly_once(log, range(40))
    assert log.committed("g") == {TopicPartition(IN, p): len(log.records(IN, p)) for p in
                                  range(PARTS)}
    # One transactional id per input partition, named after group, topic and partition.
    assert sorted(p.transactional_id for p in r.txn.values()) == [f"g.in.{p}" for p in
                                                                 range(PARTS)]
    await r.stop()


async def test_a_poison_record_is_dead_lettered_with_its_origin_and_the_partition_moves_on(
) -> None:
    log = _log()
    await log.producer(client_id="feed").send_many(IN, [
        OutRecord(b"k", b"id:1", partition=0), OutRecord(b"k", b"garbage", partition=0),
        OutRecord(b"k", b"id:2", partition=0)])
    r = await _started(log, EchoStage(log))
    await r.run(until_idle=True)
    assert _outs(log) == [b"id:1", b"id:2"]
    [letter] = log.records(DLQ)
    headers = dict(letter.headers)
    assert letter.value == b"garbage"
    assert (headers["x-origin-topic"], headers["x-origin-partition"],
            headers["x-origin-offset"]) == (b"in", b"0", b"1")
    assert headers["x-error-reason"] == b"not-an-id" and headers["x-consumer"] == b"echo"
    await r.stop()


@pytest.mark.parametrize("mode", ["transactional", "at-least-once"])
async def test_a_crash_mid_batch_redelivers_and_each_input_is_decided_once(mode: str) -> None:
    log = _log()
    await _produce(log, range(30))
    doomed_stage = EchoStage(log)
    doomed = await _started(log, doomed_stage, mode=mode, max_batch=7)
    await doomed.run(count=7)
    doomed_stage.crash_in_flush = True
    with pytest.raises(Crash):
        await doomed.run(count=7)
    log.crash(*([doomed.consumer] if doomed.consumer else []),  # type: ignore[list-item]
              *doomed.txn.values())  # type: ignore[arg-type]
    heir = await _started(log, EchoStage(log), mode=mode, name="heir")
    await heir.run(until_idle=True)
    _exactly_once(log, range(30))
    assert log.open_transactions() == []
    await heir.stop()


async def test_at_least_once_without_dedupe_doubles_after_a_crash_after_the_send() -> None:
    # What the transactional mode protects from: outputs acked, offsets not committed.
    log = _log()
    await _produce(log, range(6), keys=1)
    stage = EchoStage(log, dedupe=False)
    doomed = await _started(log, stage, mode="at-least-once")

    async def crash_on_commit(offsets: Mapping[TopicPartition, int]) -> None:
        raise Crash

    assert doomed.consumer is not None
    doomed.consumer.commit = crash_on_commit  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await doomed.run(until_idle=True)
    log.crash(doomed.consumer)  # type: ignore[arg-type]
    heir = await _started(log, EchoStage(log, dedupe=False), mode="at-least-once")
    await heir.run(until_idle=True)
    assert len(_outs(log)) == 12
    await heir.stop()


async def test_a_member_joining_takes_partitions_and_nothing_is_decided_twice() -> None:
    log = _log()
    await _produce(log, range(60))
    first_stage = EchoStage(log)
    first = await _started(log, first_stage, max_batch=10)
    await first.run(count=10)
    second_stage = EchoStage(log)
    second = await _started(log, second_stage, max_batch=10, name="second")
    await second.run(until_idle=True)
    await first.run(until_idle=True)
    await second.run(until_idle=True)
    _exactly_once(log, range(60))
    assert first.consumer is not None and second.consumer is not None
    assert first.consumer.assignment().isdisjoint(second.consumer.assignment())
    assert len(first_stage.loaded) == 2  # its state was reloaded after the rebalance
    await first.stop()
    await second.stop()


async def test_a_zombie_is_fenced_and_drops_what_it_decided() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(10), keys=1)
    zombie_stage = EchoStage(log)
    zombie = await _started(log, zombie_stage)
    await zombie.run(count=1, until_idle=True)
    assert zombie.consumer is not None
    await _produce(log, range(10, 20), keys=1)
    # The zombie fetched a batch, then paused past its session timeout ...
    batch = await zombie.consumer.poll(max_records=100, timeout=0)
    log.crash(zombie.consumer)  # the group dropped it (it does not know yet)
    heir = await _started(log, EchoStage(log), name="heir")
    await heir.run(until_idle=True)
    # ... and resumes: its transaction is fenced, its state dropped, nothing written.
    assert await zombie.handle_batch(batch) == 0
    assert zombie_stage.seen == {}
    _exactly_once(log, range(20))
    await heir.stop()


async def test_a_failed_transaction_aborts_and_the_partition_reloads() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(5), keys=1)
    stage = EchoStage(log)
    r = await _started(log, stage)
    calls = 0
    real_flush = stage.flush

    async def flaky(offsets: Mapping[TopicPartition, int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("broker hiccup")
        await real_flush(offsets)

    stage.flush = flaky  # type: ignore[method-assign]
    await r.run(count=5)
    _exactly_once(log, range(5))
    assert len(stage.loaded) == 2
    await r.stop()


class _FakeStore:
    """A projection's own store: rows and offsets in one (fake) transaction."""

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.offsets: dict[TopicPartition, int] = {}


class _ProjectingStage(EchoStage):
    def __init__(self, log: MemoryLog, store: _FakeStore) -> None:
        super().__init__(log, dedupe=False)
        self.store = store
        self.pending: list[bytes] = []

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        for tp in partitions:
            self.seen[tp.partition] = set()
        return {tp: self.store.offsets.get(tp, 0) for tp in partitions}

    def step(self, record):  # type: ignore[no-untyped-def]
        for emit in super().step(record):
            assert emit.value is not None
            self.pending.append(emit.value)
        return []

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self.crash_in_flush:
            self.pending.clear()
            raise Crash
        self.store.rows += self.pending
        self.store.offsets.update(offsets)
        self.pending.clear()


async def test_external_offsets_resume_where_the_store_says_and_kafka_holds_none() -> None:
    log = _log()
    await _produce(log, range(25))
    store = _FakeStore()
    stage = _ProjectingStage(log, store)
    doomed = await _started(log, stage, mode="external", max_batch=5)
    await doomed.run(count=5)
    stage.crash_in_flush = True
    with pytest.raises(Crash):
        await doomed.run(count=5)
    log.crash(doomed.consumer)  # type: ignore[arg-type]
    heir = await _started(log, _ProjectingStage(log, store), mode="external")
    await heir.run(until_idle=True)
    assert sorted(store.rows) == sorted(f"id:{i}".encode() for i in range(25))
    assert log.committed("g") == {}
    await heir.stop()


# -- at-least-once with offsets committed off the poll path (commit_interval_ms) --------------


class _SlowCommits:
    """Wraps a consumer's commit: each waits until released; records the offsets and how
    many commits were in flight at once."""

    def __init__(self, r: StreamRunner) -> None:
        assert r.consumer is not None
        self.real = r.consumer.commit
        self.release = asyncio.Event()
        self.flying = 0
        self.most = 0
        self.calls: list[dict[TopicPartition, int]] = []
        r.consumer.commit = self.commit  # type: ignore[method-assign]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.flying += 1
        self.most = max(self.most, self.flying)
        self.calls.append(dict(offsets))
        try:
            await self.release.wait()
            await self.real(offsets)
        finally:
            self.flying -= 1


async def test_deferred_commits_do_not_hold_the_loop_and_never_overlap() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(40), keys=1)
    r = await _started(log, EchoStage(log), mode="at-least-once", max_batch=5,
                       commit_interval_ms=0)
    slow = _SlowCommits(r)
    # Every batch is handled while the first commit still waits for the broker.
    assert await r.run(count=40) == 40
    assert slow.calls == [{TopicPartition(IN, 0): 5}] and log.committed("g") == {}
    slow.release.set()
    await r.run(until_idle=True)  # the next commit takes what was handled since, at once
    await asyncio.sleep(0)
    assert slow.most == 1
    assert [c[TopicPartition(IN, 0)] for c in slow.calls] == [5, 40]
    assert log.committed("g") == {TopicPartition(IN, 0): 40}
    _exactly_once(log, range(40))
    await r.stop()


async def test_deferred_commits_a_crash_redelivers_what_was_handled_since_the_last() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(30), keys=1)
    doomed = await _started(log, EchoStage(log, dedupe=False), mode="at-least-once",
                            max_batch=10, commit_interval_ms=60_000)
    await doomed.run(count=30)
    await asyncio.sleep(0)
    # The first batch was committed at once; the next two wait for the interval.
    assert log.committed("g") == {TopicPartition(IN, 0): 10}
    log.crash(doomed.consumer)  # type: ignore[arg-type]
    heir = await _started(log, EchoStage(log, dedupe=False), mode="at-least-once",
                          name="heir", commit_interval_ms=60_000)
    await heir.run(until_idle=True)
    outs = _outs(log)
    assert set(outs) == {f"id:{i}".encode() for i in range(30)}  # nothing lost
    assert sorted(outs) == sorted([f"id:{i}".encode() for i in range(30)] +
                                  [f"id:{i}".encode() for i in range(10, 30)])
    await heir.stop()


async def test_deferred_commits_are_made_before_partitions_are_given_up() -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(20), keys=1)
    r = await _started(log, EchoStage(log), mode="at-least-once", max_batch=5,
                       commit_interval_ms=60_000)
    await r.run(count=20)
    await asyncio.sleep(0)
    assert log.committed("g") == {TopicPartition(IN, 0): 5}
    # On Kafka the revocation callback runs before the member rejoins: it commits first.
    await r._revoked([TopicPartition(IN, 0)])
    assert log.committed("g") == {TopicPartition(IN, 0): 20}
    await _produce(log, range(20, 30), keys=1)
    await r.run(count=10)
    # aiokafka's stop() leaves the group without calling the listener: stop commits itself.
    assert r.consumer is not None
    r.consumer._listener = None  # type: ignore[attr-defined]
    await r.stop()
    assert log.committed("g") == {TopicPartition(IN, 0): 30}


async def test_deferred_commit_refused_after_a_rebalance_is_logged_and_the_heir_redelivers(
) -> None:
    log = MemoryLog({IN: 1, OUT: 1, DLQ: 1})
    await _produce(log, range(10), keys=1)
    first = await _started(log, EchoStage(log), mode="at-least-once", max_batch=5,
                           commit_interval_ms=60_000)
    await first.run(count=10)  # 0..4 committed, 5..9 handled and waiting
    second = await _started(log, EchoStage(log), mode="at-least-once", name="second",
                            commit_interval_ms=0)
    await second.run(until_idle=True)  # takes the partition (the group rebalanced at once)
    await first.run(until_idle=True)   # learns of it: its commit is refused, not fatal
    await second.stop()
    await first.run(until_idle=True)   # the partition comes back: nothing lost or doubled
    await first.stop()
    _exactly_once(log, range(10))
    assert log.committed("g") == {TopicPartition(IN, 0): 10}


def test_commit_interval_is_only_for_at_least_once() -> None:
    log = _log()
    with pytest.raises(ValueError, match="commit_interval_ms"):
        runner(log, EchoStage(log), mode="transactional", commit_interval_ms=100)


@pytest.mark.parametrize("mode", ["transactional", "at-least-once", "external"])
async def test_a_runner_whose_dead_letter_topic_is_missing_refuses_to_start(mode: str) -> None:
    # Without the topic, the first poison record's dead letter cannot be sent: in a
    # transaction the batch aborts and is retried forever, otherwise the process crashes on
    # it at every restart. Either way its partition stalls, so the runner must not start.
    log = MemoryLog({IN: PARTS, OUT: PARTS})
    await log.producer(client_id="feed").send_many(IN, [OutRecord(b"k", b"garbage")])
    r = runner(log, EchoStage(log), mode=mode)
    with pytest.raises(DeadLetterTopicMissing) as refused:
        await r.start()
    assert "'in.dlq'" in str(refused.value) and "'in'" in str(refused.value)
    assert "propstream topics apply" in str(refused.value)
    # Refused before joining the group: no partition taken, nothing committed, no producer.
    assert r.consumer is None and r.producer is None and r.txn == {}
    assert log._group("g").members == [] and log.committed("g") == {}
    await r.stop()  # stopping a runner that did not start is harmless
    log.create_topic(DLQ, 1)
    r = await _started(log, EchoStage(log), mode=mode)
    await r.run(until_idle=True)
    assert [letter.value for letter in log.records(DLQ)] == [b"garbage"]
    await r.stop()


async def test_a_runner_refuses_an_input_topic_without_a_dead_letter_topic() -> None:
    def none_for(topic: str) -> str:
        raise LookupError(f"topic {topic!r} has no dead-letter topic in the catalogue")

    log = _log()
    r = StreamRunner(log, EchoStage(log), name="echo", group_id="g", topics=[IN],
                     mode="transactional", dead_letter_topic=none_for)
    with pytest.raises(DeadLetterTopicMissing, match="'in' has no dead-letter topic"):
        await r.start()
    assert r.consumer is None

async def test_readers_of_disjoint_partition_sets_split_the_log_between_them() -> None:
    # A parallel rebuild (kernel.rebuild): each worker reads only its own partitions.
    log = _log()
    await _produce(log, range(30), keys=7)
    store = _FakeStore()
    mine = [TopicPartition(IN, 0), TopicPartition(IN, 2)]
    first = await _started(log, _ProjectingStage(log, store), mode="external",
                           assign_all=True, only=mine)
    second = await _started(log, _ProjectingStage(log, store), mode="external",
                            assign_all=True, only=[TopicPartition(IN, 1)])
    assert first.consumer is not None and second.consumer is not None
    assert first.consumer.assignment() == set(mine)
    assert second.consumer.assignment() == {TopicPartition(IN, 1)}
    await first.run(until_idle=True)
    await second.run(until_idle=True)
    assert sorted(store.rows) == sorted(f"id:{i}".encode() for i in range(30))
    assert store.offsets == {TopicPartition(IN, p): len(log.records(IN, p))
                             for p in range(PARTS)}
    await first.stop()
    await second.stop()


def test_a_subset_of_partitions_goes_with_assign_all() -> None:
    log = _log()
    with pytest.raises(ValueError, match="assign_all"):
        runner(log, EchoStage(log), mode="external", only=[TopicPartition(IN, 0)])


async def test_a_revocation_during_a_transaction_waits_for_it_and_the_partitions_come_back(
) -> None:
    # aiokafka runs the rebalance listener in its coordinator task, concurrently with the
    # loop: here it fires from inside a transaction (the stage's flush), revoking every
    # partition and handing them back, as an eager rebalance does.
    log = _log()
    await _produce(log, range(30))
    stage = EchoStage(log)
    r = await _started(log, stage, max_batch=5)
    await r.run(count=5)
    assert r.consumer is not None
    fired: list[bool] = []
    real_flush = stage.flush

    async def rebalance_mid_transaction(offsets: Mapping[TopicPartition, int]) -> None:
        if not fired:
            fired.append(True)
            assert r.consumer is not None
            owned = sorted(r.consumer.assignment())
            await r._revoked(owned)
            await r._assigned(owned)
        await real_flush(offsets)

    stage.flush = rebalance_mid_transaction  # type: ignore[method-assign]
    await r.run(until_idle=True)
    assert fired
    # No producer was stopped under its open transaction (aiokafka hangs there) ...
    assert log.stopped_mid_transaction == []
    # ... the batch in flight committed, the partitions were reloaded, and nothing was lost
    # or decided twice.
    assert len(stage.loaded) == 2
    _exactly_once(log, range(30))
    await r.stop()
