"""Read-only queries over `market_instruments`, for symbol info in the market-data API.

Market data's own read model of `instrument.events` writes this table
(`market_data.adapters.instruments_projection`); core's `instruments` is never read here.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from schemas.instrument import TradingHours

_COLUMNS = ("symbol, venue, asset_class, tick_size, lot_size, quote_currency, trading_hours, "
            "description, status")


class InstrumentInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: str
    venue: str
    asset_class: str
    tick_size: Decimal
    lot_size: Decimal
    quote_currency: str
    trading_hours: TradingHours
    description: str
    status: str


async def get_instrument(conn: psycopg.AsyncConnection, symbol: str) -> InstrumentInfo | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM market_instruments WHERE symbol = %s",
                          (symbol,))
        row = await cur.fetchone()
    return None if row is None else InstrumentInfo.model_validate(row)


async def get_instruments(conn: psycopg.AsyncConnection,
                          symbols: list[str]) -> dict[str, InstrumentInfo]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM market_instruments WHERE symbol = ANY(%s)",
                          (symbols,))
        rows = await cur.fetchall()
    return {r["symbol"]: InstrumentInfo.model_validate(r) for r in rows}


async def search_instruments(conn: psycopg.AsyncConnection, *, query: str,
                             asset_class: str | None, venue: str | None,
                             limit: int) -> list[InstrumentInfo]:
    """Instruments whose symbol or description contains `query` (case-insensitive),
    symbols starting with it first."""
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where = ["(symbol ILIKE %s OR description ILIKE %s)"]
    params: list[object] = [pattern, pattern]
    if asset_class:
        where.append("asset_class = %s")
        params.append(asset_class)
    if venue:
        where.append("venue = %s")
        params.append(venue)
    params += [query.upper() + "%", limit]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM market_instruments WHERE {' AND '.join(where)} "
            "ORDER BY (symbol LIKE %s) DESC, symbol LIMIT %s", params)
        rows = await cur.fetchall()
    return [InstrumentInfo.model_validate(r) for r in rows]


async def venues_and_classes(conn: psycopg.AsyncConnection) -> tuple[list[str], list[str]]:
    """Distinct venues and asset classes, sorted (the UDF config's filters)."""
    cur = await conn.execute(
        "SELECT array(SELECT DISTINCT venue FROM market_instruments ORDER BY 1), "
        "array(SELECT DISTINCT asset_class FROM market_instruments ORDER BY 1)")
    row = await cur.fetchone()
    return ([], []) if row is None else (list(row[0]), list(row[1]))
