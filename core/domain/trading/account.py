"""The steps an account takes besides placing orders: quotes, expiry, settlement, halts, marks.

Every function is pure: it reads the state and returns events (a list, possibly empty), which
the engine records and folds with `evolve`. Business refusals are events, never exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from core.domain.trading.execution import Step
from core.domain.trading.market import ONE, ZERO, Market, Quote, Terms, utc_day
from core.domain.trading.positions import Position, margin
from core.domain.trading.positions import settle as settle_position
from core.domain.trading.state import TradingAccount
from schemas.envelope import EventPayload
from schemas.trading import (
    AccountBalanceChanged,
    AccountEquityMarked,
    AccountHalted,
    AccountResumed,
    ContractSettled,
    HaltAccount,
    OrderExpired,
    ResumeAccount,
    SettleContract,
    settlement_id_for,
)


def on_quote(state: TradingAccount, quote: Quote, *, market: Market,
             now_ns: int) -> list[EventPayload]:
    """Re-check the instrument's open orders on a new quote, oldest first.

    Costs O(open orders on the instrument): an account without any returns at once. Stops
    trigger, limits that the touch traded through fill at their price, an exit leg's fill
    cancels the other leg in the same step; a triggered IOC or FOK order keeps nothing
    working. Nothing fills while the instrument is halted.
    """
    book = state.by_instrument.get(quote.instrument)
    if not book or market.status != "active" or state.status != "open" or \
            market.execution == "book":  # (a book's own trades fill those: trading.booked)
        return []
    step = Step(state, now_ns)
    for order_id, working in list(book.items()):
        if not step.is_open(order_id):
            continue
        mine = step.live(working)
        step.work(mine, quote, market, arriving=False)
        if (mine.order.time_in_force in ("IOC", "FOK") and step.is_open(order_id)
                and not mine.waiting_for_trigger):
            step.cancel(mine, "ioc-remainder")
    return step.events


def expire_day(state: TradingAccount, *, now_ns: int) -> list[EventPayload]:
    """Expire DAY orders accepted on an earlier UTC day than `now_ns`'s (safe to call often)."""
    today = utc_day(now_ns)
    step = Step(state, now_ns)
    for order_id, working in list(state.orders.items()):
        if working.order.time_in_force == "DAY" and utc_day(working.order.accepted_ns) < today:
            step.emit(OrderExpired(order_id=order_id, at_ns=now_ns))
            step.closed.add(order_id)
            step.after_final(working)
    return step.events


def settle(state: TradingAccount, cmd: SettleContract, *, market: Market | None,
           now_ns: int) -> list[EventPayload]:
    """Close a resolved binary contract: its open orders are cancelled, its position settles
    at the outcome (0 or 1 per unit) with the P&L booked to the balance. A linear (or
    unknown) instrument, or an account without anything in it, gives no events."""
    if market is None or market.contract != "binary":
        return []
    step = Step(state, now_ns)
    for working in list(state.by_instrument.get(cmd.instrument, {}).values()):
        step.cancel(working, "contract-settled")
    position = state.positions.get(cmd.instrument)
    if position is not None and position.quantity:
        closed, realized = settle_position(position, ONE if cmd.outcome else ZERO)
        step.emit(ContractSettled(instrument=cmd.instrument, outcome=cmd.outcome,
                                  quantity=position.quantity, realized=realized, at_ns=now_ns))
        step.emit_position(position, closed)
        step.set_position(closed)
        if realized:
            step.balance += realized
            step.emit(AccountBalanceChanged(
                delta=realized, balance=step.balance, realized=realized, commission=ZERO,
                cause="settlement", reference=settlement_id_for(state.account_id,
                                                                cmd.instrument)))
    return step.events


def halt(state: TradingAccount, cmd: HaltAccount) -> list[EventPayload]:
    """Halt the account: from now on it may only reduce positions. Halting twice: nothing."""
    if state.status != "open" or state.halted:
        return []
    return [AccountHalted(reason=cmd.reason)]


def resume(state: TradingAccount, cmd: ResumeAccount) -> list[EventPayload]:
    """Lift a halt. Resuming an account that is not halted: nothing."""
    if not state.halted:
        return []
    return [AccountResumed(reason=cmd.reason)]


def mark_price(position: Position, quote: Quote | None, previous: Decimal | None) -> Decimal:
    """Where a position is marked: at the price it could be closed at now, the bid for a
    long and the ask for a short (conservative: equity never counts the spread as profit);
    without a quote, its last mark; without one, its average price (no unrealized P&L)."""
    if quote is not None:
        return quote.bid if position.quantity > 0 else quote.ask
    if previous is not None:
        return previous
    return position.average_price


def mark(state: TradingAccount, quotes: Mapping[str, Quote], *, markets: Mapping[str, Market],
         terms: Terms, now_ns: int) -> AccountEquityMarked | None:
    """Mark the account to market: equity, unrealized P&L, margin used and free.

    Not throttled here (the engine decides how often); None for an account that is not open.
    """
    if state.status != "open":
        return None
    unrealized = used = ZERO
    marks: dict[str, Decimal] = {}
    for symbol, position in state.positions.items():
        quote, previous = quotes.get(symbol), state.marks.get(symbol)
        price = mark_price(position, quote, previous)
        if quote is not None or previous is not None:
            marks[symbol] = price
        unrealized += position.unrealized(price)
        market = markets.get(symbol)
        used += margin(position.quantity, position.cost, price,
                       contract=market.contract if market is not None else "linear",
                       leverage=terms.max_leverage)
    equity = state.balance + unrealized
    return AccountEquityMarked(equity=equity, unrealized=unrealized, margin_used=used,
                               margin_free=equity - used, marks=marks, at_ns=now_ns)
