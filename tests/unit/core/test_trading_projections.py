"""The trading read models' folds (orders, fills, positions, equity, the account's new
columns) over events the real trading domain emits: every event type, replays and
duplicates skipped, a refused place never clobbering an order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from core.adapters import (
    account_equity_projection,
    accounts_projection,
    trading_fills_projection,
    trading_orders_projection,
    trading_positions_projection,
)
from core.adapters.keyed_rows import KeyedProjection, at_ns, fold_keyed
from core.domain.trading import cancel, expire_day, halt, modify, resume
from kernel.projection import Applied
from schemas.trading import (
    AccountEquityMarked,
    CancelOrder,
    HaltAccount,
    ModifyOrder,
    OrderRejected,
    ResumeAccount,
    order_id_for,
)
from tests.support.trading_log import BTC, NS, AccountLog, D

ACCOUNT = "7b0c3a52-8f6e-5d41-9a2b-3c4d5e6f7a8b"
MINUTE = 60_000_000_000

PROJECTIONS: dict[str, type[KeyedProjection]] = {
    "orders": trading_orders_projection.TradingOrdersProjection,
    "fills": trading_fills_projection.TradingFillsProjection,
    "positions": trading_positions_projection.TradingPositionsProjection,
    "equity": account_equity_projection.AccountEquityProjection,
    "accounts": accounts_projection.AccountsProjection,
}


def new_log() -> AccountLog:
    return AccountLog(ACCOUNT)


def rows(name: str, events: Iterable[Applied], *, batch: int = 3,
         start: dict[str, Any] | None = None) -> dict[str, Any]:
    """The table a projection leaves after `events`, folded in batches of `batch` (as the
    runner cuts them): each batch sees the rows the earlier ones committed."""
    projection = PROJECTIONS[name]
    table: dict[str, Any] = dict(start or {})
    events = list(events)
    for i in range(0, len(events), batch):
        mine = [e for e in events[i:i + batch] if projection.key(e) is not None]
        table.update(fold_keyed(table, mine, key=projection.key, step=projection.step))
    return table


def order_row(table: dict[str, Any], client_order_id: str) -> Any:
    return table[str(order_id_for(ACCOUNT, client_order_id))]


# -- orders ---------------------------------------------------------------------------------


def test_market_order_fills_at_once_and_its_row_is_filled_with_the_fill_price() -> None:
    log = new_log()
    log.place(client_order_id="m-1", quantity=D("2"))
    row = order_row(rows("orders", log.events), "m-1")
    assert (row.status, row.filled_quantity, row.side, row.type) == ("filled", D("2"), "buy",
                                                                     "market")
    assert row.average_fill_price == D("60001.5")  # the ask plus one tick of slippage
    assert row.version == len(log.events) - 2  # accepted, filled, then position and balance


def test_resting_limit_works_then_fills_partially_then_whole_with_the_average_price() -> None:
    log = new_log()
    log.place(client_order_id="l-1", type="limit", limit_price=D("59000"), quantity=D("3"))
    assert order_row(rows("orders", log.events), "l-1").status == "working"
    log.quote("58990", "58999", size="1", now_ns=NS + 1)  # only 1 quoted at the touch
    row = order_row(rows("orders", log.events), "l-1")
    assert (row.status, row.filled_quantity) == ("partially_filled", D("1"))
    log.quote("58900", "58950", now_ns=NS + 2)
    row = order_row(rows("orders", log.events), "l-1")
    assert (row.status, row.filled_quantity, row.average_fill_price) == (
        "filled", D("3"), D("59000"))


def test_cancel_modify_trigger_and_expiry_each_show_on_the_row() -> None:
    log = new_log()
    log.place(client_order_id="c", type="limit", limit_price=D("59000"))
    log.place(client_order_id="s", type="stop", stop_price=D("61000"), side="buy")
    log.place(client_order_id="d", type="limit", limit_price=D("58000"), time_in_force="DAY")
    cancelled = order_id_for(ACCOUNT, "c")
    log.record(modify(log.state, ModifyOrder(order_id=cancelled, quantity=D("2"),
                                             limit_price=D("59500")), market=BTC, now_ns=NS))
    log.record(cancel(log.state, CancelOrder(order_id=cancelled), now_ns=NS))
    log.quote("61000", "61001", now_ns=NS + 1)  # triggers the stop, which fills at market
    log.record(expire_day(log.state, now_ns=NS + 86_400_000_000_000))
    table = rows("orders", log.events)
    c = order_row(table, "c")
    assert (c.status, c.reason, c.quantity, c.limit_price) == ("cancelled", "requested", D("2"),
                                                               D("59500"))
    s = order_row(table, "s")
    assert (s.status, s.triggered, s.type) == ("filled", True, "stop")
    d = order_row(table, "d")
    assert (d.status, d.reason) == ("expired", "day-ended")


def test_a_refused_place_gets_a_rejected_row_with_its_reason_and_no_terms() -> None:
    log = new_log()
    log.place(client_order_id="off", quantity=D("0.0005"))  # below the lot
    row = order_row(rows("orders", log.events), "off")
    assert (row.status, row.reason, row.instrument, row.quantity) == ("rejected", "off-lot",
                                                                      None, None)
    assert row.detail and "0.0005" in row.detail


def test_a_duplicate_client_order_id_never_overwrites_the_order_it_repeats() -> None:
    log = new_log()
    log.place(client_order_id="dup", type="limit", limit_price=D("59000"))
    duplicate = log.place(client_order_id="dup", quantity=D("5"))
    assert isinstance(duplicate[0].payload, OrderRejected)
    assert duplicate[0].payload.reason == "duplicate-client-order-id"
    for batch in (1, 10):  # the refusal alone in its batch, and in the order's own batch
        row = order_row(rows("orders", log.events, batch=batch), "dup")
        assert (row.status, row.quantity, row.reason) == ("working", D("1"), None)


def test_a_place_accepted_after_a_refusal_of_the_same_client_order_id_replaces_it() -> None:
    log = new_log()
    log.place(client_order_id="again", quantity=D("0.0005"))
    log.place(client_order_id="again", quantity=D("1"))
    row = order_row(rows("orders", log.events), "again")
    assert (row.status, row.reason, row.quantity) == ("filled", None, D("1"))


def test_refused_cancel_and_modify_leave_the_order_as_it_was() -> None:
    log = new_log()
    log.place(client_order_id="f")  # filled at once
    filled = order_id_for(ACCOUNT, "f")
    before = order_row(rows("orders", log.events), "f")
    refused = log.record(cancel(log.state, CancelOrder(order_id=filled), now_ns=NS))
    refused += log.record(modify(log.state, ModifyOrder(order_id=filled, quantity=D("3")),
                                 market=BTC, now_ns=NS))
    assert [e.payload.reason for e in refused] == ["order-not-open", "order-not-open"]  # type: ignore[attr-defined]
    assert order_row(rows("orders", log.events), "f") == before


def test_oco_exit_legs_get_rows_of_their_own_and_the_take_profit_cancels_the_stop() -> None:
    log = new_log()
    log.place(client_order_id="e", stop_loss=D("59000"), take_profit=D("62000"))
    log.quote("62000", "62001", now_ns=NS + 1)
    table = rows("orders", log.events)
    legs = {r.role: r for r in table.values() if r.role in ("stop-loss", "take-profit")}
    entry = order_row(table, "e")
    assert legs["take-profit"].status == "filled" and legs["stop-loss"].status == "cancelled"
    assert legs["stop-loss"].reason == "oco"
    assert {str(r.parent_id) for r in legs.values()} == {entry.order_id}


def test_orders_replayed_and_duplicated_change_nothing() -> None:
    log = new_log()
    log.place(client_order_id="a", type="limit", limit_price=D("59000"), quantity=D("2"))
    log.place(client_order_id="b")
    log.quote("58900", "58950", now_ns=NS + 1)
    for name in PROJECTIONS:
        once = rows(name, log.events)
        # the whole log again onto the rows it made, and every event twice in a row
        assert rows(name, log.events, start=once) == once
        doubled = [e for event in log.events for e in (event, event)]
        assert rows(name, doubled, batch=4) == once
        # batch cuts do not matter
        assert rows(name, log.events, batch=1) == rows(name, log.events, batch=100) == once


# -- fills, positions ---------------------------------------------------------------------------


def test_each_fill_is_one_row_with_its_price_quantity_liquidity_and_commission() -> None:
    log = new_log()
    log.place(client_order_id="l", type="limit", limit_price=D("59000"), quantity=D("2"))
    log.quote("58900", "58950", now_ns=NS + 5)
    log.place(client_order_id="m", side="sell")
    table = rows("fills", log.events)
    assert len(table) == 2
    maker = next(r for r in table.values() if r.liquidity == "maker")
    assert (maker.price, maker.quantity, maker.side) == (D("59000"), D("2"), "buy")
    assert maker.commission == D("59000") * D("2") * D("0.0005")
    assert maker.filled_at == datetime.fromtimestamp((NS + 5) // 1000 / 1e6, UTC)
    assert maker.order_id == str(order_id_for(ACCOUNT, "l"))


def test_a_position_opens_changes_and_closes_and_reopens_fresh() -> None:
    log = new_log()
    log.place(client_order_id="1", quantity=D("2"))
    log.place(client_order_id="2", side="sell", quantity=D("1"))
    key = f"{ACCOUNT}:BTC-USD"
    row = rows("positions", log.events)[key]
    assert (row.status, row.quantity, row.average_price) == ("open", D("1"), D("60001.5"))
    assert row.realized == D("59999.5") - D("60001.5")
    log.place(client_order_id="3", side="sell", quantity=D("1"))
    closed = rows("positions", log.events)[key]
    assert (closed.status, closed.quantity, closed.closed_at is not None) == ("closed", 0, True)
    assert closed.commissions > row.commissions
    log.place(client_order_id="4", side="sell", quantity=D("1"))
    reopened = rows("positions", log.events)[key]
    assert (reopened.status, reopened.quantity, reopened.realized) == ("open", D("-1"), 0)
    assert reopened.closed_at is None and reopened.opened_at > closed.opened_at


# -- equity, the account ----------------------------------------------------------------------


def test_domain_times_become_timestamps_truncated_to_the_microsecond() -> None:
    ns = 1_795_000_000_123_456_789
    assert at_ns(ns) == datetime(2026, 11, 18, 11, 6, 40, 123456, tzinfo=UTC)


def test_equity_keeps_the_last_mark_of_each_minute() -> None:
    log = new_log()
    log.place(client_order_id="1")
    base = (NS // MINUTE) * MINUTE
    log.mark("60100", "60101", now_ns=base + 1_000_000_000)
    log.mark("60200", "60201", now_ns=base + 59_000_000_000)
    log.mark("60300", "60301", now_ns=base + MINUTE)
    table = rows("equity", log.events)
    assert len(table) == 2
    points = sorted(table.values(), key=lambda r: r.bucket)
    marks = [e.payload for e in log.events if isinstance(e.payload, AccountEquityMarked)]
    assert [p.equity for p in points] == [marks[1].equity, marks[2].equity]
    assert points[0].bucket == datetime.fromtimestamp(base // 1_000_000_000, UTC)
    assert points[0].marked_at == datetime.fromtimestamp((base + 59_000_000_000) // 1e9, UTC)


def test_the_account_row_follows_balance_equity_margin_and_halts() -> None:
    log = new_log()
    start = rows("accounts", log.events)[ACCOUNT]
    assert (start.equity, start.unrealized, start.margin_used, start.halted) == (
        D("100000"), 0, 0, False)
    log.place(client_order_id="1")  # pays a commission: the balance moves
    row = rows("accounts", log.events)[ACCOUNT]
    assert row.balance == log.state.balance < D("100000")
    log.mark("60100", "60101", now_ns=NS + 1)
    row = rows("accounts", log.events)[ACCOUNT]
    marked = log.events[-1].payload
    assert isinstance(marked, AccountEquityMarked)
    assert (row.equity, row.unrealized, row.margin_used, row.margin_free) == (
        marked.equity, marked.unrealized, marked.margin_used, marked.margin_free)
    log.record(halt(log.state, HaltAccount(reason="daily loss")))
    row = rows("accounts", log.events)[ACCOUNT]
    assert (row.halted, row.halt_reason, row.status) == (True, "daily loss", "open")
    log.record(resume(log.state, ResumeAccount(reason="new day")))
    row = rows("accounts", log.events)[ACCOUNT]
    assert (row.halted, row.halt_reason, row.version) == (False, None, len(log.events))


def test_the_account_version_does_not_move_for_orders_so_later_changes_still_fold() -> None:
    log = new_log()
    log.place(client_order_id="r", type="limit", limit_price=D("50000"))  # rests: no cash
    row = rows("accounts", log.events)[ACCOUNT]
    assert row.version == 1  # the acceptance is not this read model's
    log.record(halt(log.state, HaltAccount(reason="x")))
    halted = rows("accounts", log.events[len(log.events) - 1:], start={ACCOUNT: row})[ACCOUNT]
    assert halted.halted and halted.version == len(log.events)


def test_every_event_type_the_domain_emits_is_folded_by_some_read_model() -> None:
    log = new_log()
    log.place(client_order_id="e", stop_loss=D("59000"), take_profit=D("62000"))
    log.place(client_order_id="x", quantity=D("0.0005"))
    log.place(client_order_id="d", type="limit", limit_price=D("50000"), time_in_force="DAY")
    log.record(modify(log.state, ModifyOrder(order_id=order_id_for(ACCOUNT, "d"),
                                             quantity=D("2")), market=BTC, now_ns=NS))
    log.quote("58000", "58001", now_ns=NS + 1)  # the stop-loss triggers and fills
    log.mark("58000", "58001", now_ns=NS + 2)
    log.record(expire_day(log.state, now_ns=NS + 86_400_000_000_000))
    log.record(halt(log.state, HaltAccount(reason="x")))
    log.record(resume(log.state, ResumeAccount(reason="y")))
    seen = {e.payload.TYPE for e in log.events}
    folded = {e.payload.TYPE for e in log.events
              if any(p.key(e) is not None for p in PROJECTIONS.values())}
    assert seen == folded
    assert {"trading.order-triggered", "trading.order-expired", "trading.order-modified",
            "position.closed", "account.equity-marked", "account.halted"} <= seen
