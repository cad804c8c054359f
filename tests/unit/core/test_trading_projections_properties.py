"""Random order and quote streams made by the trading domain: the read models agree with the
account's own state, whatever the batch cuts and however often events are delivered again.

After any stream of places (every type, time in force, brackets), quotes, cancels,
modifies, marks, expiries, halts and resumes:
- every open order of the state is `working`/`partially_filled` with the state's filled
  quantity and terms, every finished one has the state's final status, and the fills of an
  order sum to its filled quantity at its average price;
- the open positions are the state's positions, the closed ones have quantity 0;
- the account row has the state's balance and halt; the equity points are one per minute;
- folding in random batch cuts with random redeliveries gives the same tables.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st

from core.domain.trading import cancel, expire_day, halt, modify, resume
from schemas.trading import CancelOrder, HaltAccount, ModifyOrder, ResumeAccount
from tests.support.trading_log import BTC, NS, AccountLog, D
from tests.unit.core.test_trading_projections import ACCOUNT, PROJECTIONS, rows

SECOND = 1_000_000_000

places = st.tuples(st.just("place"), st.sampled_from(["buy", "sell"]),
                   st.sampled_from(["market", "limit", "stop", "stop-limit"]),
                   st.integers(1, 30),  # lots of 0.001
                   st.integers(-8, 8),  # limit/stop offset from the touch, in ticks
                   st.sampled_from(["GTC", "IOC", "FOK", "DAY"]),
                   st.booleans(),  # with brackets
                   st.sampled_from([None, 1, 7]))  # lots quoted at the touch
quotes = st.tuples(st.just("quote"), st.integers(-40, 40),
                   st.sampled_from([None, 1, 7, 500]))
others = st.tuples(st.sampled_from(["cancel", "modify", "mark", "expire", "halt", "resume"]),
                   st.integers(0, 50))
steps = st.lists(st.one_of(places, quotes, quotes, others), min_size=1, max_size=40)


def run(stream: list[tuple[Any, ...]]) -> AccountLog:
    log = AccountLog(ACCOUNT)
    mid, now = D("60000"), NS
    for i, step in enumerate(stream):
        now += 7 * SECOND
        bid, ask = mid, mid + D("0.5")
        match step:
            case ("place", side, kind, lots, offset, tif, brackets, depth):
                touch = ask if side == "buy" else bid
                price = touch + D("0.5") * offset
                fields: dict[str, Any] = {"client_order_id": f"o-{i % 12}", "side": side,
                                          "type": kind, "quantity": D("0.001") * lots,
                                          "time_in_force": tif}
                if kind in ("limit", "stop-limit"):
                    fields["limit_price"] = price
                if kind in ("stop", "stop-limit"):
                    fields["stop_price"] = price
                if brackets:
                    below, above = touch - 500, touch + 500
                    fields["stop_loss"], fields["take_profit"] = (
                        (below, above) if side == "buy" else (above, below))
                log.place(now_ns=now, bid=str(bid), ask=str(ask),
                          size=None if depth is None else str(D("0.001") * depth), **fields)
            case ("quote", move, size):
                mid = max(D("1000"), mid + D("0.5") * move)
                log.quote(str(mid), str(mid + D("0.5")),
                          size=None if size is None else str(D("0.001") * size), now_ns=now)
            case ("cancel" | "modify", pick):
                open_ids = list(log.state.orders)
                if open_ids:
                    order_id = open_ids[pick % len(open_ids)]
                    if step[0] == "cancel":
                        log.record(cancel(log.state, CancelOrder(order_id=order_id), now_ns=now))
                    else:
                        quantity = D("0.001") * (pick + 1)
                        log.record(modify(log.state, ModifyOrder(order_id=order_id,
                                                                 quantity=quantity),
                                          market=BTC, now_ns=now))
            case ("mark", _):
                if log.state.positions:
                    log.mark(str(bid), str(ask), now_ns=now)
            case ("expire", _):
                log.record(expire_day(log.state, now_ns=now + 86_400 * SECOND))
            case ("halt", _):
                log.record(halt(log.state, HaltAccount(reason="limit")))
            case ("resume", _):
                log.record(resume(log.state, ResumeAccount(reason="new day")))
    return log


@settings(max_examples=150, deadline=None)
@for_all(steps)
def test_the_read_models_agree_with_the_account_state(stream: list[tuple[Any, ...]]) -> None:
    log = run(stream)
    state = log.state
    orders = rows("orders", log.events)
    for order_id, working in state.orders.items():
        row = orders[str(order_id)]
        assert row.status == ("partially_filled" if working.filled else "working"), row
        assert (row.filled_quantity, row.quantity) == (working.filled, working.quantity)
        assert (row.limit_price, row.stop_price) == (working.limit_price, working.stop_price)
        assert row.triggered == working.triggered
    for order_id, final in state.finished.items():
        assert orders[str(order_id)].status == final
    known = {str(o) for o in state.orders} | {str(o) for o in state.finished}
    assert {k for k, r in orders.items() if r.status != "rejected"} == known

    fills = rows("fills", log.events)
    for order_id, row in orders.items():
        mine = [f for f in fills.values() if f.order_id == order_id]
        assert sum((f.quantity for f in mine), Decimal(0)) == row.filled_quantity
        if mine:
            notional = sum((f.price * f.quantity for f in mine), Decimal(0))
            assert row.average_fill_price == notional / row.filled_quantity

    positions = rows("positions", log.events)
    held = {r.instrument: r for r in positions.values() if r.status == "open"}
    assert set(held) == {s for s, p in state.positions.items() if p.quantity}
    for symbol, row in held.items():
        p = state.positions[symbol]
        assert (row.quantity, row.cost, row.realized, row.commissions) == (
            p.quantity, p.cost, p.realized, p.commissions)
    assert all(r.quantity == 0 for r in positions.values() if r.status == "closed")

    account = rows("accounts", log.events)[ACCOUNT]
    assert (account.balance, account.halted, account.halt_reason) == (
        state.balance, state.halted, state.halt_reason)
    points = rows("equity", log.events)
    assert len({(p.account_id, p.bucket) for p in points.values()}) == len(points)


@settings(max_examples=100, deadline=None)
@for_all(steps, st.integers(1, 7), st.lists(st.integers(0, 200), max_size=12))
def test_batch_cuts_and_redeliveries_change_nothing(stream: list[tuple[Any, ...]], batch: int,
                                                    again: list[int]) -> None:
    log = run(stream)
    events = list(log.events)
    redelivered = list(events)
    # An event seen again after the next one (as after a batch retried from its offsets),
    # inserted from the back so each goes where the original log puts it.
    for i in sorted({at % len(events) for at in again}, reverse=True):
        redelivered.insert(min(i + 2, len(events)), events[i])
    for name in PROJECTIONS:
        assert rows(name, redelivered, batch=batch) == rows(name, events, batch=1000), name
