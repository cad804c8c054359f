"""The gateway's reading of the log: no consumer group, every partition, from the end.

Each instance reads every partition of its topics itself (no group, nothing committed), so
instances side by side each see every message; a (re)started instance begins at the end:
what happened while it was away is in the Redis history.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaConsumer

from kernel.kafka import make_consumer, partitions_of
from kernel.settings import Settings
from ws_gateway.hub import Source

Batch = Sequence[tuple[Source, int, bytes]]


class LogSource:
    def __init__(self, settings: Settings, sources: Mapping[str, Source], *,
                 fetch_wait_ms: int = 5, max_records: int = 20_000,
                 round_s: float = 0.0) -> None:
        """`sources`: physical topic name -> what it feeds."""
        self.sources = dict(sources)
        self.max_records = max_records
        self.round_s = round_s
        self.consumer: AIOKafkaConsumer = make_consumer(
            settings, client_id=f"ws-gateway-{uuid.uuid4().hex[:8]}", group_id=None,
            fetch_max_wait_ms=fetch_wait_ms)

    async def start(self) -> None:
        await self.consumer.start()
        partitions = [tp for topic in self.sources
                      for tp in await partitions_of(self.consumer, topic)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end now: ticks published after start() count
            await self.consumer.position(tp)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self, deliver: Callable[[Batch], Awaitable[int]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            fetched = await self.consumer.getmany(timeout_ms=100, max_records=self.max_records)
            batch = [(self.sources[tp.topic], record.offset, record.value)
                     for tp, records in fetched.items() for record in records
                     if record.value is not None]
            if batch:
                await deliver(batch)
                if self.round_s:
                    await asyncio.sleep(max(0.0, self.round_s - (loop.time() - began)))
