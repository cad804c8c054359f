"""The `trading_orders` read model: one row per order of a virtual account.

A row appears with `trading.order-accepted` (status `working`) or with a refused place
(`rejected`, with the reason; the refusal names only the client order id, so the order id is
derived from it as the engine derives it, and the order's terms are unknown: null). A
refused place never touches a row that already holds an accepted order: a duplicate client
order id derives the same order id as the order it repeats. A place accepted after an
earlier refusal of the same client order id replaces the refused row. Refused cancels and
modifies change nothing (the order is as it was).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.adapters.keyed_rows import KeyedProjection
from kernel.projection import Applied, RowTable
from schemas.trading import (
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderRejected,
    OrderTriggered,
    order_id_for,
)

COLUMNS = (
    "order_id", "account_id", "client_order_id", "instrument", "side", "type",
    "time_in_force", "role", "parent_id", "quantity", "limit_price", "stop_price",
    "stop_loss", "take_profit", "filled_quantity", "filled_notional", "average_fill_price",
    "status", "reason", "detail", "triggered", "created_at", "updated_at", "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS trading_orders (
        order_id UUID PRIMARY KEY,
        account_id UUID NOT NULL,
        client_order_id TEXT NOT NULL,
        instrument TEXT,
        side TEXT,
        type TEXT,
        time_in_force TEXT,
        role TEXT,
        parent_id UUID,
        quantity NUMERIC,
        limit_price NUMERIC,
        stop_price NUMERIC,
        stop_loss NUMERIC,
        take_profit NUMERIC,
        filled_quantity NUMERIC NOT NULL,
        filled_notional NUMERIC NOT NULL,
        average_fill_price NUMERIC,
        status TEXT NOT NULL,
        reason TEXT,
        detail TEXT,
        triggered BOOLEAN NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    # An account's orders newest first, and its open ones (working, partially filled).
    "CREATE INDEX IF NOT EXISTS trading_orders_by_account ON trading_orders "
    "(account_id, created_at DESC, order_id DESC)",
    "CREATE INDEX IF NOT EXISTS trading_orders_by_status ON trading_orders "
    "(account_id, status, created_at DESC, order_id DESC)",
)

OPEN_STATUSES = ("working", "partially_filled")
ZERO = Decimal(0)


class Row(NamedTuple):
    order_id: str
    account_id: str
    client_order_id: str
    instrument: str | None
    side: str | None
    type: str | None
    time_in_force: str | None
    role: str | None
    parent_id: str | None
    quantity: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    filled_quantity: Decimal
    filled_notional: Decimal  # sum of price x quantity over the fills: the average's numerator
    average_fill_price: Decimal | None
    status: str
    reason: str | None
    detail: str | None
    triggered: bool
    created_at: datetime
    updated_at: datetime
    version: int


def key(applied: Applied) -> str | None:
    """The order an event is about; None for events that are not about one."""
    event = applied.payload
    match event:
        case OrderAccepted() | OrderFilled() | OrderCancelled() | OrderExpired() \
                | OrderModified() | OrderTriggered():
            return str(event.order_id)
        case OrderRejected(action="place"):
            if event.order_id is not None:
                return str(event.order_id)
            if event.client_order_id is not None:
                return str(order_id_for(applied.envelope.aggregate_id, event.client_order_id))
    return None


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    at, seq = env.occurred_at, env.sequence
    match event:
        case OrderAccepted(order=o) if row is None or row.status == "rejected":
            return Row(str(o.order_id), env.aggregate_id, o.client_order_id, o.instrument,
                       o.side, o.type, o.time_in_force, o.role,
                       None if o.parent_id is None else str(o.parent_id), o.quantity,
                       o.limit_price, o.stop_price, o.stop_loss, o.take_profit, ZERO, ZERO,
                       None, "working", None, None, False, at, at, seq)
        case OrderRejected() if row is None or row.status == "rejected":
            return Row(key(applied) or "", env.aggregate_id, event.client_order_id or "",
                       None, None, None, None, None, None, None, None, None, None, None, ZERO,
                       ZERO, None, "rejected", event.reason, event.detail or None, False, at,
                       at, seq)
        case OrderFilled() if row is not None:
            filled = row.filled_quantity + event.quantity
            notional = row.filled_notional + event.price * event.quantity
            return row._replace(
                filled_quantity=filled, filled_notional=notional,
                average_fill_price=notional / filled,
                status="filled" if not event.leaves_quantity else "partially_filled",
                updated_at=at, version=seq)
        case OrderCancelled(reason=reason) if row is not None:
            return row._replace(status="cancelled", reason=reason, updated_at=at, version=seq)
        case OrderExpired() if row is not None:
            return row._replace(status="expired", reason="day-ended", updated_at=at,
                                version=seq)
        case OrderModified() if row is not None:
            return row._replace(quantity=event.quantity, limit_price=event.limit_price,
                                stop_price=event.stop_price, updated_at=at, version=seq)
        case OrderTriggered() if row is not None:
            return row._replace(triggered=True, updated_at=at, version=seq)
    return row


TABLE = RowTable("trading_orders", COLUMNS, Row, key_type="uuid")


class TradingOrdersProjection(KeyedProjection):
    name = "trading-orders"
    table = TABLE
    tables = ("trading_orders",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)
