"""FastAPI dependencies shared by the market-data routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from aiokafka import AIOKafkaProducer
from fastapi import Depends, Path, Request
from psycopg_pool import AsyncConnectionPool

from kernel.settings import Settings
from market_data.adapters.redis_levels import LevelsStore
from market_data.adapters.redis_prices import PriceStore
from schemas.instrument import SYMBOL_RE


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


def get_prices(request: Request) -> PriceStore:
    prices: PriceStore = request.app.state.prices
    return prices


def get_levels(request: Request) -> LevelsStore:
    levels: LevelsStore = request.app.state.levels
    return levels


def get_producer(request: Request) -> AIOKafkaProducer:
    producer: AIOKafkaProducer = request.app.state.producer
    return producer


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConnDep = Annotated[psycopg.AsyncConnection, Depends(get_conn)]
PricesDep = Annotated[PriceStore, Depends(get_prices)]
LevelsDep = Annotated[LevelsStore, Depends(get_levels)]
ProducerDep = Annotated[AIOKafkaProducer, Depends(get_producer)]
SymbolPath = Annotated[str, Path(min_length=1, max_length=40, pattern=SYMBOL_RE.pattern)]
