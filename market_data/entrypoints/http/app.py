"""The market-data HTTP API: thin wiring of routers, conventions and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from kernel.http import (
    health_router,
    install_conventions,
    make_cache,
    postgres_check,
    redis_check,
)
from kernel.kafka import make_producer
from kernel.pg import make_pool
from market_data.adapters.redis_levels import LevelsStore
from market_data.adapters.redis_prices import PriceStore
from market_data.config import MarketSettings as Settings
from market_data.entrypoints.http import bars, prices, simulator, udf


def create_app(settings: Settings) -> FastAPI:
    pool = make_pool(settings)
    cache = make_cache(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        # aiokafka binds a producer to the running loop, so it is made here, not above.
        producer = make_producer(settings, client_id="propstream-market-api", linger_ms=0)
        await producer.start()
        app.state.producer = producer
        try:
            yield
        finally:
            app.state.producer = None
            await producer.stop()
            await pool.close()
            await cache.aclose()

    async def kafka_ready() -> None:
        producer: AIOKafkaProducer | None = app.state.producer
        if producer is None:
            raise RuntimeError("the Kafka producer is not started")
        await producer.client.fetch_all_metadata()

    app = FastAPI(
        title="propstream market-data API",
        version="0.1.0",
        description="Live prices and levels from Redis, closed bars from PostgreSQL, a "
                    "TradingView UDF datafeed under /udf and simulator control. Errors are "
                    "RFC 9457 problem+json, except under /udf, which answers in UDF's shape.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.cache = cache
    app.state.producer = None
    app.state.prices = PriceStore(cache, namespace=settings.namespace)
    app.state.levels = LevelsStore(cache, namespace=settings.namespace)
    install_conventions(app, cors_origins=settings.cors_origins,
                        max_body=settings.max_body_bytes, expose_headers=("ETag",),
                        redis=cache, settings=settings)
    app.include_router(health_router({"kafka": kafka_ready, "postgres": postgres_check(pool),
                                      "redis": redis_check(cache)},
                                     serve_metrics=settings.metrics_port is None))
    app.include_router(prices.router)
    app.include_router(bars.router)
    app.include_router(simulator.router)
    app.include_router(udf.router)
    return app
