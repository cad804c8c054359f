"""Builds the market-data service's processes (API, simulator, bar processor, prices, venues)
for its manifest (`market_data/manifest.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as redis

from kernel.stream import StreamProcessor
from market_data.adapters.redis_prices import PriceStore
from market_data.config import MarketSettings as Settings
from market_data.exceptions import MarketDataError
from market_data.processors.prices import PricesHandler
from market_data.services.bars import BarService
from market_data.services.simulator import SimulatorService
from schemas import default_registry

if TYPE_CHECKING:
    from fastapi import FastAPI

    from market_data.services.venues import VenueIngestService

# The API (FastAPI) and the venue clients (websockets, RSA signing) are imported by the
# factories that use them: the simulator, bars and prices processes never do.


def simulator(settings: Settings) -> SimulatorService:
    return SimulatorService(settings, seed=settings.simulator_seed)


def bars(settings: Settings) -> BarService:
    return BarService(settings, max_batch=settings.projection_batch)


def prices(settings: Settings) -> StreamProcessor:
    store = PriceStore(redis.Redis.from_url(settings.cache_url), namespace=settings.namespace)
    return StreamProcessor(settings, name="market-prices", topics=("market.ticks",),
                           registry=default_registry(), handle=PricesHandler(store))


def binance(settings: Settings) -> VenueIngestService:
    """Live Binance trades and book tops (needs the network; not part of `propstream up`)."""
    from market_data.adapters.venues.client import ClientConfig
    from market_data.domain.venues.binance import BinanceFeed
    from market_data.services.venues import VenueIngestService

    feed = BinanceFeed(settings.binance_symbols, streams=("trade", "bookTicker"))
    return VenueIngestService(settings, feed, ClientConfig(url=settings.binance_url))


def polymarket(settings: Settings) -> VenueIngestService:
    """Live Polymarket market channel for PROPSTREAM_POLYMARKET_ASSETS."""
    if not settings.polymarket_assets:
        raise MarketDataError("set PROPSTREAM_POLYMARKET_ASSETS (JSON: asset id -> instrument)")
    from market_data.adapters.venues.client import ClientConfig
    from market_data.domain.venues.polymarket import PolymarketFeed
    from market_data.services.venues import VenueIngestService

    feed = PolymarketFeed(settings.polymarket_assets)
    return VenueIngestService(settings, feed, ClientConfig(url=settings.polymarket_url))


def kalshi(settings: Settings) -> VenueIngestService:
    """Live Kalshi order books and trades; the handshake is signed with the account's key."""
    if not settings.kalshi_markets:
        raise MarketDataError("set PROPSTREAM_KALSHI_MARKETS (JSON: ticker -> instrument)")
    if settings.kalshi_key_id is None or settings.kalshi_private_key_file is None:
        raise MarketDataError("Kalshi's order-book channel needs PROPSTREAM_KALSHI_KEY_ID and "
                              "PROPSTREAM_KALSHI_PRIVATE_KEY_FILE")
    from market_data.adapters.venues.client import ClientConfig
    from market_data.adapters.venues.kalshi_auth import KalshiSigner
    from market_data.domain.venues.kalshi import KalshiFeed
    from market_data.services.venues import VenueIngestService

    signer = KalshiSigner(settings.kalshi_key_id, settings.kalshi_private_key_file.read_bytes(),
                          url=settings.kalshi_url)
    service = VenueIngestService(settings, KalshiFeed(settings.kalshi_markets, lifecycle=True),
                                 ClientConfig(url=settings.kalshi_url))
    service.headers = signer.headers
    return service


def api(settings: Settings) -> FastAPI:
    """The market-data HTTP API; served on `settings.market_api_port`."""
    from market_data.entrypoints.http.app import create_app

    return create_app(settings)
