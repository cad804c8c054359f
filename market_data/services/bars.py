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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import psycopg
import redis.asyncio as redis
from prometheus_client import Counter

from kernel.dlq import dead_letter_topic
from kernel.log import Log, LogRecord, TopicPartition
from kernel.observability import get_logger
from kernel.pg import apply_ddl, connect
from kernel.runner import Emit, StageBase, StreamRunner
from market_data.adapters.redis_levels import LevelsStore
from market_data.config import MarketSettings as Settings
from market_data.domain.bars import BarBuilder, ClosedBar, LateTick
from market_data.domain.levels import Levels
from market_data.domain.ticks import Tick
from market_data.domain.validation import InvalidTick
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import make_event
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


class BarStateStore(Protocol):
    """Where the builders' state and the next offsets of each partition live, together."""

    async def load(self, topic: str) -> dict[int, tuple[int, int, dict[str, Any]]]:
        """partition → (next offset, watermark ns, snapshot) as last saved."""
        ...

    async def save(self, topic: str, rows: Sequence[tuple[int, int, int, dict[str, Any]]]
                   ) -> None:
        """(partition, next offset, watermark ns, snapshot) rows, in one transaction."""
        ...


class PgBarStateStore:
    """The production `BarStateStore`: the `market_bar_state` table."""

    def __init__(self) -> None:
        self.conn: psycopg.AsyncConnection | None = None

    async def load(self, topic: str) -> dict[int, tuple[int, int, dict[str, Any]]]:
        assert self.conn is not None
        cur = await self.conn.execute(
            "SELECT partition, next_offset, watermark_ns, state FROM market_bar_state "
            "WHERE topic = %s", (topic,))
        saved = {p: (o, w, st) for p, o, w, st in await cur.fetchall()}
        await self.conn.commit()
        return saved

    async def save(self, topic: str, rows: Sequence[tuple[int, int, int, dict[str, Any]]]
                   ) -> None:
        assert self.conn is not None
        async with self.conn.transaction(), self.conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO market_bar_state (topic, partition, next_offset, watermark_ns, "
                "state) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (topic, partition) DO "
                "UPDATE SET next_offset = EXCLUDED.next_offset, "
                "watermark_ns = EXCLUDED.watermark_ns, state = EXCLUDED.state",
                [(topic, p, o, w, orjson.dumps(st).decode()) for p, o, w, st in rows])


LevelsSink = Callable[[dict[str, dict[str, Any]]], Awaitable[None]]


class BarStage(StageBase):
    """The bar processor as a `StreamRunner` stage in external-offset mode: `step` folds a
    tick batch and emits the bars it closes (bars close on the watermark after every record,
    so the bars do not depend on where batches were cut); once they are acknowledged, `flush`
    saves each partition's state with its next offset and publishes the touched levels."""

    def __init__(self, store: BarStateStore, levels: LevelsSink, *, topic: str,
                 bars_topic: str) -> None:
        self.store = store
        self.levels = levels
        self.topic = topic
        self.bars_topic = bars_topic
        self.registry = default_registry()
        self.partitions: dict[int, PartitionBars] = {}
        self.touched: set[tuple[int, str]] = set()
        self.bars_closed = 0

    async def assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        saved = await self.store.load(self.topic)
        resume: dict[TopicPartition, int] = {}
        for tp in partitions:
            if tp.partition in saved:
                offset, watermark, state = saved[tp.partition]
                self.partitions[tp.partition] = PartitionBars.restore(state, watermark)
                resume[tp] = offset
            else:
                self.partitions[tp.partition] = PartitionBars()
                resume[tp] = 0
        log.info("bar partitions restored", resumed={tp.partition: o for tp, o in resume.items()})
        return resume

    async def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.partitions.pop(tp.partition, None)
        self.touched = {(p, i) for p, i in self.touched if p in self.partitions}

    def step(self, record: LogRecord) -> Sequence[Emit]:
        payload = self.registry.event_payload(decode_event(record.value))
        if not isinstance(payload, MarketTicksPublished):
            return ()
        state = self.partitions[record.partition]
        closed, refused = state.fold(payload)
        closed += state.close_by_watermark()
        self.touched.add((record.partition, payload.instrument))
        for reason in refused:
            REFUSED.labels(reason).inc()
        self.bars_closed += len(closed)
        return [Emit(self.bars_topic, *bar_event(bar)) for bar in closed]

    async def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.store.save(self.topic, [
            (tp.partition, offset, self.partitions[tp.partition].watermark_ns,
             self.partitions[tp.partition].snapshot())
            for tp, offset in offsets.items()])
        touched, self.touched = self.touched, set()
        if touched:
            await self.levels({instrument: levels_view(self.partitions[p].levels[instrument])
                               for p, instrument in touched})


class BarService:
    """The bar processor process: a `BarStage` on the `StreamRunner` over Kafka, its state in
    PostgreSQL and its levels in Redis. Every partition of `market.ticks` is assigned to it."""

    name = "market-bars"

    def __init__(self, settings: Settings, *, max_batch: int = 2000,
                 log_: Log | None = None) -> None:
        self.settings = settings
        self.max_batch = max_batch
        self.topic = settings.topic("market.ticks")
        self.bars_topic = settings.topic("market.bars")
        self.log = log_
        self.store = PgBarStateStore()
        self.stage = BarStage(self.store, self._put_levels, topic=self.topic,
                              bars_topic=self.bars_topic)
        self.stream: StreamRunner | None = None
        self.conn: psycopg.AsyncConnection | None = None
        self.cache: redis.Redis | None = None
        self.levels_store: LevelsStore | None = None

    @property
    def bars_closed(self) -> int:
        return self.stage.bars_closed

    @property
    def partitions(self) -> dict[int, PartitionBars]:
        return self.stage.partitions

    async def _put_levels(self, views: dict[str, dict[str, Any]]) -> None:
        assert self.levels_store is not None
        await self.levels_store.put_many(views)

    async def start(self) -> None:
        self.conn = await connect(self.settings)
        await apply_ddl(self.conn, [STATE_DDL])
        self.store.conn = self.conn
        self.cache = redis.Redis.from_url(self.settings.cache_url)
        self.levels_store = LevelsStore(self.cache, namespace=self.settings.namespace)
        if self.log is None:
            from kernel.kafkalog import KafkaLog
            self.log = KafkaLog(self.settings)
        self.stream = StreamRunner(
            self.log, self.stage, name=self.name, group_id=self.name, topics=[self.topic],
            mode="external", dead_letter_topic=lambda t: dead_letter_topic(self.settings, t),
            max_batch=self.max_batch, poll_timeout=0.2, assign_all=True)
        await self.stream.start()
        log.info("bar processor started", topic=self.topic)

    async def stop(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        if self.cache is not None:
            await self.cache.aclose()
        if self.conn is not None:
            await self.conn.close()

    async def run(self, *, count: int | None = None, timeout: float | None = None) -> int:
        assert self.stream is not None
        return await self.stream.run(count=count, timeout=timeout)
