"""FastAPI dependencies every service's app has: its Settings and a pooled connection.

An app built with these keeps `settings` and `pool` on `app.state`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from kernel.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        yield conn


async def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


SettingsDep = Annotated[Settings, Depends(get_settings)]
# A connection held for the whole request: for routes that only read.
ConnDep = Annotated[psycopg.AsyncConnection, Depends(get_conn)]
# For routes that wait (a command's decision, argon2, a read-your-write): they borrow a
# connection per query. Held through the wait, ten halts waiting on the decider took the
# pool's ten connections and every later request queued behind them (the round trip's p99
# went to seconds at 100 commands/s: bench.command_round_trip).
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
