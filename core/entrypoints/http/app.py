"""The core HTTP API: thin wiring of routers, conventions and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from core.entrypoints.http import instruments
from kernel.commands import CommandBus
from kernel.http import RequestContextMiddleware, health_router, install_problem_handlers
from kernel.pg import make_pool
from kernel.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    bus = CommandBus(settings)
    pool = make_pool(settings)
    cache = redis.Redis.from_url(settings.cache_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()
            await pool.close()
            await cache.aclose()

    async def kafka_ready() -> None:
        if not bus.healthy:
            raise RuntimeError("the replies consumer is not running")
        assert bus.producer is not None
        await bus.producer.client.fetch_all_metadata()

    async def postgres_ready() -> None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")

    async def redis_ready() -> None:
        await cache.ping()

    app = FastAPI(
        title="propstream core API",
        version="0.1.0",
        description="Commands are decided on Kafka by a single writer per aggregate; reads "
                    "come from PostgreSQL projections. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.pool = pool
    app.state.cache = cache
    install_problem_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origins=["http://localhost:5173"],
                       allow_methods=["*"], allow_headers=["*"],
                       expose_headers=["Location", "X-Request-ID"])
    app.add_middleware(RequestContextMiddleware, max_body=settings.max_body_bytes)
    app.include_router(health_router({"kafka": kafka_ready, "postgres": postgres_ready,
                                      "redis": redis_ready}))
    app.include_router(instruments.router)
    app.include_router(instruments.commands_router)
    return app
