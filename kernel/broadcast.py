"""Broadcast inputs of a stream runner: topics every member reads whole, without a group.

A stage that owns partitions of its input topics (an account engine owns accounts) may also
need a stream that is not partitioned like them: every market tick can move resting orders of
accounts in every partition. The runner reads such a topic with one extra consumer assigned to
all its partitions, and hands each record to the stage with the owned input partitions that
are *due* to act on it. The stage's outputs for an input partition go into that partition's
transaction, as outputs of its own records do.

Exactly where each input partition stands on the broadcast topics is part of its state, so it
commits with its outputs: the next broadcast offsets of input partition ``p`` are committed,
in ``p``'s transaction, as the offsets of a group that nobody joins
(``<group>.<topic>.<p>.broadcast``). A new owner reads them back and resumes ``p`` exactly
there: a record ``p`` acted on before a crash is never acted on again, and one it had not
reached is acted on, against the same state. Any transaction of ``p`` carries its broadcast
position when it moved, so the order in which ``p`` met its own records and broadcast records
is the order the log keeps. A position that moved without outputs is committed at the next
transaction of ``p`` or at the latest every ``checkpoint_ms``; a crash before that makes ``p``
meet those records again, which changes nothing, since they changed nothing the first time.

The one consumer stands at the lowest position of the owned partitions. A partition taken
over behind the others rewinds it; records met again are handed over with ``due`` empty for the
partitions past them, so the stage must let a record older than what it holds leave its
shared state alone (a quote table keeps the newest quote per instrument). At start the
consumer begins ``warmup`` records per partition before the end (per topic; ``None``: the
whole topic, e.g. instrument specs), handed over with ``due`` empty, so shared state is full
before anything acts. An input partition with no committed position starts at the broadcast
topics' current end: it has nothing to catch up.

Until the consumer has reached the ends it saw at start (and at each `adopt`), the runner
hands it no input records (`caught_up`): a restarted engine meets the ticks it missed before
it decides an order, instead of refusing it on the stale quote it knew before the crash. It
gives up waiting after `catch_up_s` (logged), so a broadcast topic that cannot be read does
not stop the inputs for ever.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from kernel.log import Batch, Log, LogConsumer, LogRecord, TopicPartition
from kernel.observability import get_logger

log = get_logger(__name__)


class BroadcastStage(Protocol):
    def step_broadcast(self, record: LogRecord, due: Collection[TopicPartition]
                       ) -> Mapping[TopicPartition, Sequence[object]]:
        """Handle a broadcast record for the owned input partitions in `due` (possibly none:
        warm-up, or a record met again). Return outputs (`Emit`s) by input partition, only
        partitions of `due`. Raise to dead-letter the record (nothing of it may be kept)."""
        ...


def checkpoint_group(group_id: str, tp: TopicPartition) -> str:
    """The group (never joined) whose offsets say where `tp` stands on the broadcast topics."""
    return f"{group_id}.{tp.topic}.{tp.partition}.broadcast"


class BroadcastInputs:
    """The broadcast consumer and every owned input partition's position on it."""

    def __init__(self, log_: Log, *, name: str, group_id: str, topics: Sequence[str],
                 warmup: int | Mapping[str, int | None] = 0, catch_up_s: float = 30.0) -> None:
        self.log = log_
        self.catch_up_s = catch_up_s
        # The ends seen at start / adopt that the consumer has not reached yet.
        self._target: dict[TopicPartition, int] = {}
        self._catch_up_until = 0.0
        self.name = name
        self.group_id = group_id
        self.topics = list(topics)
        self.warmup: dict[str, int | None] = (
            dict(warmup) if isinstance(warmup, Mapping) else dict.fromkeys(topics, warmup))
        self.consumer: LogConsumer | None = None
        self.partitions: list[TopicPartition] = []
        # Next broadcast offset each owned input partition acts on, and those moved since
        # their last commit.
        self.positions: dict[TopicPartition, dict[TopicPartition, int]] = {}
        self.moved: set[TopicPartition] = set()

    async def start(self) -> None:
        consumer = self.log.consumer(client_id=f"{self.name}-broadcast")
        await consumer.start()
        self.consumer = consumer
        self.partitions = [tp for topic in self.topics
                           for tp in await consumer.partitions_for(topic)]
        consumer.assign(self.partitions)
        ends = await consumer.end_offsets(self.partitions)
        for btp in self.partitions:
            back = self.warmup.get(btp.topic, 0)
            consumer.seek(btp, 0 if back is None else max(0, ends[btp] - back))
        self._aim(ends)

    def _aim(self, ends: Mapping[TopicPartition, int]) -> None:
        self._target = dict(ends)
        self._catch_up_until = time.monotonic() + self.catch_up_s

    async def caught_up(self) -> bool:
        """Whether the consumer reached the ends it saw at the last start or adopt."""
        if not self._target:
            return True
        assert self.consumer is not None
        for btp, end in list(self._target.items()):
            if await self.consumer.position(btp) >= end:
                del self._target[btp]
        if self._target and time.monotonic() > self._catch_up_until:
            log.warning("broadcast catch-up gave up", runner=self.name,
                        behind={f"{b.topic}:{b.partition}": e for b, e in self._target.items()})
            self._target.clear()
        if not self._target:
            log.info("broadcast caught up", runner=self.name, seconds=round(
                time.monotonic() - self._catch_up_until + self.catch_up_s, 3))
        return not self._target

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def adopt(self, inputs: Sequence[TopicPartition]) -> None:
        """Read where newly owned input partitions stand; rewind the consumer if one is
        behind the others (or ahead of it: a partition the consumer has not yet reached)."""
        assert self.consumer is not None
        if not inputs:
            return
        ends = await self.consumer.end_offsets(self.partitions)
        self._aim(ends)
        for tp in inputs:
            reader = self.log.consumer(client_id=f"{self.name}-checkpoint",
                                       group_id=checkpoint_group(self.group_id, tp))
            await reader.start()
            try:
                stands = {btp: await reader.committed(btp) for btp in self.partitions}
            finally:
                await reader.stop()
            self.positions[tp] = {btp: ends[btp] if at is None else at
                                  for btp, at in stands.items()}
            self.moved.discard(tp)
            log.info("broadcast position", runner=self.name, input=f"{tp.topic}:{tp.partition}",
                     at={f"{b.topic}:{b.partition}": o
                         for b, o in self.positions[tp].items()},
                     fresh=all(at is None for at in stands.values()))
        for btp in self.partitions:
            lowest = min(self.positions[tp][btp] for tp in self.positions)
            now = await self.consumer.position(btp)
            if lowest < now:
                self.consumer.seek(btp, lowest)  # shared state is warm since `start`
            # A position ahead of the consumer is reached by reading on (`due` says who acts).

    def drop(self, inputs: Collection[TopicPartition]) -> None:
        for tp in inputs:
            self.positions.pop(tp, None)
            self.moved.discard(tp)

    async def poll(self, *, max_records: int, timeout: float) -> Batch:
        assert self.consumer is not None
        return await self.consumer.poll(max_records=max_records, timeout=timeout)

    def due(self, record: LogRecord, ready: Collection[TopicPartition]) -> list[TopicPartition]:
        """The input partitions (of `ready`) that act on `record`; their positions move past
        it. The caller drops a partition's state if its transaction then fails."""
        btp = record.tp
        out = []
        for tp in ready:
            stands = self.positions.get(tp)
            if stands is not None and stands.get(btp, 0) <= record.offset:
                stands[btp] = record.offset + 1
                self.moved.add(tp)
                out.append(tp)
        return out

    def checkpoint(self, tp: TopicPartition) -> dict[TopicPartition, int] | None:
        """The offsets to commit with `tp`'s transaction, if its position moved."""
        if tp not in self.moved:
            return None
        return dict(self.positions[tp])

    def committed(self, tp: TopicPartition) -> None:
        self.moved.discard(tp)
