"""The order book of an internal market on the log (issue 11.3): the `book` family.

Commands and events are keyed by instrument symbol; the book engine
(`core/processors/book_engine.py`) is the single writer of a symbol's book. An account's
order reaches it as `book.submit`, sent by the account engine in the transaction that accepted
it; a simulated market maker's quotes as `book.quote`, sent by the book engine itself on
market ticks. Both go through `book.commands`, so replaying that topic gives the same book.

Events are the book's result records, one event each, with the book's own `book_sequence`
(None on a refusal of the engine's, which the book never saw). Prices and quantities are
Decimals for readers (the account engine books trades with them) and ticks and lots for the
book's own fold on recovery, so a later change of the instrument's grid never changes what
the log says. Event ids derive from the command id, as every decider's do.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family
from schemas.instrument import PositiveDecimal
from schemas.trading import OrderPrice, Quantity

OrderRef = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9:._-]+$",
                                description="an account order's uuid, or a market maker's "
                                            "`<maker>:<n>`")]
Owner = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9:._-]+$",
                             description="the account id, or a market maker's id: the "
                                         "self-trade prevention group")]
Side = Literal["buy", "sell"]
BookTimeInForce = Literal["gtc", "ioc", "fok", "post-only"]
Ticks = Annotated[int, Field(ge=1, lt=1 << 62)]
Lots = Annotated[int, Field(ge=0, lt=1 << 62)]
BookSequence = Annotated[int | None, Field(default=None, ge=1)]
Remaining = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=12)]
SelfTradePrevention = Literal["cancel-resting", "cancel-incoming"]

# The book's refusals (core.domain.book_types.RejectReason) and the engine's own.
BookRejection = Literal[
    "duplicate-order-id", "unknown-order", "not-resting", "would-cross", "fok-unfillable",
    "no-liquidity", "bad-quantity", "bad-price", "bad-side", "bad-time-in-force",
    "instrument-unknown",  # no registered instrument with book execution
    "off-grid",  # a price or quantity off the instrument's tick or lot grid
    "not-owner",  # a cancel or modify by another account than the order's
]
BookCancelReason = Literal["requested", "unfilled", "self-trade"]


# Commands -------------------------------------------------------------------------------------


class SubmitOrder(CommandPayload):
    """A new order in the book; `price` None is a market order (IOC, or FOK with tif fok)."""

    TYPE = "book.submit"

    order_id: OrderRef
    account_id: Owner
    side: Side
    price: OrderPrice | None = None
    quantity: Quantity
    time_in_force: BookTimeInForce = "gtc"


class CancelBookOrder(CommandPayload):
    TYPE = "book.cancel"

    order_id: OrderRef
    account_id: Owner


class ModifyBookOrder(CommandPayload):
    """A resting order's new remaining quantity and/or price (None: unchanged)."""

    TYPE = "book.modify"

    order_id: OrderRef
    account_id: Owner
    quantity: Quantity | None = None
    price: OrderPrice | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ModifyBookOrder:
        if self.quantity is None and self.price is None:
            raise ValueError("a modify must change quantity or price")
        return self


class QuoteBook(CommandPayload):
    """A simulated market maker re-quotes: its last quote is cancelled, `levels` levels a side
    are placed around `reference` (`core.domain.book_maker.MarketMaker`)."""

    TYPE = "book.quote"

    maker: Owner
    reference: OrderPrice
    spread_ticks: int = Field(ge=1, le=10_000)
    size_lots: int = Field(ge=1, le=1_000_000_000)
    levels: int = Field(default=1, ge=1, le=20)


# Events ---------------------------------------------------------------------------------------


class BookOpened(EventPayload):
    """The book of an instrument starts, on the instrument's grid at that moment."""

    TYPE = "book.opened"

    tick_size: PositiveDecimal
    lot_size: PositiveDecimal
    stp: SelfTradePrevention


class BookOrderAccepted(EventPayload):
    TYPE = "book.order-accepted"

    order_id: OrderRef
    account_id: Owner
    side: Side
    price: OrderPrice | None = None
    quantity: Quantity
    time_in_force: BookTimeInForce
    book_sequence: BookSequence


class BookOrderRejected(EventPayload):
    TYPE = "book.order-rejected"

    action: Literal["submit", "cancel", "modify"]
    order_id: OrderRef
    account_id: Owner
    reason: BookRejection
    detail: str = Field(default="", max_length=300)
    book_sequence: BookSequence


class BookTrade(EventPayload):
    """One match, at the maker's price; `maker_remaining_lots` 0: the maker is done."""

    TYPE = "book.trade"

    maker_order_id: OrderRef
    maker_account_id: Owner
    taker_order_id: OrderRef
    taker_account_id: Owner
    taker_side: Side
    price: OrderPrice
    quantity: Quantity
    price_ticks: Ticks
    quantity_lots: Lots
    maker_remaining_lots: Lots
    book_sequence: BookSequence


class BookOrderRested(EventPayload):
    """The order (what is left of it) rests in the book, behind its level's older orders."""

    TYPE = "book.order-rested"

    order_id: OrderRef
    account_id: Owner
    side: Side
    price: OrderPrice
    remaining: Quantity
    price_ticks: Ticks
    remaining_lots: Lots
    post_only: bool = False
    book_sequence: BookSequence


class BookOrderCancelled(EventPayload):
    TYPE = "book.order-cancelled"

    order_id: OrderRef
    account_id: Owner
    remaining: Remaining
    remaining_lots: Lots
    reason: BookCancelReason
    book_sequence: BookSequence


class BookOrderModified(EventPayload):
    """With `priority_kept` False the order left the book: trades, then rested or cancelled,
    follow as for a new order."""

    TYPE = "book.order-modified"

    order_id: OrderRef
    account_id: Owner
    price: OrderPrice
    remaining: Quantity
    price_ticks: Ticks
    remaining_lots: Lots
    priority_kept: bool
    book_sequence: BookSequence


class BookMakerQuoted(EventPayload):
    """A market maker's state after a quote: how many orders it placed so far, and the ids
    of its last quote (cancelled by its next one)."""

    TYPE = "book.maker-quoted"

    maker: Owner
    placed: int = Field(ge=0)
    order_ids: tuple[OrderRef, ...] = Field(max_length=40)


COMMANDS = (SubmitOrder, CancelBookOrder, ModifyBookOrder, QuoteBook)
EVENTS = (BookOpened, BookOrderAccepted, BookOrderRejected, BookTrade, BookOrderRested,
          BookOrderCancelled, BookOrderModified, BookMakerQuoted)

FAMILY = Family(
    name="book", commands=COMMANDS, events=EVENTS, partitions=3, key="instrument symbol",
)
