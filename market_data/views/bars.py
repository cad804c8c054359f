"""Queries over the `market_bars` read model."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from schemas.market import Resolution


class BarPublic(BaseModel):
    model_config = ConfigDict(frozen=True)

    instrument: str
    resolution: Resolution
    open_time_ns: int
    close_time_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int


_COLUMNS = ("instrument, resolution, open_time_ns, close_time_ns, open, high, low, close, "
            "volume, trades")


async def list_bars(conn: psycopg.AsyncConnection, *, instrument: str, resolution: str,
                    from_ns: int, to_ns: int, limit: int) -> list[BarPublic]:
    """Bars opening in [from_ns, to_ns), oldest first, at most `limit` (the newest ones)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS} FROM market_bars "
            "WHERE instrument = %s AND resolution = %s AND open_time_ns >= %s "
            "AND open_time_ns < %s ORDER BY open_time_ns DESC LIMIT %s) newest "
            "ORDER BY open_time_ns", (instrument, resolution, from_ns, to_ns, limit))
        rows = await cur.fetchall()
    return [BarPublic.model_validate(r) for r in rows]


async def last_open_before(conn: psycopg.AsyncConnection, *, instrument: str, resolution: str,
                           before_ns: int) -> int | None:
    """Open time of the newest bar before `before_ns` (UDF `nextTime`), or None."""
    cur = await conn.execute(
        "SELECT max(open_time_ns) FROM market_bars WHERE instrument = %s AND resolution = %s "
        "AND open_time_ns < %s", (instrument, resolution, before_ns))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])
