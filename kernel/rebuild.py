"""A projection rebuilt from the log by several processes, one set of partitions each.

Why: one Python process folds a rebuild at ~22 µs of CPU per event (aiokafka's fetch,
msgspec, the fold, the COPY formatting), so it tops out near 45k events/s whatever
PostgreSQL can take. The log allows more: every event of one aggregate is in one partition
(keyed by aggregate id), and a projection's rows are keyed by aggregate, so the rows of two
disjoint sets of partitions are disjoint, and each partition's next offset is its own row of
`projection_offsets`. Workers folding disjoint partitions into the same tables never touch
the same row.

The protocol (`rebuild`):

* the coordinator (this process) takes the projection's lease, drops the tables and offsets
  once (`ProjectionRunner.drop`; with `resume`, nothing is dropped) and creates the tables,
  and holds the lease until every worker is gone: no live runner can start meanwhile;
* each worker (`python -m kernel.rebuild_worker`, a fresh interpreter) builds the
  projection's runner from a picklable factory, reads only its partitions
  (`ProjectionRunner.only`), takes no lease (`under_lease`) and, after a drop, starts with a
  row cache complete for its keys (`fresh`); it reports ready with how many records it has
  to read, then catches up when told to run, reporting what it has applied every `tick`
  seconds;
* a worker that fails or dies fails the rebuild (`RebuildFailed`, naming the worker, its
  partitions and its error) and the others are stopped. Every transaction a worker commits
  holds its rows with its partitions' offsets, so what is stored is consistent partition by
  partition: `rebuild(..., resume=True)` (`propstream replay <name> --resume`) or the live
  runner goes on from the stored offsets;
* a worker whose coordinator is gone (its end of the pipe closes) exits at once, without
  finishing its transaction: the lease went with the coordinator.

One worker runs in this process, exactly as `ProjectionRunner.run(until_caught_up=True)`
always did. Workers need the Kafka log (a `kernel.memlog` log lives in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from kernel.log import TopicPartition
from kernel.observability import get_logger
from kernel.pg import connect
from kernel.projection import ProgressFn, ProjectionRunner
from schemas.errors import PropstreamError

log = get_logger(__name__)

# Builds the projection's runner: a module-level function or a functools.partial of one, as
# it is pickled to each worker process.
RunnerFactory = Callable[[], ProjectionRunner]

TICK_S = 0.25


class RebuildFailed(PropstreamError):
    """A worker of a rebuild failed or died; the others were stopped."""


@dataclass(frozen=True)
class WorkerReport:
    """One worker: its partitions, the records it had to read, the events it applied, its
    CPU seconds while running and its wall seconds from `run` to caught up."""

    partitions: tuple[TopicPartition, ...]
    records: int
    events: int
    cpu_s: float
    wall_s: float


@dataclass(frozen=True)
class RebuildReport:
    """`seconds`: from the workers' start signal (all ready: connected and sought) to the
    last caught up; `total_s`: from the end of the drop to the last caught up, worker
    start-up (process spawn, imports, connections) included."""

    events: int
    seconds: float
    total_s: float
    workers: tuple[WorkerReport, ...]

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the workers while running (PostgreSQL's and Kafka's not counted)."""
        return sum(w.cpu_s for w in self.workers)


# Below this many records on the log, one process: a worker process costs ~1.5-2 s to start
# (an interpreter, ~1.1 s of imports, connections), which a small log does not win back.
# bench/projection_rebuild, 200k events: one process 43.9k events/s; 3 workers 76.2k once
# started but 42.5k counting their start-up (bench/RESULTS.md, session 8); 1M events:
# 3 workers 59.2k with start-up against 30.0k.
PARALLEL_FROM_RECORDS = 250_000


def default_workers(partitions: int, records: int | None = None) -> int:
    """As many workers as partitions, at most two per core this process may run on; one
    while the log holds fewer than `PARALLEL_FROM_RECORDS` records (None: unknown, not few).

    Two per core, not one: a worker waits for PostgreSQL and Kafka part of the time, and an
    uneven deal costs more than sharing a core (3 partitions on 2 cores: 2 workers take 2
    and 1 partitions, and the run lasts as long as the busier one; 3 workers ran it 1.2x
    faster, bench/projection_rebuild)."""
    if records is not None and records < PARALLEL_FROM_RECORDS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(partitions, 2 * (cores or 1)))


def split(partitions: Sequence[TopicPartition], workers: int) -> list[list[TopicPartition]]:
    """Partitions dealt to `workers` by partition number: a projection reading co-partitioned
    topics (the same key, the same partition count) has a key's events in one worker."""
    numbers = sorted({tp.partition for tp in partitions})
    share: list[list[TopicPartition]] = [[] for _ in range(min(workers, len(numbers)))]
    for i, number in enumerate(numbers):
        share[i % len(share)].extend(sorted(tp for tp in partitions if tp.partition == number))
    return share


async def topic_partitions(runner: ProjectionRunner) -> tuple[list[TopicPartition], int]:
    """Every partition of the projection's topics, as the log has them now, and the sum of
    their end offsets (what a rebuild from scratch reads at most)."""
    log_ = runner.log
    if log_ is None:
        from kernel.kafkalog import KafkaLog
        log_ = KafkaLog(runner.settings)
    consumer = log_.consumer(client_id=f"{runner.name}-rebuild")
    await consumer.start()
    try:
        parts = sorted([tp for topic in runner.topics
                        for tp in await consumer.partitions_for(topic)])
        ends = await consumer.end_offsets(parts) if parts else {}
        return parts, sum(ends.values())
    finally:
        await consumer.stop()


async def rebuild(factory: RunnerFactory, *, workers: int | None = None, resume: bool = False,
                  progress: ProgressFn | None = None, tick: float = TICK_S) -> RebuildReport:
    """Drop the projection (unless `resume`) and rebuild it from the log with `workers`
    processes (None: `default_workers`, from the partitions and the records on the log);
    `progress(applied, to_read)` every `tick` seconds.
    Raises `ProjectionLeaseHeld` (nothing dropped) while a live runner holds the lease, and
    `RebuildFailed` when a worker fails."""
    coordinator = factory()
    parts, records = await topic_partitions(coordinator)
    count = default_workers(len(parts), records) if workers is None else workers
    shares = split(parts, max(1, count))
    if resume:
        await coordinator.take_lease()
    else:
        try:
            await coordinator.drop()  # takes the lease first: refused under a live runner
        except BaseException:
            await coordinator.lease.release()
            raise
    try:
        conn = await connect(coordinator.settings)
        try:
            await coordinator.ensure_tables(conn)  # once, before any worker writes
        finally:
            await conn.close()
        if len(shares) <= 1:
            return await _in_process(coordinator, progress=progress, tick=tick)
        return await _Pool(factory, shares, fresh=not resume).run(progress=progress, tick=tick)
    finally:
        await coordinator.lease.release()


async def _in_process(runner: ProjectionRunner, *, progress: ProgressFn | None,
                      tick: float) -> RebuildReport:
    from kernel.runtime import settle_heap

    started = time.perf_counter()
    await runner.start()  # the lease is already ours (drop took it)
    try:
        partitions = tuple(runner.partitions)
        to_read = await records_to_read(runner)
        settle_heap()
        t, cpu = time.perf_counter(), time.process_time()
        ticker = _ticker(runner, to_read, progress, tick)
        try:
            events = await runner.run(until_caught_up=True)
        finally:
            ticker.cancel()
        done, cpu = time.perf_counter(), time.process_time() - cpu
        if progress is not None:
            progress(runner.applied, to_read)
    finally:
        await runner.stop()
    worker = WorkerReport(partitions, to_read, events, cpu, done - t)
    return RebuildReport(events, done - t, done - started, (worker,))


async def records_to_read(runner: ProjectionRunner) -> int:
    ends = await runner.end_offsets()
    positions = await runner._positions()
    return sum(max(0, ends[tp] - positions[tp]) for tp in ends)


def _ticker(runner: ProjectionRunner, to_read: int, progress: ProgressFn | None,
            tick: float) -> asyncio.Task[None]:
    async def tell() -> None:
        while True:
            await asyncio.sleep(tick)
            if progress is not None:
                progress(runner.applied, to_read)
    return asyncio.create_task(tell())


class _Pool:
    """The worker processes of one rebuild and the coordinator's side of their pipes."""

    def __init__(self, factory: RunnerFactory, shares: list[list[TopicPartition]], *,
                 fresh: bool) -> None:
        self.factory = factory
        self.shares = shares
        self.fresh = fresh
        self.procs: list[asyncio.subprocess.Process] = []
        self.pipes: list[Connection] = []
        self.inbox: asyncio.Queue[tuple[int, tuple[Any, ...] | None]] = asyncio.Queue()
        self.finished: set[int] = set()  # said "done": their pipe closing is no news

    async def run(self, *, progress: ProgressFn | None, tick: float) -> RebuildReport:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            for i, share in enumerate(self.shares):
                # A fresh interpreter (no fork of a loop, a lease, connections), which imports
                # only what the factory needs (multiprocessing's spawn would import the
                # caller's __main__ again); a socket pair carries orders and reports.
                ours, theirs = socket.socketpair()
                try:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "kernel.rebuild_worker", str(theirs.fileno()),
                        pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                        env=_child_env())
                finally:
                    theirs.close()  # the worker's end lives in the worker only: EOF when it dies
                pipe = Connection(ours.detach())
                self.procs.append(proc)
                self.pipes.append(pipe)
                pipe.send((self.factory, share, self.fresh, tick))
                loop.add_reader(pipe.fileno(), self._receive, i)
            to_read = [int(m[1]) for m in await self._each("ready")]
            total = sum(to_read)
            applied = [0] * len(self.shares)
            for pipe in self.pipes:
                pipe.send(("run",))
            t = time.perf_counter()
            finished: dict[int, tuple[Any, ...]] = {}
            while len(finished) < len(self.shares):
                i, message = await self._next()
                if message[0] == "progress":
                    applied[i] = int(message[1])
                    if progress is not None:
                        progress(sum(applied), total)
                elif message[0] == "done":
                    finished[i] = message
                    self.finished.add(i)
                    applied[i] = int(message[1])
                else:
                    self._unexpected(i, message)
            done = time.perf_counter()
            if progress is not None:
                progress(sum(applied), total)
            for proc in self.procs:
                await proc.wait()
            reports = tuple(
                WorkerReport(tuple(self.shares[i]), to_read[i], int(m[1]), float(m[2]),
                             float(m[3])) for i, m in sorted(finished.items()))
            return RebuildReport(sum(r.events for r in reports), done - t, done - started,
                                 reports)
        finally:
            for pipe in self.pipes:
                loop.remove_reader(pipe.fileno())
                pipe.close()  # a worker still running sees EOF and exits
            for proc in self.procs:
                if proc.returncode is None:
                    proc.terminate()
            for proc in self.procs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)

    def _receive(self, i: int) -> None:
        pipe = self.pipes[i]
        try:
            message: tuple[Any, ...] | None = pipe.recv()
        except (EOFError, OSError):
            message = None
        if message is None:
            asyncio.get_running_loop().remove_reader(pipe.fileno())
        self.inbox.put_nowait((i, message))

    async def _next(self) -> tuple[int, tuple[Any, ...]]:
        i, message = await self.inbox.get()
        while message is None and i in self.finished:
            i, message = await self.inbox.get()
        if message is None:
            proc = self.procs[i]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
            raise RebuildFailed(f"rebuild worker {i} ({_names(self.shares[i])}) died (exit code "
                                f"{proc.returncode}){_AFTER}")
        if message[0] == "failed":
            raise RebuildFailed(f"rebuild worker {i} ({_names(self.shares[i])}) failed: "
                                f"{message[1]}{_AFTER}")
        return i, message

    async def _each(self, kind: str) -> list[tuple[Any, ...]]:
        got: dict[int, tuple[Any, ...]] = {}
        while len(got) < len(self.shares):
            i, message = await self._next()
            if message[0] != kind:
                self._unexpected(i, message)
            got[i] = message
        return [got[i] for i in range(len(self.shares))]

    def _unexpected(self, i: int, message: tuple[Any, ...]) -> None:
        raise RebuildFailed(f"rebuild worker {i} said {message[0]!r} out of turn")


def _child_env() -> dict[str, str]:
    """This environment, with this process's import path: the worker must import the
    factory's module from wherever this process imported it."""
    path = [p or os.getcwd() for p in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


_AFTER = ("; the other workers were stopped. What was stored is consistent per partition "
          "(rows with their offsets): replay with --resume, or start the projection, to go "
          "on from the stored offsets")


def _names(share: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}:{tp.partition}" for tp in share)
