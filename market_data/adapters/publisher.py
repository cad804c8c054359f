"""Ticks into Kafka: deduplicated, batched per instrument (100 ticks or 5 ms), one event each.

The envelope is written with orjson from plain dicts rather than through pydantic: at 100k
ticks/s the model layer would cost more than the whole send. What consumers read back is
checked by the same pydantic models (`schemas.market`), and a test holds the two to the same
bytes' meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from kernel.kafka import Record, send_many
from kernel.observability import get_logger
from market_data.domain.ticks import Tick
from market_data.domain.venues.dedupe import Deduper
from schemas.market import MarketTicksPublished

log = get_logger(__name__)

TICK_BATCH_NAMESPACE = uuid.UUID("5c0e8f7a-2b4d-4e6f-9a1b-3c5d7e9f1a2b")
MIN_NS = 946_684_800_000_000_000  # 2000-01-01, as schemas.market.Nanos
MAX_NS = 4_102_444_800_000_000_000


def tick_problem(tick: Tick) -> str | None:
    """Why a tick cannot be published, or None. Cheap checks mirroring schemas.market."""
    # Chained comparisons, not math.isfinite: NaN fails every comparison, inf the bound.
    if not 0.0 < tick.price < math.inf:
        return "invalid-price"
    if not 0.0 <= tick.size < math.inf:
        return "invalid-size"
    bid, ask = tick.bid, tick.ask
    if (bid is not None and not 0.0 < bid < math.inf) or \
            (ask is not None and not 0.0 < ask < math.inf):
        return "invalid-quote"
    if not (MIN_NS <= tick.venue_ts_ns <= MAX_NS and MIN_NS <= tick.received_ts_ns <= MAX_NS):
        return "timestamp-out-of-range"
    return None


def _row(tick: Tick) -> dict[str, Any]:
    row: dict[str, Any] = {"venue_ts_ns": tick.venue_ts_ns,
                           "received_ts_ns": tick.received_ts_ns,
                           "price": tick.price, "size": tick.size}
    if tick.bid is not None:
        row["bid"] = tick.bid
    if tick.ask is not None:
        row["ask"] = tick.ask
    if tick.side is not None:
        row["side"] = tick.side
    if tick.trade_id is not None:
        row["trade_id"] = tick.trade_id
    return row


def encode_batch(instrument: str, venue: str, ticks: list[Tick], *, sequence: int,
                 occurred_at: datetime) -> bytes:
    """One `market.ticks-published` envelope, as bytes."""
    event_id = uuid.uuid5(TICK_BATCH_NAMESPACE, f"{venue}/{instrument}/{sequence}")
    return orjson.dumps({
        "event_id": str(event_id),
        "type": MarketTicksPublished.TYPE,
        "version": MarketTicksPublished.VERSION,
        "aggregate_id": instrument,
        "sequence": sequence,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "correlation_id": str(event_id),
        "causation_id": None,
        "payload": {"instrument": instrument, "venue": venue,
                    "ticks": [_row(t) for t in ticks]},
    })


@dataclass
class _Pending:
    venue: str
    ticks: list[Tick] = field(default_factory=list)


class TickPublisher:
    """Collects ticks and flushes them as batches: on 100 pending for an instrument, or every
    5 ms. `publish` never blocks on the broker; `flush` waits for the acknowledgements.

    5 ms, not the 50 ms it was: a tick waits up to the flush interval before it is even sent,
    so tick -> Redis p99 cannot be under 10 ms with a 50 ms interval (the wait alone had a
    p99 of 43 ms, bench/market_pipeline.py). Busy instruments still fill 100-tick batches;
    a quiet one sends smaller batches, more of them (up to 10 times as many envelopes for an
    instrument with a tick every few ms; bench/RESULTS.md, issue 10)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, max_ticks: int = 100,
                 max_wait_s: float = 0.005, dedupe: Deduper | None = None,
                 deduplicate: bool = True) -> None:
        self.producer = producer
        self.topic = topic
        self.max_ticks = max_ticks
        self.max_wait_s = max_wait_s
        # The simulator's trade ids are unique by construction and restart with a new run.
        self.dedupe = (dedupe or Deduper()) if deduplicate else None
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._sequence: dict[str, int] = {}
        self._ready: list[Record] = []
        self.published = 0
        self.duplicates = 0
        self.rejected: dict[str, int] = {}

    def publish(self, ticks: Iterable[Tick]) -> list[tuple[Tick, str]]:
        """Queue ticks; return those refused, with the reason (the caller dead-letters them)."""
        refused: list[tuple[Tick, str]] = []
        for tick in ticks:
            problem = tick_problem(tick)
            if problem is not None:
                refused.append((tick, problem))
                self.rejected[problem] = self.rejected.get(problem, 0) + 1
                continue
            if (self.dedupe is not None and tick.trade_id is not None
                    and self.dedupe.is_duplicate(tick.instrument, tick.trade_id)):
                self.duplicates += 1
                continue
            pending = self._pending.get((tick.instrument, tick.venue))
            if pending is None:
                pending = self._pending[(tick.instrument, tick.venue)] = _Pending(tick.venue)
            pending.ticks.append(tick)
            if len(pending.ticks) >= self.max_ticks:
                self._seal(tick.instrument, pending)
        return refused

    def _seal(self, instrument: str, pending: _Pending) -> None:
        ticks, pending.ticks = pending.ticks, []
        last_us = ticks[-1].venue_ts_ns // 1000
        sequence = max(self._sequence.get(instrument, 0) + 1, last_us)
        self._sequence[instrument] = sequence
        self._ready.append((instrument.encode(), encode_batch(
            instrument, pending.venue, ticks, sequence=sequence, occurred_at=datetime.now(UTC))))
        self.published += len(ticks)

    async def flush(self) -> int:
        """Seal every pending batch and wait until the broker has them; return batches sent."""
        for (instrument, _venue), pending in self._pending.items():
            if pending.ticks:
                self._seal(instrument, pending)
        ready, self._ready = self._ready, []
        if ready:
            await send_many(self.producer, self.topic, ready)
        return len(ready)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `max_wait_s` until `stop` is set, then once more."""
        while not stop.is_set():
            started = time.perf_counter()
            await self.flush()
            delay = self.max_wait_s - (time.perf_counter() - started)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        await self.flush()
