"""REST commands on a trading account: place, cancel and modify orders; halt, resume, kill.

Who: a trader with `account:trade`, on their own account only (the accounts read model's
`user_id`); another user's account answers 404 `account-not-found` exactly like an unknown
one, and nothing is sent. Admins and analysts are refused (403): an order is the trader's
decision. Halt and resume are an admin's (`admin` scope): an operator's risk stop.

The answer is the engine's decision within the command wait (`PROPSTREAM_COMMAND_TIMEOUT_MS`):
201 with the order and the fills of the same command, problem+json with the engine's reason
(422 for validation and market reasons, 409 for duplicates and state conflicts, 404 for an
unknown order), or 202 pointing at `/commands/{id}` when no decision came in time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Body, Depends, Path, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.entrypoints.http.commands import CommandAccepted, accepted, refused
from core.entrypoints.http.deps import BusDep, IdempotencyKey, RegistryDep
from core.handlers import trading as handlers
from core.views.assessments import AccountPublic, get_account, get_account_and_grid
from kernel.application import Accepted, Command, Pending, Rejected
from kernel.auth import Principal, access
from kernel.commands import command_id_for
from kernel.deps import PoolDep
from kernel.http import PROBLEM_SCHEMA, Problem
from kernel.ratelimit import rate_limited
from schemas.rules import KillAccount
from schemas.trading import (
    CancelOrder,
    HaltAccount,
    Liquidity,
    ModifyOrder,
    OrderPrice,
    OrderRole,
    OrderType,
    PlaceOrder,
    Quantity,
    ResumeAccount,
    Side,
    TimeInForce,
    order_id_for,
)

router = APIRouter(prefix="/accounts", tags=["orders"])

# An engine's refusal -> HTTP status; the problem type is the reason itself.
REASON_STATUS: dict[str, int] = {
    # the account's or the order's state, or a client order id used before: conflicts
    "account-not-open": 409, "account-halted": 409, "duplicate-client-order-id": 409,
    "order-not-open": 409, "quantity-below-filled": 409,
    "order-unknown": 404,
    # the order itself, the instrument or the market: the request cannot be taken as it is
    "instrument-unknown": 422, "instrument-halted": 422, "instrument-not-allowed": 422,
    "market-closed": 422, "off-tick": 422, "off-lot": 422, "price-out-of-range": 422,
    "invalid-brackets": 422, "stale-quote": 422, "quantity-limit": 422,
    "position-limit": 422, "risk-limit": 422, "insufficient-margin": 422,
    "fok-unfillable": 422, "invalid-modify": 422, "lots-limit": 422, "exposure-limit": 422,
    "phase-ended": 409,
}

EXAMPLE_ACCOUNT_ID = "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e"
EXAMPLE_ORDER_ID = "6f1c2b3a-4d5e-5f60-8a9b-0c1d2e3f4a5b"
EXAMPLE_PLACE = {"client_order_id": "my-order-0001", "instrument": "BTC-USD", "side": "buy",
                 "type": "limit", "quantity": "0.5", "limit_price": "58000.00",
                 "time_in_force": "GTC"}
EXAMPLE_FILL: dict[str, Any] = {
                "fill_id": "0a4e1c7d-2b3f-5a6e-9c8d-7f1e2d3c4b5a", "order_id": EXAMPLE_ORDER_ID,
                "instrument": "BTC-USD", "side": "buy", "price": "58000.00",
                "quantity": "0.5", "liquidity": "taker", "commission": "14.5",
                "leaves_quantity": "0", "at": "2026-03-02T14:05:11.250000Z"}
EXAMPLE_ORDER: dict[str, Any] = {
    "order_id": EXAMPLE_ORDER_ID, "account_id": EXAMPLE_ACCOUNT_ID,
    "client_order_id": "my-order-0001", "instrument": "BTC-USD", "side": "buy",
    "type": "limit", "time_in_force": "GTC", "quantity": "0.5", "limit_price": "58000.00",
    "stop_price": None, "stop_loss": None, "take_profit": None, "status": "filled",
    "filled_quantity": "0.5", "average_price": "58000.00",
    "accepted_at": "2026-03-02T14:05:11.250000Z", "fills": [EXAMPLE_FILL], "exit_orders": [],
    "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f", "duplicate": False,
}

AccountIdPath = Annotated[uuid.UUID, Path(examples=[EXAMPLE_ACCOUNT_ID])]
OrderIdPath = Annotated[uuid.UUID, Path(examples=[EXAMPLE_ORDER_ID])]
# A trader's own account, with a credential that may trade.
Trader = Annotated[Principal, access("trader", scope="account:trade")]
Admin = Annotated[Principal, access("admin", scope="admin")]
# The emergency stop: the trader on their own account, an admin on any.
Stopper = Annotated[Principal, access("trader", "admin",
                                      scope={"trader": "account:trade", "admin": "admin"})]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 404, 409, 413, 422, 429, 503)}
COMMAND_LIMIT = [Depends(rate_limited("order-commands"))]


# -- answers ------------------------------------------------------------------------------


class FillPublic(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_FILL]})

    fill_id: uuid.UUID
    order_id: uuid.UUID
    instrument: str
    side: Side
    price: Decimal
    quantity: Decimal
    liquidity: Liquidity
    commission: Decimal
    leaves_quantity: Decimal = Field(description="what the order still wants after this fill")
    at: datetime


class ExitOrderPublic(BaseModel):
    """A stop-loss or take-profit leg accepted with its entry (an OCO pair)."""

    order_id: uuid.UUID
    role: OrderRole
    type: OrderType
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None


class PlacedOrder(BaseModel):
    """An order as its place command left it; `fills` are every fill that command decided."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_ORDER]})

    order_id: uuid.UUID
    account_id: uuid.UUID
    client_order_id: str
    instrument: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    status: handlers.OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None = Field(description="of this order's fills; null before one")
    accepted_at: datetime
    fills: list[FillPublic]
    exit_orders: list[ExitOrderPublic]
    command_id: uuid.UUID
    duplicate: bool = Field(description="true when this answers a retry of a decided place")


class CancelledOrder(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "order_id": EXAMPLE_ORDER_ID, "account_id": EXAMPLE_ACCOUNT_ID, "status": "cancelled",
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"}]})

    order_id: uuid.UUID
    account_id: uuid.UUID
    status: Literal["cancelled"] = "cancelled"
    command_id: uuid.UUID


class ModifiedOrder(BaseModel):
    """The order's terms after the change (quantity is the new total, filled part included)."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "order_id": EXAMPLE_ORDER_ID, "account_id": EXAMPLE_ACCOUNT_ID, "quantity": "0.8",
        "limit_price": "57950.00", "stop_price": None,
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"}]})

    order_id: uuid.UUID
    account_id: uuid.UUID
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    command_id: uuid.UUID


class AccountHaltState(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "account_id": EXAMPLE_ACCOUNT_ID, "halted": True, "changed": True,
        "reason": "daily loss review", "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"}]})

    account_id: uuid.UUID
    halted: bool
    changed: bool = Field(description="false when the account already was so")
    reason: str
    command_id: uuid.UUID


class AccountKillState(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "account_id": EXAMPLE_ACCOUNT_ID, "halted": True, "changed": True,
        "reason": "my bot is running away", "cancelled_orders": 2, "closing_fills": 1,
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"}]})

    account_id: uuid.UUID
    halted: bool
    changed: bool = Field(description="false when the account was not open")
    reason: str
    cancelled_orders: int = Field(description="open orders the stop cancelled")
    closing_fills: int = Field(description="fills that closed positions at the touch")
    command_id: uuid.UUID


# -- requests -----------------------------------------------------------------------------


class OrderChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"quantity": "0.8", "limit_price": "57950.00"}]})

    quantity: Quantity | None = Field(default=None, description="new total quantity")
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> OrderChanges:
        if self.quantity is None and self.limit_price is None and self.stop_price is None:
            raise ValueError("a modify must change quantity, limit_price or stop_price")
        return self


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"reason": "daily loss review"}]})

    reason: str = Field(min_length=1, max_length=200)


# -- reads before a command ---------------------------------------------------------------


class TradingReads(Protocol):
    """What a command route reads first: the account (whose it is) and an instrument's grid."""

    async def look(self, account_id: uuid.UUID, symbol: str | None = None
                   ) -> tuple[AccountPublic | None, handlers.Grid | None]: ...


@dataclass(frozen=True)
class PoolReads:
    """The read models through the pool, one connection borrowed per look (none is held
    through the wait for the decision)."""

    pool: AsyncConnectionPool

    async def look(self, account_id: uuid.UUID, symbol: str | None = None
                   ) -> tuple[AccountPublic | None, handlers.Grid | None]:
        async with self.pool.connection() as conn:
            if symbol is None:
                return await get_account(conn, account_id), None
            account, grid = await get_account_and_grid(conn, account_id, symbol)
        return account, None if grid is None else handlers.Grid(tick_size=grid[0],
                                                                lot_size=grid[1])


async def get_reads(pool: PoolDep) -> TradingReads:
    return PoolReads(pool)


ReadsDep = Annotated[TradingReads, Depends(get_reads)]


def _not_found(account_id: uuid.UUID) -> Problem:
    return Problem(404, "account-not-found", "Account not found",
                   f"no account {account_id} of yours")


def _own(account: AccountPublic | None, account_id: uuid.UUID, trader: Principal) -> None:
    """Someone else's account is answered exactly like an unknown one: ids must not be
    probed."""
    if account is None or str(account.user_id) != trader.user_id:
        raise _not_found(account_id)


def _problem(outcome: Rejected | handlers.Refused) -> Problem:
    if isinstance(outcome, handlers.Refused):
        status = REASON_STATUS.get(outcome.reason, 422)
        return Problem(status, outcome.reason, _title(outcome.reason), outcome.detail,
                       reason=outcome.reason)
    if outcome.foreign:
        return refused(outcome, {})
    status = REASON_STATUS.get(outcome.reason, 409)
    return Problem(status, outcome.reason, _title(outcome.reason), outcome.detail,
                   reason=outcome.reason, command_id=str(outcome.command_id))


def _title(reason: str) -> str:
    return reason.replace("-", " ").capitalize()


def _later(outcome: Accepted | Pending, *, location: str) -> Any:
    """202: not decided in time (poll /commands/{id}), or decided with events this answer
    cannot read (the order is to be read at `location`)."""
    if isinstance(outcome, Pending):
        return accepted(outcome.command_id)
    return accepted(outcome.command_id, location=location, status="accepted")


def _order_path(account_id: uuid.UUID, order_id: uuid.UUID) -> str:
    return f"/accounts/{account_id}/orders/{order_id}"


def placed_public(account_id: uuid.UUID, done: handlers.Placed) -> PlacedOrder:
    order = done.order
    return PlacedOrder(
        order_id=order.order_id, account_id=account_id, client_order_id=order.client_order_id,
        instrument=order.instrument, side=order.side, type=order.type,
        time_in_force=order.time_in_force, quantity=order.quantity,
        limit_price=order.limit_price, stop_price=order.stop_price, stop_loss=order.stop_loss,
        take_profit=order.take_profit, status=done.status,
        filled_quantity=done.filled_quantity, average_price=done.average_price,
        accepted_at=handlers.at(order.accepted_ns),
        fills=[FillPublic(fill_id=f.fill_id, order_id=f.order_id, instrument=f.instrument,
                          side=f.side, price=f.price, quantity=f.quantity,
                          liquidity=f.liquidity, commission=f.commission,
                          leaves_quantity=f.leaves_quantity, at=handlers.at(f.at_ns))
               for f in done.fills],
        exit_orders=[ExitOrderPublic(order_id=e.order_id, role=e.role, type=e.type,
                                     side=e.side, quantity=e.quantity,
                                     limit_price=e.limit_price, stop_price=e.stop_price)
                     for e in done.exits],
        command_id=done.command_id, duplicate=done.duplicate)


# -- routes -------------------------------------------------------------------------------


@router.post("/{account_id}/orders", operation_id="placeOrder", status_code=201,
             summary="Place an order on your account", response_model=PlacedOrder,
             description="Decided by the account engine against the latest quote: 201 with "
                         "the order and any fill of the same decision, a problem with the "
                         "engine's `reason`, or 202 when no decision came within the wait. "
                         "The same body again (same `client_order_id`) answers the recorded "
                         "outcome; the same `client_order_id` with another body is 409 "
                         "`duplicate-client-order-id`.",
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def place_order(account_id: AccountIdPath,
                      order: Annotated[PlaceOrder, Body(examples=[EXAMPLE_PLACE])],
                      trader: Trader, bus: BusDep, registry: RegistryDep, reads: ReadsDep,
                      response: Response, idempotency_key: IdempotencyKey = None) -> Any:
    # The command id is the client order id's (and the body's), so a retry is recognised
    # with or without a key; a key only adds the stored answer's replay (kernel.idempotency).
    del idempotency_key
    account, grid = await reads.look(account_id, order.instrument)
    _own(account, account_id, trader)
    aggregate = str(account_id)
    command = Command(payload=order, aggregate_id=aggregate, actor=trader.user_id,
                      command_id=handlers.place_command_id(aggregate, order.client_order_id,
                                                           order))
    outcome = await handlers.place(bus, registry, command, grid=grid)
    if isinstance(outcome, handlers.Placed):
        response.headers["Location"] = _order_path(account_id, outcome.order.order_id)
        return placed_public(account_id, outcome)
    if isinstance(outcome, Rejected | handlers.Refused):
        raise _problem(outcome)
    return _later(outcome, location=_order_path(
        account_id, order_id_for(aggregate, order.client_order_id)))


@router.delete("/{account_id}/orders/{order_id}", operation_id="cancelOrder",
               summary="Cancel an open order", response_model=CancelledOrder,
               description="409 `order-not-open` for an order already filled, cancelled or "
                            "expired; 404 `order-unknown` for an order this account never had.",
               responses={202: {"model": CommandAccepted}, **ERRORS},
               dependencies=COMMAND_LIMIT)
async def cancel_order(account_id: AccountIdPath, order_id: OrderIdPath, trader: Trader,
                       bus: BusDep, registry: RegistryDep, reads: ReadsDep,
                       idempotency_key: IdempotencyKey = None) -> Any:
    account, _ = await reads.look(account_id)
    _own(account, account_id, trader)
    payload = CancelOrder(order_id=order_id)
    outcome = await handlers.cancel(bus, registry, _command(
        payload, account_id, trader, idempotency_key, "cancel-order"))
    if isinstance(outcome, handlers.Cancelled):
        return CancelledOrder(order_id=outcome.order_id, account_id=account_id,
                              command_id=outcome.command_id)
    if isinstance(outcome, Rejected):
        raise _problem(outcome)
    return _later(outcome, location=_order_path(account_id, order_id))


@router.patch("/{account_id}/orders/{order_id}", operation_id="modifyOrder",
              summary="Change an open order's quantity or prices", response_model=ModifiedOrder,
              description="It keeps its place in time. 409 `order-not-open` for an order no "
                          "longer open, `quantity-below-filled` below what has filled; 404 "
                          "`order-unknown`; 422 for a price the order type has not "
                          "(`invalid-modify`) or off the grid.",
              responses={202: {"model": CommandAccepted}, **ERRORS},
              dependencies=COMMAND_LIMIT)
async def modify_order(account_id: AccountIdPath, order_id: OrderIdPath,
                       changes: OrderChanges, trader: Trader, bus: BusDep,
                       registry: RegistryDep, reads: ReadsDep,
                       idempotency_key: IdempotencyKey = None) -> Any:
    account, _ = await reads.look(account_id)
    _own(account, account_id, trader)
    payload = ModifyOrder(order_id=order_id, quantity=changes.quantity,
                          limit_price=changes.limit_price, stop_price=changes.stop_price)
    outcome = await handlers.modify(bus, registry, _command(
        payload, account_id, trader, idempotency_key, "modify-order"))
    if isinstance(outcome, handlers.Modified):
        change = outcome.change
        return ModifiedOrder(order_id=change.order_id, account_id=account_id,
                             quantity=change.quantity, limit_price=change.limit_price,
                             stop_price=change.stop_price, command_id=outcome.command_id)
    if isinstance(outcome, Rejected):
        raise _problem(outcome)
    return _later(outcome, location=_order_path(account_id, order_id))


async def _halt(account_id: uuid.UUID, payload: HaltAccount | ResumeAccount, admin: Principal,
                bus: BusDep, registry: RegistryDep, reads: TradingReads,
                idempotency_key: str | None, route: str) -> Any:
    account, _ = await reads.look(account_id)
    if account is None:
        raise Problem(404, "account-not-found", "Account not found", f"no account {account_id}")
    if account.status != "open":
        raise Problem(409, "account-not-open", "Account not open",
                      f"the account is {account.status}", reason="account-not-open")
    outcome = await handlers.halt(bus, registry, _command(
        payload, account_id, admin, idempotency_key, route))
    if isinstance(outcome, handlers.Halted):
        return AccountHaltState(account_id=account_id, halted=outcome.halted,
                                changed=outcome.changed, reason=outcome.reason,
                                command_id=outcome.command_id)
    if isinstance(outcome, Rejected):
        raise _problem(outcome)
    return _later(outcome, location=f"/accounts/{account_id}")


@router.post("/{account_id}/halt", operation_id="haltAccount",
             summary="Halt an account: from now on it may only reduce positions",
             response_model=AccountHaltState,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def halt_account(account_id: AccountIdPath, body: HaltRequest, admin: Admin,
                       bus: BusDep, registry: RegistryDep, reads: ReadsDep,
                       idempotency_key: IdempotencyKey = None) -> Any:
    return await _halt(account_id, HaltAccount(reason=body.reason), admin, bus, registry, reads,
                       idempotency_key, "halt-account")


@router.post("/{account_id}/resume", operation_id="resumeAccount",
             summary="Lift an account's halt", response_model=AccountHaltState,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def resume_account(account_id: AccountIdPath, body: HaltRequest, admin: Admin,
                         bus: BusDep, registry: RegistryDep, reads: ReadsDep,
                         idempotency_key: IdempotencyKey = None) -> Any:
    return await _halt(account_id, ResumeAccount(reason=body.reason), admin, bus, registry,
                       reads, idempotency_key, "resume-account")


@router.post("/{account_id}/kill", operation_id="killAccount",
             summary="Emergency stop: halt at once, cancel open orders, flatten positions",
             response_model=AccountKillState,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def kill_account(account_id: AccountIdPath, body: HaltRequest, caller: Stopper,
                       bus: BusDep, registry: RegistryDep, reads: ReadsDep,
                       idempotency_key: IdempotencyKey = None) -> Any:
    account, _ = await reads.look(account_id)
    if caller.role == "trader":
        _own(account, account_id, caller)
    elif account is None:
        raise _not_found(account_id)
    outcome = await handlers.kill(bus, registry, _command(
        KillAccount(reason=body.reason), account_id, caller, idempotency_key, "kill-account"))
    if isinstance(outcome, handlers.Killed):
        return AccountKillState(account_id=account_id, halted=True, changed=outcome.changed,
                                reason=outcome.reason,
                                cancelled_orders=outcome.cancelled_orders,
                                closing_fills=outcome.closing_fills,
                                command_id=outcome.command_id)
    if isinstance(outcome, Rejected):
        raise _problem(outcome)
    return _later(outcome, location=f"/accounts/{account_id}")


def _command(payload: Any, account_id: uuid.UUID, caller: Principal,
             idempotency_key: str | None, route: str) -> Command[Any]:
    """A cancel, modify, halt or resume: one command per Idempotency-Key (and body), else a
    fresh one (a retried cancel of a cancelled order is then 409 `order-not-open`)."""
    aggregate = str(account_id)
    return Command(payload=payload, aggregate_id=aggregate, actor=caller.user_id,
                   command_id=command_id_for(idempotency_key, caller=caller.user_id,
                                             scope=f"{route}:{aggregate}", body=payload))
