"""Placing, cancelling and modifying orders: validation first, then acceptance and fills.

A refusal is one `trading.order-rejected` event with a machine-readable reason; nothing else
is emitted with it, so nothing is half-applied. The checks of a place run in this order:

1. the account is open (not none, closed or failed);
2. the client order id is new (a retry is recognised whatever the market does meanwhile);
3. a halted account only reduces its position;
4. the instrument is known, active, allowed by the tier, and inside its trading hours;
5. quantity on the lot grid, prices on the tick grid (a binary contract's inside (0, 1));
6. a quote is there and fresh (`stale-quote`);
7. stop-loss below and take-profit above the entry for a buy (the reverse for a sell);
8. size, position (role) limit, risk per trade, margin: free margin after the order, at
   the tier's leverage, counting the worst case of the instrument's open orders;
9. a fill-or-kill order can fill whole now.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from core.domain.trading import booked
from core.domain.trading.execution import Step, fillable_now
from core.domain.trading.market import ONE, ZERO, Market, Quote, Terms, is_trading, on_grid
from core.domain.trading.positions import margin, worst_case_margin
from core.domain.trading.state import TradingAccount, Working
from schemas.envelope import EventPayload
from schemas.trading import (
    CancelOrder,
    ModifyOrder,
    Order,
    OrderModified,
    OrderRejected,
    OrderRejection,
    PlaceOrder,
    order_id_for,
)


def _refuse(cmd: PlaceOrder, reason: OrderRejection, detail: str) -> list[EventPayload]:
    return [OrderRejected(action="place", client_order_id=cmd.client_order_id,
                          order_id=None, reason=reason, detail=detail)]


def _exposure(state: TradingAccount, instrument: str, extra_buy: Decimal = ZERO,
              extra_sell: Decimal = ZERO) -> tuple[Decimal, Decimal]:
    """The position if every open entry order of one side filled: (longest, shortest)."""
    held = state.positions[instrument].quantity if instrument in state.positions else ZERO
    buys, sells = extra_buy, extra_sell
    for working in state.by_instrument.get(instrument, {}).values():
        if working.order.reduce_only:
            continue
        if working.order.side == "buy":
            buys += working.leaves
        else:
            sells += working.leaves
    return held + buys, held - sells


def _price_checks(cmd: PlaceOrder, market: Market) -> tuple[OrderRejection, str] | None:
    if not on_grid(cmd.quantity, market.lot_size):
        return "off-lot", f"quantity {cmd.quantity} is not a multiple of {market.lot_size}"
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit"):
        price = getattr(cmd, name)
        if price is None:
            continue
        if not on_grid(price, market.tick_size):
            return "off-tick", f"{name} {price} is not a multiple of {market.tick_size}"
        if market.contract == "binary" and price >= ONE:
            return "price-out-of-range", f"{name} {price} of a binary contract is not below 1"
    return None


def place(state: TradingAccount, cmd: PlaceOrder, *, quote: Quote | None,
          market: Market | None, terms: Terms, now_ns: int,
          markets: Mapping[str, Market] | None = None) -> list[EventPayload]:
    """Validate an order, accept it and fill what is marketable at once.

    `quote` and `market` are the order's instrument's; `markets` (every instrument the
    account may hold) tell the margin check which other positions are binary contracts.
    """
    if state.status != "open":
        return _refuse(cmd, "account-not-open", f"the account is {state.status}")
    order_id = order_id_for(state.account_id, cmd.client_order_id)
    if state.knows(order_id):
        return _refuse(cmd, "duplicate-client-order-id",
                       f"client order id {cmd.client_order_id} was used (order {order_id})")
    buy = cmd.side == "buy"
    signed = cmd.quantity if buy else -cmd.quantity
    held = state.positions[cmd.instrument].quantity if cmd.instrument in state.positions \
        else ZERO
    if state.halted and not (held and (held > 0) != (signed > 0) and cmd.quantity <= abs(held)
                             and cmd.stop_loss is None and cmd.take_profit is None):
        return _refuse(cmd, "account-halted", f"the account is halted ({state.halt_reason}); "
                                              "only orders that reduce a position are taken")
    if market is None:
        return _refuse(cmd, "instrument-unknown", f"{cmd.instrument} is not a known instrument")
    if market.status == "resolved":
        return _refuse(cmd, "instrument-resolved", f"{cmd.instrument} has resolved: its "
                                                   "contracts are settled")
    if market.status != "active":
        return _refuse(cmd, "instrument-halted", f"{cmd.instrument} is halted")
    if not terms.allows(cmd.instrument):
        return _refuse(cmd, "instrument-not-allowed",
                       f"{cmd.instrument} is not among the tier's instruments")
    if not is_trading(market.trading_hours, now_ns):
        return _refuse(cmd, "market-closed", f"{cmd.instrument} is outside its trading hours")
    refused = _price_checks(cmd, market) or booked.unsupported(cmd, market)
    if refused is not None:
        return _refuse(cmd, *refused)
    if quote is None or now_ns - quote.at_ns > market.max_quote_age_ns:
        age = "no quote" if quote is None else \
            f"last quote {(now_ns - quote.at_ns) / 1e9:.3f} s old"
        return _refuse(cmd, "stale-quote", f"{cmd.instrument}: {age}")
    entry = cmd.limit_price if cmd.limit_price is not None else (
        cmd.stop_price if cmd.stop_price is not None else (quote.ask if buy else quote.bid))
    below, above = (cmd.stop_loss, cmd.take_profit) if buy else (cmd.take_profit, cmd.stop_loss)
    if (below is not None and below >= entry) or (above is not None and above <= entry):
        return _refuse(cmd, "invalid-brackets", f"stop-loss {cmd.stop_loss} and take-profit "
                                                f"{cmd.take_profit} must be either side of the "
                                                f"entry {entry} ({cmd.side})")
    limit = terms.max_order_quantity.get(cmd.instrument)
    if limit is not None and cmd.quantity > limit:
        return _refuse(cmd, "quantity-limit", f"quantity {cmd.quantity} is above {limit}")
    long0, short0 = _exposure(state, cmd.instrument)
    long1, short1 = (long0 + cmd.quantity, short0) if buy else (long0, short0 - cmd.quantity)
    worst = max(abs(long1), abs(short1))
    grows = worst > max(abs(long0), abs(short0))
    cap = terms.max_position.get(cmd.instrument)
    if grows and cap is not None and worst > cap:
        return _refuse(cmd, "position-limit", f"the position could reach {worst}, above {cap}")
    if terms.max_risk_per_trade_pct is not None and cmd.stop_loss is None and grows:
        # The rules' order check (core.domain.rules, OrderIntent) refuses it too: one answer.
        return _refuse(cmd, "risk-limit", f"an order without a stop-loss is refused under a "
                                          f"{terms.max_risk_per_trade_pct} % risk-per-trade rule")
    if terms.max_risk_per_trade_pct is not None and cmd.stop_loss is not None:
        risk = abs(entry - cmd.stop_loss) * cmd.quantity
        allowed = state.balance * terms.max_risk_per_trade_pct / 100
        if risk > allowed:
            return _refuse(cmd, "risk-limit", f"the stop risks {risk}, above {allowed} "
                                              f"({terms.max_risk_per_trade_pct} % of the balance)")
    if grows:
        free = _free_margin_after(state, market, quote, terms, long1, short1, markets or {})
        if free < 0:
            return _refuse(cmd, "insufficient-margin",
                           f"free margin after the order would be {free}")
    order = Order(order_id=order_id, client_order_id=cmd.client_order_id,
                  instrument=cmd.instrument, side=cmd.side, type=cmd.type,
                  quantity=cmd.quantity, limit_price=cmd.limit_price,
                  stop_price=cmd.stop_price, time_in_force=cmd.time_in_force,
                  stop_loss=cmd.stop_loss, take_profit=cmd.take_profit, accepted_ns=now_ns)
    if market.execution == "book":  # the book matches it (FOK too); fills come back
        return booked.accept(state, order, now_ns=now_ns)
    if cmd.time_in_force == "FOK" and not fillable_now(Working.of(order), quote, market):
        return _refuse(cmd, "fok-unfillable", "the order cannot fill whole on the quote now")
    step = Step(state, now_ns)
    working = step.accept(order)
    step.work(working, quote, market, arriving=True)
    if cmd.time_in_force in ("IOC", "FOK") and step.is_open(order_id) and working.leaves:
        step.cancel(working, "ioc-remainder")
    return step.events


def _free_margin_after(state: TradingAccount, market: Market, quote: Quote, terms: Terms,
                       long1: Decimal, short1: Decimal,
                       markets: Mapping[str, Market]) -> Decimal:
    """Equity less margin if the instrument's position reached its worst case."""
    equity = state.balance
    used = ZERO
    leverage = terms.max_leverage
    for symbol, position in state.positions.items():
        if symbol == market.symbol:
            equity += position.unrealized(quote.mid)
            continue
        price = state.marks.get(symbol) or position.average_price
        equity += position.unrealized(price)
        other = markets.get(symbol)
        used += margin(position.quantity, position.cost, price,
                       contract=other.contract if other is not None else "linear",
                       leverage=leverage)
    worst = max(worst_case_margin(long1, quote.mid, contract=market.contract, leverage=leverage),
                worst_case_margin(short1, quote.mid, contract=market.contract,
                                  leverage=leverage))
    return equity - used - worst


def cancel(state: TradingAccount, cmd: CancelOrder, *, now_ns: int) -> list[EventPayload]:
    """Cancel an open order; an entry cancelled after a fill puts its exit legs to work."""
    working = state.orders.get(cmd.order_id)
    if working is None:
        return [_not_open(state, "cancel", cmd.order_id)]
    step = Step(state, now_ns)
    step.cancel(step.live(working), "requested")
    return step.events


def modify(state: TradingAccount, cmd: ModifyOrder, *, market: Market | None,
           now_ns: int) -> list[EventPayload]:
    """Change an open order's quantity or prices; it keeps its place in time."""
    working = state.orders.get(cmd.order_id)
    if working is None:
        return [_not_open(state, "modify", cmd.order_id)]

    def refuse(reason: OrderRejection, detail: str) -> list[EventPayload]:
        return [OrderRejected(action="modify", client_order_id=working.order.client_order_id,
                              order_id=cmd.order_id, reason=reason, detail=detail)]

    order = working.order
    if cmd.limit_price is not None and order.type not in ("limit", "stop-limit"):
        return refuse("invalid-modify", f"a {order.type} order has no limit price")
    if cmd.stop_price is not None and order.type not in ("stop", "stop-limit"):
        return refuse("invalid-modify", f"a {order.type} order has no stop price")
    if market is None:
        return refuse("instrument-unknown", f"{order.instrument} is not a known instrument")
    if market.execution == "book":
        return refuse("book-unsupported", "an order in a book is cancelled and placed again")
    if cmd.quantity is not None and not on_grid(cmd.quantity, market.lot_size):
        return refuse("off-lot", f"quantity {cmd.quantity} is not a multiple of "
                                 f"{market.lot_size}")
    for name in ("limit_price", "stop_price"):
        price = getattr(cmd, name)
        if price is not None and not on_grid(price, market.tick_size):
            return refuse("off-tick", f"{name} {price} is not a multiple of {market.tick_size}")
        if price is not None and market.contract == "binary" and price >= ONE:
            return refuse("price-out-of-range", f"{name} {price} is not below 1")
    quantity = working.quantity if cmd.quantity is None else cmd.quantity
    if quantity <= working.filled:
        return refuse("quantity-below-filled",
                      f"quantity {quantity} is not above the {working.filled} filled")
    return [OrderModified(order_id=cmd.order_id, quantity=quantity,
                          limit_price=cmd.limit_price if cmd.limit_price is not None
                          else working.limit_price,
                          stop_price=cmd.stop_price if cmd.stop_price is not None
                          else working.stop_price)]


def _not_open(state: TradingAccount, action: Literal["cancel", "modify"],
              order_id: uuid.UUID) -> OrderRejected:
    status = state.finished.get(order_id)
    if status is None:
        return OrderRejected(action=action, order_id=order_id, reason="order-unknown",
                             detail=f"no order {order_id} on this account")
    return OrderRejected(action=action, order_id=order_id, reason="order-not-open",
                         detail=f"order {order_id} is {status}")
