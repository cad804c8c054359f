"""FastAPI dependencies shared by the core routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, Header, Request
from psycopg_pool import AsyncConnectionPool

from kernel.commands import CommandBus
from kernel.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_bus(request: Request) -> CommandBus:
    bus: CommandBus = request.app.state.bus
    return bus


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
BusDep = Annotated[CommandBus, Depends(get_bus)]
ConnDep = Annotated[psycopg.AsyncConnection, Depends(get_conn)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Repeat a POST with the same key to get the same outcome, once"),
]
