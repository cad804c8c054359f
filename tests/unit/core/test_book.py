"""The order book by example: one behaviour per test, records compared whole."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import core.domain.book as book_module
from core.domain.book import Book
from core.domain.book_maker import MarketMaker
from core.domain.book_types import (
    Accepted,
    Cancel,
    Cancelled,
    Fill,
    Modified,
    Place,
    Rejected,
    Rested,
    Result,
    from_ticks,
    record_from_dict,
    record_to_dict,
    to_lots,
    to_ticks,
)


def kinds(records: list[Result]) -> list[str]:
    return [type(r).__name__ for r in records]


def fills(records: list[Result]) -> list[tuple[str, int, int]]:
    """(maker, price, qty) of each fill, in order."""
    return [(r.maker_order_id, r.price, r.qty) for r in records if isinstance(r, Fill)]


def test_a_better_price_fills_first_then_the_earlier_order_at_one_price() -> None:
    book = Book()
    book.place("late-101", "m1", "sell", 5, 101)
    book.place("early-102", "m2", "sell", 5, 102)
    book.place("late-102", "m3", "sell", 5, 102)
    book.place("best-100", "m4", "sell", 5, 100)
    out = book.place("t", "taker", "buy", 20, 102)
    assert fills(out) == [("best-100", 100, 5), ("late-101", 101, 5), ("early-102", 102, 5),
                          ("late-102", 102, 5)]
    assert len(book) == 0 and book.best_ask() is None


def test_a_partial_fill_leaves_the_maker_resting_with_the_rest_at_its_place() -> None:
    book = Book()
    book.place("a", "m1", "sell", 10, 100)
    book.place("b", "m2", "sell", 10, 100)
    out = book.place("t", "taker", "buy", 4, 100)
    assert out == [Accepted("t", 5),
                   Fill("a", "t", "m1", "taker", "buy", 100, 4, 6, 6)]
    assert book.order("a") is not None and book.order("a").remaining == 6  # type: ignore[union-attr]
    assert fills(book.place("t2", "taker", "buy", 7, 100)) == [("a", 100, 6), ("b", 100, 1)]


def test_a_gtc_remainder_rests_at_its_limit_after_its_fills() -> None:
    book = Book()
    book.place("a", "m1", "sell", 3, 100)
    out = book.place("t", "taker", "buy", 5, 101)
    assert kinds(out) == ["Accepted", "Fill", "Rested"]
    assert out[-1] == Rested("t", "buy", 101, 2, out[-1].sequence)
    assert (book.best_bid(), book.best_ask()) == (101, None)


def test_fok_fills_completely_or_changes_nothing() -> None:
    book = Book()
    book.place("a", "m1", "sell", 5, 100)
    book.place("b", "m2", "sell", 5, 101)
    before = book.snapshot()
    out = book.place("f1", "taker", "buy", 11, 101, "fok")
    assert out == [Rejected("f1", "fok-unfillable", 5)]
    assert book.snapshot() == {**before, "sequence": 5}
    out = book.place("f2", "taker", "buy", 10, 101, "fok")
    assert fills(out) == [("a", 100, 5), ("b", 101, 5)] and len(book) == 0


def test_ioc_cancels_what_it_could_not_fill() -> None:
    book = Book()
    book.place("a", "m1", "sell", 5, 100)
    out = book.place("i", "taker", "buy", 8, 100, "ioc")
    assert kinds(out) == ["Accepted", "Fill", "Cancelled"]
    assert out[-1] == Cancelled("i", 3, "unfilled", out[-1].sequence)
    assert len(book) == 0 and book.best_bid() is None


def test_post_only_is_refused_when_it_would_cross_and_rests_otherwise() -> None:
    book = Book()
    book.place("a", "m1", "sell", 5, 100)
    assert book.place("p1", "mm", "buy", 5, 100, "post-only")[0] == Rejected(
        "p1", "would-cross", 3)
    assert kinds(book.place("p2", "mm", "buy", 5, 99, "post-only")) == ["Accepted", "Rested"]
    assert book.modify("p2", price=100)[0].reason == "would-cross"  # type: ignore[union-attr]
    assert book.order("p2") is not None and book.best_bid() == 99


def test_cancel_of_an_unknown_or_finished_order_is_rejected() -> None:
    book = Book()
    assert book.cancel("nope") == [Rejected("nope", "unknown-order", 1)]
    book.place("a", "m1", "sell", 5, 100)
    assert book.cancel("a") == [Cancelled("a", 5, "requested", 4)]
    assert book.cancel("a") == [Rejected("a", "not-resting", 5)]
    assert book.modify("a", qty=1) == [Rejected("a", "not-resting", 6)]


def test_a_duplicate_order_id_is_rejected_even_after_the_first_is_gone() -> None:
    book = Book()
    book.place("a", "m1", "sell", 5, 100)
    assert book.place("a", "m2", "sell", 5, 101) == [Rejected("a", "duplicate-order-id", 3)]
    book.cancel("a")
    assert book.place("a", "m2", "sell", 5, 101)[0].reason == "duplicate-order-id"  # type: ignore[union-attr]


def test_modify_down_keeps_priority_and_up_loses_it() -> None:
    book = Book()
    book.place("a", "m1", "sell", 10, 100)
    book.place("b", "m2", "sell", 10, 100)
    assert book.modify("a", qty=4) == [Modified("a", 100, 4, True, 5)]
    assert fills(book.place("t1", "taker", "buy", 1, 100)) == [("a", 100, 1)]
    out = book.modify("a", qty=8)
    assert out[0] == Modified("a", 100, 8, False, out[0].sequence)
    assert kinds(out) == ["Modified", "Rested"]
    assert fills(book.place("t2", "taker", "buy", 12, 100)) == [("b", 100, 10), ("a", 100, 2)]


def test_modify_to_a_crossing_price_trades_as_a_new_order_would() -> None:
    book = Book()
    book.place("bid", "m1", "buy", 5, 99)
    book.place("ask", "m2", "sell", 3, 101)
    out = book.modify("bid", price=101)
    assert kinds(out) == ["Modified", "Fill", "Rested"]
    assert fills(out) == [("ask", 101, 3)] and book.best_bid() == 101


def test_self_trade_cancel_resting_cancels_the_owners_resting_order_and_goes_on() -> None:
    book = Book(stp="cancel-resting")
    book.place("own", "ann", "sell", 5, 100)
    book.place("other", "bob", "sell", 5, 100)
    out = book.place("t", "ann", "buy", 5, 100)
    assert kinds(out) == ["Accepted", "Cancelled", "Fill"]
    assert out[1] == Cancelled("own", 5, "self-trade", out[1].sequence)
    assert fills(out) == [("other", 100, 5)] and len(book) == 0


def test_self_trade_cancel_incoming_cancels_the_incoming_rest_and_keeps_the_book() -> None:
    book = Book(stp="cancel-incoming")
    book.place("other", "bob", "sell", 2, 100)
    book.place("own", "ann", "sell", 5, 100)
    book.place("behind", "bob", "sell", 5, 100)
    out = book.place("t", "ann", "buy", 6, 100)
    assert kinds(out) == ["Accepted", "Fill", "Cancelled"]
    assert out[-1] == Cancelled("t", 4, "self-trade", out[-1].sequence)
    assert book.order("own") is not None and book.best_bid() is None
    assert book.place("f", "ann", "buy", 3, 100, "fok")[0].reason == "fok-unfillable"  # type: ignore[union-attr]


def test_a_market_order_on_an_empty_side_has_no_liquidity_and_never_rests() -> None:
    book = Book()
    book.place("bid", "m1", "buy", 5, 99)
    assert book.place("m", "t", "buy", 5) == [Rejected("m", "no-liquidity", 3)]
    assert len(book) == 1 and book.order("m") is None
    out = book.place("m2", "t", "sell", 8)
    assert kinds(out) == ["Accepted", "Fill", "Cancelled"] and len(book) == 0


@pytest.mark.parametrize(("qty", "price", "reason"), [
    (0, 100, "bad-quantity"), (-1, 100, "bad-quantity"), (1.5, 100, "bad-quantity"),
    (True, 100, "bad-quantity"), (1, 0, "bad-price"), (1, -3, "bad-price"),
    (1, 1 << 62, "bad-price"), (1, Decimal("100"), "bad-price"),
])
def test_bad_quantities_and_prices_are_rejected(qty: object, price: object, reason: str) -> None:
    book = Book()
    assert book.place("x", "t", "buy", qty, price) == [  # type: ignore[arg-type]
        Rejected("x", reason, 1)]  # type: ignore[arg-type]
    assert len(book) == 0 and book.place("x", "t", "buy", 1, 100)[0] == Accepted("x", 2)


def test_queries_report_depth_best_prices_and_resting_orders() -> None:
    book = Book()
    for i, (side, qty, price) in enumerate([("buy", 3, 98), ("buy", 4, 99), ("buy", 1, 99),
                                            ("sell", 2, 101), ("sell", 6, 103)]):
        book.place(f"o{i}", "m", side, qty, price)  # type: ignore[arg-type]
    assert book.depth(levels=5) == ([(99, 5), (98, 3)], [(101, 2), (103, 6)])
    assert book.depth(levels=1) == ([(99, 5)], [(101, 2)])
    assert (book.best_bid(), book.best_ask(), len(book)) == (99, 101, 5)
    assert book.order("o1") == ("o1", "m", "buy", 99, 4, False)


def test_mid_queue_cancels_are_swept_without_changing_priority(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(book_module, "_SWEEP_AT", -3)
    book = Book()
    for i in range(10):
        book.place(f"o{i}", "m", "sell", 1, 100)
    for i in (1, 3, 5, 7, 8):
        book.cancel(f"o{i}")  # from the third on, each sweeps the queue (3 > -3 + 10 // 2)
    assert len(book._asks[-100]) == 5  # no dead entry left
    assert [o[0] for o in book.snapshot()["asks"][0][1]] == ["o0", "o2", "o4", "o6", "o9"]
    assert [m for m, _, _ in fills(book.place("t", "x", "buy", 5, 100))] == [
        "o0", "o2", "o4", "o6", "o9"]


def test_restore_from_a_json_snapshot_gives_the_same_records_as_the_book() -> None:
    book = Book(stp="cancel-incoming")
    book.place("a", "m1", "sell", 5, 101)
    book.place("b", "m2", "sell", 5, 101)
    book.place("c", "m3", "buy", 5, 99, "post-only")
    book.cancel("a")
    restored = Book.restore(json.loads(json.dumps(book.snapshot())))
    assert restored.stp == "cancel-incoming" and restored.sequence == book.sequence
    for b in (book, restored):
        assert b.place("a", "x", "buy", 1, 90)[0].reason == "duplicate-order-id"  # type: ignore[union-attr]
    assert restored.place("t", "m1", "buy", 9, 101) == book.place("t", "m1", "buy", 9, 101)
    assert restored.snapshot() == book.snapshot()


def test_a_snapshot_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Book.restore({**Book().snapshot(), "version": 99})


def test_records_round_trip_through_plain_dicts() -> None:
    record = Fill("a", "b", "m", "t", "buy", 100, 3, 0, 7)
    assert record_to_dict(record)["type"] == "fill"
    assert record_from_dict(json.loads(json.dumps(record_to_dict(record)))) == record


def test_to_ticks_and_to_lots_refuse_what_is_off_the_grid() -> None:
    assert to_ticks(Decimal("101.25"), Decimal("0.25")) == 405
    assert to_lots(Decimal("3"), Decimal("0.5")) == 6
    assert from_ticks(405, Decimal("0.25")) == Decimal("101.25")
    for bad in (Decimal("101.3"), Decimal("NaN"), Decimal("Infinity"), Decimal("1e40")):
        with pytest.raises(ValueError):
            to_ticks(bad, Decimal("0.25"))
    with pytest.raises(ValueError):
        to_lots(Decimal("1"), Decimal("0"))
    with pytest.raises(TypeError):
        to_ticks(101.25, Decimal("0.25"))  # type: ignore[arg-type]


def test_a_market_maker_quotes_both_sides_and_replaces_its_last_quote() -> None:
    maker = MarketMaker("mm", seed=7, levels=2)
    first = maker.quote(100, spread=2, size=10)
    assert [(c.side, c.price) for c in first if isinstance(c, Place)] == [
        ("buy", 99), ("sell", 101), ("buy", 98), ("sell", 102)]
    assert all(isinstance(c, Place) and c.owner == "mm" and c.tif == "post-only"
               and 5 <= c.qty <= 15 for c in first)
    second = maker.quote(103, spread=4, size=10)
    assert [c.order_id for c in second if isinstance(c, Cancel)] == [
        c.order_id for c in first if isinstance(c, Place)]
    assert [(c.side, c.price) for c in second if isinstance(c, Place)][:2] == [
        ("buy", 101), ("sell", 105)]
    again = MarketMaker("mm", seed=7, levels=2)
    assert again.quote(100, spread=2, size=10) == first
    book = Book()
    for command in first + second:
        book.apply(command)
    assert (book.best_bid(), book.best_ask(), len(book)) == (101, 105, 4)
