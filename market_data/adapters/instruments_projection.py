"""Market data's own `market_instruments` read model, folded from `instrument.events`.

Core decides instruments; market data keeps the columns its API and UDF read in a table it
owns, so neither service reads the other's tables (they meet on the topic only).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import psycopg

from kernel.projection import Applied, RowTable
from kernel.projection_small import RowChanges
from schemas.instrument import (
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
    InstrumentUpdated,
)

TABLE_NAME = "market_instruments"
COLUMNS = ("symbol", "venue", "asset_class", "tick_size", "lot_size", "quote_currency",
           "trading_hours", "description", "status", "version")

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE_NAME} (
    symbol TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    asset_class TEXT NOT NULL,
    tick_size NUMERIC NOT NULL,
    lot_size NUMERIC NOT NULL,
    quote_currency TEXT NOT NULL,
    trading_hours JSONB NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL
)
"""


class Row(NamedTuple):
    symbol: str
    venue: str
    asset_class: str
    tick_size: Decimal
    lot_size: Decimal
    quote_currency: str
    trading_hours: str  # the JSON text stored
    description: str
    status: str
    version: int


def _hours(value: Any) -> str:
    return orjson.dumps(value.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


_FIELDS = frozenset(Row._fields)


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped, and
    events of an instrument never registered change nothing."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    match event:
        case InstrumentRegistered(spec=spec) if row is None:
            return Row(spec.symbol, spec.venue, spec.asset_class, spec.tick_size, spec.lot_size,
                       spec.quote_currency, _hours(spec.trading_hours), spec.description,
                       "active", env.sequence)
        case InstrumentUpdated(changes=changes) if row is not None:
            update: dict[str, Any] = {}
            for name in changes.model_fields_set & _FIELDS:
                value = getattr(changes, name)
                if value is not None:
                    update[name] = _hours(value) if name == "trading_hours" else value
            return row._replace(**update, version=env.sequence)
        case InstrumentHalted() if row is not None:
            return row._replace(status="halted", version=env.sequence)
        case InstrumentResumed() if row is not None:
            return row._replace(status="active", version=env.sequence)
        case InstrumentResolved() if row is not None:
            return row._replace(status="resolved", version=env.sequence)
    return row if row is None else row._replace(version=env.sequence)


TABLE = RowTable(TABLE_NAME, COLUMNS, Row, as_text=frozenset({"trading_hours"}))


class MarketInstrumentsProjection:
    name = "market-instruments"
    topics: tuple[str, ...] = ("instrument.events",)
    tables: tuple[str, ...] = (TABLE_NAME,)

    def ddl(self) -> Sequence[str]:
        return (DDL,)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        await TABLE.fold(conn, events, fold)

    async def changes(self, conn: psycopg.AsyncConnection,
                      events: Sequence[Applied]) -> list[RowChanges]:
        """A small batch's rows, unwritten: the store writes them with its offsets in one
        statement (kernel.projection_small)."""
        return await TABLE.step_changes(conn, events, fold)
