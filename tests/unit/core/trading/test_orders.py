"""Placing, cancelling and modifying: every refusal is one event and changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from core.domain.trading import Terms, cancel, dump, evolve, initial, load, modify, place
from schemas.account import AccountClosed
from schemas.instrument import TradingHours, TradingSession
from schemas.trading import (
    AccountHalted,
    CancelOrder,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
    OrderRejected,
    order_id_for,
)
from tests.unit.core.trading.support import (
    ACCOUNT,
    BTC,
    NS,
    OPENED,
    YES,
    D,
    assert_rejected,
    given,
    order,
    placed,
    quote,
    types,
    when_placed,
)


def test_place_limit_below_the_ask_is_accepted_and_rests() -> None:
    state = given()
    events = when_placed(state, order(type="limit", limit_price=D("59000")))
    assert types(events) == ["trading.order-accepted"]
    accepted = events[0]
    assert isinstance(accepted, OrderAccepted)
    assert accepted.order_id == order_id_for(ACCOUNT, "c-1")
    assert accepted.order.accepted_ns == NS and accepted.order.limit_price == D("59000")


def test_place_never_changes_the_state_it_is_given() -> None:
    state = given()
    before = dump(state)
    when_placed(state, order(quantity=D("1.5"), stop_loss=D("59000")))
    assert dump(state) == before


def test_place_when_account_never_opened_is_rejected() -> None:
    state = initial(ACCOUNT)
    assert_rejected(state, when_placed(state, order()), "account-not-open")


def test_place_when_account_closed_is_rejected() -> None:
    state = given(AccountClosed(reason="assessment over"))
    assert_rejected(state, when_placed(state, order()), "account-not-open")


def test_place_when_account_failed_is_rejected() -> None:
    # No event fails an account yet (the rules engine's issue); a snapshot can hold it.
    state = load({**dump(given()), "status": "failed"})
    assert_rejected(state, when_placed(state, order()), "account-not-open")


def test_place_when_account_halted_is_rejected() -> None:
    state = given(AccountHalted(reason="daily loss"))
    assert_rejected(state, when_placed(state, order()), "account-halted")


def test_place_when_halted_that_only_reduces_the_position_is_accepted() -> None:
    state = given()
    placed(state, order(quantity=D("2")), q=quote("60000", "60001"))
    evolve(state, AccountHalted(reason="daily loss"))
    events = when_placed(state, order(client_order_id="c-2", side="sell", quantity=D("1")))
    assert types(events)[:2] == ["trading.order-accepted", "trading.order-filled"]
    too_much = when_placed(state, order(client_order_id="c-3", side="sell", quantity=D("3")))
    assert_rejected(state, too_much, "account-halted")


def test_place_when_client_order_id_was_used_is_rejected() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    assert_rejected(state, when_placed(state, order(type="limit", limit_price=D("58000"))),
                    "duplicate-client-order-id")


def test_place_when_client_order_id_of_a_filled_order_is_rejected() -> None:
    state = given()
    placed(state, order())
    assert not state.orders
    assert_rejected(state, when_placed(state, order()), "duplicate-client-order-id")


def test_place_when_instrument_unknown_is_rejected() -> None:
    state = given()
    assert_rejected(state, when_placed(state, order(instrument="NOPE"), market=None,
                                       q=quote("1", "2", instrument="NOPE")),
                    "instrument-unknown")


def test_place_when_instrument_halted_is_rejected() -> None:
    state = given()
    halted = replace(BTC, status="halted")
    assert_rejected(state, when_placed(state, order(), market=halted), "instrument-halted")


def test_place_when_instrument_not_in_the_tiers_list_is_rejected() -> None:
    state = given()
    terms = Terms(max_leverage=D(10), allowed_instruments=frozenset({"ETH-USD"}))
    assert_rejected(state, when_placed(state, order(), terms=terms), "instrument-not-allowed")


def test_place_outside_trading_hours_is_rejected_and_inside_is_accepted() -> None:
    # NS is a Wednesday 11:06:40 UTC: 06:06 in New York.
    hours = TradingHours(timezone="America/New_York", sessions=(
        TradingSession(days=(0, 1, 2, 3, 4), open="09:30", close="16:00"),))
    state = given()
    assert_rejected(state, when_placed(state, order(), market=replace(BTC, trading_hours=hours)),
                    "market-closed")
    later = NS + 4 * 3600 * 10**9  # 10:06 in New York
    events = when_placed(state, order(), market=replace(BTC, trading_hours=hours),
                         q=quote("60000", "60001", at_ns=later), now_ns=later)
    assert types(events)[0] == "trading.order-accepted"


def test_a_session_that_wraps_midnight_is_open_after_midnight() -> None:
    hours = TradingHours(sessions=(
        TradingSession(days=(1,), open="22:00", close="12:00"),))
    state = given()
    # Tuesday 22:00 to Wednesday 12:00: NS (Wednesday 11:06) is inside, 12:06 is not.
    assert types(when_placed(state, order(), market=replace(BTC, trading_hours=hours)))[0] \
        == "trading.order-accepted"
    later = NS + 3600 * 10**9
    assert_rejected(state, when_placed(state, order(), q=quote("60000", "60001", at_ns=later),
                                       market=replace(BTC, trading_hours=hours), now_ns=later),
                    "market-closed")


@pytest.mark.parametrize(("fields", "reason"), [
    ({"quantity": D("0.0005")}, "off-lot"),
    ({"type": "limit", "limit_price": D("59000.25")}, "off-tick"),
    ({"type": "stop", "stop_price": D("61000.1")}, "off-tick"),
    ({"stop_loss": D("59000.3")}, "off-tick"),
    ({"take_profit": D("61000.7")}, "off-tick"),
])
def test_place_off_the_grid_is_rejected(fields: dict[str, object], reason: str) -> None:
    state = given()
    assert_rejected(state, when_placed(state, order(**fields)), reason)


def test_place_binary_at_or_above_one_is_rejected() -> None:
    state = given()
    cmd = order(instrument="RAIN-NYC", type="limit", limit_price=D("1"), quantity=D("10"))
    assert_rejected(state, when_placed(state, cmd, market=YES), "price-out-of-range")


def test_place_without_a_quote_is_rejected_as_stale() -> None:
    state = given()
    events = place(state, order(), quote=None, market=BTC, terms=Terms(), now_ns=NS)
    assert_rejected(state, events, "stale-quote")


def test_place_on_an_old_quote_is_rejected_as_stale() -> None:
    state = given()
    old = quote("60000", "60001", at_ns=NS - BTC.max_quote_age_ns - 1)
    assert_rejected(state, when_placed(state, order(), q=old), "stale-quote")
    fresh = quote("60000", "60001", at_ns=NS - BTC.max_quote_age_ns)
    assert types(when_placed(state, order(), q=fresh))[0] == "trading.order-accepted"


@pytest.mark.parametrize("fields", [
    {"side": "buy", "stop_loss": D("60500")},
    {"side": "buy", "take_profit": D("59000")},
    {"side": "sell", "stop_loss": D("59000")},
    {"side": "sell", "take_profit": D("61000")},
])
def test_place_with_brackets_on_the_wrong_side_is_rejected(fields: dict[str, object]) -> None:
    state = given()
    assert_rejected(state, when_placed(state, order(**fields)), "invalid-brackets")


def test_place_above_the_order_size_limit_is_rejected() -> None:
    state = given()
    terms = Terms(max_leverage=D(10), max_order_quantity={"BTC-USD": D("2")})
    assert_rejected(state, when_placed(state, order(quantity=D("2.5")), terms=terms),
                    "quantity-limit")
    assert types(when_placed(state, order(quantity=D("2")), terms=terms))[0] == \
        "trading.order-accepted"


def test_place_past_the_position_limit_counting_resting_orders_is_rejected() -> None:
    state = given()
    terms = Terms(max_leverage=D(10), max_position={"BTC-USD": D("3")})
    placed(state, order(quantity=D("2")), terms=terms)
    placed(state, order(client_order_id="c-2", type="limit", limit_price=D("50000"),
                        quantity=D("1")), terms=terms)
    assert_rejected(state, when_placed(state, order(client_order_id="c-3", type="limit",
                                                    limit_price=D("50000"), quantity=D("0.5")),
                                       terms=terms), "position-limit")
    # Selling reduces the worst case: allowed whatever the limit.
    sell = when_placed(state, order(client_order_id="c-4", side="sell", quantity=D("1")),
                       terms=terms)
    assert types(sell)[0] == "trading.order-accepted"


def test_place_risking_more_than_the_tiers_share_per_trade_is_rejected() -> None:
    state = given()
    terms = Terms(max_leverage=D(10), max_risk_per_trade_pct=D("1"))  # 1 % of 100k = 1,000
    risky = order(type="limit", limit_price=D("60000"), stop_loss=D("58999.5"))
    assert_rejected(state, when_placed(state, risky, terms=terms), "risk-limit")
    fine = order(type="limit", limit_price=D("60000"), stop_loss=D("59000"))
    assert types(when_placed(state, fine, terms=terms)) == ["trading.order-accepted"]


def test_place_beyond_free_margin_at_the_tiers_leverage_is_rejected() -> None:
    state = given()  # 100k at 10x: about 16.6 BTC at 60k
    assert_rejected(state, when_placed(state, order(type="limit", limit_price=D("50000"),
                                                    quantity=D("17"))), "insufficient-margin")
    placed(state, order(type="limit", limit_price=D("50000"), quantity=D("16")))
    # The resting 16 count: one more is too much.
    assert_rejected(state, when_placed(state, order(client_order_id="c-2", quantity=D("1"))),
                    "insufficient-margin")


def test_place_binary_buy_needs_the_whole_premium() -> None:
    state = given()
    cmd = order(instrument="RAIN-NYC", type="limit", limit_price=D("0.40"),
                quantity=D("240000"))  # mid 0.41 x 240k = 98.4k premium: fits 100k
    assert types(when_placed(state, cmd, market=YES))[0] == "trading.order-accepted"
    cmd = order(instrument="RAIN-NYC", type="limit", limit_price=D("0.40"),
                quantity=D("250000"))  # 102.5k: does not
    assert_rejected(state, when_placed(state, cmd, market=YES), "insufficient-margin")


def test_place_fok_larger_than_the_quoted_size_is_rejected() -> None:
    state = given()
    assert_rejected(state, when_placed(state, order(time_in_force="FOK", quantity=D("2")),
                                       q=quote("60000", "60001", size="1.5")), "fok-unfillable")
    assert_rejected(state, when_placed(state, order(time_in_force="FOK", type="limit",
                                                    limit_price=D("59000"))),
                    "fok-unfillable")


def test_cancel_of_a_resting_order_cancels_it() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    order_id = order_id_for(ACCOUNT, "c-1")
    events = cancel(state, CancelOrder(order_id=order_id), now_ns=NS)
    assert events == [OrderCancelled(order_id=order_id, reason="requested")]
    evolve(state, events[0])
    assert not state.orders and not state.by_instrument


def test_cancel_of_a_filled_order_is_rejected_as_not_open() -> None:
    state = given()
    placed(state, order())
    events = cancel(state, CancelOrder(order_id=order_id_for(ACCOUNT, "c-1")), now_ns=NS)
    assert_rejected(state, events, "order-not-open")
    assert isinstance(events[0], OrderRejected) and events[0].action == "cancel"


def test_cancel_of_an_unknown_order_is_rejected() -> None:
    state = given()
    assert_rejected(state, cancel(state, CancelOrder(order_id=uuid.UUID(int=9)), now_ns=NS),
                    "order-unknown")


def test_modify_of_a_resting_limit_changes_its_price_and_size() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    order_id = order_id_for(ACCOUNT, "c-1")
    events = modify(state, ModifyOrder(order_id=order_id, limit_price=D("59500"),
                                       quantity=D("2")), market=BTC, now_ns=NS)
    assert events == [OrderModified(order_id=order_id, quantity=D("2"),
                                    limit_price=D("59500"))]
    evolve(state, events[0])
    assert state.orders[order_id].limit_price == D("59500")


def test_modify_of_a_cancelled_order_is_rejected_as_not_open() -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("59000")))
    order_id = order_id_for(ACCOUNT, "c-1")
    evolve(state, OrderCancelled(order_id=order_id, reason="requested"))
    events = modify(state, ModifyOrder(order_id=order_id, limit_price=D("59500")), market=BTC,
                    now_ns=NS)
    assert_rejected(state, events, "order-not-open")


@pytest.mark.parametrize(("change", "reason"), [
    ({"limit_price": D("59500.2")}, "off-tick"),
    ({"quantity": D("1.0001")}, "off-lot"),
    ({"stop_price": D("61000")}, "invalid-modify"),
    ({"quantity": D("0.5")}, "quantity-below-filled"),
])
def test_modify_refusals(change: dict[str, object], reason: str) -> None:
    state = given()
    placed(state, order(type="limit", limit_price=D("60001"), quantity=D("2")),
           q=quote("60000", "60001", size="1"))  # 1 of 2 filled
    events = modify(state, ModifyOrder(order_id=order_id_for(ACCOUNT, "c-1"), **change),
                    market=BTC, now_ns=NS)
    assert_rejected(state, events, reason)


def test_an_opened_event_on_a_fresh_state_opens_it() -> None:
    state = evolve(initial(ACCOUNT), OPENED)
    assert state.status == "open" and state.balance == state.starting_balance == D("100000")
