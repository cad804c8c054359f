"""Queries over the `instruments` read model."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from kernel.pg import page_by_key
from schemas.instrument import AssetClass, InstrumentStatus, ResolutionSource, TradingHours

COLUMNS = (
    "symbol, venue, asset_class, tick_size, lot_size, quote_currency, trading_hours, "
    "description, status, halt_reason, version, registered_at, updated_at, "
    "commission_per_unit, commission_rate, slippage_ticks, outcome, resolution_source, "
    "resolved_at"
)


class InstrumentPublic(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto", "tick_size": "0.01",
        "lot_size": "0.0001", "quote_currency": "USD",
        "trading_hours": {"timezone": "UTC", "sessions": []},
        "description": "Bitcoin / US dollar", "status": "halted", "halt_reason": "exchange outage",
        "version": 3, "registered_at": "2026-01-12T09:30:00Z",
        "updated_at": "2026-03-02T14:05:11Z", "commission_per_unit": "0",
        "commission_rate": "0.0005", "slippage_ticks": 1, "outcome": None,
        "resolution_source": None, "resolved_at": None,
    }]})

    symbol: str
    venue: str
    asset_class: AssetClass
    tick_size: Decimal
    lot_size: Decimal
    quote_currency: str
    trading_hours: TradingHours
    description: str
    status: InstrumentStatus
    halt_reason: str | None
    version: int
    registered_at: datetime
    updated_at: datetime
    commission_per_unit: Decimal = Field(description="commission per unit filled")
    commission_rate: Decimal = Field(description="commission as a fraction of the notional")
    slippage_ticks: int = Field(description="ticks a taker fill is worse than the touch")
    outcome: Literal[0, 1] | None = Field(
        description="a resolved prediction market's outcome (1: yes, 0: no); null until then")
    resolution_source: ResolutionSource | None = Field(description="who resolved it")
    resolved_at: datetime | None = Field(description="when it resolved")


async def get_instrument(conn: psycopg.AsyncConnection, symbol: str) -> InstrumentPublic | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM instruments WHERE symbol = %s", (symbol,))
        row = await cur.fetchone()
    return None if row is None else InstrumentPublic.model_validate(row)


async def list_instruments(
    conn: psycopg.AsyncConnection,
    *,
    after: str | None,
    limit: int,
    asset_class: str | None = None,
    status: str | None = None,
) -> list[InstrumentPublic]:
    """Instruments ordered by symbol, strictly after `after`, at most `limit` of them."""
    rows = await page_by_key(conn, table="instruments", columns=COLUMNS, key="symbol",
                             after=after, limit=limit,
                             equal={"asset_class": asset_class, "status": status})
    return [InstrumentPublic.model_validate(r) for r in rows]
