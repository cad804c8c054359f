"""Live market data: one venue's reconnecting WebSocket client into `market.ticks`.

Ticks go through the TickPublisher (deduplicated, batched); a frame the venue parser refuses
is parked on `market.raw.dlq` with its raw bytes and the reason, and the feed goes on. A
venue's announcement that a prediction market resolved becomes an `instrument.resolve`
command (source: the venue) for core's instrument decider, which resolves an instrument once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from kernel.kafka import make_producer
from kernel.observability import DEAD_LETTERS, get_logger
from market_data.adapters.publisher import TickPublisher
from market_data.adapters.venues.client import ClientConfig, VenueClient
from market_data.config import MarketSettings as Settings
from market_data.domain.ticks import Tick
from market_data.domain.venues.common import Resolution
from market_data.domain.venues.feed import VenueFeed
from schemas.codec import encode
from schemas.envelope import CommandEnvelope, make_command
from schemas.instrument import ResolveInstrument

# Fixed forever: one command id per venue, instrument and outcome, so a resolution the venue
# sends again (after a reconnect, or by another ingest instance) is one command to the decider.
RESOLUTION_NAMESPACE = uuid.UUID("c4a1f0e2-6b7d-4e35-8a92-1d5f3e7b9c08")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
                                  on_dead_letter=self.on_dead_letter,
                                  on_resolutions=self.on_resolutions, headers=self.headers)

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.flush()
        if self.producer is not None:
            await self.producer.stop()

    async def on_ticks(self, ticks: list[Tick]) -> None:
        assert self.publisher is not None
        for tick, reason in self.publisher.publish(ticks):
            await self.on_dead_letter(repr(tick).encode(), reason)

    async def on_resolutions(self, resolutions: list[Resolution]) -> None:
        """Send each resolution to core as `instrument.resolve`, acknowledged by the broker."""
        assert self.producer is not None
        topic = self.settings.topic("instrument.commands")
        for resolution in resolutions:
            command = resolve_command(resolution)
            await self.producer.send_and_wait(topic, key=command.aggregate_id.encode(),
                                              value=encode(command))

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


def resolve_command(resolution: Resolution) -> CommandEnvelope:
    """The `instrument.resolve` a venue's resolution stands for (pure; its id derived)."""
    at = EPOCH + timedelta(microseconds=resolution.venue_ts_ns // 1_000)
    payload = ResolveInstrument.model_validate(
        {"outcome": resolution.outcome, "source": resolution.venue, "resolved_at": at})
    command_id = uuid.uuid5(RESOLUTION_NAMESPACE, f"{resolution.venue}:"
                                                  f"{resolution.instrument}:"
                                                  f"{resolution.outcome}")
    return make_command(payload, aggregate_id=resolution.instrument, command_id=command_id,
                        issued_at=at, actor=f"venue:{resolution.venue}")
