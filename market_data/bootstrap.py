"""Wires the market-data service's processes: simulator, bar processor, prices, projections."""

from __future__ import annotations

import redis.asyncio as redis
from fastapi import FastAPI

from kernel.projection import Projection
from kernel.settings import Settings
from kernel.stream import StreamProcessor
from market_data.adapters.bars_projection import BarsProjection
from market_data.adapters.redis_prices import PriceStore
from market_data.adapters.venues.client import ClientConfig
from market_data.domain.venues.binance import BinanceFeed
from market_data.processors.prices import PricesHandler
from market_data.services.bars import BarService
from market_data.services.simulator import SimulatorService
from market_data.services.venues import VenueIngestService
from schemas import default_registry

PROJECTIONS: dict[str, type[Projection]] = {"bars": BarsProjection}


def simulator(settings: Settings) -> SimulatorService:
    return SimulatorService(settings, seed=settings.simulator_seed)


def bar_processor(settings: Settings) -> BarService:
    return BarService(settings, max_batch=settings.projection_batch)


def prices_processor(settings: Settings) -> StreamProcessor:
    store = PriceStore(redis.Redis.from_url(settings.cache_url), namespace=settings.namespace)
    return StreamProcessor(settings, name="market-prices", topics=("market.ticks",),
                           registry=default_registry(), handle=PricesHandler(store))


def binance(settings: Settings) -> VenueIngestService:
    """Live Binance trades and book tops (needs the network; not part of `propstream up`)."""
    feed = BinanceFeed(settings.binance_symbols, streams=("trade", "bookTicker"))
    return VenueIngestService(settings, feed, ClientConfig(url=settings.binance_url))


def api(settings: Settings) -> FastAPI:
    """The market-data HTTP API; served on `settings.market_api_port`."""
    from market_data.entrypoints.http.app import create_app

    return create_app(settings)
