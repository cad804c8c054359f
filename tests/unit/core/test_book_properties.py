"""Properties of the order book on random call streams, against a slow reference model.

The model keeps resting orders in one flat list with an arrival stamp and, for every match,
picks the best-priced then earliest eligible order by scanning them all: obviously price-time
priority, obviously self-trade aware. The book must return exactly the model's records.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.domain.book as book_module
from core.domain.book import Book
from core.domain.book_types import (
    Accepted,
    Cancel,
    Cancelled,
    Command,
    Fill,
    Modified,
    Modify,
    Place,
    Rejected,
    Rested,
    Result,
    Side,
    StpPolicy,
)

EXAMPLES = 100
POLICIES: tuple[StpPolicy, ...] = ("cancel-resting", "cancel-incoming")


# -- the reference model ----------------------------------------------------------------------

class Model:
    def __init__(self, stp: StpPolicy) -> None:
        self.stp = stp
        self.resting: list[dict[str, Any]] = []
        self.known: set[str] = set()
        self.seq = 0
        self.clock = 0

    def record(self, kind: str, *fields: Any) -> tuple[Any, ...]:
        self.seq += 1
        return (kind, *fields, self.seq)

    def find(self, order_id: str) -> dict[str, Any] | None:
        return next((o for o in self.resting if o["id"] == order_id), None)

    @staticmethod
    def crosses(side: str, limit: int | None, resting_price: int) -> bool:
        if limit is None:
            return True
        return resting_price <= limit if side == "buy" else resting_price >= limit

    def match(self, out: list[tuple[Any, ...]], order_id: str, owner: str, side: str,
              qty: int, limit: int | None) -> int:
        """-1 if self-trade prevention cancelled the incoming order."""
        remaining = qty
        while remaining > 0:
            eligible = [o for o in self.resting
                        if o["side"] != side and self.crosses(side, limit, o["price"])]
            if not eligible:
                break
            best = min(eligible, key=lambda o: (o["price"] if side == "buy" else -o["price"],
                                                o["time"]))
            if best["owner"] == owner:
                if self.stp == "cancel-incoming":
                    out.append(self.record("cancelled", order_id, remaining, "self-trade"))
                    return -1
                self.resting.remove(best)
                out.append(self.record("cancelled", best["id"], best["rem"], "self-trade"))
                continue
            qty_now = min(remaining, best["rem"])
            best["rem"] -= qty_now
            remaining -= qty_now
            out.append(self.record("fill", best["id"], order_id, best["owner"], owner, side,
                                   best["price"], qty_now, best["rem"]))
            if best["rem"] == 0:
                self.resting.remove(best)
        return remaining

    def rest(self, order_id: str, owner: str, side: str, price: int, qty: int,
             post: bool) -> None:
        self.clock += 1
        self.resting.append({"id": order_id, "owner": owner, "side": side, "price": price,
                             "rem": qty, "post": post, "time": self.clock})

    def place(self, c: Place) -> list[tuple[Any, ...]]:
        def reject(reason: str) -> list[tuple[Any, ...]]:
            return [self.record("rejected", c.order_id, reason)]

        if c.qty <= 0:
            return reject("bad-quantity")
        if c.price is not None and c.price <= 0:
            return reject("bad-price")
        if c.order_id in self.known:
            return reject("duplicate-order-id")
        crossing = any(o["side"] != c.side and self.crosses(c.side, c.price, o["price"])
                       for o in self.resting)
        if c.price is None and c.tif == "post-only":
            return reject("bad-price")
        if c.price is None and not crossing:
            return reject("no-liquidity")
        if c.tif == "post-only" and crossing:
            return reject("would-cross")
        if c.tif == "fok":
            trial = Model(self.stp)
            trial.resting = [dict(o) for o in self.resting]
            if trial.match([], c.order_id, c.owner, c.side, c.qty, c.price) != 0:
                return reject("fok-unfillable")
        self.known.add(c.order_id)
        out = [self.record("accepted", c.order_id)]
        remaining = self.match(out, c.order_id, c.owner, c.side, c.qty, c.price)
        if remaining > 0:
            if c.price is None or c.tif in ("ioc", "fok"):
                out.append(self.record("cancelled", c.order_id, remaining, "unfilled"))
            else:
                self.rest(c.order_id, c.owner, c.side, c.price, remaining,
                          c.tif == "post-only")
                out.append(self.record("rested", c.order_id, c.side, c.price, remaining))
        return out

    def cancel(self, c: Cancel) -> list[tuple[Any, ...]]:
        order = self.find(c.order_id)
        if order is None:
            reason = "not-resting" if c.order_id in self.known else "unknown-order"
            return [self.record("rejected", c.order_id, reason)]
        self.resting.remove(order)
        return [self.record("cancelled", c.order_id, order["rem"], "requested")]

    def modify(self, c: Modify) -> list[tuple[Any, ...]]:
        order = self.find(c.order_id)
        if order is None:
            reason = "not-resting" if c.order_id in self.known else "unknown-order"
            return [self.record("rejected", c.order_id, reason)]
        if c.qty is not None and c.qty <= 0:
            return [self.record("rejected", c.order_id, "bad-quantity")]
        if c.price is not None and c.price <= 0:
            return [self.record("rejected", c.order_id, "bad-price")]
        qty = order["rem"] if c.qty is None else c.qty
        price = order["price"] if c.price is None else c.price
        if price == order["price"] and qty <= order["rem"]:
            order["rem"] = qty
            return [self.record("modified", c.order_id, price, qty, True)]
        side = order["side"]
        crossing = any(o["side"] != side and self.crosses(side, price, o["price"])
                       for o in self.resting)
        if crossing and order["post"]:
            return [self.record("rejected", c.order_id, "would-cross")]
        self.resting.remove(order)
        out = [self.record("modified", c.order_id, price, qty, False)]
        remaining = self.match(out, c.order_id, order["owner"], side, qty, price)
        if remaining > 0:
            self.rest(c.order_id, order["owner"], side, price, remaining, order["post"])
            out.append(self.record("rested", c.order_id, side, price, remaining))
        return out

    def apply(self, c: Command) -> list[tuple[Any, ...]]:
        if isinstance(c, Place):
            return self.place(c)
        if isinstance(c, Cancel):
            return self.cancel(c)
        return self.modify(c)


def plain(records: list[Result]) -> list[tuple[Any, ...]]:
    names = {Accepted: "accepted", Rejected: "rejected", Fill: "fill", Cancelled: "cancelled",
             Rested: "rested", Modified: "modified"}
    return [(names[type(r)], *r) for r in records]


# -- call streams -----------------------------------------------------------------------------

PRICES = list(range(97, 104))
SIDES: list[Side] = ["buy", "sell"]


@st.composite
def commands(draw: st.DrawFn) -> list[Command]:
    """Mostly valid calls on few price levels and three owners: places with fresh ids (now
    and then a used one); cancels and modifies, three in four of an order resting at that
    point (a model run alongside says which), the others of any id placed, or never."""
    stream: list[Command] = []
    ids: list[str] = []
    shadow = Model("cancel-resting")
    for _ in range(draw(st.integers(min_value=5, max_value=60))):
        kind = draw(st.sampled_from(["place"] * 6 + ["cancel"] * 2 + ["modify"] * 2))
        command: Command
        if kind == "place" or not ids:
            reuse = bool(ids) and draw(st.integers(0, 19)) == 0
            order_id = draw(st.sampled_from(ids)) if reuse else f"o{len(ids)}"
            ids.append(order_id)
            side: Side = draw(st.sampled_from(SIDES))
            # queues build at 99 and 101; 100 crosses or makes the touch
            prices = [97, 98, 99, 99, 99, 100] if side == "buy" else [100, 101, 101, 101, 102, 103]
            command = Place(
                order_id, draw(st.sampled_from(["ann", "bob", "cat"])), side,
                draw(st.sampled_from([0, *range(1, 13), *range(1, 7)])),
                draw(st.sampled_from([0, None, None, *prices, *prices, *prices])),
                draw(st.sampled_from(["gtc", "gtc", "gtc", "ioc", "fok", "post-only"])))
        else:
            resting = [o["id"] for o in shadow.resting]
            pick_resting = bool(resting) and draw(st.integers(0, 3)) > 0
            order_id = draw(st.sampled_from(resting if pick_resting
                                            else [*ids, "never-placed"]))
            if kind == "cancel":
                command = Cancel(order_id)
            else:
                command = Modify(order_id, draw(st.sampled_from([None, 0, *range(1, 9)])),
                                 draw(st.sampled_from([None, None, *PRICES])))
        shadow.apply(command)
        stream.append(command)
    return stream


def run(book: Book, stream: list[Command]) -> list[list[Result]]:
    return [book.apply(c) for c in stream]


# -- properties -------------------------------------------------------------------------------

@pytest.fixture(params=[None, -(10**9)], ids=["sweep-default", "sweep-always"])
def sweep_at(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a huge negative slack every order cancelled mid-queue sweeps its queue."""
    if request.param is not None:
        monkeypatch.setattr(book_module, "_SWEEP_AT", request.param)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=commands(), stp=st.sampled_from(POLICIES))
def test_book_returns_the_reference_models_records(stream: list[Command], stp: StpPolicy,
                                                   sweep_at: None) -> None:
    book, model = Book(stp=stp), Model(stp)
    for command in stream:
        assert plain(book.apply(command)) == model.apply(command), command
    assert len(book) == len(model.resting)


@settings(max_examples=EXAMPLES, deadline=None)
@given(stream=commands(), stp=st.sampled_from(POLICIES))
def test_quantity_is_conserved_and_the_book_never_crosses(stream: list[Command],
                                                          stp: StpPolicy) -> None:
    book = Book(stp=stp)
    entered: dict[str, int] = {}  # placed + raised by modify, per order
    left: dict[str, int] = {}  # filled + cancelled + lowered by modify, per order
    for command in stream:
        before = book.order(command.order_id)
        snapshot = book.snapshot()
        records = book.apply(command)
        for r in records:
            match r:
                case Accepted(order_id=oid):
                    assert isinstance(command, Place)
                    entered[oid] = command.qty
                    left[oid] = 0
                case Fill(maker_order_id=maker, taker_order_id=taker, qty=qty):
                    assert r.maker_owner != r.taker_owner
                    left[maker] += qty
                    left[taker] += qty
                case Cancelled(order_id=oid, remaining=remaining):
                    left[oid] += remaining
                case Modified(order_id=oid, remaining=remaining):
                    assert before is not None
                    if remaining > before.remaining:
                        entered[oid] += remaining - before.remaining
                    else:
                        left[oid] += before.remaining - remaining
        if isinstance(records[0], Rejected):  # a refusal changes nothing but the sequence
            assert len(records) == 1
            assert book.snapshot() == {**snapshot, "sequence": snapshot["sequence"] + 1}
        if isinstance(command, Place) and command.tif == "fok" and \
                isinstance(records[0], Accepted):
            assert sum(r.qty for r in records if isinstance(r, Fill)) == command.qty
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
        for oid in entered:
            resting = book.order(oid)
            assert entered[oid] == left[oid] + (resting.remaining if resting else 0), oid
        assert sum(entered.values()) == sum(left.values()) + sum(
            q for side in book.depth(levels=100) for _, q in side)
    assert [r.sequence for rs in run(Book(stp=stp), stream) for r in rs] == list(
        range(1, book.sequence + 1))


@settings(max_examples=EXAMPLES, deadline=None)
@given(stream=commands(), stp=st.sampled_from(POLICIES))
def test_the_same_stream_replayed_gives_identical_records(stream: list[Command],
                                                          stp: StpPolicy) -> None:
    first = [plain(rs) for rs in run(Book(stp=stp), stream)]
    again = [plain(rs) for rs in run(Book(stp=stp), stream)]
    assert first == again


@settings(max_examples=EXAMPLES, deadline=None)
@given(stream=commands(), stp=st.sampled_from(POLICIES), data=st.data())
def test_snapshot_restore_and_tail_replay_equal_the_uninterrupted_book(
        stream: list[Command], stp: StpPolicy, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)), label="cut")
    whole = Book(stp=stp)
    expected = [plain(rs) for rs in run(whole, stream)]
    head = Book(stp=stp)
    run(head, stream[:cut])
    restored = Book.restore(json.loads(json.dumps(head.snapshot())))
    assert restored.snapshot() == head.snapshot()
    assert [plain(rs) for rs in run(restored, stream[cut:])] == expected[cut:]
    assert restored.snapshot() == whole.snapshot()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=commands(), stp=st.sampled_from(POLICIES), data=st.data())
def test_following_the_records_rebuilds_the_book_and_records_met_again_change_nothing(
        stream: list[Command], stp: StpPolicy, data: st.DataObject, sweep_at: None) -> None:
    """How the book engine recovers: a snapshot, then the records after it, as logged (the
    owner and post-only flag of a rested order come from its own command)."""
    live = Book(stp=stp)
    logged: list[tuple[Result, str, bool]] = []
    for command in stream:
        resting = live.order(command.order_id)
        if isinstance(command, Place):
            owner, post_only = command.owner, command.tif == "post-only"
        else:
            owner, post_only = (resting.owner, resting.post_only) if resting else ("", False)
        logged += [(r, owner, post_only) for r in live.apply(command)]
    cut = data.draw(st.integers(min_value=0, max_value=len(logged)), label="cut")
    followed = Book(stp=stp)
    for record, owner, post_only in logged[:cut]:
        followed.follow(record, owner=owner, post_only=post_only)
    restored = Book.restore(json.loads(json.dumps(followed.snapshot())))
    again = data.draw(st.integers(min_value=0, max_value=cut), label="met again")
    for record, owner, post_only in logged[again:]:  # a tail that starts too early
        restored.follow(record, owner=owner, post_only=post_only)
    assert restored.snapshot() == live.snapshot()
    # and the rebuilt book decides the next calls as the live one does
    probe = Place("probe", "dan", "buy", 5, 101, "ioc")
    assert plain(restored.apply(probe)) == plain(live.apply(probe))
