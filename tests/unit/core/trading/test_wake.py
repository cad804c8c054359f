"""The wake index finds exactly the accounts a quote or the clock reaches, as a scan would;
DAY expiry is due at the first instant of the next UTC day, not a nanosecond before."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.trading import Quote, expire_day
from core.domain.trading.wake import ASLEEP, DAY_NS, Wake, expires_ns, wake
from core.processors.wake_index import WakeIndex
from schemas.trading import OrderAccepted
from tests.unit.core.trading.support import NS, order, placed, quote
from tests.unit.core.trading.support import given as account_given

# Mostly absent levels and few "any quote" filings, so the due times decide often too.
levels = st.sampled_from([None] * 25 + [Decimal(p) for p in range(90, 111)])
wakes = st.builds(Wake, levels, levels, levels, levels, st.sampled_from([False] * 5 + [True]))
names = st.sampled_from([f"acct-{i}" for i in range(8)])
dues = st.none() | st.integers(0, 20)
filings = st.tuples(st.just("put"), names, wakes, dues)
# The engine's commonest re-filing: the same levels, a new due time (the next mark).
redues = st.tuples(st.just("due"), names, dues)
removals = st.tuples(st.just("remove"), names)
steps = st.lists(st.one_of(filings, redues, removals), max_size=40)


@settings(max_examples=500, deadline=None)
@given(steps, st.lists(st.tuples(st.integers(90, 110), st.integers(0, 3), st.integers(0, 25)),
                       min_size=1, max_size=6))
def test_woken_is_what_a_scan_of_every_account_would_find(
        history: list[tuple[Any, ...]], quotes: list[tuple[int, int, int]]) -> None:
    index, truth = WakeIndex(), {}
    for step in history:
        match step:
            case ("put", account, w, due):
                index.put(account, w, due)
                truth[account] = [w, due]
            case ("due", account, due) if account in truth:
                index.put(account, truth[account][0], due)
                truth[account][1] = due
            case ("remove", account):
                index.remove(account)
                truth.pop(account, None)
    assert index.accounts() == set(truth)
    for bid, spread, now in quotes:
        q = Quote("X", Decimal(bid), Decimal(bid + spread), None, None, now)
        expected = {a for a, (w, due) in truth.items()
                    if w.crossed(q) or (due is not None and due <= now)}
        assert index.woken(q.bid, q.ask, now) == expected
        for a in expected:  # a due time, once reached, is spent until the account is re-filed
            if truth[a][1] is not None and truth[a][1] <= now:
                truth[a][1] = None


def test_an_account_without_orders_on_the_instrument_sleeps_through_any_quote() -> None:
    state = account_given()
    assert wake(state, "BTC-USD") == ASLEEP
    assert not ASLEEP.crossed(quote("1", "2"))


def test_a_resting_limit_wakes_only_once_the_touch_trades_through_it() -> None:
    state = account_given()
    placed(state, order(type="limit", side="buy", quantity=Decimal("1"),
                        limit_price=Decimal("59000")), q=quote("60000", "60000.5"))
    w = wake(state, "BTC-USD")
    assert w.ask_at_most == Decimal("59000") and not w.any_quote
    assert not w.crossed(quote("59000", "59000.5"))
    assert w.crossed(quote("58999.5", "59000"))


def test_day_orders_are_due_at_the_next_utc_midnight_exactly() -> None:
    state = account_given()
    events = placed(state, order(type="limit", side="buy", quantity=Decimal("1"),
                                 limit_price=Decimal("59000"), time_in_force="DAY"),
                    q=quote("60000", "60000.5"))
    accepted = next(e for e in events if isinstance(e, OrderAccepted)).order.accepted_ns
    due = expires_ns(state)
    assert due == (accepted // DAY_NS + 1) * DAY_NS and due > NS
    assert expire_day(state, now_ns=due - 1) == []
    assert expire_day(state, now_ns=due)
