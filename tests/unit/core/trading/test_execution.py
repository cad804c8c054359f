"""Fills against the quote: every order type and time in force, partial fills, OCO exits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.domain.trading import (
    Position,
    apply_fill,
    expire_day,
    mark,
    quote_from_tick,
    settle,
)
from schemas.market import TickRow
from schemas.trading import (
    AccountBalanceChanged,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderTriggered,
    PositionClosed,
    PositionOpened,
    SettleContract,
    child_order_id,
    fill_id_for,
    order_id_for,
)
from tests.unit.core.trading.support import (
    ACCOUNT,
    BTC,
    NS,
    START,
    TERMS,
    YES,
    D,
    given,
    order,
    placed,
    quote,
    quoted,
    types,
)

C1 = order_id_for(ACCOUNT, "c-1")


def fills(events: Sequence[object]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def test_market_buy_fills_at_the_ask_plus_slippage_and_pays_commission() -> None:
    state = given()
    events = placed(state, order(quantity=D("2")))
    assert types(events) == ["trading.order-accepted", "trading.order-filled",
                             "position.opened", "account.balance-changed"]
    fill = fills(events)[0]
    assert fill.price == D("60001.5") and fill.liquidity == "taker"
    assert fill.fill_id == fill_id_for(C1, 1)
    assert fill.commission == D("60.0015")  # 0.05 % of 120,003
    assert state.positions["BTC-USD"] == Position("BTC-USD", D("2"), D("120003.0"), D(0),
                                                  D("60.0015"))
    assert state.balance == START - D("60.0015")


def test_market_sell_fills_at_the_bid_minus_slippage() -> None:
    state = given()
    fill = fills(placed(state, order(side="sell")))[0]
    assert fill.price == D("59999.5")
    assert state.positions["BTC-USD"].quantity == D("-1")


def test_market_order_larger_than_the_quoted_size_fills_partially_and_rests() -> None:
    state = given()
    events = placed(state, order(quantity=D("2.5")), q=quote("60000", "60001", size="1"))
    assert [f.quantity for f in fills(events)] == [D("1")]
    assert fills(events)[0].leaves_quantity == D("1.5")
    assert state.orders[C1].filled == D("1")
    later = quoted(state, quote("60010", "60011", size="1"))
    assert [f.quantity for f in fills(later)] == [D("1")]
    last = quoted(state, quote("60020", "60021", size="5"))
    assert [f.quantity for f in fills(last)] == [D("0.5")] and not state.orders


def test_ioc_cancels_what_the_quote_could_not_fill() -> None:
    state = given()
    events = placed(state, order(quantity=D("2.5"), time_in_force="IOC"),
                    q=quote("60000", "60001", size="1"))
    assert types(events)[-1] == "trading.order-cancelled"
    assert events[-1] == OrderCancelled(order_id=C1, reason="ioc-remainder")
    assert state.positions["BTC-USD"].quantity == D("1") and not state.orders


def test_ioc_limit_that_is_not_marketable_is_accepted_then_cancelled() -> None:
    state = given()
    events = placed(state, order(type="limit", limit_price=D("59000"), time_in_force="IOC"))
    assert types(events) == ["trading.order-accepted", "trading.order-cancelled"]


def test_fok_that_can_fill_fills_whole() -> None:
    state = given()
    events = placed(state, order(quantity=D("2"), time_in_force="FOK"),
                    q=quote("60000", "60001", size="2"))
    assert [f.quantity for f in fills(events)] == [D("2")] and not state.orders


def test_marketable_limit_takes_the_touch_but_never_beyond_its_limit() -> None:
    state = given()
    fill = fills(placed(state, order(type="limit", limit_price=D("60001"))))[0]
    assert fill.price == D("60001") and fill.liquidity == "taker"  # ask + 1 tick capped


def test_resting_limit_fills_at_its_price_when_the_touch_trades_through() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    assert quoted(state, quote("59000", "59000.5")) == []
    events = quoted(state, quote("58900", "58950"))
    fill = fills(events)[0]
    assert (fill.price, fill.liquidity) == (D("59000"), "maker")


def test_sell_limit_rests_above_and_fills_when_the_bid_reaches_it() -> None:
    state = given()
    placed(state, order(side="sell", type="limit", limit_price=D("61000")))
    assert quoted(state, quote("60999.5", "61000")) == []
    fill = fills(quoted(state, quote("61000", "61000.5")))[0]
    assert (fill.price, fill.side) == (D("61000"), "sell")


def test_buy_stop_triggers_when_the_ask_reaches_it_then_fills_at_market() -> None:
    state = given()
    placed(state, order(type="stop", stop_price=D("61000")))
    assert quoted(state, quote("60990", "60999.5")) == []
    events = quoted(state, quote("61005", "61006"))
    assert types(events)[:2] == ["trading.order-triggered", "trading.order-filled"]
    assert events[0] == OrderTriggered(order_id=C1, price=D("61006"), at_ns=NS)
    assert fills(events)[0].price == D("61006.5")


def test_stop_limit_triggers_then_waits_for_its_limit() -> None:
    state = given()
    placed(state, order(side="sell", type="stop-limit", stop_price=D("59000"),
                        limit_price=D("58900")))
    events = quoted(state, quote("58800", "58801"))  # triggered, but below the limit
    assert types(events) == ["trading.order-triggered"]
    assert state.orders[C1].triggered
    fill = fills(quoted(state, quote("58950", "58951")))[0]
    assert (fill.price, fill.liquidity) == (D("58900"), "maker")


def test_stop_limit_triggered_inside_its_limit_takes_the_touch_as_it_would_when_placed() -> None:
    # Triggered by a later quote it arrives as a limit order: the ask plus slippage, capped by
    # its limit, as a taker. (It filled at its limit as a maker, paying 100 more here.)
    state = given()
    placed(state, order(type="stop-limit", stop_price=D("61000"), limit_price=D("61100")))
    events = quoted(state, quote("61005", "61006"))
    assert types(events)[:2] == ["trading.order-triggered", "trading.order-filled"]
    fill = fills(events)[0]
    assert (fill.price, fill.liquidity) == (D("61006.5"), "taker")
    at_once = given()
    fill = fills(placed(at_once, order(type="stop-limit", stop_price=D("61000"),
                                       limit_price=D("61100")),
                        q=quote("61005", "61006")))[0]
    assert (fill.price, fill.liquidity) == (D("61006.5"), "taker")


def test_sell_stop_limit_triggered_inside_its_limit_sells_at_the_bid() -> None:
    state = given()
    placed(state, order(side="sell", type="stop-limit", stop_price=D("59000"),
                        limit_price=D("58900")))
    fill = fills(quoted(state, quote("58990", "58991")))[0]
    assert (fill.price, fill.liquidity) == (D("58989.5"), "taker")


def test_stop_already_crossed_when_placed_triggers_at_once() -> None:
    state = given()
    events = placed(state, order(type="stop", stop_price=D("59000")))
    assert types(events)[:3] == ["trading.order-accepted", "trading.order-triggered",
                                 "trading.order-filled"]


def test_day_order_expires_on_the_next_utc_day_only() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000"), time_in_force="DAY"))
    placed(state, order(client_order_id="c-2", type="limit", limit_price=D("59000")))
    assert expire_day(state, now_ns=NS + 3600 * 10**9) == []  # same day
    events = expire_day(state, now_ns=NS + 86_400 * 10**9)
    assert types(events) == ["trading.order-expired"]
    assert events[0].order_id == C1  # type: ignore[attr-defined]


def test_entry_fill_puts_an_oco_pair_to_work_and_take_profit_cancels_stop_loss() -> None:
    state = given()
    events = placed(state, order(quantity=D("2"), stop_loss=D("59000"),
                                 take_profit=D("62000")))
    legs = [e.order for e in events if isinstance(e, OrderAccepted) and e.order_id != C1]
    assert [(leg.role, leg.type, leg.side, leg.quantity, leg.reduce_only) for leg in legs] == [
        ("stop-loss", "stop", "sell", D("2"), True),
        ("take-profit", "limit", "sell", D("2"), True)]
    sl, tp = child_order_id(C1, "stop-loss"), child_order_id(C1, "take-profit")
    assert legs[0].oco_id == tp and legs[1].oco_id == sl
    exit_ = quoted(state, quote("62000", "62000.5"))
    assert types(exit_) == ["trading.order-filled", "position.closed",
                            "account.balance-changed", "trading.order-cancelled"]
    assert exit_[-1] == OrderCancelled(order_id=sl, reason="oco")
    assert not state.orders and "BTC-USD" not in state.positions
    balance = next(e for e in exit_ if isinstance(e, AccountBalanceChanged))
    assert balance.realized == D("2") * (D("62000") - D("60001.5"))


def test_stop_loss_exit_fills_at_market_and_cancels_take_profit() -> None:
    state = given()
    placed(state, order(stop_loss=D("59000"), take_profit=D("62000")))
    events = quoted(state, quote("58990", "58991"))
    assert types(events)[:2] == ["trading.order-triggered", "trading.order-filled"]
    assert fills(events)[0].price == D("58989.5")
    assert events[-1] == OrderCancelled(order_id=child_order_id(C1, "take-profit"),
                                        reason="oco")


def test_exit_leg_with_no_position_left_is_cancelled_not_reversed() -> None:
    state = given()
    placed(state, order(stop_loss=D("59000")))
    placed(state, order(client_order_id="c-2", side="sell"))  # closed by hand
    events = quoted(state, quote("58990", "58991"))
    assert types(events) == ["trading.order-triggered", "trading.order-cancelled"]
    assert "BTC-USD" not in state.positions


def test_a_fill_through_zero_closes_then_opens_at_the_fill_price() -> None:
    state = given()
    placed(state, order(quantity=D("1")))
    events = placed(state, order(client_order_id="c-2", side="sell", quantity=D("3")))
    closed = next(e for e in events if isinstance(e, PositionClosed))
    opened = next(e for e in events if isinstance(e, PositionOpened))
    assert closed.quantity == 0 and closed.realized == D("59999.5") - D("60001.5")
    assert (opened.quantity, opened.cost, opened.realized) == (D("-2"), D("-119999.0"), D(0))


def test_netting_averages_on_increase_and_realizes_on_reduce() -> None:
    p, realized = apply_fill(Position("X"), D("2"), D("100"), D(0))
    p, _ = apply_fill(p, D("1"), D("130"), D(0))
    assert p.average_price == D("110") and realized == 0
    p, realized = apply_fill(p, D("-1.5"), D("120"), D("1"))
    assert realized == D("15") and p.quantity == D("1.5") and p.cost == D("165")
    assert p.commissions == D("1")


def test_partial_reduce_of_an_inexact_average_stays_exact() -> None:
    p, _ = apply_fill(Position("X"), D("3"), D("1"), D(0))
    p, _ = apply_fill(p, D("-1"), D("2"), D(0))
    p, _ = apply_fill(p, D("1"), D("2"), D(0))
    # cost 4 for 3 units: 1.333...; reducing 1 removes a rounded third, realized takes the rest
    before = p
    p, realized = apply_fill(p, D("-1"), D("5"), D(0))
    assert realized - (p.cost - before.cost) == D("5")


def test_binary_settlement_at_one_pays_the_long_and_closes() -> None:
    state = given()
    placed(state, order(instrument="RAIN-NYC", quantity=D("100")), market=YES)
    events = settle(state, SettleContract(instrument="RAIN-NYC", outcome=1), market=YES,
                    now_ns=NS)
    assert types(events) == ["trading.contract-settled", "position.closed",
                             "account.balance-changed"]
    balance = events[-1]
    assert isinstance(balance, AccountBalanceChanged)
    assert balance.realized == D("100") * (1 - D("0.42")) and balance.cause == "settlement"


def test_binary_settlement_cancels_open_orders_and_ignores_linear_instruments() -> None:
    state = given()
    placed(state, order(instrument="RAIN-NYC", type="limit", limit_price=D("0.30"),
                        quantity=D("10")), market=YES)
    events = settle(state, SettleContract(instrument="RAIN-NYC", outcome=0), market=YES,
                    now_ns=NS)
    assert types(events) == ["trading.order-cancelled"]
    assert settle(state, SettleContract(instrument="BTC-USD", outcome=0), market=BTC,
                  now_ns=NS) == []


def test_halted_instrument_fills_nothing_on_a_quote() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    assert quoted(state, quote("58000", "58001"), market=replace(BTC, status="halted")) == []


def test_mark_values_longs_at_the_bid_and_reports_margin() -> None:
    state = given()
    placed(state, order(quantity=D("2")))
    marked = mark(state, {"BTC-USD": quote("61000", "61001")}, markets={"BTC-USD": BTC},
                  terms=TERMS, now_ns=NS)
    assert marked is not None
    assert marked.unrealized == D("2") * D("61000") - D("120003")
    assert marked.equity == state.balance + marked.unrealized
    assert marked.margin_used == D("2") * D("61000") / 10
    assert marked.margin_free == marked.equity - marked.margin_used
    assert marked.marks == {"BTC-USD": D("61000")}


def test_quote_from_tick_rounds_outward_to_the_grid_and_refuses_bad_quotes() -> None:
    row = TickRow(venue_ts_ns=NS, received_ts_ns=NS, price=60000.3, size=0.0025,
                  bid=60000.2, ask=60000.7)
    q = quote_from_tick(row, BTC)
    assert q is not None
    assert (q.bid, q.ask, q.bid_size, q.at_ns) == (D("60000"), D("60001"), D("0.002"), NS)
    crossed = row.model_copy(update={"bid": 60002.0, "ask": 60001.0})
    assert quote_from_tick(crossed, BTC) is None
    assert quote_from_tick(row.model_copy(update={"price": 0.001, "bid": None, "ask": None}),
                           BTC) is None  # rounds down to a zero bid
    assert quote_from_tick(row.model_copy(update={"bid": 0.5, "ask": 1.2}), YES) is None
    no_size = quote_from_tick(row.model_copy(update={"size": 0.0}), BTC)
    assert no_size is not None and no_size.ask_size is None
