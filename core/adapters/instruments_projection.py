"""The `instruments` read model: one row per registered instrument, folded from its events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import psycopg
from msgspec import UNSET

from kernel.projection import Applied, Event, RowCache, RowTable
from kernel.projection_small import RowChanges
from schemas.fastcodec import FastEvents, TradingHoursS, utc_timestamp
from schemas.instrument import (
    EVENTS,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
    InstrumentUpdated,
    TradingHours,
)

COLUMNS = (
    "symbol", "venue", "asset_class", "tick_size", "lot_size", "quote_currency",
    "trading_hours", "description", "status", "halt_reason", "version", "registered_at",
    "updated_at", "commission_per_unit", "commission_rate", "slippage_ticks", "outcome",
    "resolution_source", "resolved_at",
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
    updated_at TIMESTAMPTZ NOT NULL,
    commission_per_unit NUMERIC NOT NULL DEFAULT 0,
    commission_rate NUMERIC NOT NULL DEFAULT 0,
    slippage_ticks INTEGER NOT NULL DEFAULT 0,
    outcome SMALLINT,
    resolution_source TEXT,
    resolved_at TIMESTAMPTZ
)
"""
# A table made before the costs and resolutions (issue 11) gains their columns; its rows keep
# the defaults until a rebuild (`propstream replay instruments`) folds the events again.
ADD_COLUMNS = """
ALTER TABLE instruments
    ADD COLUMN IF NOT EXISTS commission_per_unit NUMERIC NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS commission_rate NUMERIC NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS slippage_ticks INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS outcome SMALLINT,
    ADD COLUMN IF NOT EXISTS resolution_source TEXT,
    ADD COLUMN IF NOT EXISTS resolved_at TIMESTAMPTZ
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
    commission_per_unit: Decimal = Decimal(0)
    commission_rate: Decimal = Decimal(0)
    slippage_ticks: int = 0
    outcome: int | None = None
    resolution_source: str | None = None
    resolved_at: datetime | None = None


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
                       "active", None, env.sequence, at, at, spec.commission_per_unit,
                       spec.commission_rate, spec.slippage_ticks)
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
        case InstrumentResolved() if row is not None:
            return row._replace(status="resolved", outcome=event.outcome,
                                resolution_source=event.source,
                                resolved_at=event.resolved_at.astimezone(UTC),
                                version=env.sequence,
                                updated_at=at)
        case InstrumentCommandRejected():
            return row if row is None else row._replace(version=env.sequence)
    return row


# The fast path: events decoded by msgspec straight into Structs (schemas.fastcodec), folded
# here without a pydantic model per event; anything else arrives as `Applied` and goes
# through `fold` above. Both must give the same rows: tests/unit/core/test_instruments_fast.py.
FAST = FastEvents(EVENTS)
_REGISTERED = FAST.kinds[InstrumentRegistered]
_UPDATED = FAST.kinds[InstrumentUpdated]
_HALTED = FAST.kinds[InstrumentHalted]
_RESUMED = FAST.kinds[InstrumentResumed]
_REJECTED = FAST.kinds[InstrumentCommandRejected]
_RESOLVED = FAST.kinds[InstrumentResolved]
_DEFAULT_HOURS = _hours(TradingHours())
# Column positions in a row under construction (a list).
_VENUE, _TICK, _LOT, _CURRENCY, _HOURS, _DESCRIPTION = 1, 3, 4, 5, 6, 7
_STATUS, _HALT_REASON, _VERSION, _REGISTERED_AT, _UPDATED_AT = 8, 9, 10, 11, 12
_PER_UNIT, _RATE, _SLIPPAGE, _OUTCOME, _SOURCE, _RESOLVED_AT = 13, 14, 15, 16, 17, 18


def _fast_hours(hours: TradingHoursS) -> str:
    """`_hours` of the model these Structs mirror: times as pydantic dumps them."""
    return orjson.dumps({"timezone": hours.timezone, "sessions": [
        {"days": list(s.days), "open": time.fromisoformat(s.open).isoformat(),
         "close": time.fromisoformat(s.close).isoformat()} for s in hours.sessions]},
        option=orjson.OPT_SORT_KEYS).decode()


def _key(event: Event) -> str:
    return event.envelope.aggregate_id if type(event) is Applied else event.aggregate_id  # type: ignore[union-attr]


def fold_batch(rows: Mapping[str, Row | None], events: Sequence[Event]) -> dict[str, Row]:
    """The rows a batch changes, each in its state after the batch. Each key's state is a
    list while the batch folds, its timestamps the events' checked text; one row is built
    per key at the end (timestamps parsed once per row, not once per event)."""
    state: dict[str, list[Any]] = {}
    for event in events:
        kind = type(event)
        if kind is Applied:  # the pydantic path: the per-event fold, on the row so far
            key = event.envelope.aggregate_id  # type: ignore[union-attr]
            cur = state.get(key)
            before = Row._make(cur) if cur is not None else rows.get(key)
            after = fold(before, event)  # type: ignore[arg-type]
            if after is not None and after is not before:
                state[key] = list(after)
            continue
        fast: Any = event
        key, seq = fast.aggregate_id, fast.sequence
        cur = state.get(key)
        if cur is None:
            row = rows.get(key)
            if row is not None:
                if seq <= row[_VERSION]:
                    continue
                cur = list(row)
        elif seq <= cur[_VERSION]:
            continue
        payload = fast.payload
        if kind is _REGISTERED:
            if cur is None:
                spec = payload.spec
                at = fast.occurred_at
                hours = spec.trading_hours
                state[key] = [
                    spec.symbol, spec.venue, spec.asset_class, Decimal(spec.tick_size),
                    Decimal(spec.lot_size), spec.quote_currency,
                    _DEFAULT_HOURS if hours is UNSET else _fast_hours(hours), spec.description,
                    "active", None, seq, at, at, Decimal(spec.commission_per_unit),
                    Decimal(spec.commission_rate), spec.slippage_ticks, None, None, None]
                continue
        elif cur is None:
            continue  # nothing to change before registration (a rejection included)
        elif kind is _HALTED:
            cur[_STATUS], cur[_HALT_REASON] = "halted", payload.reason
            cur[_UPDATED_AT] = fast.occurred_at
        elif kind is _RESUMED:
            cur[_STATUS], cur[_HALT_REASON] = "active", None
            cur[_UPDATED_AT] = fast.occurred_at
        elif kind is _UPDATED:
            c = payload.changes
            if c.venue is not UNSET and c.venue is not None:
                cur[_VENUE] = c.venue
            if c.tick_size is not UNSET and c.tick_size is not None:
                cur[_TICK] = Decimal(c.tick_size)
            if c.lot_size is not UNSET and c.lot_size is not None:
                cur[_LOT] = Decimal(c.lot_size)
            if c.quote_currency is not UNSET and c.quote_currency is not None:
                cur[_CURRENCY] = c.quote_currency
            if c.trading_hours is not UNSET and c.trading_hours is not None:
                cur[_HOURS] = _fast_hours(c.trading_hours)
            if c.description is not UNSET and c.description is not None:
                cur[_DESCRIPTION] = c.description
            if c.commission_per_unit is not UNSET and c.commission_per_unit is not None:
                cur[_PER_UNIT] = Decimal(c.commission_per_unit)
            if c.commission_rate is not UNSET and c.commission_rate is not None:
                cur[_RATE] = Decimal(c.commission_rate)
            if c.slippage_ticks is not UNSET and c.slippage_ticks is not None:
                cur[_SLIPPAGE] = c.slippage_ticks
            cur[_UPDATED_AT] = fast.occurred_at
        elif kind is _RESOLVED:
            cur[_STATUS], cur[_OUTCOME], cur[_SOURCE] = "resolved", payload.outcome, \
                payload.source
            cur[_RESOLVED_AT] = utc_timestamp(payload.resolved_at)  # rare: parsed at once
            cur[_UPDATED_AT] = fast.occurred_at
        cur[_VERSION] = seq  # a registration of a known key or a rejection: version only
        state[key] = cur
    out: dict[str, Row] = {}
    for key, values in state.items():
        registered, updated = values[_REGISTERED_AT], values[_UPDATED_AT]
        if type(updated) is str:
            values[_UPDATED_AT] = utc_timestamp(updated)
        if type(registered) is str:
            values[_REGISTERED_AT] = (values[_UPDATED_AT] if registered is updated
                                      else utc_timestamp(registered))
        out[key] = Row._make(values)
    return out


# trading_hours comes back as the text PostgreSQL stores (jsonb's canonical form): parsing
# and re-encoding it per row cost more than the rest of the fold.
# Saved with a binary COPY: measured in bench/RESULTS.md (issue 10, hot path).
TABLE = RowTable("instruments", COLUMNS, Row, as_text=frozenset({"trading_hours"}),
                 binary=True)


class InstrumentsProjection:
    name = "instruments"
    topics: tuple[str, ...] = ("instrument.events",)
    tables: tuple[str, ...] = ("instruments",)
    fast = FAST

    def __init__(self) -> None:
        self.cache: RowCache[Row] = RowCache(TABLE)

    def ddl(self) -> Sequence[str]:
        return (DDL, ADD_COLUMNS)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Event]) -> None:
        await TABLE.fold_batch(conn, events, key=_key, fold=fold_batch, cache=self.cache)

    async def changes(self, conn: psycopg.AsyncConnection,
                      events: Sequence[Event]) -> list[RowChanges]:
        """A small batch's rows, unwritten: the store writes them with its offsets in one
        statement (kernel.projection_small)."""
        return await TABLE.changes(conn, events, key=_key, fold=fold_batch, cache=self.cache)
