"""Time travel reads: where an account's history stands (`account_history`,
`account_snapshots`), and the public shape of an account at an instant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from pydantic import BaseModel, ConfigDict, Field

from core.domain.trading import TradingAccount, load
from schemas.trading import OrderType, Side, TimeInForce

EXAMPLE_AS_OF: dict[str, Any] = {
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "as_of": "2026-01-02T09:30:00Z",
    "version": 12, "last_event_at": "2026-01-02T09:29:58.120Z", "status": "open",
    "halted": False, "currency": "USD", "starting_balance": "25000", "balance": "24987.5",
    "realized": "-10", "commissions": "2.5",
    "positions": [{"instrument": "BTC-USD", "quantity": "0.5", "average_price": "100.02",
                   "realized": "0", "commissions": "0.5"}],
    "open_orders": [{"order_id": "0d9e3c5a-1b2f-5a4c-8e7d-6f5a4b3c2d1e",
                     "client_order_id": "dip-1", "instrument": "BTC-USD", "side": "buy",
                     "type": "stop-limit", "quantity": "1", "filled": "0",
                     "limit_price": "99", "stop_price": "99.5", "time_in_force": "GTC",
                     "triggered": False}],
}


class PositionAt(BaseModel):
    instrument: str
    quantity: Decimal = Field(description="signed: long above zero")
    average_price: Decimal
    realized: Decimal = Field(description="since the position opened")
    commissions: Decimal = Field(description="since the position opened")


class OpenOrderAt(BaseModel):
    order_id: uuid.UUID
    client_order_id: str
    instrument: str
    side: Side
    type: OrderType
    quantity: Decimal
    filled: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    triggered: bool


class AccountAsOf(BaseModel):
    """A virtual account as it was at `as_of`, rebuilt from its events on the log."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_AS_OF]})

    account_id: uuid.UUID
    as_of: datetime
    version: int = Field(description="the sequence of the account's last event folded")
    last_event_at: datetime | None = Field(description="the newest event time folded")
    status: str
    halted: bool
    currency: str | None
    starting_balance: Decimal
    balance: Decimal
    realized: Decimal = Field(description="realized P&L over the account's life")
    commissions: Decimal = Field(description="commissions over the account's life")
    positions: list[PositionAt]
    open_orders: list[OpenOrderAt] = Field(description="in acceptance order per instrument")


def account_as_of(state: TradingAccount, *, version: int, last_event_at: datetime | None,
                  as_of: datetime) -> AccountAsOf:
    return AccountAsOf(
        account_id=uuid.UUID(state.account_id), as_of=as_of, version=version,
        last_event_at=last_event_at, status=state.status, halted=state.halted,
        currency=state.currency, starting_balance=state.starting_balance,
        balance=state.balance, realized=state.realized, commissions=state.commissions,
        positions=[PositionAt(instrument=p.instrument, quantity=p.quantity,
                              average_price=p.average_price, realized=p.realized,
                              commissions=p.commissions)
                   for _, p in sorted(state.positions.items())],
        open_orders=[OpenOrderAt(order_id=w.order.order_id,
                                 client_order_id=w.order.client_order_id,
                                 instrument=w.order.instrument, side=w.order.side,
                                 type=w.order.type, quantity=w.quantity, filled=w.filled,
                                 limit_price=w.limit_price, stop_price=w.stop_price,
                                 time_in_force=w.order.time_in_force, triggered=w.triggered)
                     for _, book in sorted(state.by_instrument.items())
                     for w in book.values()])


@dataclass(frozen=True)
class HistoryPoint:
    """What a time travel to one instant starts from, and how far its tail may reach.

    `snapshot_*` is the newest snapshot at or before the instant (None: the account's first
    event is after it). The tail runs from `snapshot_offset` to `next_prev_offset` (the offset
    after the last event before the next snapshot) when there is a next snapshot, else to
    `events_offset` (after the account's last event the projection has seen) and then on
    from `projection_offset` to the end of the log, which the projection has not read yet."""

    partition: int
    version: int
    events_offset: int
    at: datetime
    snapshot_version: int | None
    snapshot_offset: int | None
    snapshot_at: datetime | None
    snapshot: TradingAccount | None
    next_prev_offset: int | None
    projection_offset: int


async def history_point(conn: psycopg.AsyncConnection, account_id: uuid.UUID, as_of: datetime,
                        *, events_topic: str) -> HistoryPoint | None:
    """One indexed query; None when the projection has no history of the account yet."""
    cur = await conn.execute(
        """
        SELECT h.partition, h.version, h.events_offset, h.at,
               s.version, s.events_offset, s.at, s.state::text,
               (SELECT n.prev_offset FROM account_snapshots n
                 WHERE n.account_id = h.account_id AND n.version > s.version
                 ORDER BY n.version LIMIT 1),
               (SELECT o.next_offset FROM projection_offsets o
                 WHERE o.projection = 'account-history' AND o.topic = %(topic)s
                   AND o.partition = h.partition)
          FROM account_history h
          LEFT JOIN LATERAL (
                SELECT version, events_offset, at, state FROM account_snapshots
                 WHERE account_id = h.account_id AND at <= %(as_of)s
                 ORDER BY at DESC, version DESC LIMIT 1) s ON true
         WHERE h.account_id = %(id)s
        """, {"topic": events_topic, "as_of": as_of, "id": account_id})
    row = await cur.fetchone()
    if row is None:
        return None
    (partition, version, events_offset, at, s_version, s_offset, s_at, s_state, next_prev,
     projected) = row
    return HistoryPoint(
        partition=partition, version=version, events_offset=events_offset, at=at,
        snapshot_version=s_version, snapshot_offset=s_offset, snapshot_at=s_at,
        snapshot=None if s_state is None else load(orjson.loads(s_state)),
        next_prev_offset=next_prev,
        projection_offset=events_offset if projected is None else projected)
