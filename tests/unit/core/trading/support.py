"""Given/when helpers for the trading account's tests: an open account, a market, quotes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from core.domain.trading import (
    Market,
    Quote,
    Terms,
    TradingAccount,
    dump,
    evolve,
    initial,
    on_quote,
    place,
)
from schemas.account import AccountOpened
from schemas.envelope import EventPayload
from schemas.trading import OrderRejected, PlaceOrder

D = Decimal
ACCOUNT = "7b0c3a52-8f6e-5d41-9a2b-3c4d5e6f7a8b"
NS = 1_795_000_000_000_000_000  # 2026-11-18, a Wednesday, 11:06:40 UTC
START = D("100000")
BTC = Market(symbol="BTC-USD", tick_size=D("0.5"), lot_size=D("0.001"),
             commission_rate=D("0.0005"), slippage_ticks=1)
FREE = Market(symbol="ETH-USD", tick_size=D("0.01"), lot_size=D("0.01"))
YES = Market(symbol="RAIN-NYC", tick_size=D("0.01"), lot_size=D("1"), contract="binary",
             commission_per_unit=D("0.01"))
TERMS = Terms(max_leverage=D("10"))
OPENED = AccountOpened(assessment_id=uuid.UUID(int=1), user_id=uuid.UUID(int=2),
                       starting_balance=START, currency="USD")


def given(*events: EventPayload) -> TradingAccount:
    state = initial(ACCOUNT)
    for event in (OPENED, *events):
        evolve(state, event)
    return state


def apply(state: TradingAccount, events: Iterable[EventPayload]) -> TradingAccount:
    for event in events:
        evolve(state, event)
    return state


def quote(bid: str, ask: str, *, instrument: str = "BTC-USD", size: str | None = None,
          at_ns: int = NS) -> Quote:
    depth = None if size is None else D(size)
    return Quote(instrument, D(bid), D(ask), depth, depth, at_ns)


def order(**fields: Any) -> PlaceOrder:
    values: dict[str, Any] = {"client_order_id": "c-1", "instrument": "BTC-USD", "side": "buy",
                              "type": "market", "quantity": D("1")}
    values.update(fields)
    return PlaceOrder(**values)


def when_placed(state: TradingAccount, cmd: PlaceOrder, *, q: Quote | None = None,
                market: Market | None = BTC, terms: Terms = TERMS,
                now_ns: int = NS) -> list[EventPayload]:
    if q is None:
        q = quote("60000", "60001", instrument=cmd.instrument) if market is BTC else \
            quote("0.40", "0.42", instrument=cmd.instrument)
    return place(state, cmd, quote=q, market=market, terms=terms, now_ns=now_ns)


def placed(state: TradingAccount, cmd: PlaceOrder, **kw: Any) -> list[EventPayload]:
    """Place and fold: the events, with `state` moved on."""
    events = when_placed(state, cmd, **kw)
    apply(state, events)
    return events


def quoted(state: TradingAccount, q: Quote, *, market: Market = BTC,
           now_ns: int = NS) -> list[EventPayload]:
    events = on_quote(state, q, market=market, now_ns=now_ns)
    apply(state, events)
    return events


def types(events: Iterable[EventPayload]) -> list[str]:
    return [event.TYPE for event in events]


def assert_rejected(state: TradingAccount, events: list[EventPayload], reason: str) -> None:
    """Exactly one rejection with `reason`, and folding it changes nothing (but the count of
    events folded)."""
    assert len(events) == 1, types(events)
    rejection = events[0]
    assert isinstance(rejection, OrderRejected), rejection
    assert rejection.reason == reason, rejection
    before = dump(state) | {"seq": state.seq + 1}
    assert dump(evolve(state, rejection)) == before
