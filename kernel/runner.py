"""One stream runner for every stage: poll a batch, step each record, commit outputs + offsets.

A *stage* is the per-purpose logic (a decider, a policy, a projection, a processor): a pure
`step(record) -> outputs` per record, plus hooks for assignment, revocation, its own writes
(`flush`) and what to do once a batch is committed. The runner owns the loop, the commit
protocol, dead letters and metrics, and talks to the log only through `kernel.log`, so the
same runner runs on Kafka (`kernel.kafkalog`) and in memory (`kernel.memlog`).

Commit modes:

* ``transactional`` — per owned input partition, one transactional producer with id
  ``<group>.<topic>.<partition>``; a batch's outputs, dead letters and the partition's next
  offset are committed in one Kafka transaction. A new owner of the partition starts a
  producer with the same id, which fences the old owner: a zombie can neither add records
  nor move offsets. A failed transaction drops the stage's state for that partition
  (`revoked`), and the partition is reloaded from the log before it is used again.
* ``at-least-once`` — outputs are sent and acknowledged, then offsets committed; a crash in
  between redelivers the batch, so the stage must be idempotent (or dedupe downstream).
  With ``commit_interval_ms`` the offsets of handled batches are committed off the poll
  path: one commit in flight at a time, started at most every ``commit_interval_ms``, while
  the loop polls on (a commit on Kafka is a round trip to the group coordinator, ~6 ms, that
  a batch arriving meanwhile would otherwise wait for). A crash redelivers what was handled
  since the last commit (at most about one interval); a revocation or `stop` commits what
  was handled first; a batch that straddles a revocation is left to the next owner.
* ``external`` — the stage stores its effects and its offsets together in its own store
  (`flush(offsets)`, e.g. one PostgreSQL transaction) and says where to resume from in
  `assigned`; the runner seeks there and commits nothing to Kafka.

A record whose `step` raises is parked on its dead-letter topic with its origin (inside the
transaction in transactional mode) and the partition moves on: a poison record never stalls.
That needs the dead-letter topic of every input topic to exist, so `start` checks them first
and refuses (`DeadLetterTopicMissing`, naming them) before it takes any partition.

A transactional runner may also read *broadcast* topics whole, without a group
(`kernel.broadcast`): each broadcast record goes to the stage's `step_broadcast` with the owned
partitions due to act on it, and each partition's outputs and position on those topics commit
in its own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kernel.broadcast import BroadcastInputs, BroadcastStage, checkpoint_group
from kernel.dlq import counted, dead_letter
from kernel.exceptions import DeadLetterTopicMissing
from kernel.log import (
    Batch,
    CommitFailed,
    Log,
    LogConsumer,
    LogProducer,
    LogRecord,
    OutRecord,
    ProducerFenced,
    Sent,
    TopicPartition,
    TransactionalProducer,
)
from kernel.observability import BATCH_SECONDS, CONSUMER_LAG, MESSAGES, get_logger
from schemas.errors import DecodeError

log = get_logger(__name__)

CommitMode = Literal["transactional", "at-least-once", "external"]


@dataclass(frozen=True, slots=True)
class Emit:
    """An output record for `topic`; with no partition, the key's partition."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None


class Stage(Protocol):
    """What a runner drives. `step` is pure apart from the stage's own in-memory state."""

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        """Prepare newly owned partitions (load state); return offsets to resume from
        (external mode), or {} to resume at the group's committed offsets."""
        ...

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        """Forget partitions: revoked, or their uncommitted state was lost (fenced, aborted)."""
        ...

    def step(self, record: LogRecord) -> Sequence[Emit]:
        """Handle one record; raise to dead-letter it (its effects must then not be kept)."""
        ...

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Write the batch's effects outside the log (external mode: with the offsets)."""
        ...

    async def committed(self, tp: TopicPartition, sent: Mapping[str, list[Sent]]) -> None:
        """The batch of `tp` is committed (its outputs landed at `sent`, by topic); `tp` was
        still owned. Snapshots belong here."""
        ...


class StageBase:
    """Do-nothing hooks, to override the ones a stage needs."""

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        return {}

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        return None

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        return None

    async def committed(self, tp: TopicPartition, sent: Mapping[str, list[Sent]]) -> None:
        return None


class OwnsRunner:
    """A worker that is a stage of its own runner (`self.runner`): starting, stopping and
    running it are the runner's."""

    runner: StreamRunner

    async def start(self) -> None:
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    async def run(self, *, count: int | None = None, timeout: float | None = None,
                  until_idle: bool = False) -> int:
        """Handle records until `count` were handled or `timeout` seconds passed (or forever,
        or until a poll finds nothing new with `until_idle`)."""
        return await self.runner.run(count=count, timeout=timeout, until_idle=until_idle)


class StreamRunner:
    """Drives one stage over a consumer group of `log`."""

    def __init__(self, log_: Log, stage: Stage, *, name: str, group_id: str,
                 topics: Sequence[str], mode: CommitMode,
                 dead_letter_topic: Callable[[str], str], max_batch: int = 500,
                 session_timeout_ms: int = 10_000, poll_timeout: float = 0.1,
                 assign_all: bool = False, only: Collection[TopicPartition] | None = None,
                 commit_interval_ms: float | None = None, broadcast: Sequence[str] = (),
                 broadcast_warmup: int | Mapping[str, int | None] = 0,
                 broadcast_checkpoint_ms: float = 1000.0, gather_ms: int = 0) -> None:
        if assign_all and mode != "external":
            raise ValueError("assign_all needs external offsets (nothing is committed to a group)")
        if only is not None and not assign_all:
            raise ValueError("only (a subset of the partitions) goes with assign_all")
        if commit_interval_ms is not None and (mode != "at-least-once" or commit_interval_ms < 0):
            raise ValueError("commit_interval_ms is for the at-least-once mode, and >= 0")
        if broadcast and (mode != "transactional" or assign_all):
            raise ValueError("broadcast topics need the transactional mode of a group member: "
                             "their positions commit in each owned partition's transaction")
        self.commit_interval_ms = commit_interval_ms
        self.bcast = (BroadcastInputs(log_, name=name, group_id=group_id, topics=broadcast,
                                      warmup=broadcast_warmup) if broadcast else None)
        self.broadcast_checkpoint_ms = broadcast_checkpoint_ms
        self._bcast_saved: dict[TopicPartition, float] = {}
        self._broadcast_busy = False  # the last broadcast poll found records
        self._busy = False  # preparing partitions or handling a batch: revocations wait
        self._deferred: list[tuple[list[TopicPartition], list[TopicPartition]]] = []
        self.log = log_
        self.assign_all = assign_all
        self.only = None if only is None else frozenset(only)
        self.stage = stage
        self.name = name
        self.group_id = group_id
        self.topics = list(topics)
        self.mode: CommitMode = mode
        self.dead_letter_topic = dead_letter_topic
        self.max_batch = max_batch
        self.session_timeout_ms = session_timeout_ms
        self.poll_timeout = poll_timeout
        self.gather_ms = gather_ms  # fetches may wait this long to gather (`Log.consumer`)
        self.consumer: LogConsumer | None = None
        self.producer: LogProducer | None = None
        self.txn: dict[TopicPartition, TransactionalProducer] = {}
        self.ready = asyncio.Event()
        self._pending: set[TopicPartition] = set()   # assigned, stage not yet prepared
        self._lost: set[TopicPartition] = set()      # fenced: skip until reassigned
        # Deferred commits (commit_interval_ms): offsets handled but not yet committed, the
        # one commit in flight, when the last one started, and a count of revocations (a
        # batch handled across one is not committed by this member).
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._last_commit = float("-inf")
        self._revocations = 0

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the dead-letter topics, then join the group (or take every partition).
        Raise `DeadLetterTopicMissing`, having taken nothing, if an input topic has none."""
        if self.assign_all:
            # One reader of every partition, no group (a lease outside the log keeps it the
            # only one, e.g. a projection's): no join to wait for, no dead member to outlive.
            consumer = self.log.consumer(client_id=self.name, gather_ms=self.gather_ms)
        else:
            consumer = self.log.consumer(client_id=self.name, group_id=self.group_id,
                                         session_timeout_ms=self.session_timeout_ms,
                                         gather_ms=self.gather_ms)
        await consumer.start()
        try:
            await self._check_dead_letter_topics(consumer)
        except BaseException:
            await _quietly(consumer.stop())
            raise
        self.consumer = consumer
        if self.bcast is not None:
            await self.bcast.start()
        if self.mode != "transactional":
            self.producer = self.log.producer(client_id=self.name)
            await self.producer.start()
        if self.assign_all:
            parts = [tp for topic in self.topics
                     for tp in await self.consumer.partitions_for(topic)
                     if self.only is None or tp in self.only]
            self.consumer.assign(parts)
            await self._assigned(parts)
            return
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    async def _check_dead_letter_topics(self, consumer: LogConsumer) -> None:
        """Every input topic needs a dead-letter topic that exists: a poison record with
        nowhere to go would abort its transaction for ever (transactional) or crash the
        process at every restart (the other modes), stalling its partition either way."""
        letters: dict[str, list[str]] = {}
        unnamed: list[str] = []
        for topic in self.topics + (self.bcast.topics if self.bcast is not None else []):
            try:
                letters.setdefault(self.dead_letter_topic(topic), []).append(topic)
            except LookupError:
                unnamed.append(topic)
        missing = await consumer.missing_topics(sorted(letters)) if letters else []
        if not unnamed and not missing:
            return
        problems = [f"{t!r} has no dead-letter topic (give its TopicSpec in schemas/ a "
                    f"`dead_letter`)" for t in unnamed]
        if missing:
            listed = ", ".join(f"{dlq!r} (for {', '.join(map(repr, letters[dlq]))})"
                               for dlq in missing)
            problems.append(f"dead-letter topic(s) missing on the log: {listed}; create "
                            f"them (`propstream topics apply` creates every catalogue topic)")
        raise DeadLetterTopicMissing(
            f"stream runner {self.name!r} refuses to start, a poison record would stall its "
            f"partition: {'; '.join(problems)}; then start it again")

    async def stop(self) -> None:
        """Leave the group. Only offsets of batches already handled (deferred commits) are
        committed here; nothing is snapshotted: what was committed is on the log, and
        anything else is redelivered to the next owner."""
        if self.consumer is not None:
            if self.commit_interval_ms is not None:
                await self._settle(None)
            await self.consumer.stop()
        if self.bcast is not None:
            await self.bcast.stop()
        for producer in list(self.txn.values()):
            await _quietly(producer.stop())
        self.txn.clear()
        if self.producer is not None:
            await self.producer.stop()

    async def _assigned(self, partitions: list[TopicPartition]) -> None:
        self._pending |= set(partitions)
        self._lost -= set(partitions)
        self.ready.set()
        log.info("partitions assigned", runner=self.name,
                 partitions=[f"{tp.topic}:{tp.partition}" for tp in partitions])

    async def _revoked(self, partitions: list[TopicPartition]) -> None:
        self.ready.clear()
        self._revocations += 1
        if self.commit_interval_ms is not None:
            # Give the partitions up with what was handled (on Kafka this runs before the
            # member rejoins, so the group still takes the commit).
            await self._settle(partitions)
        prepared = [tp for tp in partitions if tp not in self._pending]
        self._pending -= set(partitions)
        if self._busy:
            # aiokafka calls the listener from its coordinator task, while the loop may be
            # inside a transaction: a producer stopped under its open transaction never
            # finishes it, and the loop hung there (CI, a zombie test: partitions assigned,
            # never prepared). The batch ends first (if another member took a partition, its
            # producer fences ours and the commit fails as it should); then they are given up.
            self._deferred.append((partitions, prepared))
            return
        await self._give_up(partitions, prepared)

    async def _give_up(self, partitions: list[TopicPartition],
                       prepared: list[TopicPartition]) -> None:
        if self.bcast is not None:
            self.bcast.drop(partitions)
        for tp in partitions:
            producer = self.txn.pop(tp, None)
            if producer is not None:
                await _quietly(producer.stop())
        if prepared:
            await self.stage.revoked(prepared)

    @contextlib.asynccontextmanager
    async def _working(self) -> AsyncIterator[None]:
        """Hold revocations back while the loop prepares partitions or handles a batch."""
        if self._busy:  # nested (a broadcast poll inside the loop's step)
            yield
            return
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            while self._deferred:
                partitions, prepared = self._deferred.pop(0)
                await self._give_up(partitions, prepared)

    async def _prepare(self) -> None:
        """Prepare partitions assigned since the last poll and seek each to where it resumes
        (records fetched before are dropped by the seek)."""
        async with self._working():
            await self._prepare_now()

    async def _prepare_now(self) -> None:
        assert self.consumer is not None
        owned = self.consumer.assignment()
        todo = sorted(self._pending & owned)
        self._pending -= set(todo)
        if not todo:
            return
        # A partition fenced in a batch that straddled its revocation and reassignment is
        # ours again, prepared afresh.
        self._lost -= set(todo)
        if self.mode == "transactional":
            for tp in todo:
                producer = self.log.transactional_producer(
                    client_id=self.name, transactional_id=f"{self.group_id}.{tp.topic}."
                                                          f"{tp.partition}")
                # Starting it fences any older owner and aborts what it left open.
                await producer.start()
                self.txn[tp] = producer
        resume = await self.stage.assigned(todo)
        for tp in todo:
            if tp in resume:
                self.consumer.seek(tp, resume[tp])
            else:
                # Read the group's offset only now: the old owner's last transaction may
                # have committed (or been aborted by the fencing above) since assignment.
                committed = await self.consumer.committed(tp)
                self.consumer.seek(tp, 0 if committed is None else committed)
        if self.bcast is not None:
            await self.bcast.adopt(todo)
            now = asyncio.get_running_loop().time()
            self._bcast_saved.update(dict.fromkeys(todo, now))

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, *, count: int | None = None, timeout: float | None = None,
                  until_idle: bool = False) -> int:
        """Handle records until `count` were handled, `timeout` seconds passed, a poll came
        back empty (`until_idle`, for tests), or forever."""
        assert self.consumer is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        handled = 0
        while count is None or handled < count:
            if deadline is not None and loop.time() >= deadline:
                break
            await self._prepare()
            batch = await self._poll()
            if self._pending & self.consumer.assignment():
                continue  # a rebalance during the poll: prepare and seek, then fetch again
            batch = {tp: recs for tp, recs in batch.items()
                     if tp not in self._lost and tp in self.consumer.assignment()}
            if not batch:
                self._maybe_commit()  # an idle partition's last batch is committed too
                if until_idle and not self._broadcast_busy:
                    break
                continue
            with BATCH_SECONDS.labels(self.name).time():
                handled += await self.handle_batch(batch)
        return handled

    async def _poll(self) -> Batch:
        """The next batch of owned input records; broadcast records are handled on the way
        (a short poll of each in turn, so neither waits a whole poll timeout for the other)."""
        assert self.consumer is not None
        if self.bcast is None:
            return await self.consumer.poll(max_records=self.max_batch,
                                            timeout=self.poll_timeout)
        await self._prepare()
        if not await self.bcast.caught_up():
            # Behind the broadcast ends seen at start or at a rebalance: catch up before any
            # input record, so an order is not decided against a quote from before a crash.
            self._broadcast_busy = True
            await self.handle_broadcast(
                await self.bcast.poll(max_records=self.max_batch, timeout=self.poll_timeout))
            return {}
        # What the broadcast already fetched first, so a steady stream of input records
        # never starves it (resting orders wait on ticks; orders want the newest quote).
        met = await self.handle_broadcast(
            await self.bcast.poll(max_records=self.max_batch, timeout=0))
        batch = await self._inputs(timeout=0)
        if batch:
            self._broadcast_busy = bool(met)
            return batch
        await self._prepare()
        # Nothing waiting: wait on both at once, so an order does not sit behind a broadcast
        # wait nor a tick behind an input wait (they did, up to half the poll timeout each).
        ticks, batch = await self._either()
        met = await self.handle_broadcast(ticks) if ticks else 0
        self._broadcast_busy = bool(self._pending) or bool(met)
        return await self._checked(batch)

    async def _either(self) -> tuple[Batch, Batch]:
        """Poll the broadcast and the inputs together for up to the poll timeout; as soon as
        one has records, the other poll is cancelled (a cancelled poll takes nothing: the
        logs' polls are cancel-safe) and whatever either returned is kept."""
        assert self.consumer is not None and self.bcast is not None
        ticks = asyncio.ensure_future(self.bcast.poll(max_records=self.max_batch,
                                                      timeout=self.poll_timeout))
        inputs = asyncio.ensure_future(self.consumer.poll(max_records=self.max_batch,
                                                          timeout=self.poll_timeout))
        try:
            await asyncio.wait((ticks, inputs), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ticks, inputs):
                task.cancel()
            got = await asyncio.gather(ticks, inputs, return_exceptions=True)
        for result in got:
            if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError):
                raise result
        return tuple(r if isinstance(r, dict) else {} for r in got)  # type: ignore[return-value]

    async def _inputs(self, *, timeout: float) -> Batch:
        """Poll the input partitions; with broadcast inputs, only once they are caught up.
        A poll may gain partitions (and prepare them) inside it: their records go back to
        the log and are fetched again after the catch-up."""
        assert self.consumer is not None
        return await self._checked(await self.consumer.poll(max_records=self.max_batch,
                                                            timeout=timeout))

    async def _checked(self, batch: Batch) -> Batch:
        """The input batch, or none if the broadcast fell behind during its poll (a poll
        that gained partitions): its records go back to the log, fetched after the catch-up."""
        assert self.consumer is not None and self.bcast is not None
        if batch and not await self.bcast.caught_up():
            for tp, records in batch.items():
                self.consumer.seek(tp, records[0].offset)
            self._broadcast_busy = True
            return {}
        return batch

    async def handle_broadcast(self, batch: Batch) -> int:
        """Step broadcast records for the partitions due on each, then commit every partition
        that has outputs, or whose position moved `broadcast_checkpoint_ms` ago unsaved."""
        async with self._working():
            return await self._handle_broadcast(batch)

    async def _handle_broadcast(self, batch: Batch) -> int:
        assert self.bcast is not None
        ready = [tp for tp in self.txn if tp not in self._lost and tp not in self._pending]
        stage: BroadcastStage = self.stage  # type: ignore[assignment]
        outs: dict[TopicPartition, dict[str, list[OutRecord]]] = {}
        count = 0
        for records in batch.values():
            for record in records:
                count += 1
                due = self.bcast.due(record, ready)
                try:
                    result = stage.step_broadcast(record, due)
                except Exception as exc:
                    if not isinstance(exc, DecodeError):
                        log.exception("broadcast step failed", runner=self.name,
                                      topic=record.topic, partition=record.partition,
                                      offset=record.offset)
                    MESSAGES.labels(self.name, record.topic, "dead-lettered").inc()
                    counted(record, exc, consumer=self.name)
                    if due:  # parked once, in the first due partition's transaction
                        outs.setdefault(due[0], {}).setdefault(
                            self.dead_letter_topic(record.topic), []).append(
                            dead_letter(record, exc, consumer=self.name))
                    continue
                for tp, emits in result.items():
                    if tp not in due:
                        raise RuntimeError(f"{self.name}: step_broadcast wrote for {tp}, "
                                           f"which was not due on {record.tp}@{record.offset}")
                    target = outs.setdefault(tp, {})
                    for e in emits:
                        assert isinstance(e, Emit)
                        target.setdefault(e.topic, []).append(
                            OutRecord(e.key, e.value, e.headers, e.partition))
        if count:
            MESSAGES.labels(self.name, "broadcast", "handled").inc(count)
        now = asyncio.get_running_loop().time()
        stale = {tp for tp in ready if self.bcast.checkpoint(tp) is not None
                 and now - self._bcast_saved.get(tp, now) >= self.broadcast_checkpoint_ms / 1000}
        todo = [tp for tp in ready if tp in outs or tp in stale]
        if todo:
            await asyncio.gather(*(self._commit_txn(tp, outs.get(tp, {}), None) for tp in todo))
        return count

    async def handle_batch(self, batch: Batch) -> int:
        async with self._working():
            return await self._handle_batch(batch)

    async def _handle_batch(self, batch: Batch) -> int:
        if self.mode == "transactional":
            done = await asyncio.gather(*(self._transaction(tp, records)
                                          for tp, records in batch.items()))
            return sum(done)
        return await self._plain(batch)

    def _step_all(self, records: list[LogRecord], out: dict[str, list[OutRecord]]) -> None:
        for record in records:
            try:
                emits = self.stage.step(record)
            except Exception as exc:  # a poison record: park it, never stall the partition
                if not isinstance(exc, DecodeError):  # unreadable input is no surprise
                    log.exception("step failed", runner=self.name, topic=record.topic,
                                  partition=record.partition, offset=record.offset)
                MESSAGES.labels(self.name, record.topic, "dead-lettered").inc()
                out.setdefault(self.dead_letter_topic(record.topic), []).append(
                    dead_letter(record, exc, consumer=self.name))
                counted(record, exc, consumer=self.name)
                continue
            for e in emits:
                out.setdefault(e.topic, []).append(
                    OutRecord(e.key, e.value, e.headers, e.partition))

    async def _send(self, producer: LogProducer,
                    out: dict[str, list[OutRecord]]) -> dict[str, list[Sent]]:
        placed = await asyncio.gather(*(producer.send_many(topic, records)
                                        for topic, records in out.items()))
        return dict(zip(out, placed, strict=True))

    async def _transaction(self, tp: TopicPartition, records: list[LogRecord]) -> int:
        if tp not in self.txn:
            return 0
        out: dict[str, list[OutRecord]] = {}
        self._step_all(records, out)
        offsets = {tp: records[-1].offset + 1}
        if not await self._commit_txn(tp, out, offsets):
            return 0
        self._count(tp, records, offsets[tp])
        return len(records)

    async def _commit_txn(self, tp: TopicPartition, out: dict[str, list[OutRecord]],
                      offsets: dict[TopicPartition, int] | None) -> bool:
        """Commit `out`, the partition's next offset (if it read records) and its broadcast
        position (if it moved) in one transaction of `tp`'s producer; on failure drop the
        stage's state of `tp` and return False."""
        producer = self.txn.get(tp)
        if producer is None:
            return False
        groups: list[tuple[dict[TopicPartition, int], str]] = []
        if offsets is not None:
            groups.append((offsets, self.group_id))
        stands = self.bcast.checkpoint(tp) if self.bcast is not None else None
        if stands is not None:
            groups.append((stands, checkpoint_group(self.group_id, tp)))
        try:
            await producer.begin()
            await self.stage.flush(offsets or {})
            # The offsets join the transaction while the outputs are in flight: aiokafka
            # adds the group to the transaction during the produce requests, one round trip
            # less per batch than one after the other (bench.command_round_trip).
            results = await asyncio.gather(
                self._send(producer, out),
                *(producer.send_offsets(o, group) for o, group in groups),
                return_exceptions=True)
            for failed in results:
                if isinstance(failed, BaseException):
                    raise failed
            sent = results[0]
            assert isinstance(sent, dict)
            await producer.commit()
        except ProducerFenced:
            # Another instance owns the partition now: what this one decided is not on the
            # log and must not be kept (nor snapshotted).
            log.warning("fenced: partition lost", runner=self.name, topic=tp.topic,
                        partition=tp.partition)
            self._lost.add(tp)
            self.txn.pop(tp, None)
            if self.bcast is not None:
                self.bcast.drop([tp])
            await _quietly(producer.stop())
            await self.stage.revoked([tp])
            return False
        except Exception:
            log.exception("transaction failed: partition reloads", runner=self.name,
                          topic=tp.topic, partition=tp.partition)
            await _quietly(producer.abort())
            await self.stage.revoked([tp])
            # Reload from the log and resume from the committed offset on the next batch.
            self.txn.pop(tp, None)
            if self.bcast is not None:
                self.bcast.drop([tp])
            await _quietly(producer.stop())
            self._pending.add(tp)
            return False
        if self.bcast is not None and stands is not None:
            self.bcast.committed(tp)
            self._bcast_saved[tp] = asyncio.get_running_loop().time()
        await self.stage.committed(tp, sent)
        return True

    async def _plain(self, batch: Batch) -> int:
        assert self.producer is not None and self.consumer is not None
        out: dict[str, list[OutRecord]] = {}
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        for records in batch.values():
            self._step_all(records, out)
        if self.mode == "external":
            # Dead letters and outputs first: once the offsets are stored they are past.
            sent = await self._send(self.producer, out)
            await self.stage.flush(offsets)
        else:
            revocations = self._revocations
            await self.stage.flush(offsets)
            sent = await self._send(self.producer, out)
            if self.commit_interval_ms is not None:
                if revocations == self._revocations:
                    self._uncommitted.update(offsets)
                    self._maybe_commit()
                # else: partitions were given up meanwhile; the owner redelivers the batch
            else:
                try:
                    await self.consumer.commit(offsets)
                except CommitFailed as exc:
                    # Rebalanced meanwhile: the new owner redelivers from the last commit.
                    log.warning("commit failed after a rebalance", runner=self.name,
                                error=str(exc))
                    return 0
        for tp, records in batch.items():
            self._count(tp, records, offsets[tp])
            await self.stage.committed(tp, sent)
        return sum(len(r) for r in batch.values())

    # -- deferred commits (at-least-once with commit_interval_ms) ------------------------------

    def _maybe_commit(self) -> None:
        """Start committing the handled offsets in the background if any are waiting, none
        is in flight and the interval has passed since the last one started."""
        if self.commit_interval_ms is None or not self._uncommitted:
            return
        if self._committing is not None and not self._committing.done():
            return
        now = asyncio.get_running_loop().time()
        if now - self._last_commit < self.commit_interval_ms / 1000:
            return
        self._last_commit = now
        offsets, self._uncommitted = self._uncommitted, {}
        self._committing = asyncio.create_task(self._commit(offsets))

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit `offsets` of still-owned partitions; never raises (a failure is logged:
        after a rebalance the new owner redelivers, otherwise the next commit retries)."""
        assert self.consumer is not None
        owned = self.consumer.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in owned}
        if not mine:
            return
        try:
            await self.consumer.commit(mine)
        except CommitFailed as exc:
            log.warning("commit failed after a rebalance", runner=self.name, error=str(exc))
        except Exception as exc:  # a broker hiccup: keep them for the next commit
            log.warning("offset commit failed: retried with the next", runner=self.name,
                        error=str(exc))
            for tp, o in mine.items():
                self._uncommitted.setdefault(tp, o)  # a newer offset handled since wins

    async def _settle(self, partitions: list[TopicPartition] | None) -> None:
        """Wait for the commit in flight, then commit what is handled of `partitions` (all
        with None) as the one commit in flight, and forget it either way."""
        while self._committing is not None and not self._committing.done():
            await asyncio.shield(self._committing)
        chosen = set(self._uncommitted) if partitions is None else set(partitions)
        offsets = {tp: o for tp, o in self._uncommitted.items() if tp in chosen}
        for tp in offsets:
            del self._uncommitted[tp]
        if offsets:
            self._last_commit = asyncio.get_running_loop().time()
            self._committing = asyncio.create_task(self._commit(offsets))
            await asyncio.shield(self._committing)

    def _count(self, tp: TopicPartition, records: list[LogRecord], next_offset: int) -> None:
        assert self.consumer is not None
        MESSAGES.labels(self.name, tp.topic, "handled").inc(len(records))
        high = self.consumer.highwater(tp)
        if high is not None:
            CONSUMER_LAG.labels(self.group_id, tp.topic, tp.partition).set(
                max(0, high - next_offset))


async def _quietly(aw: object) -> None:
    try:
        await aw  # type: ignore[misc]
    except Exception as exc:  # cleanup of something already broken
        log.debug("cleanup failed", error=str(exc))


class _Listener:
    def __init__(self, runner: StreamRunner) -> None:
        self.runner = runner

    async def on_revoked(self, partitions: list[TopicPartition]) -> None:
        await self.runner._revoked(partitions)

    async def on_assigned(self, partitions: list[TopicPartition]) -> None:
        await self.runner._assigned(partitions)
