"""The `instruments` read model: one row per registered instrument, folded from its events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import psycopg

from kernel.projection import Applied, RowTable
from schemas.instrument import (
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResumed,
    InstrumentUpdated,
)

COLUMNS = (
    "symbol", "venue", "asset_class", "tick_size", "lot_size", "quote_currency",
    "trading_hours", "description", "status", "halt_reason", "version", "registered_at",
    "updated_at",
)

DDL = """
CREATE TABLE IF NOT EXISTS instruments (
    symbol TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    asset_class TEXT NOT NULL,
    tick_size NUMERIC NOT NULL,
    lot_size NUMERIC NOT NULL,
    quote_currency TEXT NOT NULL,
    trading_hours JSONB NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    halt_reason TEXT,
    version BIGINT NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)
"""


class Row(NamedTuple):
    """One row of the read model; a named tuple because `_replace` is the fold's hot path."""

    symbol: str
    venue: str
    asset_class: str
    tick_size: Decimal
    lot_size: Decimal
    quote_currency: str
    trading_hours: str
    description: str
    status: str
    halt_reason: str | None
    version: int
    registered_at: datetime
    updated_at: datetime


def _hours(value: Any) -> str:
    return orjson.dumps(value.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    at = env.occurred_at
    match event:
        case InstrumentRegistered(spec=spec):
            if row is not None:
                return row._replace(version=env.sequence)
            return Row(spec.symbol, spec.venue, spec.asset_class, spec.tick_size, spec.lot_size,
                       spec.quote_currency, _hours(spec.trading_hours), spec.description,
                       "active", None, env.sequence, at, at)
        case InstrumentUpdated(changes=changes) if row is not None:
            update: dict[str, Any] = {}
            for name in changes.model_fields_set:
                value = getattr(changes, name)
                if value is None:
                    continue
                update[name] = _hours(value) if name == "trading_hours" else value
            return row._replace(**update, version=env.sequence, updated_at=at)
        case InstrumentHalted(reason=reason) if row is not None:
            return row._replace(status="halted", halt_reason=reason, version=env.sequence,
                           updated_at=at)
        case InstrumentResumed() if row is not None:
            return row._replace(status="active", halt_reason=None, version=env.sequence,
                           updated_at=at)
        case InstrumentCommandRejected():
            return row if row is None else row._replace(version=env.sequence)
    return row


# trading_hours comes back as the text PostgreSQL stores (jsonb's canonical form): parsing
# and re-encoding it per row cost more than the rest of the fold.
# Saved with a binary COPY: measured in bench/RESULTS.md (issue 10, hot path).
TABLE = RowTable("instruments", COLUMNS, Row, as_text=frozenset({"trading_hours"}),
                 binary=True)


class InstrumentsProjection:
    name = "instruments"
    topics: tuple[str, ...] = ("instrument.events",)
    tables: tuple[str, ...] = ("instruments",)

    def ddl(self) -> Sequence[str]:
        return (DDL,)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        await TABLE.fold(conn, events, fold)
