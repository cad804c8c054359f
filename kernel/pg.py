"""PostgreSQL helpers: connections bound to the namespace's schema."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from kernel.settings import Settings


async def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=autocommit)
    await ensure_schema(conn, settings)
    return conn


async def ensure_schema(conn: psycopg.AsyncConnection, settings: Settings) -> None:
    schema = settings.pg_schema
    if schema != "public":
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    if not conn.autocommit:
        await conn.commit()


def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    schema = settings.pg_schema

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    return AsyncConnectionPool(settings.database_url, min_size=min_size, max_size=max_size,
                               configure=configure, open=False)
