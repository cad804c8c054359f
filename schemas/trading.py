"""Trading on a virtual account: orders, fills, positions, balance and equity.

These commands and events travel on the **account** family's topics, keyed by account id: the
account engine is the single writer of an account and decides all of them in one step.

Quantities and prices are Decimals bounded by the model itself (finite, above zero, at most
`max_digits`), so NaN, infinities, zero, negatives and absurd sizes never reach the domain.
Amounts that are results (cost basis, P&L, commissions, balances) are signed Decimals with
room for the exact products of a price and a quantity.

Ids are deterministic: an order's id is `order_id_for(account_id, client_order_id)`, so a
retried place with the same client order id is recognised; a fill's id derives from its
order's id and its number within the order.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.envelope import CommandPayload, EventPayload
from schemas.instrument import Symbol
from schemas.market import Nanos

# Fixed forever: changing it would give every recorded order a second id.
ORDER_NAMESPACE = uuid.UUID("3c6e9b14-5f2a-4d87-a0c1-7e4b2d9f8a36")

ClientOrderId = Annotated[str, Field(min_length=1, max_length=64,
                                     pattern=r"^[A-Za-z0-9._-]{1,64}$",
                                     examples=["my-order-0001"])]
# 12 places, as an instrument's tick and lot sizes (schemas/instrument.py) may have.
Quantity = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12,
                                    description="units, above zero, on the lot grid")]
OrderPrice = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=12,
                                      description="above zero, on the tick grid")]
# Results of arithmetic on prices and quantities: signed, exact, bounded.
Amount = Annotated[Decimal, Field(max_digits=60, decimal_places=30)]
NonNegativeAmount = Annotated[Decimal, Field(ge=0, max_digits=60, decimal_places=30)]
Reason = Annotated[str, Field(min_length=1, max_length=200)]

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop-limit"]
TimeInForce = Literal["GTC", "IOC", "FOK", "DAY"]
OrderRole = Literal["entry", "stop-loss", "take-profit"]
Liquidity = Literal["taker", "maker"]


def order_id_for(account_id: str, client_order_id: str) -> uuid.UUID:
    """Return the id of an account's order: the same for every retry of one client order id."""
    return uuid.uuid5(ORDER_NAMESPACE, f"{account_id}:{client_order_id}")


def child_order_id(parent_id: uuid.UUID, role: OrderRole) -> uuid.UUID:
    """Return the id of the stop-loss or take-profit order attached to an entry order."""
    return uuid.uuid5(ORDER_NAMESPACE, f"{parent_id}:{role}")


def fill_id_for(order_id: uuid.UUID, number: int) -> uuid.UUID:
    """Return the id of an order's `number`-th fill (1-based)."""
    return uuid.uuid5(ORDER_NAMESPACE, f"{order_id}/fill/{number}")


def settlement_id_for(account_id: str, instrument: str) -> uuid.UUID:
    """Return the id of the settlement of an account's position in a resolved contract."""
    return uuid.uuid5(ORDER_NAMESPACE, f"{account_id}:settle:{instrument}")


def _check_prices(order_type: str, limit_price: Decimal | None,
                  stop_price: Decimal | None) -> None:
    needs_limit = order_type in ("limit", "stop-limit")
    needs_stop = order_type in ("stop", "stop-limit")
    if needs_limit != (limit_price is not None):
        raise ValueError(f"a {order_type} order {'needs' if needs_limit else 'takes no'} "
                         "limit_price")
    if needs_stop != (stop_price is not None):
        raise ValueError(f"a {order_type} order {'needs' if needs_stop else 'takes no'} "
                         "stop_price")


class Order(BaseModel):
    """An order as the account engine accepted it: the whole of it, as evolve needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: uuid.UUID
    client_order_id: ClientOrderId
    instrument: Symbol
    side: Side
    type: OrderType
    quantity: Quantity
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None
    time_in_force: TimeInForce
    stop_loss: OrderPrice | None = None
    take_profit: OrderPrice | None = None
    role: OrderRole = Field(default="entry", description="entry, or one leg of an entry's OCO "
                                                         "exit pair")
    parent_id: uuid.UUID | None = Field(default=None, description="the entry of an exit leg")
    oco_id: uuid.UUID | None = Field(default=None,
                                     description="the other exit leg, cancelled when this fills")
    reduce_only: bool = False
    accepted_ns: Nanos

    @model_validator(mode="after")
    def _prices_match_type(self) -> Order:
        _check_prices(self.type, self.limit_price, self.stop_price)
        return self


# Commands -------------------------------------------------------------------------------------


class PlaceOrder(CommandPayload):
    TYPE = "trading.place-order"

    client_order_id: ClientOrderId
    instrument: Symbol
    side: Side
    type: OrderType
    quantity: Quantity
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None
    time_in_force: TimeInForce = "GTC"
    stop_loss: OrderPrice | None = Field(
        default=None, description="exit stop, live with take_profit as an OCO pair once filled")
    take_profit: OrderPrice | None = Field(
        default=None, description="exit limit, live with stop_loss as an OCO pair once filled")

    @model_validator(mode="after")
    def _prices_match_type(self) -> PlaceOrder:
        _check_prices(self.type, self.limit_price, self.stop_price)
        return self


class CancelOrder(CommandPayload):
    TYPE = "trading.cancel-order"

    order_id: uuid.UUID


class ModifyOrder(CommandPayload):
    TYPE = "trading.modify-order"

    order_id: uuid.UUID
    quantity: Quantity | None = Field(default=None, description="new total quantity")
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ModifyOrder:
        if self.quantity is None and self.limit_price is None and self.stop_price is None:
            raise ValueError("a modify must change quantity, limit_price or stop_price")
        return self


class HaltAccount(CommandPayload):
    TYPE = "account.halt"

    reason: Reason


class ResumeAccount(CommandPayload):
    TYPE = "account.resume"

    reason: Reason


class SettleContract(CommandPayload):
    """A prediction market resolved: positions in it settle at `outcome` per unit."""

    TYPE = "trading.settle-contract"

    instrument: Symbol
    outcome: Literal[0, 1]


# Events ---------------------------------------------------------------------------------------


class OrderAccepted(EventPayload):
    TYPE = "trading.order-accepted"

    order_id: uuid.UUID
    order: Order

    @model_validator(mode="after")
    def _same_id(self) -> OrderAccepted:
        if self.order.order_id != self.order_id:
            raise ValueError("order_id differs from the order's")
        return self


OrderRejection = Literal[
    "account-not-open",
    "account-halted",
    "duplicate-client-order-id",
    "instrument-unknown",
    "instrument-halted",
    "instrument-resolved",
    "instrument-not-allowed",
    "market-closed",
    "off-tick",
    "off-lot",
    "price-out-of-range",
    "invalid-brackets",
    "stale-quote",
    "quantity-limit",
    "position-limit",
    "risk-limit",
    "insufficient-margin",
    "fok-unfillable",
    "order-unknown",
    "order-not-open",
    "quantity-below-filled",
    "invalid-modify",
    "book-unsupported",  # an order kind the instrument's order book does not take
    "lots-limit",  # the phase's maximum open lots (rules)
    "exposure-limit",  # the phase's maximum open exposure (rules)
    "phase-ended",  # the phase is passed or failed: the account takes no new exposure
    "trading-halted",  # an admin halted trading platform-wide (schemas.platform)
]


class OrderRejected(EventPayload):
    """A refused place, cancel or modify; the account is unchanged by it."""

    TYPE = "trading.order-rejected"

    action: Literal["place", "cancel", "modify"]
    client_order_id: ClientOrderId | None = None
    order_id: uuid.UUID | None = None
    reason: OrderRejection
    detail: str = Field(default="", max_length=500)


class OrderFilled(EventPayload):
    TYPE = "trading.order-filled"

    order_id: uuid.UUID
    fill_id: uuid.UUID
    instrument: Symbol
    side: Side
    price: OrderPrice
    quantity: Quantity
    liquidity: Liquidity
    commission: NonNegativeAmount
    leaves_quantity: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=12)]
    at_ns: Nanos


CancelReason = Literal["requested", "ioc-remainder", "oco", "nothing-to-reduce",
                       "contract-settled", "parent-cancelled",
                       # an order in an instrument's book (issue 11.3): the book's self-trade
                       # prevention cancelled it, or the book refused it after the account took it
                       "self-trade", "book-refused",
                       # the account was halted by a rule violation or the kill switch
                       "account-halted"]


class OrderCancelled(EventPayload):
    TYPE = "trading.order-cancelled"

    order_id: uuid.UUID
    reason: CancelReason


class OrderCancelRequested(EventPayload):
    """A cancel of an order resting in an instrument's book, sent on to the book: the order
    stays open until the book says it was cancelled (or filled first)."""

    TYPE = "trading.order-cancel-requested"

    order_id: uuid.UUID


class OrderExpired(EventPayload):
    TYPE = "trading.order-expired"

    order_id: uuid.UUID
    at_ns: Nanos


class OrderModified(EventPayload):
    """The order's new terms, whole: quantity is the new total, filled part included."""

    TYPE = "trading.order-modified"

    order_id: uuid.UUID
    quantity: Quantity
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None


class OrderTriggered(EventPayload):
    """A stop order's trigger was crossed: it now works as a market or limit order."""

    TYPE = "trading.order-triggered"

    order_id: uuid.UUID
    price: OrderPrice = Field(description="the quote price that crossed the stop")
    at_ns: Nanos


class _PositionEvent(EventPayload):
    """The whole position after a fill: evolve sets it, never recomputes it."""

    instrument: Symbol
    quantity: Amount = Field(description="signed: above zero long, below zero short")
    cost: Amount = Field(description="signed cost basis of the open quantity (sum of "
                                     "price x signed quantity still open)")
    average_price: NonNegativeAmount = Field(description="cost / quantity, rounded for display")
    realized: Amount = Field(description="P&L realized since the position opened")
    commissions: NonNegativeAmount = Field(description="commissions paid since it opened")
    at_ns: Nanos


class PositionOpened(_PositionEvent):
    TYPE = "position.opened"


class PositionChanged(_PositionEvent):
    TYPE = "position.changed"


class PositionClosed(_PositionEvent):
    TYPE = "position.closed"


class AccountBalanceChanged(EventPayload):
    """Cash moved: `delta` = `realized` - `commission`; `balance` is the result."""

    TYPE = "account.balance-changed"

    delta: Amount
    balance: Amount
    realized: Amount
    commission: NonNegativeAmount
    cause: Literal["fill", "settlement"]
    reference: uuid.UUID = Field(description="the fill id, or the settlement id")


class AccountEquityMarked(EventPayload):
    TYPE = "account.equity-marked"

    equity: Amount
    unrealized: Amount
    margin_used: NonNegativeAmount
    margin_free: Amount
    marks: dict[Symbol, OrderPrice] = Field(
        default_factory=dict, description="the price each open position was marked at")
    at_ns: Nanos


class AccountHalted(EventPayload):
    TYPE = "account.halted"

    reason: Reason


class AccountResumed(EventPayload):
    TYPE = "account.resumed"

    reason: Reason


class ContractSettled(EventPayload):
    TYPE = "trading.contract-settled"

    instrument: Symbol
    outcome: Literal[0, 1]
    quantity: Amount = Field(description="the signed position settled")
    realized: Amount
    at_ns: Nanos


COMMANDS = (PlaceOrder, CancelOrder, ModifyOrder, HaltAccount, ResumeAccount, SettleContract)
EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCancelled, OrderExpired,
          OrderModified, OrderCancelRequested, OrderTriggered, PositionOpened,
          PositionChanged, PositionClosed,
          AccountBalanceChanged, AccountEquityMarked, AccountHalted, AccountResumed,
          ContractSettled)
