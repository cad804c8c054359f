"""When can a quote or the clock make an account act? The band a quote must leave first.

The account engine re-checks an account's open orders on every tick of their instrument. With
a thousand accounts on one instrument that is a thousand `on_quote` calls per tick, almost all
of which return nothing: a resting limit away from the touch, a stop the price has not
reached. `wake` says, per instrument, the prices at which one of the account's orders would
act, so the engine keeps them sorted and calls `on_quote` only for the accounts a quote
crosses (`core.processors.wake_index`).

The promise, checked by the hypothesis property of the trading domain: a quote that does not
`cross` an account's wake gives `on_quote` no events, and a time before `expires_ns` gives
`expire_day` none.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from core.domain.trading.market import Quote, utc_day
from core.domain.trading.state import TradingAccount

DAY_NS = 86_400 * 1_000_000_000


class Wake(NamedTuple):
    """The quote levels at which one of an account's orders on an instrument would act."""

    ask_at_most: Decimal | None  # resting buy limits fill once the ask is at or under this
    ask_at_least: Decimal | None  # buy stops trigger once the ask reaches this
    bid_at_least: Decimal | None  # resting sell limits fill once the bid is at or over this
    bid_at_most: Decimal | None  # sell stops trigger once the bid falls to this
    any_quote: bool  # a working market order (or a triggered stop): every quote may fill it

    def crossed(self, quote: Quote) -> bool:
        return (self.any_quote
                or (self.ask_at_most is not None and quote.ask <= self.ask_at_most)
                or (self.ask_at_least is not None and quote.ask >= self.ask_at_least)
                or (self.bid_at_least is not None and quote.bid >= self.bid_at_least)
                or (self.bid_at_most is not None and quote.bid <= self.bid_at_most))


ASLEEP = Wake(None, None, None, None, False)


def wake(state: TradingAccount, instrument: str) -> Wake:
    """Return the quote levels at which the account's open orders on `instrument` act."""
    book = state.by_instrument.get(instrument)
    if not book:
        return ASLEEP
    ask_at_most = ask_at_least = bid_at_least = bid_at_most = None
    for working in book.values():
        buy = working.order.side == "buy"
        if working.waiting_for_trigger:
            stop = working.stop_price
            assert stop is not None
            if buy:
                ask_at_least = stop if ask_at_least is None else min(ask_at_least, stop)
            else:
                bid_at_most = stop if bid_at_most is None else max(bid_at_most, stop)
            continue
        limit = working.limit_price
        if working.order.type in ("market", "stop") or limit is None:
            return Wake(None, None, None, None, True)
        if buy:
            ask_at_most = limit if ask_at_most is None else max(ask_at_most, limit)
        else:
            bid_at_least = limit if bid_at_least is None else min(bid_at_least, limit)
    return Wake(ask_at_most, ask_at_least, bid_at_least, bid_at_most, False)


def expires_ns(state: TradingAccount) -> int | None:
    """The first instant at which `expire_day` has a DAY order of the account to expire."""
    first = None
    for working in state.orders.values():
        if working.order.time_in_force == "DAY":
            at = (utc_day(working.order.accepted_ns) + 1) * DAY_NS
            first = at if first is None else min(first, at)
    return first


__all__ = ["ASLEEP", "Wake", "expires_ns", "wake"]
