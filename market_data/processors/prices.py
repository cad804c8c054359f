"""Ticks from `market.ticks` into Redis: latest price, bid and ask, and recent ticks."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Histogram

from kernel.projection import Applied
from market_data.adapters.redis_prices import PriceStore
from schemas.market import MarketTicksPublished

TICK_TO_REDIS = Histogram(
    "propstream_tick_to_redis_seconds",
    "Receive time of a batch's last tick until its price is in Redis",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)


class PricesHandler:
    def __init__(self, store: PriceStore) -> None:
        self.store = store

    async def __call__(self, events: Sequence[Applied]) -> None:
        batches = [a.payload for a in events if isinstance(a.payload, MarketTicksPublished)]
        if not batches:
            return
        await self.store.apply(batches)
        now_ns = time.time_ns()
        for batch in batches:
            TICK_TO_REDIS.observe(max(0, now_ns - batch.ticks[-1].received_ts_ns) / 1e9)
