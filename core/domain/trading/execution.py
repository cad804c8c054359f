"""Fills against a quote: when an order is marketable, at what price, for how much.

A `Step` is the scratch of one pure step function: it reads the account's state, never
writes it, and keeps its own view of what the step has done so far (orders touched,
positions, balance, depth left at the touch), so several fills in one step net correctly.
Its output is the events; `evolve` applies them.

Execution against the market stream (the prop-firm model):
- a market order (and a triggered stop) takes the touch: buys at the ask, sells at the bid,
  moved `slippage_ticks` against the trader; liquidity taker;
- a limit order marketable when it arrives takes the touch too, never beyond its limit;
  one that rested fills at its limit price once the touch trades through it (maker);
- a buy stop triggers when the ask reaches it, a sell stop when the bid does; a stop-limit
  then arrives as a limit order on that quote (taker at the touch if marketable);
- a fill is at most the size quoted at the touch (when the quote says), shared by the
  account's orders filled on the same quote, on the lot grid; the rest keeps working;
- an exit leg (stop-loss / take-profit) only reduces the position: it is cut to the
  position and cancelled when there is nothing left to reduce; its first fill cancels
  the other leg (one-cancels-other);
- commission = per-unit x quantity + rate x notional, rounded to 12 places, paid at each
  fill.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from core.domain.trading.market import ONE, ZERO, Market, Quote
from core.domain.trading.positions import Position, apply_fill
from core.domain.trading.state import TradingAccount, Working
from schemas.envelope import EventPayload
from schemas.trading import (
    AccountBalanceChanged,
    CancelReason,
    Liquidity,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRole,
    OrderTriggered,
    PositionChanged,
    PositionClosed,
    PositionOpened,
    child_order_id,
    fill_id_for,
)

COMMISSION = Decimal("1e-12")


class Step:
    """What one step has decided so far, on top of the state it may not change."""

    def __init__(self, state: TradingAccount, now_ns: int) -> None:
        self.state = state
        self.now_ns = now_ns
        self.events: list[EventPayload] = []
        self.balance = state.balance
        self._positions: dict[str, Position] = {}
        self._live: dict[uuid.UUID, Working] = {}
        self.closed: set[uuid.UUID] = set()
        self._depth: dict[str, Decimal | None] = {}

    # -- views ---------------------------------------------------------------------------------

    def position(self, instrument: str) -> Position:
        position = self._positions.get(instrument)
        if position is None:
            position = self.state.positions.get(instrument)
        # A flat position is a new one: it keeps nothing of the one that closed.
        return position if position is not None and position.quantity else Position(instrument)

    def live(self, working: Working) -> Working:
        """This step's own copy of an open order, to note fills and triggers on."""
        order_id = working.order.order_id
        mine = self._live.get(order_id)
        if mine is None:
            mine = Working(order=working.order, quantity=working.quantity,
                           limit_price=working.limit_price, stop_price=working.stop_price,
                           filled=working.filled, fills=working.fills,
                           triggered=working.triggered)
            self._live[order_id] = mine
        return mine

    def is_open(self, order_id: uuid.UUID) -> bool:
        return order_id not in self.closed and (
            order_id in self.state.orders or order_id in self._live)

    # -- outputs -------------------------------------------------------------------------------

    def emit(self, event: EventPayload) -> None:
        self.events.append(event)

    def accept(self, order: Order) -> Working:
        self.emit(OrderAccepted(order_id=order.order_id, order=order))
        working = Working.of(order)
        self._live[order.order_id] = working
        return working

    def cancel(self, working: Working, reason: CancelReason) -> None:
        order_id = working.order.order_id
        if not self.is_open(order_id):
            return
        self.emit(OrderCancelled(order_id=order_id, reason=reason))
        self.closed.add(order_id)
        self.after_final(working)

    def after_final(self, working: Working) -> None:
        """An entry done with a fill puts its exit legs to work for the quantity filled."""
        order = working.order
        if order.role != "entry" or not working.filled or (
                order.stop_loss is None and order.take_profit is None):
            return
        exit_side = "sell" if order.side == "buy" else "buy"
        sl_id, tp_id = child_order_id(order.order_id, "stop-loss"), \
            child_order_id(order.order_id, "take-profit")
        legs: list[tuple[OrderRole, uuid.UUID, uuid.UUID | None]] = []
        if order.stop_loss is not None:
            legs.append(("stop-loss", sl_id, tp_id if order.take_profit is not None else None))
        if order.take_profit is not None:
            legs.append(("take-profit", tp_id, sl_id if order.stop_loss is not None else None))
        for role, leg_id, other in legs:
            is_stop = role == "stop-loss"
            self.accept(Order(
                order_id=leg_id, client_order_id=order.client_order_id,
                instrument=order.instrument, side=exit_side,
                type="stop" if is_stop else "limit", quantity=working.filled,
                stop_price=order.stop_loss if is_stop else None,
                limit_price=None if is_stop else order.take_profit,
                time_in_force="GTC", role=role, parent_id=order.order_id, oco_id=other,
                reduce_only=True, accepted_ns=self.now_ns))

    # -- execution -----------------------------------------------------------------------------

    def work(self, working: Working, quote: Quote, market: Market, *, arriving: bool) -> None:
        """Trigger and fill `working` (this step's copy) as far as `quote` allows; `arriving`
        when it is new. A stop-limit the quote triggers arrives as a limit order now."""
        order = working.order
        buy = order.side == "buy"
        if working.waiting_for_trigger:
            if _stop_untouched(working, quote):
                return
            working.triggered = True
            arriving = True
            self.emit(OrderTriggered(order_id=order.order_id, price=quote.ask if buy else quote.bid,
                                     at_ns=self.now_ns))
        priced = fill_price(working, quote, market, arriving=arriving)
        if priced is None:
            return
        price, liquidity = priced
        side_key = f"{quote.instrument}:{order.side}"
        depth = self._depth.get(side_key, quote.ask_size if buy else quote.bid_size)
        quantity = working.leaves if depth is None else min(working.leaves, depth)
        if order.reduce_only:
            held = self.position(order.instrument).quantity
            reducible = -held if buy else held
            if reducible <= 0:
                self.cancel(working, "nothing-to-reduce")
                return
            quantity = min(quantity, reducible)
        quantity = (quantity / market.lot_size).to_integral_value(ROUND_FLOOR) * market.lot_size
        if quantity <= 0:
            return
        if depth is not None:
            self._depth[side_key] = depth - quantity
        self.fill(working, quantity, price, liquidity, market)
        if order.oco_id is not None and order.oco_id in self.state.orders:
            self.cancel(self.state.orders[order.oco_id], "oco")
        if working.leaves and order.reduce_only and not self.position(order.instrument).quantity:
            self.cancel(working, "nothing-to-reduce")

    def fill(self, working: Working, quantity: Decimal, price: Decimal, liquidity: Liquidity,
             market: Market) -> None:
        order = working.order
        commission = (market.commission_per_unit * quantity
                      + market.commission_rate * price * quantity
                      ).quantize(COMMISSION, ROUND_HALF_UP)
        working.filled += quantity
        working.fills += 1
        fill_id = fill_id_for(order.order_id, working.fills)
        self.emit(OrderFilled(order_id=order.order_id, fill_id=fill_id,
                              instrument=order.instrument, side=order.side, price=price,
                              quantity=quantity, liquidity=liquidity, commission=commission,
                              leaves_quantity=working.leaves, at_ns=self.now_ns))
        before = self.position(order.instrument)
        signed = quantity if order.side == "buy" else -quantity
        held = before.quantity
        if held and (held > 0) != (signed > 0) and abs(signed) > abs(held):
            # Through zero: the position closes at the fill price, a new one opens there.
            closed, realized = apply_fill(before, -held, price, commission)
            self.emit_position(before, closed)
            flat = Position(order.instrument)
            after, _ = apply_fill(flat, signed + held, price, ZERO)
            self.emit_position(flat, after)
        else:
            after, realized = apply_fill(before, signed, price, commission)
            self.emit_position(before, after)
        self._positions[order.instrument] = after
        if realized or commission:
            self.balance += realized - commission
            self.emit(AccountBalanceChanged(delta=realized - commission, balance=self.balance,
                                            realized=realized, commission=commission,
                                            cause="fill", reference=fill_id))
        if not working.leaves:
            self.closed.add(order.order_id)
            self.after_final(working)

    def set_position(self, after: Position) -> None:
        self._positions[after.instrument] = after

    def emit_position(self, before: Position, after: Position) -> None:
        kind = PositionOpened if not before.quantity else (
            PositionClosed if not after.quantity else PositionChanged)
        self.emit(kind(instrument=after.instrument, quantity=after.quantity, cost=after.cost,
                       average_price=after.average_price, realized=after.realized,
                       commissions=after.commissions, at_ns=self.now_ns))


def fill_price(working: Working, quote: Quote, market: Market, *,
               arriving: bool) -> tuple[Decimal, Liquidity] | None:
    """The price `working` fills at on `quote` and its liquidity, or None if not marketable."""
    buy = working.order.side == "buy"
    slip = market.tick_size * market.slippage_ticks
    if buy:
        taker = quote.ask + slip
        if market.contract == "binary":
            taker = min(taker, ONE - market.tick_size)
    else:
        taker = max(quote.bid - slip, market.tick_size)
    limit = working.limit_price
    if working.order.type in ("market", "stop"):
        return taker, "taker"
    assert limit is not None
    touch = quote.ask if buy else quote.bid
    if (touch > limit) if buy else (touch < limit):
        return None
    if arriving:
        return (min(taker, limit) if buy else max(taker, limit)), "taker"
    return limit, "maker"


def fillable_now(working: Working, quote: Quote, market: Market) -> bool:
    """Whether all of a new order would fill on `quote` (fill-or-kill)."""
    order = working.order
    buy = order.side == "buy"
    if working.waiting_for_trigger and _stop_untouched(working, quote):
        return False
    if fill_price(working, quote, market, arriving=True) is None:
        return False
    depth = quote.ask_size if buy else quote.bid_size
    return depth is None or depth >= working.leaves


__all__ = ["Step", "fill_price", "fillable_now"]


def _stop_untouched(working: Working, quote: Quote) -> bool:
    """Whether a stop still waits on `quote`: a buy stop until the ask reaches it, a sell
    stop until the bid does."""
    assert working.stop_price is not None
    if working.order.side == "buy":
        return quote.ask < working.stop_price
    return quote.bid > working.stop_price
