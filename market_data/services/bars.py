"""The bar processor: ticks from `market.ticks` into closed OHLCV bars on `market.bars`, and
live ATH/ATL/Enigma levels into Redis.

Restart without loss or duplicates: after each consumed batch its closed bars are appended
(and acknowledged), then the builders' state and the next offsets are written to PostgreSQL
in one transaction. A restart restores that state and seeks there; bars closed after the last
saved state are closed again with the same event ids, and the bars projection upserts them by
(instrument, resolution, open time), so the read model holds each bar once.

Bars close on event time: the watermark is the newest receive time seen in a partition, so a
replay closes exactly the bars the live run closed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from kernel.dlq import DeadLetterSink
from kernel.kafka import make_consumer, make_producer, partitions_of, send_many
from kernel.observability import MESSAGES, get_logger
from kernel.pg import apply_ddl, connect
from kernel.stream import consume
from market_data.adapters.redis_levels import LevelsStore
from market_data.config import MarketSettings as Settings
from market_data.domain.bars import BarBuilder, ClosedBar, LateTick
from market_data.domain.levels import Levels
from market_data.domain.ticks import Tick
from market_data.domain.validation import InvalidTick
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import make_event
from schemas.errors import DecodeError
from schemas.market import MarketBarClosed, MarketTicksPublished

log = get_logger(__name__)
BAR_NAMESPACE = uuid.UUID("7e2d9c4b-1a3f-4b5c-8d6e-9f0a1b2c3d4e")
REFUSED = Counter("propstream_bar_ticks_refused_total", "Ticks the bar builder refused",
                  ["reason"])

STATE_DDL = """
CREATE TABLE IF NOT EXISTS market_bar_state (
    topic TEXT NOT NULL,
    partition INT NOT NULL,
    next_offset BIGINT NOT NULL,
    watermark_ns BIGINT NOT NULL,
    state JSONB NOT NULL,
    PRIMARY KEY (topic, partition)
)
"""


def bar_event(bar: ClosedBar) -> tuple[bytes, bytes]:
    """A closed bar as its event: the id and sequence come from the bar itself."""
    event_id = uuid.uuid5(BAR_NAMESPACE, f"{bar.instrument}/{bar.resolution}/{bar.open_time_ns}")
    payload = MarketBarClosed(instrument=bar.instrument, resolution=bar.resolution,
                              open_time_ns=bar.open_time_ns, close_time_ns=bar.close_time_ns,
                              open=bar.open, high=bar.high, low=bar.low, close=bar.close,
                              volume=bar.volume, trades=bar.trades)
    envelope = make_event(payload, aggregate_id=f"{bar.instrument}/{bar.resolution}",
                          sequence=bar.open_time_ns // 1_000_000_000 + 1,
                          occurred_at=datetime.fromtimestamp(bar.close_time_ns / 1e9, UTC),
                          correlation_id=event_id, causation_id=None, event_id=event_id)
    return bar.instrument.encode(), encode(envelope)


class PartitionBars:
    """Builders and levels of the instruments on one partition of `market.ticks`."""

    def __init__(self) -> None:
        self.builders: dict[str, BarBuilder] = {}
        self.levels: dict[str, Levels] = {}
        self.watermark_ns = 0

    def fold(self, batch: MarketTicksPublished) -> tuple[list[ClosedBar], list[str]]:
        instrument = batch.instrument
        builder = self.builders.get(instrument)
        if builder is None:
            builder = self.builders[instrument] = BarBuilder(instrument)
            self.levels[instrument] = Levels(instrument)
        levels = self.levels[instrument]
        closed: list[ClosedBar] = []
        refused: list[str] = []
        for row in batch.ticks:
            tick = Tick(instrument, batch.venue, row.price, row.size, row.venue_ts_ns,
                        row.received_ts_ns, row.bid, row.ask, row.side, row.trade_id)
            for outcome in builder.on_tick(tick):
                if isinstance(outcome, ClosedBar):
                    closed.append(outcome)
                elif isinstance(outcome, LateTick | InvalidTick):
                    refused.append(outcome.reason)
            levels.on_tick(tick)
            self.watermark_ns = max(self.watermark_ns, row.received_ts_ns)
        return closed, refused

    def close_by_watermark(self) -> list[ClosedBar]:
        closed: list[ClosedBar] = []
        for builder in self.builders.values():
            closed += builder.on_time(self.watermark_ns)
        return closed

    def snapshot(self) -> dict[str, Any]:
        return {i: {"bars": b.snapshot(), "levels": self.levels[i].snapshot()}
                for i, b in self.builders.items()}

    @classmethod
    def restore(cls, state: dict[str, Any], watermark_ns: int) -> PartitionBars:
        restored = cls()
        restored.watermark_ns = watermark_ns
        for instrument, parts in state.items():
            builder = BarBuilder(instrument)
            builder.restore(parts["bars"])
            levels = Levels(instrument)
            levels.restore(parts["levels"])
            restored.builders[instrument] = builder
            restored.levels[instrument] = levels
        return restored


def levels_view(levels: Levels) -> dict[str, Any]:
    return {"instrument": levels.instrument, "ath": levels.ath, "atl": levels.atl,
            "last": levels.last, "last_ts_ns": levels.last_ts_ns, "enigma": levels.enigma,
            "fibonacci": [{"pct": f.pct, "price": f.price} for f in levels.fibonacci()]}


class BarService:
    name = "market-bars"

    def __init__(self, settings: Settings, *, max_batch: int = 2000) -> None:
        self.settings = settings
        self.max_batch = max_batch
        self.registry = default_registry()
        self.topic = settings.topic("market.ticks")
        self.bars_topic = settings.topic("market.bars")
        self.partitions: dict[int, PartitionBars] = {}
        self.conn: psycopg.AsyncConnection | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.dlq: DeadLetterSink | None = None
        self.cache: redis.Redis | None = None
        self.levels_store: LevelsStore | None = None
        self.bars_closed = 0

    async def start(self) -> None:
        self.conn = await connect(self.settings)
        await apply_ddl(self.conn, [STATE_DDL])
        self.cache = redis.Redis.from_url(self.settings.cache_url)
        self.levels_store = LevelsStore(self.cache, namespace=self.settings.namespace)
        self.producer = make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.dlq = DeadLetterSink(self.settings, self.producer, consumer=self.name)
        self.consumer = make_consumer(self.settings, client_id=self.name)
        await self.consumer.start()
        parts = await partitions_of(self.consumer, self.topic)
        self.consumer.assign(parts)
        cur = await self.conn.execute(
            "SELECT partition, next_offset, watermark_ns, state FROM market_bar_state "
            "WHERE topic = %s", (self.topic,))
        saved = {p: (o, w, s) for p, o, w, s in await cur.fetchall()}
        await self.conn.commit()
        for tp in parts:
            if tp.partition in saved:
                offset, watermark, state = saved[tp.partition]
                self.partitions[tp.partition] = PartitionBars.restore(state, watermark)
                self.consumer.seek(tp, offset)
            else:
                self.partitions[tp.partition] = PartitionBars()
                await self.consumer.seek_to_beginning(tp)
        log.info("bar processor started", resumed={p: s[0] for p, s in saved.items()})

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.cache is not None:
            await self.cache.aclose()
        if self.conn is not None:
            await self.conn.close()

    async def run(self, *, count: int | None = None, timeout: float | None = None) -> int:
        assert self.consumer is not None
        return await consume(self.consumer, self.handle_batch, name=self.name,
                             max_batch=self.max_batch, count=count, timeout=timeout,
                             poll_ms=200)

    async def handle_batch(self, batch: dict[TopicPartition, list[Any]]) -> int:
        assert self.producer is not None and self.dlq is not None
        assert self.conn is not None and self.levels_store is not None
        closed: list[ClosedBar] = []
        touched: set[tuple[int, str]] = set()
        for tp, messages in batch.items():
            state = self.partitions[tp.partition]
            for msg in messages:
                try:
                    payload = self.registry.event_payload(decode_event(msg.value))
                except DecodeError as exc:
                    MESSAGES.labels(self.name, msg.topic, "dead-lettered").inc()
                    await self.dlq.send(msg, exc)
                    continue
                if not isinstance(payload, MarketTicksPublished):
                    continue
                bars, refused = state.fold(payload)
                closed += bars
                touched.add((tp.partition, payload.instrument))
                for reason in refused:
                    REFUSED.labels(reason).inc()
            closed += state.close_by_watermark()
        if closed:
            await send_many(self.producer, self.bars_topic, [bar_event(b) for b in closed])
            self.bars_closed += len(closed)
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO market_bar_state (topic, partition, next_offset, watermark_ns, "
                "state) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (topic, partition) DO "
                "UPDATE SET next_offset = EXCLUDED.next_offset, "
                "watermark_ns = EXCLUDED.watermark_ns, state = EXCLUDED.state",
                [(self.topic, tp.partition, msgs[-1].offset + 1,
                  self.partitions[tp.partition].watermark_ns,
                  orjson.dumps(self.partitions[tp.partition].snapshot()).decode())
                 for tp, msgs in batch.items() if msgs])
        await self.levels_store.put_many({
            instrument: levels_view(self.partitions[p].levels[instrument])
            for p, instrument in touched})
        for tp, msgs in batch.items():
            MESSAGES.labels(self.name, tp.topic, "applied").inc(len(msgs))
        return sum(len(m) for m in batch.values())
