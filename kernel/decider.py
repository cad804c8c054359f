"""The decider runtime: one writer per aggregate, effectively-once, fenced.

A decider owns partitions of a family's command topic (through its consumer group). For each
owned partition it rebuilds the state of every aggregate on the co-partitioned events topic,
and with it the set of command ids already decided. Then, for each command:

* a command id already decided gets its recorded outcome again and produces nothing new;
* otherwise the pure `decide(command, state)` returns events (a refusal is an event too),
  which are appended to the same partition of the events topic with ids derived from the
  command id, folded into the state with `evolve`, and answered on the replies topic.

It runs on `kernel.runner.StreamRunner` in transactional mode: a batch's events, replies,
dead letters and the command offsets commit in one Kafka transaction per command partition,
by a producer whose transactional id names that partition. A decider that lost its partition
while paused (a zombie) is fenced by the new owner's producer: its transaction aborts, its
in-memory state for the partition is dropped, and nothing it decided reaches a reader. The
command-id dedupe stays as the second line (a command sent twice by a client).

Every `snapshot_every` events a partition's state is written to the family's snapshot topic
with the events offset it covers — only right after a committed transaction, so a snapshot
never holds a decision that is not on the log; `stop()` writes none. Loading starts from the
newest snapshot and folds only the events after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from kernel.aggregate import Aggregate, DecideContext
from kernel.decider_state import (
    DEDUPE_WINDOW,
    Outcome,
    PartitionState,
    Versioned,
    dump_items,
    load_items,
    outcome_of,
)
from kernel.dlq import dead_letter_topic
from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogProducer, LogRecord, Sent, TopicPartition
from kernel.observability import MESSAGES, get_logger
from kernel.runner import CommitMode, Emit, OwnsRunner, StageBase, StreamRunner
from kernel.settings import Settings
from kernel.snapshots import SnapshotStore
from schemas import FAMILIES
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import (
    CommandEnvelope,
    EventEnvelope,
    EventPayload,
    derive_event_id,
    make_event,
)
from schemas.errors import DecodeError
from schemas.registry import TypeRegistry
from schemas.replies import CommandReply
from schemas.topics import REPLIES

S = TypeVar("S")
log = get_logger(__name__)


class DeciderRunner(OwnsRunner, StageBase, Generic[S]):
    """Runs one aggregate family's decider on a log (Kafka unless another `log` is given)."""

    def __init__(
        self,
        settings: Settings,
        aggregate: Aggregate[S],
        registry: TypeRegistry,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_batch: int = 500,
        snapshot_every: int = 10_000,
        log: Log | None = None,
        mode: CommitMode = "transactional",
        broadcast: Sequence[str] = (),
        broadcast_warmup: int | Mapping[str, int | None] = 0,
    ) -> None:
        self.settings = settings
        self.aggregate = aggregate
        self.registry = registry
        self.clock = clock
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self.log: Log = log if log is not None else KafkaLog(settings)
        self.snapshots = SnapshotStore(settings, aggregate.family, self.log)
        self.name = f"{aggregate.family}-decider"
        self.commands_topic = settings.topic(f"{aggregate.family}.commands")
        self.events_topic = settings.topic(f"{aggregate.family}.events")
        self.replies_topic = settings.topic(REPLIES.name)
        self.group_id = settings.topic(f"propstream.{self.name}")
        self.partitions: dict[int, PartitionState[S]] = {}
        self.carried = _carried(aggregate.family, registry)
        self.snapshot_producer: LogProducer | None = None
        self.runner = StreamRunner(
            self.log, self, name=self.name, group_id=self.group_id,
            # at-least-once (unfenced) only to measure what transactions cost (bench)
            topics=[self.commands_topic], mode=mode,
            dead_letter_topic=lambda topic: dead_letter_topic(settings, topic),
            max_batch=max_batch, session_timeout_ms=settings.stream_session_timeout_ms,
            broadcast=broadcast, broadcast_warmup=broadcast_warmup)

    @property
    def ready(self) -> asyncio.Event:
        return self.runner.ready

    async def start(self) -> None:
        self.snapshot_producer = self.log.producer(client_id=f"{self.name}-snapshots")
        await self.snapshot_producer.start()
        try:
            await self.runner.start()  # refuses without the dead-letter topic
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        # No snapshot here: every committed batch already snapshotted when due, and a state
        # ahead of the log (a batch cut short) must never become one.
        await self.runner.stop()
        if self.snapshot_producer is not None:
            await self.snapshot_producer.stop()

    # -- stage hooks ---------------------------------------------------------------------------

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        # Called once this runner's transactional producers for these partitions started:
        # any older owner is fenced and its open transaction aborted, so the log read here
        # is final up to its end.
        await self.load_partitions([tp.partition for tp in partitions])
        return {}

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp.partition, None)

    async def committed(self, tp: TopicPartition, sent: Mapping[str, list[Sent]]) -> None:
        state = self.partitions.get(tp.partition)
        if state is None:
            return
        placed = [s for s in sent.get(self.events_topic, []) if s.partition == tp.partition]
        if placed:
            # Past the transaction's commit marker too (it takes the next offset).
            state.next_event_offset = max(state.next_event_offset, placed[-1].offset + 1)
            state.since_snapshot += len(placed)
        if state.since_snapshot >= self.snapshot_every and (
                tp in self.runner.txn or self.runner.mode != "transactional"):
            await self.save_snapshot(tp.partition)

    def step(self, record: LogRecord) -> Sequence[Emit]:
        pstate = self.partitions[record.partition]
        env = decode_command(record.value or b"")
        command = self.registry.command_payload(env)
        if record.key is None or record.key.decode(errors="replace") != env.aggregate_id:
            raise DecodeError("key-mismatch", f"record key {record.key!r} is not the "
                              f"aggregate id {env.aggregate_id!r}")
        if env.type not in self.carried:
            raise DecodeError("wrong-topic", f"{env.type!r} is not a "
                              f"{self.aggregate.family} command")
        known = pstate.decided.get(env.command_id)
        if known is not None:
            MESSAGES.labels(self.name, record.topic, "duplicate").inc()
            # Answered as decided, with the actor of the first sender: a resend by someone
            # else under the same command id does not make the outcome theirs.
            return [self._reply(_reply(env.command_id, env.aggregate_id, known,
                                       duplicate=True))]
        current = self.current(pstate, env.aggregate_id)
        ctx = self.context(env)
        # An exception here is a bug in decide: the runner parks the command and moves on.
        payloads = self.aggregate.decide(command, current.value, ctx)
        events, out = self.append(
            pstate, record.partition, env.aggregate_id, payloads, occurred_at=ctx.now,
            event_id=lambda i: derive_event_id(env.command_id, i),
            correlation_id=env.correlation_id, causation_id=env.command_id, actor=env.actor)
        outcome = outcome_of(events, self.aggregate.rejection.TYPE,
                             redact=self.registry.redacted, decided_at=ctx.now,
                             sender=env.actor)
        pstate.remember(env.command_id, outcome,
                        budget=self.settings.decider_outcome_bytes_per_partition)
        MESSAGES.labels(self.name, record.topic, outcome.status).inc()
        out.append(self._reply(_reply(env.command_id, env.aggregate_id, outcome,
                                      duplicate=False)))
        return out

    def current(self, pstate: PartitionState[S], aggregate_id: str) -> Versioned[S]:
        known = pstate.aggregates.get(aggregate_id)
        return Versioned(0, self.aggregate.initial(aggregate_id)) if known is None else known

    def context(self, env: CommandEnvelope) -> DecideContext:
        """What `decide` may know besides the command and the state (a subclass adds more)."""
        return DecideContext(now=self.clock(), command_id=env.command_id, actor=env.actor)

    def append(self, pstate: PartitionState[S], partition: int, aggregate_id: str,
               payloads: Sequence[EventPayload], *, occurred_at: datetime,
               event_id: Callable[[int], uuid.UUID], correlation_id: uuid.UUID,
               causation_id: uuid.UUID | None, actor: str | None
               ) -> tuple[list[EventEnvelope], list[Emit]]:
        """Number `payloads` after the aggregate's last event, fold them into its state and
        return them with their records for the events topic (on `partition`)."""
        current = self.current(pstate, aggregate_id)
        events: list[EventEnvelope] = []
        out: list[Emit] = []
        value = current.value
        key = aggregate_id.encode()
        for i, payload in enumerate(payloads):
            event = make_event(
                payload, aggregate_id=aggregate_id, sequence=current.version + i + 1,
                occurred_at=occurred_at, correlation_id=correlation_id,
                causation_id=causation_id, event_id=event_id(i), actor=actor,
            )
            value = self.aggregate.evolve(value, payload)
            events.append(event)
            out.append(Emit(self.events_topic, key, encode(event), partition=partition))
        if events:
            pstate.aggregates[aggregate_id] = Versioned(current.version + len(events), value)
        return events, out

    def _reply(self, reply: CommandReply) -> Emit:
        return Emit(self.replies_topic, str(reply.command_id).encode(), encode(reply))

    # -- state -------------------------------------------------------------------------------

    async def load_partitions(self, partitions: list[int]) -> None:
        """Newest snapshot, then the events after it: aggregate states and decided commands."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        snapshots = await self.snapshots.load(partitions)
        states: dict[int, PartitionState[S]] = {}
        for p in partitions:
            snap = snapshots[p]
            states[p] = (PartitionState() if snap is None else
                         self.state_from_items(snap.items, next_event_offset=snap.events_offset))
            for command_id, known in states[p].decided.items():
                # A snapshot written before replies were redacted may hold whole events.
                states[p].decided[command_id] = dataclasses.replace(
                    known, events=tuple(self.registry.redacted(e) for e in known.events))
        reader = self.log.consumer(client_id=f"{self.name}-loader")
        await reader.start()
        counts = dict.fromkeys(partitions, 0)
        by_command: dict[int, dict[uuid.UUID, list[EventEnvelope]]] = {p: {} for p in partitions}
        try:
            await reader.partitions_for(self.events_topic)
            tps = [TopicPartition(self.events_topic, p) for p in partitions]
            reader.assign(tps)
            ends = await reader.end_offsets(tps)
            for tp in tps:
                reader.seek(tp, states[tp.partition].next_event_offset)
            while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
                batch = await reader.poll(max_records=5000, timeout=1.0)
                for tp, messages in batch.items():
                    for msg in messages:
                        counts[tp.partition] += self._fold_logged(
                            states[tp.partition], msg, by_command[tp.partition])
            for tp in tps:
                states[tp.partition].next_event_offset = ends[tp]
        finally:
            await reader.stop()
        cutoff = self.clock() - DEDUPE_WINDOW
        for p, state in states.items():
            for command_id, events in by_command[p].items():
                state.remember(command_id, outcome_of(events, self.aggregate.rejection.TYPE,
                                                      redact=self.registry.redacted))
            state.since_snapshot = counts[p]
            forgotten = state.forget_decided_before(cutoff)
            state.trim_to(self.settings.decider_outcome_bytes_per_partition)
            self.partitions[p] = state
            snap = snapshots[p]
            log.info("partition loaded", partition=p,
                     snapshot_offset=None if snap is None else snap.events_offset,
                     events_replayed=counts[p], aggregates=len(state.aggregates),
                     decided=len(state.decided), forgotten=forgotten,
                     seconds=round(loop.time() - started, 3))

    def items_of(self, state: PartitionState[S]) -> list[list[Any]]:
        """A partition's state as snapshot items (a subclass may cut big states finer)."""
        return dump_items(state, self.aggregate)

    def state_from_items(self, items: list[list[Any]], *,
                         next_event_offset: int) -> PartitionState[S]:
        """The state back from `items_of`."""
        return load_items(items, self.aggregate, next_event_offset=next_event_offset)

    def _fold_logged(self, state: PartitionState[S], msg: LogRecord,
                     by_command: dict[uuid.UUID, list[EventEnvelope]]) -> int:
        try:
            env = decode_event(msg.value or b"")
            payload = self.registry.event_payload(env)
        except DecodeError as exc:
            # Our own log is unreadable here: a bug or a hand-made record.
            log.error("unreadable event on the log", offset=msg.offset, error=str(exc))
            return 0
        current = state.aggregates.get(env.aggregate_id)
        if current is None:
            current = Versioned(0, self.aggregate.initial(env.aggregate_id))
        if env.sequence <= current.version:
            return 0  # a duplicate append; the first one counts
        state.aggregates[env.aggregate_id] = Versioned(
            env.sequence, self.aggregate.evolve(current.value, payload))
        if env.causation_id is not None:
            by_command.setdefault(env.causation_id, []).append(env)
        return 1

    async def save_snapshot(self, partition: int) -> None:
        assert self.snapshot_producer is not None
        state = self.partitions[partition]
        state.forget_decided_before(self.clock() - DEDUPE_WINDOW)
        size = await self.snapshots.save(self.snapshot_producer, partition,
                                         self.items_of(state),
                                         events_offset=state.next_event_offset)
        state.since_snapshot = 0
        log.info("snapshot written", partition=partition, events_offset=state.next_event_offset,
                 bytes=size, aggregates=len(state.aggregates), decided=len(state.decided))


def _reply(command_id: uuid.UUID, aggregate_id: str, outcome: Outcome, *,
           duplicate: bool) -> CommandReply:
    return CommandReply(command_id=command_id, aggregate_id=aggregate_id,
                        status=outcome.status,
                        reason=outcome.reason, detail=outcome.detail, events=outcome.events,
                        duplicate=duplicate, actor=outcome.actor)


def _carried(family: str, registry: TypeRegistry) -> set[str]:
    """The command types a family's topic carries: those its `Family` declares (the account
    family carries `trading.*` commands), else those named after it."""
    known = {m.TYPE for m in registry.command_types()}
    for declared in FAMILIES:
        if declared.name == family:
            return {m.TYPE for m in declared.commands} & known
    return {t for t in known if t.startswith(family + ".")}
