"""Trading commands from the API: place, cancel and modify an order; halt and resume an account.

They go to `account.commands`, where the account engine (core.processors.account_engine)
decides them against the account, the instrument and the latest quote. A business refusal
there is not the family's rejection but a `trading.order-rejected` event: the command is
decided (its refusal recorded on the log, so a retry is answered alike), and this module
turns that event into `Rejected` with its machine-readable reason.

The API holds no trading state, so nothing is folded onto a state known before: the answer
is read from the command's own events (`placed`, `cancelled`, `modified`). A reply whose
events could not be read (a late duplicate whose events the engine no longer keeps) is
`Accepted`: decided, the order to be read where the read model shows it.

The id of a place is derived, not drawn: `place_command_id(account, client order id, body)`,
so a retry of the same body is the same command (the engine answers the recorded outcome,
no second fill) and the same client order id with another body is another command that the
engine refuses as `duplicate-client-order-id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from core.domain.trading.market import on_grid
from kernel.application import (
    Accepted,
    Command,
    CommandSender,
    Fact,
    Pending,
    Rejected,
    send,
)
from kernel.commands import body_digest
from schemas.registry import TypeRegistry
from schemas.rules import AccountKillSwitched, KillAccount
from schemas.trading import (
    AccountHalted,
    AccountResumed,
    CancelOrder,
    HaltAccount,
    ModifyOrder,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderRejected,
    PlaceOrder,
    ResumeAccount,
    order_id_for,
)

COMMANDS_TOPIC = "account.commands"
# Fixed forever: changing it would make a retried place a new command (a duplicate refusal).
PLACE_NAMESPACE = uuid.UUID("9d3e61c4-7a25-4f0b-8e1d-5c2b7a4f6e93")

OrderStatus = Literal["working", "partially-filled", "filled", "cancelled", "expired"]


@dataclass(frozen=True, kw_only=True)
class Placed:
    """An accepted order as its command left it: the order, its status and the fills the
    same command decided (the entry's and, should there be any, other orders')."""

    command_id: uuid.UUID
    order: Order
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    fills: tuple[OrderFilled, ...]
    exits: tuple[Order, ...]  # exit legs accepted in the same command
    duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class Cancelled:
    command_id: uuid.UUID
    order_id: uuid.UUID
    duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class Modified:
    command_id: uuid.UUID
    change: OrderModified
    duplicate: bool = False


@dataclass(frozen=True, kw_only=True)
class Halted:
    """Halt or resume decided: `halted` is the account's state after it; `changed` False when
    it already was so (or the account is not open: nothing to halt)."""

    command_id: uuid.UUID
    halted: bool
    changed: bool
    reason: str


PlaceOutcome = Placed | Accepted | Rejected | Pending
CancelOutcome = Cancelled | Accepted | Rejected | Pending
ModifyOutcome = Modified | Accepted | Rejected | Pending
HaltOutcome = Halted | Accepted | Rejected | Pending


@dataclass(frozen=True, kw_only=True)
class Grid:
    """An instrument's tick and lot size, as the instruments read model shows them."""

    tick_size: Decimal
    lot_size: Decimal


@dataclass(frozen=True, kw_only=True)
class Refused:
    """Refused before sending (nothing is on the log), with the engine's reason."""

    reason: str
    detail: str


def place_command_id(account_id: str, client_order_id: str, body: PlaceOrder) -> uuid.UUID:
    """The id of a place: one per account, client order id and body (the SHA-256 of its
    values: `1` and `1.000` are one quantity, so one order)."""
    values = {name: format(v.normalize(), "f") if isinstance(v, Decimal) else v
              for name, v in body.model_dump().items()}
    return uuid.uuid5(PLACE_NAMESPACE, f"{account_id}:{client_order_id}:{body_digest(values)}")


def off_grid(order: PlaceOrder, grid: Grid) -> Refused | None:
    """The engine's own `off-lot`/`off-tick` refusal, found before sending: the read
    model's grid (the engine checks again against its own view of the instrument)."""
    if not on_grid(order.quantity, grid.lot_size):
        return Refused(reason="off-lot", detail=f"quantity {order.quantity} is not a multiple "
                                                f"of {grid.lot_size}")
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit"):
        price = getattr(order, name)
        if price is not None and not on_grid(price, grid.tick_size):
            return Refused(reason="off-tick",
                           detail=f"{name} {price} is not a multiple of {grid.tick_size}")
    return None


def refusal(command_id: uuid.UUID, facts: tuple[Fact, ...]) -> Rejected | None:
    """The engine's refusal of a trading command (`trading.order-rejected`), if it is one."""
    for fact in facts:
        if isinstance(fact.payload, OrderRejected):
            return Rejected(command_id=command_id, reason=fact.payload.reason,
                            detail=fact.payload.detail)
    return None


def placed(command_id: uuid.UUID, order_id: uuid.UUID, facts: tuple[Fact, ...], *,
           duplicate: bool = False) -> Placed | None:
    """The order `order_id` after its place command's events; None when they lack it."""
    order: Order | None = None
    exits: list[Order] = []
    fills: list[OrderFilled] = []
    final: OrderStatus | None = None
    for fact in facts:
        match fact.payload:
            case OrderAccepted(order=accepted):
                if accepted.order_id == order_id:
                    order = accepted
                else:
                    exits.append(accepted)
            case OrderFilled() as fill:
                fills.append(fill)
            case OrderCancelled(order_id=cancelled) if cancelled == order_id:
                final = "cancelled"
            case OrderExpired(order_id=expired) if expired == order_id:
                final = "expired"
    if order is None:
        return None
    own = [f for f in fills if f.order_id == order_id]
    filled = sum((f.quantity for f in own), Decimal(0))
    average = (sum((f.price * f.quantity for f in own), Decimal(0)) / filled) if own else None
    status: OrderStatus
    if filled >= order.quantity:
        status = "filled"
    elif final is not None:
        status = final
    else:
        status = "partially-filled" if filled else "working"
    return Placed(command_id=command_id, order=order, status=status, filled_quantity=filled,
                  average_price=average, fills=tuple(fills), exits=tuple(exits),
                  duplicate=duplicate)


async def _sent(bus: CommandSender, registry: TypeRegistry, command: Command[Any],
                wait_ms: int | None) -> Accepted | Rejected | Pending:
    """Send a trading command and wait: the engine's refusal event read as `Rejected`."""
    outcome = await send(bus, COMMANDS_TOPIC, registry, command, wait_ms=wait_ms)
    if isinstance(outcome, Accepted) and outcome.facts:
        refused = refusal(command.command_id, outcome.facts)
        if refused is not None:
            return refused
    return outcome


async def place(bus: CommandSender, registry: TypeRegistry, command: Command[PlaceOrder], *,
                grid: Grid | None = None, wait_ms: int | None = None
                ) -> PlaceOutcome | Refused:
    """Place an order: `Refused` before sending when off the instrument's `grid` (the read
    model's, when it knows the instrument), else decided by the engine and answered from
    its events."""
    if grid is not None:
        off = off_grid(command.payload, grid)
        if off is not None:
            return off
    outcome = await _sent(bus, registry, command, wait_ms)
    if not isinstance(outcome, Accepted) or not outcome.facts:
        return outcome
    order_id = order_id_for(command.aggregate_id, command.payload.client_order_id)
    return placed(command.command_id, order_id, outcome.facts,
                  duplicate=outcome.duplicate) or outcome


async def cancel(bus: CommandSender, registry: TypeRegistry, command: Command[CancelOrder], *,
                 wait_ms: int | None = None) -> CancelOutcome:
    """Cancel an open order."""
    outcome = await _sent(bus, registry, command, wait_ms)
    if not isinstance(outcome, Accepted) or not outcome.facts:
        return outcome
    for fact in outcome.facts:
        if isinstance(fact.payload, OrderCancelled) and \
                fact.payload.order_id == command.payload.order_id:
            return Cancelled(command_id=command.command_id, order_id=fact.payload.order_id,
                             duplicate=outcome.duplicate)
    return outcome


async def modify(bus: CommandSender, registry: TypeRegistry, command: Command[ModifyOrder], *,
                 wait_ms: int | None = None) -> ModifyOutcome:
    """Change an open order's quantity or prices."""
    outcome = await _sent(bus, registry, command, wait_ms)
    if not isinstance(outcome, Accepted) or not outcome.facts:
        return outcome
    for fact in outcome.facts:
        if isinstance(fact.payload, OrderModified):
            return Modified(command_id=command.command_id, change=fact.payload,
                            duplicate=outcome.duplicate)
    return outcome


async def halt(bus: CommandSender, registry: TypeRegistry,
               command: Command[HaltAccount] | Command[ResumeAccount], *,
               wait_ms: int | None = None) -> HaltOutcome:
    """Halt an account (it may then only reduce positions) or lift its halt."""
    outcome = await send(bus, COMMANDS_TOPIC, registry, command, wait_ms=wait_ms)
    if not isinstance(outcome, Accepted) or outcome.facts is None:
        return outcome
    halting = isinstance(command.payload, HaltAccount)
    wanted = AccountHalted if halting else AccountResumed
    changed = any(isinstance(f.payload, wanted) for f in outcome.facts)
    if outcome.facts and not changed:
        return outcome  # events of another kind: not a halt's answer
    return Halted(command_id=command.command_id, halted=halting, changed=changed,
                  reason=command.payload.reason)


@dataclass(frozen=True, kw_only=True)
class Killed:
    """The kill switch decided: `changed` False when the account was not open (nothing to
    stop); what the engine cancelled and closed in the same transaction."""

    command_id: uuid.UUID
    changed: bool
    reason: str
    cancelled_orders: int
    closing_fills: int


async def kill(bus: CommandSender, registry: TypeRegistry, command: Command[KillAccount], *,
               wait_ms: int | None = None) -> Killed | Accepted | Rejected | Pending:
    """Pull the account's emergency stop: halted, open orders cancelled, positions closed."""
    outcome = await send(bus, COMMANDS_TOPIC, registry, command, wait_ms=wait_ms)
    if not isinstance(outcome, Accepted) or outcome.facts is None:
        return outcome
    facts = [f.payload for f in outcome.facts]
    return Killed(command_id=command.command_id,
                  changed=any(isinstance(f, AccountKillSwitched) for f in facts),
                  reason=command.payload.reason,
                  cancelled_orders=sum(isinstance(f, OrderCancelled) for f in facts),
                  closing_fills=sum(isinstance(f, OrderFilled) for f in facts))


def at(ns: int) -> datetime:
    """A log time in ns as a UTC datetime, to the microsecond (no float on the way)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)
