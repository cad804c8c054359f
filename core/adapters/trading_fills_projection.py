"""The `trading_fills` read model: one row per fill of an account's order
(`trading.order-filled`), never changed once written."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.adapters.keyed_rows import KeyedProjection, at_ns
from kernel.projection import Applied, RowTable
from schemas.trading import OrderFilled

COLUMNS = (
    "fill_id", "order_id", "account_id", "instrument", "side", "price", "quantity",
    "liquidity", "commission", "leaves_quantity", "filled_at", "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS trading_fills (
        fill_id UUID PRIMARY KEY,
        order_id UUID NOT NULL,
        account_id UUID NOT NULL,
        instrument TEXT NOT NULL,
        side TEXT NOT NULL,
        price NUMERIC NOT NULL,
        quantity NUMERIC NOT NULL,
        liquidity TEXT NOT NULL,
        commission NUMERIC NOT NULL,
        leaves_quantity NUMERIC NOT NULL,
        filled_at TIMESTAMPTZ NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS trading_fills_by_account ON trading_fills "
    "(account_id, filled_at DESC, fill_id DESC)",
)


class Row(NamedTuple):
    fill_id: str
    order_id: str
    account_id: str
    instrument: str
    side: str
    price: Decimal
    quantity: Decimal
    liquidity: str
    commission: Decimal
    leaves_quantity: Decimal
    filled_at: datetime
    version: int


def key(applied: Applied) -> str | None:
    event = applied.payload
    return str(event.fill_id) if isinstance(event, OrderFilled) else None


def fold(row: Row | None, applied: Applied) -> Row | None:
    """A fill's row, written once: a fill id seen again (a replay) changes nothing."""
    env, event = applied.envelope, applied.payload
    if row is not None or not isinstance(event, OrderFilled):
        return row
    return Row(str(event.fill_id), str(event.order_id), env.aggregate_id, event.instrument,
               event.side, event.price, event.quantity, event.liquidity, event.commission,
               event.leaves_quantity, at_ns(event.at_ns), env.sequence)


TABLE = RowTable("trading_fills", COLUMNS, Row, key_type="uuid")


class TradingFillsProjection(KeyedProjection):
    name = "trading-fills"
    table = TABLE
    tables = ("trading_fills",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)
