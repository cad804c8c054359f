"""The order book of one instrument as an aggregate on the log (the `book` family).

`decide` turns a `book.*` command into calls on the instrument's `Book` and its records into
events; `evolve` folds an event back into the book (`Book.follow`), which is how the book
engine rebuilds a book from a snapshot and the events after it.

One departure from the other aggregates, on purpose: `decide` runs the call on the book in
place (a book of a million orders cannot be copied per command), and `evolve` then skips
every record at or below the book's sequence, so an event is applied exactly once whether
`decide` or a replay met it first. The engine drops a partition's books when its transaction
fails and reloads them from the log, as the account engine does with accounts. Everything a
call could refuse is checked before the book is touched, so `decide` does not fail half-way.

Market makers (`core.domain.book_maker.MarketMaker`) are participants like accounts: a
`book.quote` command re-quotes one, its state (orders placed, ids of its last quote) is
recorded by `book.maker-quoted`, and its sizes come from a seed derived from that state.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.domain.book import Book
from core.domain.book_maker import MarketMaker
from core.domain.book_types import (
    MAX_PRICE,
    Accepted,
    Cancel,
    Cancelled,
    Fill,
    Modified,
    Place,
    Rejected,
    Rested,
    Result,
    StpPolicy,
    from_lots,
    from_ticks,
    to_lots,
    to_ticks,
)
from kernel.aggregate import DecideContext
from schemas.book import (
    BookMakerQuoted,
    BookOpened,
    BookOrderAccepted,
    BookOrderCancelled,
    BookOrderModified,
    BookOrderRejected,
    BookOrderRested,
    BookRejection,
    BookTrade,
    CancelBookOrder,
    ModifyBookOrder,
    QuoteBook,
    SubmitOrder,
)
from schemas.envelope import CommandPayload, EventPayload

Action = str  # "submit" | "cancel" | "modify"
CHUNK_ORDERS = 2_000  # orders per snapshot item: an item stays far below a record's limit


@dataclass
class BookState:
    """One instrument's book (None until its first command) and its market makers."""

    symbol: str
    book: Book | None = None
    tick: Decimal = Decimal(0)
    lot: Decimal = Decimal(0)
    makers: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BookContext(DecideContext):
    """The instrument's grid, (tick size, lot size), when it executes in a book (else None)."""

    grid: tuple[Decimal, Decimal] | None
    stp: StpPolicy = "cancel-resting"


class BookAggregate:
    family = "book"
    rejection: type[EventPayload] = BookOrderRejected

    def initial(self, aggregate_id: str) -> BookState:
        return BookState(aggregate_id)

    def decide(self, command: CommandPayload, state: BookState,
               ctx: DecideContext) -> list[EventPayload]:
        assert isinstance(ctx, BookContext), "the book needs the engine's context"
        out: list[EventPayload] = []
        if state.book is None:
            if ctx.grid is None:
                return [_refusal(command, "instrument-unknown",
                                 f"{state.symbol} has no order book")]
            opened = BookOpened(tick_size=ctx.grid[0], lot_size=ctx.grid[1], stp=ctx.stp)
            self.evolve(state, opened)
            out.append(opened)
        book = state.book
        assert book is not None
        match command:
            case SubmitOrder():
                try:
                    qty = _lots(command.quantity, state.lot)
                    price = None if command.price is None else _ticks(command.price, state.tick)
                except ValueError as exc:
                    return [*out, _refusal(command, "off-grid", str(exc))]
                records = book.place(command.order_id, command.account_id, command.side, qty,
                                     price, command.time_in_force)
                out += _events(state, records, "submit", command.account_id,
                               post_only=command.time_in_force == "post-only", submit=command)
            case CancelBookOrder():
                if not _owns(book, command.order_id, command.account_id):
                    return [*out, _refusal(command, "not-owner", "another account's order")]
                out += _events(state, book.cancel(command.order_id), "cancel",
                               command.account_id)
            case ModifyBookOrder():
                if not _owns(book, command.order_id, command.account_id):
                    return [*out, _refusal(command, "not-owner", "another account's order")]
                try:
                    qty_ = None if command.quantity is None else _lots(command.quantity,
                                                                        state.lot)
                    price_ = None if command.price is None else _ticks(command.price, state.tick)
                except ValueError as exc:
                    return [*out, _refusal(command, "off-grid", str(exc))]
                resting = book.order(command.order_id)
                out += _events(state, book.modify(command.order_id, qty=qty_, price=price_),
                               "modify", command.account_id,
                               post_only=resting is not None and resting.post_only)
            case QuoteBook():
                out += self._quote(state, book, command)
            case _:
                raise TypeError(f"the book does not handle {command.TYPE}")
        return out

    def _quote(self, state: BookState, book: Book, command: QuoteBook) -> list[EventPayload]:
        placed, live = state.makers.get(command.maker, (0, ()))
        seed = zlib.crc32(f"{state.symbol}:{command.maker}:{placed}".encode())
        maker = MarketMaker(command.maker, seed=seed, levels=command.levels,
                            placed=placed, live=live)
        reference = int((command.reference / state.tick).to_integral_value())
        highest = reference + command.spread_ticks + command.levels
        if reference < 1 or highest >= MAX_PRICE or from_ticks(highest, state.tick) >= \
                Decimal("1e12"):
            return []  # nothing a trader could meet: leave the last quote as it is
        calls = maker.quote(reference, spread=command.spread_ticks, size=command.size_lots)
        state.makers[command.maker] = (maker.placed, maker.live)
        out: list[EventPayload] = [BookMakerQuoted(maker=command.maker, placed=maker.placed,
                                                   order_ids=maker.live)]
        for call in calls:
            if type(call) is Cancel:
                if book.order(call.order_id) is None:
                    continue  # filled since: nothing to cancel
                out += _events(state, book.cancel(call.order_id), "cancel", command.maker)
            elif type(call) is Place:
                out += _events(state, book.apply(call), "submit", command.maker,
                               post_only=call.tif == "post-only", place=call)
        return out

    def evolve(self, state: BookState, event: EventPayload) -> BookState:
        """Fold one event; a record the book already holds changes nothing."""
        match event:
            case BookOpened():
                if state.book is None:
                    state.book = Book(stp=event.stp)
                    state.tick, state.lot = event.tick_size, event.lot_size
            case BookMakerQuoted():
                state.makers[event.maker] = (event.placed, event.order_ids)
            case _:
                record = _record(event)
                if record is not None:
                    assert state.book is not None, "a book record before book.opened"
                    state.book.follow(record, owner=getattr(event, "account_id", ""),
                                      post_only=getattr(event, "post_only", False))
        return state

    def dump(self, state: BookState) -> dict[str, Any]:
        return {"symbol": state.symbol, "tick": str(state.tick), "lot": str(state.lot),
                "makers": {m: [p, list(ids)] for m, (p, ids) in state.makers.items()},
                "book": None if state.book is None else state.book.snapshot()}

    def load(self, data: dict[str, Any]) -> BookState:
        return BookState(data["symbol"],
                         None if data["book"] is None else Book.restore(data["book"]),
                         Decimal(data["tick"]), Decimal(data["lot"]),
                         {m: (int(p), tuple(ids)) for m, (p, ids) in data["makers"].items()})


# -- snapshots in pieces: a book of a million orders is tens of MB ------------------------------

def snapshot_items(symbol: str, version: int, state: BookState,
                   aggregate: BookAggregate) -> Iterator[list[Any]]:
    """The state as items of bounded size: a head, then known ids and resting orders in
    chunks of `CHUNK_ORDERS` (a level may span several items, in time order)."""
    head = aggregate.dump(BookState(symbol, None, state.tick, state.lot, state.makers))
    book = None if state.book is None else state.book.snapshot()
    if book is not None:
        head["book"] = {k: v for k, v in book.items() if k not in ("known_ids", "bids", "asks")}
    yield ["book", symbol, version, head]
    if book is None:
        return
    known = book["known_ids"]
    for i in range(0, len(known), CHUNK_ORDERS * 2):
        yield ["known", symbol, known[i:i + CHUNK_ORDERS * 2]]
    for side in ("bids", "asks"):
        for price, orders in book[side]:
            for i in range(0, len(orders), CHUNK_ORDERS):
                yield [side, symbol, price, orders[i:i + CHUNK_ORDERS]]


def restore_items(items: list[list[Any]], aggregate: BookAggregate
                  ) -> dict[str, tuple[int, BookState]]:
    """Books back from `snapshot_items` (items of several books, each book's in order)."""
    heads: dict[str, tuple[int, dict[str, Any]]] = {}
    for item in items:
        kind, symbol = item[0], item[1]
        if kind == "book":
            heads[symbol] = (int(item[2]), item[3])
            book = item[3]["book"]
            if book is not None:
                book.update(known_ids=[], bids=[], asks=[])
        elif kind == "known":
            heads[symbol][1]["book"]["known_ids"] += item[2]
        elif kind in ("bids", "asks"):
            levels = heads[symbol][1]["book"][kind]
            if levels and levels[-1][0] == item[2]:
                levels[-1][1] += item[3]
            else:
                levels.append([item[2], list(item[3])])
        else:
            raise ValueError(f"unknown book snapshot item {kind!r}")
    return {symbol: (version, aggregate.load(data)) for symbol, (version, data) in heads.items()}


# -- commands to book calls, records to events and back -----------------------------------------

def _lots(qty: Decimal, lot: Decimal) -> int:
    lots = to_lots(qty, lot)
    if lots >= MAX_PRICE:
        raise ValueError(f"quantity {qty} is too large")
    return lots


def _ticks(price: Decimal, tick: Decimal) -> int:
    ticks = to_ticks(price, tick)
    if ticks >= MAX_PRICE:
        raise ValueError(f"price {price} is too large")
    return ticks


def _owns(book: Book, order_id: str, account_id: str) -> bool:
    resting = book.order(order_id)
    return resting is None or resting.owner == account_id  # (the book refuses the unknown)


def _refusal(command: CommandPayload, reason: BookRejection, detail: str) -> BookOrderRejected:
    action = {"book.submit": "submit", "book.cancel": "cancel", "book.modify": "modify"}.get(
        command.TYPE)
    return BookOrderRejected(action=action or "submit",
                             order_id=getattr(command, "order_id", None) or "quote",
                             account_id=getattr(command, "account_id", None) or
                             getattr(command, "maker", "unknown"),
                             reason=reason, detail=detail, book_sequence=None)


def _events(state: BookState, records: list[Result], action: Action, owner: str, *,
            post_only: bool = False, submit: SubmitOrder | None = None,
            place: Place | None = None) -> list[EventPayload]:
    """The events of one call's records. `owner` is the caller's: the owner of every order
    the call cancels or rests (self-trade prevention only ever cancels the caller's own)."""
    tick, lot = state.tick, state.lot
    out: list[EventPayload] = []
    for r in records:
        if type(r) is Fill:
            out.append(BookTrade(
                maker_order_id=r.maker_order_id, maker_account_id=r.maker_owner,
                taker_order_id=r.taker_order_id, taker_account_id=r.taker_owner,
                taker_side=r.taker_side, price=from_ticks(r.price, tick),
                quantity=from_lots(r.qty, lot), price_ticks=r.price, quantity_lots=r.qty,
                maker_remaining_lots=r.maker_remaining, book_sequence=r.sequence))
        elif type(r) is Accepted:
            if submit is not None:
                side, price, qty, tif = (submit.side, submit.price, submit.quantity,
                                         submit.time_in_force)
            else:
                assert place is not None
                side, qty, tif = place.side, from_lots(place.qty, lot), place.tif
                price = None if place.price is None else from_ticks(place.price, tick)
            out.append(BookOrderAccepted(order_id=r.order_id, account_id=owner, side=side,
                                         price=price, quantity=qty, time_in_force=tif,
                                         book_sequence=r.sequence))
        elif type(r) is Rested:
            out.append(BookOrderRested(order_id=r.order_id, account_id=owner, side=r.side,
                                       price=from_ticks(r.price, tick),
                                       remaining=from_lots(r.remaining, lot),
                                       price_ticks=r.price, remaining_lots=r.remaining,
                                       post_only=post_only, book_sequence=r.sequence))
        elif type(r) is Cancelled:
            out.append(BookOrderCancelled(order_id=r.order_id, account_id=owner,
                                          remaining=from_lots(r.remaining, lot),
                                          remaining_lots=r.remaining, reason=r.reason,
                                          book_sequence=r.sequence))
        elif type(r) is Modified:
            out.append(BookOrderModified(order_id=r.order_id, account_id=owner,
                                         price=from_ticks(r.price, tick),
                                         remaining=from_lots(r.remaining, lot),
                                         price_ticks=r.price, remaining_lots=r.remaining,
                                         priority_kept=r.priority_kept,
                                         book_sequence=r.sequence))
        elif type(r) is Rejected:
            out.append(BookOrderRejected(action=action,
                                         order_id=r.order_id, account_id=owner,
                                         reason=r.reason, book_sequence=r.sequence))
    return out


def _record(event: EventPayload) -> Result | None:
    """The book record an event carries (None: an event that is no record of the book)."""
    match event:
        case BookOrderAccepted(book_sequence=int(seq)):
            return Accepted(event.order_id, seq)
        case BookOrderRejected(book_sequence=int(seq)):
            return Rejected(event.order_id, event.reason, seq)  # type: ignore[arg-type]
        case BookTrade(book_sequence=int(seq)):
            return Fill(event.maker_order_id, event.taker_order_id, event.maker_account_id,
                        event.taker_account_id, event.taker_side, event.price_ticks,
                        event.quantity_lots, event.maker_remaining_lots, seq)
        case BookOrderRested(book_sequence=int(seq)):
            return Rested(event.order_id, event.side, event.price_ticks, event.remaining_lots,
                          seq)
        case BookOrderCancelled(book_sequence=int(seq)):
            return Cancelled(event.order_id, event.remaining_lots, event.reason, seq)
        case BookOrderModified(book_sequence=int(seq)):
            return Modified(event.order_id, event.price_ticks, event.remaining_lots,
                            event.priority_kept, seq)
    return None
