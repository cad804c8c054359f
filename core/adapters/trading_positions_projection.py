"""The `trading_positions` read model: one row per (account, instrument), the position as the
last `position.opened|changed|closed` left it (each event carries the whole position).

A position that closes keeps its row (`closed`, quantity 0, its realized P&L) until the
instrument is traded again, when `position.opened` starts the row afresh. The table's key
is the text `<account id>:<instrument>` (`position_key`), so that the kernel's one-column
`RowTable` holds it; `account_id` and `instrument` are columns of their own for the reads.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.adapters.keyed_rows import KeyedProjection
from kernel.projection import Applied, RowTable
from schemas.trading import PositionChanged, PositionClosed, PositionOpened

COLUMNS = (
    "position_key", "account_id", "instrument", "quantity", "average_price", "cost",
    "realized", "commissions", "status", "opened_at", "updated_at", "closed_at", "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS trading_positions (
        position_key TEXT PRIMARY KEY,
        account_id UUID NOT NULL,
        instrument TEXT NOT NULL,
        quantity NUMERIC NOT NULL,
        average_price NUMERIC NOT NULL,
        cost NUMERIC NOT NULL,
        realized NUMERIC NOT NULL,
        commissions NUMERIC NOT NULL,
        status TEXT NOT NULL,
        opened_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        closed_at TIMESTAMPTZ,
        version BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS trading_positions_by_account ON trading_positions "
    "(account_id, status, updated_at DESC, position_key DESC)",
)


class Row(NamedTuple):
    position_key: str
    account_id: str
    instrument: str
    quantity: Decimal
    average_price: Decimal
    cost: Decimal
    realized: Decimal
    commissions: Decimal
    status: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    version: int


def position_key(account_id: str, instrument: str) -> str:
    return f"{account_id}:{instrument}"


def key(applied: Applied) -> str | None:
    event = applied.payload
    if isinstance(event, PositionOpened | PositionChanged | PositionClosed):
        return position_key(applied.envelope.aggregate_id, event.instrument)
    return None


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    at, seq = env.occurred_at, env.sequence
    match event:
        case PositionOpened():
            return Row(position_key(env.aggregate_id, event.instrument), env.aggregate_id,
                       event.instrument, event.quantity, event.average_price, event.cost,
                       event.realized, event.commissions, "open", at, at, None, seq)
        case PositionChanged() if row is not None:
            return row._replace(quantity=event.quantity, average_price=event.average_price,
                                cost=event.cost, realized=event.realized,
                                commissions=event.commissions, status="open", updated_at=at,
                                closed_at=None, version=seq)
        case PositionClosed() if row is not None:
            return row._replace(quantity=event.quantity, average_price=event.average_price,
                                cost=event.cost, realized=event.realized,
                                commissions=event.commissions, status="closed",
                                updated_at=at, closed_at=at, version=seq)
    return row


TABLE = RowTable("trading_positions", COLUMNS, Row)


class TradingPositionsProjection(KeyedProjection):
    name = "trading-positions"
    table = TABLE
    tables = ("trading_positions",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)
