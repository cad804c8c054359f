"""A stream processor: events from Kafka to a handler, offsets committed after it succeeds.

At-least-once by itself; effectively-once where the handler's writes are idempotent (Redis
values that never go back in time, upserts keyed by the event) — the same contract as the
projection runtime, for sinks that cannot share a transaction with the offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kernel.dlq import DeadLetterSink
from kernel.kafka import make_consumer, make_producer
from kernel.observability import BATCH_SECONDS, CONSUMER_LAG, MESSAGES
from kernel.projection import Applied
from kernel.settings import Settings
from schemas.codec import decode_event
from schemas.errors import DecodeError
from schemas.registry import TypeRegistry

Handler = Callable[[Sequence[Applied]], Awaitable[None]]
BatchHandler = Callable[[dict[TopicPartition, list[Any]]], Awaitable[int]]


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


class StreamProcessor:
    """A consumer-group member: decodes each batch, hands the good events to `handle`,
    dead-letters the rest, then commits. Subclasses with other per-record work override
    `handle_batch` and finish with `commit`."""

    def __init__(self, settings: Settings, *, name: str, topics: Sequence[str],
                 registry: TypeRegistry, handle: Handler | None = None,
                 max_batch: int = 2000) -> None:
        self.settings = settings
        self.name = name
        self.topics = [settings.topic(t) for t in topics]
        self.registry = registry
        self.handle = handle
        self.max_batch = max_batch
        self.group_id = settings.topic(f"propstream.{name}")
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.dlq: DeadLetterSink | None = None

    async def start(self) -> None:
        self.producer = make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.dlq = DeadLetterSink(self.settings, self.producer, consumer=self.name)
        self.consumer = make_consumer(self.settings, client_id=self.name, group_id=self.group_id,
                                      session_timeout_ms=10000, heartbeat_interval_ms=1000)
        await self.consumer.start()
        self.consumer.subscribe(self.topics)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, *, count: int | None = None, timeout: float | None = None) -> int:
        assert self.consumer is not None
        return await consume(self.consumer, self.handle_batch, name=self.name,
                             max_batch=self.max_batch, count=count, timeout=timeout)

    async def handle_batch(self, batch: dict[TopicPartition, list[Any]]) -> int:
        assert self.consumer is not None and self.dlq is not None
        good: list[Applied] = []
        for messages in batch.values():
            for msg in messages:
                try:
                    env = decode_event(msg.value)
                    good.append(Applied(env, self.registry.event_payload(env)))
                except DecodeError as exc:
                    MESSAGES.labels(self.name, msg.topic, "dead-lettered").inc()
                    await self.dlq.send(msg, exc)
        if good and self.handle is not None:
            await self.handle(good)
        for tp, messages in batch.items():
            MESSAGES.labels(self.name, tp.topic, "applied").inc(len(messages))
        return await self.commit(batch)

    async def commit(self, batch: dict[TopicPartition, list[Any]]) -> int:
        """Commit past the batch (after its effects are durable); returns its record count."""
        assert self.consumer is not None
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items() if msgs}
        await self.consumer.commit(offsets)
        for tp, offset in offsets.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                CONSUMER_LAG.labels(self.group_id, tp.topic, tp.partition).set(
                    max(0, high - offset))
        return sum(len(m) for m in batch.values())
