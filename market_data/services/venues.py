"""Live market data: one venue's reconnecting WebSocket client into `market.ticks`.

Ticks go through the TickPublisher (deduplicated, batched); a frame the venue parser refuses
is parked on `market.raw.dlq` with its raw bytes and the reason, and the feed goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaProducer

from kernel.kafka import make_producer
from kernel.observability import DEAD_LETTERS, get_logger
from market_data.adapters.publisher import TickPublisher
from market_data.adapters.venues.client import ClientConfig, VenueClient
from market_data.config import MarketSettings as Settings
from market_data.domain.ticks import Tick
from market_data.domain.venues.feed import VenueFeed

log = get_logger(__name__)


class VenueIngestService:
    def __init__(self, settings: Settings, feed: VenueFeed, config: ClientConfig) -> None:
        self.settings = settings
        self.feed = feed
        self.config = config
        self.name = f"market-venue-{feed.venue}"
        self.producer: AIOKafkaProducer | None = None
        self.publisher: TickPublisher | None = None
        self.client: VenueClient | None = None
        self.raw_dlq = settings.topic("market.raw.dlq")
        self.headers: Callable[[], Mapping[str, str]] | None = None  # signed handshakes

    async def start(self) -> None:
        self.producer = make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.publisher = TickPublisher(self.producer, self.settings.topic("market.ticks"))
        self.client = VenueClient(self.feed, config=self.config, on_ticks=self.on_ticks,
                                  on_dead_letter=self.on_dead_letter, headers=self.headers)

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.flush()
        if self.producer is not None:
            await self.producer.stop()

    async def on_ticks(self, ticks: list[Tick]) -> None:
        assert self.publisher is not None
        for tick, reason in self.publisher.publish(ticks):
            await self.on_dead_letter(repr(tick).encode(), reason)

    async def on_dead_letter(self, raw: bytes, reason: str) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(self.raw_dlq, value=raw[:900 * 1024], headers=[
            ("x-error-reason", reason.encode()), ("x-venue", self.feed.venue.encode()),
            ("x-origin-topic", f"venue:{self.feed.venue}".encode()),
            ("x-consumer", self.name.encode()),
            ("x-failed-at-ms", str(int(time.time() * 1000)).encode())])
        DEAD_LETTERS.labels(self.name, f"venue:{self.feed.venue}", reason).inc()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        assert self.client is not None and self.publisher is not None
        stop = stop or asyncio.Event()
        await asyncio.gather(self.client.run(stop), self.publisher.run(stop))
