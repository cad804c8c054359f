"""Queries over the trading read models of one account: orders, fills, positions, equity.

Every list is newest first with keyset paging on (time, id); the caller has checked that the
account is the reader's (`account_owner`). Money, prices and quantities are Decimals.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from schemas.trading import Liquidity, OrderRole, OrderType, Side, TimeInForce

OrderStatus = Literal["working", "partially_filled", "filled", "cancelled", "expired",
                      "rejected"]
OPEN_STATUSES: tuple[OrderStatus, ...] = ("working", "partially_filled")
PositionStatus = Literal["open", "closed"]
Resolution = Literal["1m", "5m", "1h", "1d"]
RESOLUTION_S: dict[Resolution, int] = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}

EXAMPLE_ORDER: dict[str, Any] = {
    "order_id": "9b1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e",
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "client_order_id": "my-order-0001",
    "instrument": "BTC-USD", "side": "buy", "type": "limit", "time_in_force": "GTC",
    "role": "entry", "parent_id": None, "quantity": "0.5", "limit_price": "59000",
    "stop_price": None, "stop_loss": "58000", "take_profit": "62000",
    "filled_quantity": "0.2", "average_fill_price": "59000", "status": "partially_filled",
    "reason": None, "detail": None, "triggered": False,
    "created_at": "2026-01-01T12:00:00Z", "updated_at": "2026-01-01T12:00:05Z", "version": 7,
}
EXAMPLE_FILL: dict[str, Any] = {
    "fill_id": "0c1d2e3f-4a5b-5c6d-9e7f-8a9b0c1d2e3f",
    "order_id": "9b1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e",
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "instrument": "BTC-USD",
    "side": "buy", "price": "59000", "quantity": "0.2", "liquidity": "maker",
    "commission": "5.9", "leaves_quantity": "0.3", "filled_at": "2026-01-01T12:00:05Z",
}
EXAMPLE_POSITION: dict[str, Any] = {
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "instrument": "BTC-USD",
    "quantity": "0.2", "average_price": "59000", "cost": "11800", "realized": "0",
    "commissions": "5.9", "status": "open", "opened_at": "2026-01-01T12:00:05Z",
    "updated_at": "2026-01-01T12:00:05Z", "closed_at": None,
}
EXAMPLE_POINT: dict[str, Any] = {
    "bucket": "2026-01-01T12:00:00Z", "marked_at": "2026-01-01T12:00:59Z",
    "equity": "25012.4", "unrealized": "18.3", "margin_used": "1180",
    "margin_free": "23832.4",
}


class OrderPublic(BaseModel):
    """An order and what became of it. A refused place has only its client order id, the
    reason and null terms (the refusal does not repeat them)."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_ORDER]})

    order_id: uuid.UUID
    account_id: uuid.UUID
    client_order_id: str
    instrument: str | None
    side: Side | None
    type: OrderType | None
    time_in_force: TimeInForce | None
    role: OrderRole | None
    parent_id: uuid.UUID | None
    quantity: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    status: OrderStatus
    reason: str | None
    detail: str | None
    triggered: bool
    created_at: datetime
    updated_at: datetime
    version: int


class FillPublic(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_FILL]})

    fill_id: uuid.UUID
    order_id: uuid.UUID
    account_id: uuid.UUID
    instrument: str
    side: Side
    price: Decimal
    quantity: Decimal
    liquidity: Liquidity
    commission: Decimal
    leaves_quantity: Decimal
    filled_at: datetime


class PositionPublic(BaseModel):
    """A position netted per instrument; a closed one until the instrument trades again."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_POSITION]})

    account_id: uuid.UUID
    instrument: str
    quantity: Decimal
    average_price: Decimal
    cost: Decimal
    realized: Decimal
    commissions: Decimal
    status: PositionStatus
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class EquityPoint(BaseModel):
    """The last mark of a bucket (its start time) of the chosen resolution."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_POINT]})

    bucket: datetime
    marked_at: datetime
    equity: Decimal
    unrealized: Decimal
    margin_used: Decimal
    margin_free: Decimal


ORDER_COLUMNS = (
    "order_id, account_id, client_order_id, instrument, side, type, time_in_force, role, "
    "parent_id, quantity, limit_price, stop_price, stop_loss, take_profit, filled_quantity, "
    "average_fill_price, status, reason, detail, triggered, created_at, updated_at, version"
)
FILL_COLUMNS = (
    "fill_id, order_id, account_id, instrument, side, price, quantity, liquidity, commission, "
    "leaves_quantity, filled_at"
)
POSITION_COLUMNS = (
    "account_id, instrument, quantity, average_price, cost, realized, commissions, status, "
    "opened_at, updated_at, closed_at"
)
POINT_COLUMNS = "bucket, marked_at, equity, unrealized, margin_used, margin_free"


async def account_owner(conn: psycopg.AsyncConnection, account_id: uuid.UUID) -> uuid.UUID | None:
    """The user an account belongs to; None when there is no such account."""
    cur = await conn.execute("SELECT user_id FROM accounts WHERE account_id = %s", (account_id,))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def get_order(conn: psycopg.AsyncConnection, account_id: uuid.UUID,
                    order_id: uuid.UUID) -> OrderPublic | None:
    rows = await _rows(conn, sql.SQL(
        f"SELECT {ORDER_COLUMNS} FROM trading_orders WHERE account_id = %s AND order_id = %s"),
        [account_id, order_id])
    return OrderPublic.model_validate(rows[0]) if rows else None


async def list_orders(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                      statuses: tuple[str, ...] | None,
                      after: tuple[datetime, uuid.UUID] | None,
                      limit: int) -> list[OrderPublic]:
    rows = await _page(conn, table="trading_orders", columns=ORDER_COLUMNS,
                       order=("created_at", "order_id"), account_id=account_id,
                       statuses=statuses, after=after, limit=limit)
    return [OrderPublic.model_validate(r) for r in rows]


async def list_fills(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                     after: tuple[datetime, uuid.UUID] | None,
                     limit: int) -> list[FillPublic]:
    rows = await _page(conn, table="trading_fills", columns=FILL_COLUMNS,
                       order=("filled_at", "fill_id"), account_id=account_id, statuses=None,
                       after=after, limit=limit)
    return [FillPublic.model_validate(r) for r in rows]


async def list_positions(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                         statuses: tuple[str, ...] | None,
                         after: tuple[datetime, str] | None,
                         limit: int) -> list[PositionPublic]:
    """Positions, most recently changed first; the cursor's key is the instrument."""
    page_after = None if after is None else (after[0], f"{account_id}:{after[1]}")
    rows = await _page(conn, table="trading_positions", columns=POSITION_COLUMNS,
                       order=("updated_at", "position_key"), account_id=account_id,
                       statuses=statuses, after=page_after, limit=limit)
    return [PositionPublic.model_validate(r) for r in rows]


async def equity_curve(conn: psycopg.AsyncConnection, account_id: uuid.UUID, *,
                       since: datetime | None, until: datetime | None,
                       resolution: Resolution, before: datetime | None,
                       limit: int) -> list[EquityPoint]:
    """The last mark of each bucket of `resolution` in [since, until), newest bucket first,
    strictly before the bucket `before` (the cursor). Minute points are stored; coarser
    buckets take the last minute point inside them."""
    where = [sql.SQL("account_id = %s")]
    params: list[Any] = [account_id]
    if since is not None:
        where.append(sql.SQL("bucket >= %s"))
        params.append(since)
    if until is not None:
        where.append(sql.SQL("bucket < %s"))
        params.append(until)
    clause: sql.Composed = sql.SQL(" AND ").join(where)
    step = RESOLUTION_S[resolution]
    if step == 60:
        if before is not None:
            clause = clause + sql.SQL(" AND bucket < %s")
            params.append(before)
        query = sql.SQL("SELECT {} FROM account_equity WHERE {} ORDER BY bucket DESC "
                        "LIMIT %s").format(sql.SQL(POINT_COLUMNS), clause)
    else:
        # Epoch arithmetic rather than date_bin: CockroachDB has no date_bin.
        coarse = sql.SQL("to_timestamp(floor(extract(epoch FROM bucket) / {step}) * {step})"
                         ).format(step=sql.Literal(step))
        outer = sql.SQL("")
        if before is not None:
            outer = sql.SQL("WHERE bucket < %s")
        query = sql.SQL(
            "SELECT {cols} FROM (SELECT DISTINCT ON (c) c AS bucket, marked_at, equity, "
            "unrealized, margin_used, margin_free FROM (SELECT {coarse} AS c, marked_at, "
            "equity, unrealized, margin_used, margin_free FROM account_equity WHERE {clause}) "
            "AS points ORDER BY c DESC, marked_at DESC) AS buckets {outer} "
            "ORDER BY bucket DESC LIMIT %s").format(
                cols=sql.SQL(POINT_COLUMNS), coarse=coarse, clause=clause, outer=outer)
        if before is not None:
            params.append(before)
    params.append(limit)
    return [EquityPoint.model_validate(r) for r in await _rows(conn, query, params)]


async def _rows(conn: psycopg.AsyncConnection, query: sql.SQL | sql.Composed,
                params: list[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def _page(conn: psycopg.AsyncConnection, *, table: str, columns: str,
                order: tuple[str, str], account_id: uuid.UUID,
                statuses: tuple[str, ...] | None, after: tuple[datetime, object] | None,
                limit: int) -> list[dict[str, Any]]:
    """One account's rows newest first, strictly after the previous page's last (time, id)."""
    at, key = (sql.Identifier(c) for c in order)
    where: list[sql.Composable] = [sql.SQL("account_id = %s")]
    params: list[Any] = [account_id]
    if statuses is not None:
        where.append(sql.SQL("status = ANY(%s)"))
        params.append(list(statuses))
    if after is not None:
        where.append(sql.SQL("({}, {}) < (%s, %s)").format(at, key))
        params += list(after)
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} DESC, {} DESC LIMIT %s").format(
        sql.SQL(columns), sql.Identifier(table), sql.SQL(" AND ").join(where), at, key)
    params.append(limit)
    return await _rows(conn, query, params)
