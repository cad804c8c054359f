"""The core HTTP API: thin wiring of routers, conventions and lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.adapters.account_log import AccountLogReader, kafka_readers
from core.adapters.stripe_gateway import StripeGateway
from core.config import CoreSettings as Settings
from core.entrypoints.http import (
    assessments,
    auth,
    instruments,
    orders,
    platform,
    purchases,
    stripe_webhooks,
    tiers,
    trading_reads,
    users,
)
from core.identity import Identity
from kernel.api_key_store import PostgresApiKeyStore
from kernel.commands import CommandBus
from kernel.http import (
    health_router,
    install_conventions,
    make_cache,
    postgres_check,
    redis_check,
)
from kernel.pg import make_pool
from schemas import default_registry


def create_app(settings: Settings) -> FastAPI:
    bus = CommandBus(settings)
    pool = make_pool(settings)
    cache = make_cache(settings)
    stripe_gateway = StripeGateway(settings)
    identity = Identity(settings, cache, pool)
    account_history = AccountLogReader(
        kafka_readers(settings), topic=settings.topic("account.events"),
        registry=default_registry(),
        readers=settings.time_travel_readers, max_records=settings.time_travel_max_records)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True, timeout=30)
        await bus.start()
        await identity.start()
        try:
            yield
        finally:
            identity.stop()
            await account_history.stop()
            await bus.stop()
            await pool.close()
            await cache.aclose()
            await stripe_gateway.close()

    async def kafka_ready() -> None:
        if not bus.healthy:
            raise RuntimeError("the replies consumer is not running")
        assert bus.producer is not None
        await bus.producer.client.fetch_all_metadata()

    app = FastAPI(
        title="propstream core API",
        version="0.1.0",
        description="Commands are decided on Kafka by a single writer per aggregate; reads "
                    "come from PostgreSQL projections. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.registry = default_registry()
    app.state.pool = pool
    app.state.cache = cache
    app.state.stripe = stripe_gateway
    app.state.identity = identity
    app.state.account_history = account_history
    install_conventions(app, cors_origins=settings.cors_origins,
                        max_body=settings.max_body_bytes, expose_headers=("Location",),
                        redis=cache, settings=settings, api_keys=PostgresApiKeyStore(pool))
    app.include_router(health_router({"kafka": kafka_ready, "postgres": postgres_check(pool),
                                      "redis": redis_check(cache)},
                                     serve_metrics=settings.metrics_port is None))
    app.include_router(instruments.router)
    app.include_router(instruments.commands_router)
    app.include_router(tiers.router)
    app.include_router(purchases.router)
    app.include_router(purchases.grants_router)
    app.include_router(stripe_webhooks.router)
    app.include_router(assessments.assessments_router)
    app.include_router(assessments.accounts_router)
    app.include_router(orders.router)
    app.include_router(platform.router)
    app.include_router(trading_reads.router)
    app.include_router(auth.router)
    app.include_router(users.me_router)
    app.include_router(users.users_router)
    return app
