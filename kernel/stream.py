"""A stream processor: events from the log to a handler, offsets committed after it succeeds.

At-least-once by itself; effectively-once where the handler's writes are idempotent (Redis
values that never go back in time, upserts keyed by the event) — the same contract as the
projection runtime, for sinks that cannot share a transaction with the offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTP

from kernel.dlq import dead_letter_topic
from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogRecord, TopicPartition
from kernel.observability import BATCH_SECONDS
from kernel.projection import Applied
from kernel.runner import Emit, OwnsRunner, StageBase, StreamRunner
from kernel.settings import Settings
from schemas.codec import decode_event
from schemas.registry import TypeRegistry

Handler = Callable[[Sequence[Applied]], Awaitable[None]]
BatchHandler = Callable[[dict[KafkaTP, list[Any]]], Awaitable[int]]


# `consume` drives the loops not yet on the runner (bars); it goes when they move over.
async def consume(consumer: AIOKafkaConsumer, handle_batch: BatchHandler, *, name: str,
                  max_batch: int, count: int | None = None, timeout: float | None = None,
                  poll_ms: int = 100) -> int:
    """Poll and hand each batch over until `count` records, `timeout` seconds, or forever."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    done = 0
    while count is None or done < count:
        if deadline is not None and loop.time() >= deadline:
            break
        batch = await consumer.getmany(timeout_ms=poll_ms, max_records=max_batch)
        if batch:
            with BATCH_SECONDS.labels(name).time():
                done += await handle_batch(batch)
    return done


class StreamProcessor(OwnsRunner, StageBase):
    """A consumer-group member on `kernel.runner.StreamRunner`, at-least-once: decodes each
    batch, dead-letters what does not decode, hands the good events to `handle`, then sends
    nothing of its own and commits."""

    def __init__(self, settings: Settings, *, name: str, topics: Sequence[str],
                 registry: TypeRegistry, handle: Handler | None = None,
                 max_batch: int = 2000, log: Log | None = None) -> None:
        self.settings = settings
        self.name = name
        self.topics = [settings.topic(t) for t in topics]
        self.registry = registry
        self.handle = handle
        self.max_batch = max_batch
        self.group_id = settings.topic(f"propstream.{name}")
        self._good: list[Applied] = []
        self.runner = StreamRunner(
            log if log is not None else KafkaLog(settings), self, name=name,
            group_id=self.group_id, topics=self.topics, mode="at-least-once",
            dead_letter_topic=lambda topic: dead_letter_topic(settings, topic),
            max_batch=max_batch, session_timeout_ms=settings.stream_session_timeout_ms)

    def step(self, record: LogRecord) -> Sequence[Emit]:
        env = decode_event(record.value or b"")
        self._good.append(Applied(env, self.registry.event_payload(env)))
        return ()

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        good, self._good = self._good, []
        if good and self.handle is not None:
            await self.handle(good)
