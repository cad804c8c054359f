"""FastAPI dependencies shared by the market-data routers."""

from __future__ import annotations

from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Path, Request

from kernel.auth import public
from kernel.ratelimit import settings_limited
from market_data.adapters.redis_levels import LevelsStore
from market_data.adapters.redis_prices import PriceStore
from schemas.instrument import SYMBOL_RE

# Market data is public: traders' credentials carry no `market:read` scope, the chart's
# datafeed sends none, and the prices are of simulated and public venues.
MARKET_DATA = public("market data of simulated and public venues: the chart and the "
                     "landing page read it without credentials")


async def get_prices(request: Request) -> PriceStore:
    prices: PriceStore = request.app.state.prices
    return prices


async def get_levels(request: Request) -> LevelsStore:
    levels: LevelsStore = request.app.state.levels
    return levels


async def get_producer(request: Request) -> AIOKafkaProducer:
    producer: AIOKafkaProducer = request.app.state.producer
    return producer


PricesDep = Annotated[PriceStore, Depends(get_prices)]
LevelsDep = Annotated[LevelsStore, Depends(get_levels)]
ProducerDep = Annotated[AIOKafkaProducer, Depends(get_producer)]
SymbolPath = Annotated[str, Path(min_length=1, max_length=40, pattern=SYMBOL_RE.pattern,
                                  examples=["BTC-USD"])]


async def limit_reads(request: Request, name: str = "market-reads", *,
                      rate: str = "read_rate_per_s", burst: str = "read_burst") -> None:
    """Take a token of a read bucket (per caller and IP; rate and burst from the settings).

    Awaited in the route body, so the routes' declarations stay as they are.
    """
    await settings_limited(name, rate, burst)(request)
