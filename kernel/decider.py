"""The decider runtime: one writer per aggregate, effectively-once.

A decider owns partitions of a family's command topic (through its consumer group). For each
owned partition it rebuilds the state of every aggregate on the co-partitioned events topic,
and with it the set of command ids already decided. Then, for each command:

* a command id already decided gets its recorded outcome again and produces nothing new;
* otherwise the pure `decide(command, state)` returns events (a refusal is an event too),
  which are appended to the same partition of the events topic with ids derived from the
  command id, folded into the state with `evolve`, and answered on the replies topic;
* the command offsets are committed only after the broker acknowledged the events.

A crash between appending and committing redelivers commands whose events are already on
the log; the rebuilt set of decided command ids recognises them, so nothing is doubled.

Every `snapshot_every` events a partition's state is written to the family's snapshot topic
with the events offset it covers; loading starts from the newest snapshot and folds only the
events after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

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
from kernel.dlq import DeadLetterSink
from kernel.kafka import Record, make_consumer, make_producer, partitions_of, send_many
from kernel.observability import BATCH_SECONDS, CONSUMER_LAG, MESSAGES, get_logger
from kernel.settings import Settings
from kernel.snapshots import SnapshotStore
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import EventEnvelope, derive_event_id, make_event
from schemas.errors import DecodeError
from schemas.registry import TypeRegistry
from schemas.replies import CommandReply
from schemas.topics import REPLIES

S = TypeVar("S")
log = get_logger(__name__)


class DeciderRunner(Generic[S]):
    """Runs one aggregate family's decider against Kafka."""

    def __init__(
        self,
        settings: Settings,
        aggregate: Aggregate[S],
        registry: TypeRegistry,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_batch: int = 500,
        snapshot_every: int = 10_000,
    ) -> None:
        self.settings = settings
        self.aggregate = aggregate
        self.registry = registry
        self.clock = clock
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self.snapshots = SnapshotStore(settings, aggregate.family)
        self.name = f"{aggregate.family}-decider"
        self.commands_topic = settings.topic(f"{aggregate.family}.commands")
        self.events_topic = settings.topic(f"{aggregate.family}.events")
        self.replies_topic = settings.topic(REPLIES.name)
        self.group_id = settings.topic(f"propstream.{self.name}")
        self.partitions: dict[int, PartitionState[S]] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.dlq: DeadLetterSink | None = None
        self.ready = asyncio.Event()
        self._in_flight = False

    async def start(self) -> None:
        self.producer = make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.dlq = DeadLetterSink(self.settings, self.producer, consumer=self.name)
        self.consumer = make_consumer(self.settings, client_id=self.name, group_id=self.group_id,
                                      session_timeout_ms=10000, heartbeat_interval_ms=1000,
                                      max_poll_interval_ms=120000)
        await self.consumer.start()
        self.consumer.subscribe([self.commands_topic], listener=_Listener(self))

    async def stop(self) -> None:
        # A batch cut short (cancelled mid-send) has decisions in memory whose events may not
        # be on the log: such a state must not become a snapshot, so only snapshot clean ones.
        if not self._in_flight:
            for partition in list(self.partitions):
                if self.partitions[partition].since_snapshot:
                    await self.save_snapshot(partition)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

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
                         load_items(snap.items, self.aggregate,
                                    next_event_offset=snap.events_offset))
            for command_id, known in states[p].decided.items():
                # A snapshot written before replies were redacted may hold whole events.
                states[p].decided[command_id] = dataclasses.replace(
                    known, events=tuple(self.registry.redacted(e) for e in known.events))
        reader = make_consumer(self.settings, client_id=f"{self.name}-loader")
        await reader.start()
        counts = dict.fromkeys(partitions, 0)
        by_command: dict[int, dict[uuid.UUID, list[EventEnvelope]]] = {p: {} for p in partitions}
        try:
            await partitions_of(reader, self.events_topic)
            tps = [TopicPartition(self.events_topic, p) for p in partitions]
            reader.assign(tps)
            ends = await reader.end_offsets(tps)
            for tp in tps:
                reader.seek(tp, states[tp.partition].next_event_offset)
            while [tp for tp in tps if await reader.position(tp) < ends[tp]]:
                batch = await reader.getmany(timeout_ms=1000, max_records=5000)
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

    def _fold_logged(self, state: PartitionState[S], msg: Any,
                     by_command: dict[uuid.UUID, list[EventEnvelope]]) -> int:
        try:
            env = decode_event(msg.value)
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
        assert self.producer is not None
        state = self.partitions[partition]
        state.forget_decided_before(self.clock() - DEDUPE_WINDOW)
        size = await self.snapshots.save(self.producer, partition,
                                         dump_items(state, self.aggregate),
                                         events_offset=state.next_event_offset)
        state.since_snapshot = 0
        log.info("snapshot written", partition=partition, events_offset=state.next_event_offset,
                 bytes=size, aggregates=len(state.aggregates), decided=len(state.decided))

    # -- processing --------------------------------------------------------------------------

    async def run(self, *, count: int | None = None, timeout: float | None = None) -> int:
        """Decide commands until `count` were handled or `timeout` seconds passed (or forever)."""
        assert self.consumer is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        handled = 0
        while count is None or handled < count:
            if deadline is not None and loop.time() >= deadline:
                break
            batch = await self.consumer.getmany(timeout_ms=100, max_records=self.max_batch)
            if not batch:
                continue
            with BATCH_SECONDS.labels(self.name).time():
                handled += await self.handle_batch(batch)
        return handled

    async def handle_batch(self, batch: dict[TopicPartition, list[Any]]) -> int:
        assert self.producer is not None and self.consumer is not None
        outgoing: dict[int, list[Record]] = {}
        replies: list[CommandReply] = []
        commits: dict[TopicPartition, int] = {}
        handled = 0
        # States are loaded here rather than in the rebalance callback, so no record fetched
        # around a rebalance is ever passed over before its state is known; every owned
        # partition still missing is loaded at once, with one reader.
        missing = sorted(tp.partition for tp in self.consumer.assignment()
                         if tp.partition not in self.partitions)
        if missing:
            await self.load_partitions(missing)
        # From the first decision until its events are acknowledged, memory is ahead of the
        # log: a stop in this window must not turn that state into a snapshot.
        self._in_flight = True
        for tp, messages in batch.items():
            if tp not in self.consumer.assignment():
                continue  # revoked meanwhile; the new owner redelivers from the commit
            pstate = self.partitions[tp.partition]
            for msg in messages:
                handled += 1
                commits[tp] = msg.offset + 1
                reply = await self._decide_one(tp.partition, pstate, msg, outgoing)
                if reply is not None:
                    replies.append(reply)
        if outgoing:
            placed = await asyncio.gather(*(
                send_many(self.producer, self.events_topic, records, partition=partition)
                for partition, records in outgoing.items()))
            for partition, sent in zip(outgoing, placed, strict=True):
                owned = self.partitions.get(partition)
                if owned is not None and sent:
                    owned.next_event_offset = max(owned.next_event_offset, sent[-1].offset + 1)
                    owned.since_snapshot += len(sent)
        self._in_flight = False
        for reply in replies:
            # After the events are durable, and not awaited: the API sees a reply as soon as
            # it is on the log, and waiting for its acknowledgement here would only delay the
            # next batch. A lost reply means the API answered 202 and the client polls.
            await self.producer.send(self.replies_topic, value=encode(reply),
                                     key=str(reply.command_id).encode())
        if commits:
            await self.consumer.commit(commits)
            for tp, offset in commits.items():
                high = self.consumer.highwater(tp)
                if high is not None:
                    CONSUMER_LAG.labels(self.group_id, tp.topic, tp.partition).set(
                        max(0, high - offset))
                state = self.partitions.get(tp.partition)
                if state is not None and state.since_snapshot >= self.snapshot_every:
                    await self.save_snapshot(tp.partition)
        return handled

    async def _decide_one(self, partition: int, pstate: PartitionState[S], msg: Any,
                          outgoing: dict[int, list[Record]]) -> CommandReply | None:
        assert self.producer is not None and self.dlq is not None
        try:
            env = decode_command(msg.value)
            command = self.registry.command_payload(env)
            if msg.key is None or msg.key.decode(errors="replace") != env.aggregate_id:
                raise DecodeError("key-mismatch", f"record key {msg.key!r} is not the "
                                  f"aggregate id {env.aggregate_id!r}")
            if env.type not in _carried(self.aggregate.family, self.registry):
                raise DecodeError("wrong-topic", f"{env.type!r} is not a "
                                  f"{self.aggregate.family} command")
        except DecodeError as exc:
            MESSAGES.labels(self.name, msg.topic, "dead-lettered").inc()
            await self.dlq.send(msg, exc)
            return None
        known = pstate.decided.get(env.command_id)
        if known is not None:
            MESSAGES.labels(self.name, msg.topic, "duplicate").inc()
            # Answered as decided, with the actor of the first sender: a resend by someone
            # else under the same command id does not make the outcome theirs.
            return _reply(env.command_id, env.aggregate_id, known, duplicate=True)
        current = pstate.aggregates.get(env.aggregate_id)
        if current is None:
            current = Versioned(0, self.aggregate.initial(env.aggregate_id))
        ctx = DecideContext(now=self.clock(), command_id=env.command_id, actor=env.actor)
        try:
            payloads = self.aggregate.decide(command, current.value, ctx)
        except Exception as exc:
            log.exception("decide failed", command_id=str(env.command_id), type=env.type)
            MESSAGES.labels(self.name, msg.topic, "dead-lettered").inc()
            await self.dlq.send(msg, exc)
            return None
        events = []
        value = current.value
        for i, payload in enumerate(payloads):
            event = make_event(
                payload, aggregate_id=env.aggregate_id, sequence=current.version + i + 1,
                occurred_at=ctx.now, correlation_id=env.correlation_id,
                causation_id=env.command_id, event_id=derive_event_id(env.command_id, i),
                actor=env.actor,
            )
            value = self.aggregate.evolve(value, payload)
            events.append(event)
            outgoing.setdefault(partition, []).append(
                (env.aggregate_id.encode(), encode(event)))
        pstate.aggregates[env.aggregate_id] = Versioned(current.version + len(events), value)
        outcome = outcome_of(events, self.aggregate.rejection.TYPE,
                             redact=self.registry.redacted)
        pstate.remember(env.command_id, outcome,
                        budget=self.settings.decider_outcome_bytes_per_partition)
        MESSAGES.labels(self.name, msg.topic, outcome.status).inc()
        return _reply(env.command_id, env.aggregate_id, outcome, duplicate=False)


def _reply(command_id: uuid.UUID, aggregate_id: str, outcome: Outcome, *,
           duplicate: bool) -> CommandReply:
    return CommandReply(command_id=command_id, aggregate_id=aggregate_id,
                        status=outcome.status,
                        reason=outcome.reason, detail=outcome.detail, events=outcome.events,
                        duplicate=duplicate, actor=outcome.actor)


def _carried(family: str, registry: TypeRegistry) -> set[str]:
    return {m.TYPE for m in registry.command_types() if m.TYPE.startswith(family + ".")}


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: DeciderRunner[Any]) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.runner.partitions.pop(tp.partition, None)
        self.runner.ready.clear()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # States are (re)built from the events topic on the first batch of each partition.
        for tp in assigned:
            self.runner.partitions.pop(tp.partition, None)
        self.runner.ready.set()
        log.info("partitions assigned", partitions=sorted(tp.partition for tp in assigned))
