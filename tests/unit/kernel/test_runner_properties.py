"""Property: whatever the batches, crashes and rebalances, every input is decided exactly
once and outputs keep input order per key (transactional mode, on the in-memory log); in
at-least-once mode with offsets committed off the poll path, nothing is lost, no offset is
committed before its record was handled, committed offsets never go back, and without a
zombie resuming the stage's own dedupe still makes it exactly once."""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.log import Batch, OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.runner import StreamRunner
from tests.unit.kernel.toy_stage import DLQ, IN, OUT, Crash, EchoStage, runner

Op = tuple[str, int]

ops = st.lists(st.one_of(
    st.tuples(st.just("produce"), st.integers(1, 15)),
    st.tuples(st.just("run"), st.integers(0, 3)),       # a batch on member i (mod members)
    st.tuples(st.just("crash"), st.integers(0, 3)),     # member i dies mid-batch
    st.tuples(st.just("kill"), st.integers(0, 3)),      # member i vanishes between batches
    st.tuples(st.just("join"), st.integers(1, 8)),      # a member with this batch size
    st.tuples(st.just("leave"), st.integers(0, 3)),     # member i stops cleanly
    st.tuples(st.just("pause"), st.integers(0, 3)),     # member i fetches, then stalls
    st.tuples(st.just("resume"), st.integers(0, 3)),    # a paused member (a zombie) goes on
), max_size=25)


async def _scenario(steps: list[Op], partitions: int, *, mode: str = "transactional",
                    commit_interval_ms: float | None = None) -> None:
    log = MemoryLog({IN: partitions, OUT: partitions, DLQ: 1})
    members: list[tuple[StreamRunner, EchoStage]] = []
    zombies: list[tuple[StreamRunner, Batch]] = []
    produced = 0
    resumed = False
    names = iter(range(1000))
    high: dict[TopicPartition, int] = {}

    async def join(batch: int) -> None:
        stage = EchoStage(log)
        r = runner(log, stage, max_batch=batch, name=f"m{next(names)}", mode=mode,
                   commit_interval_ms=commit_interval_ms)
        await r.start()
        members.append((r, stage))

    def committed_only_what_was_handled() -> None:
        outs = {r.value for r in log.records(OUT)}
        for tp, offset in log.committed("g").items():
            assert offset >= high.get(tp, 0)  # never back
            high[tp] = offset
            assert all(r.value in outs for r in log.records(IN, tp.partition)
                       if r.offset < offset)

    def vanish(r: StreamRunner) -> None:
        log.crash(r.consumer, *r.txn.values())  # type: ignore[arg-type]

    await join(4)
    for op, n in steps:
        if op == "produce":
            await log.producer(client_id="feed").send_many(IN, [
                OutRecord(f"k{(produced + i) % 7}".encode(), f"id:{produced + i}".encode())
                for i in range(n)])
            produced += n
        elif op == "join":
            await join(n)
        elif op == "resume":
            if zombies:
                r, batch = zombies.pop(n % len(zombies))
                resumed = resumed or bool(batch)
                await r.handle_batch(batch)
        elif not members:
            continue
        elif op == "run":
            await members[n % len(members)][0].run(count=1, until_idle=True)
        elif op == "crash":
            r, stage = members.pop(n % len(members))
            stage.crash_in_flush = True
            with contextlib.suppress(Crash):
                await r.run(count=1, until_idle=True)
            vanish(r)
        elif op == "kill":
            vanish(members.pop(n % len(members))[0])
        elif op == "pause":
            r, _stage = members.pop(n % len(members))
            assert r.consumer is not None
            await r._prepare()
            batch = await r.consumer.poll(max_records=r.max_batch, timeout=0)
            log.crash(r.consumer)  # past its session timeout: the group drops it
            zombies.append((r, batch))
        elif op == "leave":
            await members.pop(n % len(members))[0].stop()
        await asyncio.sleep(0)  # a commit started in the background lands
        committed_only_what_was_handled()
    await join(3)  # small batches: several commits (or deferred ones) to catch up
    for _ in range(3):  # every member catches up with the final assignment
        for r, _stage in members:
            await r.run(until_idle=True)
    outs = [r.value for r in log.records(OUT)]
    if mode == "at-least-once":
        for r, _stage in members:  # a later one may not commit: the group rebalanced
            await r.stop()
        committed_only_what_was_handled()
        members = []
        await join(3)  # the sole member: what it handles, its stop commits
        await members[0][0].run(until_idle=True)
        await members[0][0].stop()
        committed_only_what_was_handled()
        outs = [r.value for r in log.records(OUT)]
        ends = {TopicPartition(IN, p): len(log.records(IN, p)) for p in range(partitions)}
        assert {tp: o for tp, o in log.committed("g").items() if ends[tp]} == \
            {tp: o for tp, o in ends.items() if o}  # stopping committed what was handled
        assert set(outs) == {f"id:{i}".encode() for i in range(produced)}  # none lost
        if resumed:
            return  # a zombie's late outputs are duplicates: at-least-once allows them
        members = []
    assert sorted(outs) == sorted(f"id:{i}".encode() for i in range(produced))
    for p in range(partitions):
        by_key_in: dict[bytes | None, list[bytes | None]] = {}
        by_key_out: dict[bytes | None, list[bytes | None]] = {}
        for rec in log.records(IN, p):
            by_key_in.setdefault(rec.key, []).append(rec.value)
        for rec in log.records(OUT, p):
            by_key_out.setdefault(rec.key, []).append(rec.value)
        assert by_key_out == by_key_in
    assert log.open_transactions() == []
    for r, _stage in members:
        await r.stop()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, partitions=st.integers(1, 4))
def test_every_input_is_decided_exactly_once_in_order_per_key(steps: list[Op],
                                                              partitions: int) -> None:
    asyncio.run(_scenario(steps, partitions))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, partitions=st.integers(1, 4),
       interval=st.sampled_from([0.0, 1e9]))  # as soon as none is in flight / only the first
def test_at_least_once_with_deferred_commits_loses_nothing_and_commits_only_handled(
        steps: list[Op], partitions: int, interval: float) -> None:
    asyncio.run(_scenario(steps, partitions, mode="at-least-once",
                          commit_interval_ms=interval))
