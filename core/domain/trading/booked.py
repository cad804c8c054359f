"""Orders on an instrument that executes in its own order book (issue 11.3), account side.

The account validates the order as any other (margin against the latest quote included) and
accepts it without filling it; the account engine sends it on to the book engine in the same
transaction. The book's trades and cancellations come back on `book.events`, and the engine
books them here: a trade as `trading.order-filled` (maker or taker) with its position and
balance events, a cancellation (requested, the unfilled rest of an IOC or market order,
self-trade prevention, a refusal by the book) as `trading.order-cancelled`.

A cancel asked by the trader is only a request (`trading.order-cancel-requested`) until the
book confirms it: a trade the book made first is booked, never lost. The book takes market
and limit orders, GTC, IOC and FOK; stops, DAY orders, attached exits and modifies are refused
(`book-unsupported`).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from core.domain.trading.execution import Step
from core.domain.trading.market import Market
from core.domain.trading.state import TradingAccount
from schemas.envelope import EventPayload
from schemas.trading import (
    CancelOrder,
    CancelReason,
    Liquidity,
    Order,
    OrderCancelRequested,
    OrderRejected,
    OrderRejection,
    PlaceOrder,
)


def unsupported(cmd: PlaceOrder, market: Market) -> tuple[OrderRejection, str] | None:
    """Why the instrument's book cannot take the order, if it executes in a book."""
    if market.execution != "book":
        return None
    if cmd.type not in ("market", "limit"):
        return "book-unsupported", f"the book of {cmd.instrument} takes market and limit orders"
    if cmd.time_in_force == "DAY":
        return "book-unsupported", f"the book of {cmd.instrument} takes GTC, IOC and FOK"
    if cmd.stop_loss is not None or cmd.take_profit is not None:
        return "book-unsupported", f"the book of {cmd.instrument} takes no attached exits"
    return None


def accept(state: TradingAccount, order: Order, *, now_ns: int) -> list[EventPayload]:
    """Accept a validated order for the book: nothing fills here."""
    step = Step(state, now_ns)
    step.accept(order)
    return step.events


def request_cancel(state: TradingAccount, cmd: CancelOrder) -> list[EventPayload]:
    """Ask the book to cancel an open order; the order stays open until it answers."""
    if cmd.order_id not in state.orders:
        status = state.finished.get(cmd.order_id)
        return [OrderRejected(action="cancel", order_id=cmd.order_id,
                              reason="order-unknown" if status is None else "order-not-open",
                              detail=f"order {cmd.order_id} is {status or 'unknown'}")]
    return [OrderCancelRequested(order_id=cmd.order_id)]


def fill(state: TradingAccount, order_id: uuid.UUID, *, price: Decimal, quantity: Decimal,
         liquidity: Liquidity, market: Market, now_ns: int) -> list[EventPayload]:
    """Book one trade of the book on an open order (nothing if the order is not open)."""
    working = state.orders.get(order_id)
    if working is None:
        return []
    step = Step(state, now_ns)
    mine = step.live(working)
    quantity = min(quantity, mine.leaves)
    if quantity <= 0:
        return []
    step.fill(mine, quantity, price, liquidity, market)
    return step.events


def cancelled(state: TradingAccount, order_id: uuid.UUID, *, reason: CancelReason,
              now_ns: int) -> list[EventPayload]:
    """Close an open order the book cancelled or refused (nothing if it is not open)."""
    working = state.orders.get(order_id)
    if working is None:
        return []
    step = Step(state, now_ns)
    step.cancel(step.live(working), reason)
    return step.events


__all__ = ["accept", "cancelled", "fill", "request_cancel", "unsupported"]
