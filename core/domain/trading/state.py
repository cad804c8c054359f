"""A trading account's state and its fold: `evolve`, `dump`, `load`, `clone`.

The state is owned by its single writer (the account engine), so `evolve` updates it in place
and returns it: an account with 50 resting orders takes thousands of steps a second, and
copying its order book per event would cost more than the step. The step functions never
change the state they are given; use `clone` to keep a state apart (e.g. before a batch
that may be rolled back). Every event carries what `evolve` needs: it never reads a quote or
a market, so replaying the log rebuilds the state exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from core.domain import rules as r
from core.domain.rules.status import band
from core.domain.trading.market import ZERO
from core.domain.trading.positions import Position
from schemas.account import AccountClosed, AccountCommandRejected, AccountOpened
from schemas.envelope import EventPayload
from schemas.rules import (
    AccountKillSwitched,
    NewsMet,
    PhasePassed,
    RuleStatusChanged,
    RuleViolationDetected,
    RuleWarningIssued,
    TradingDayStarted,
)
from schemas.tier import RuleSet
from schemas.trading import (
    AccountBalanceChanged,
    AccountEquityMarked,
    AccountHalted,
    AccountResumed,
    ContractSettled,
    Order,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderRejected,
    OrderTriggered,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)

AccountStatus = Literal["none", "open", "closed", "failed"]
FinalStatus = Literal["filled", "cancelled", "expired"]


@dataclass(slots=True)
class Working:
    """An open order: its accepted terms plus what has happened to it since."""

    order: Order
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    filled: Decimal = ZERO
    fills: int = 0
    triggered: bool = False

    @property
    def leaves(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def waiting_for_trigger(self) -> bool:
        return self.order.type in ("stop", "stop-limit") and not self.triggered

    @classmethod
    def of(cls, order: Order) -> Working:
        return cls(order=order, quantity=order.quantity, limit_price=order.limit_price,
                   stop_price=order.stop_price)


@dataclass(slots=True)
class TradingAccount:
    account_id: str
    status: AccountStatus = "none"
    halted: bool = False
    halt_reason: str | None = None
    currency: str | None = None
    starting_balance: Decimal = ZERO
    balance: Decimal = ZERO
    realized: Decimal = ZERO  # over the account's life
    commissions: Decimal = ZERO  # over the account's life
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[uuid.UUID, Working] = field(default_factory=dict)
    # Per instrument, its open orders in acceptance order: a quote costs O(its orders).
    by_instrument: dict[str, dict[uuid.UUID, Working]] = field(default_factory=dict)
    # Every order that ever finished: a cancel of one is `order-not-open`, a place of its
    # client order id a duplicate.
    finished: dict[uuid.UUID, FinalStatus] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    # The phase's rules the account trades under (from its opening), read into order limits.
    rules: RuleSet | None = None
    marked_at_ns: int = 0  # when equity was last marked (the engine throttles by it)
    assessment_id: str | None = None
    # The rules' state (core.domain.rules), folded here from the account's own events so a
    # replay rebuilds it exactly: marks (after each fill too), day starts and verdicts.
    seq: int = 0  # the sequence of the last event folded
    rule: r.RuleState | None = None
    active_day: date | None = None  # the last trading day with a fill (or the opening)
    traded: bool = False  # a fill since the last mark: the next mark is a `Filled` input
    rule_band: str = ""  # the last `rules.status-changed`'s band (core.domain.rules.status)
    moved: bool = False  # money or positions moved since the last mark
    # The rule inputs the last events gave (the engine judges them; not in snapshots).
    rule_inputs: list[tuple[r.RuleState, r.Input]] = field(default_factory=list)

    def knows(self, order_id: uuid.UUID) -> bool:
        return order_id in self.orders or order_id in self.finished


def initial(account_id: str) -> TradingAccount:
    """Return the state of an account nothing has happened to."""
    return TradingAccount(account_id=account_id)


def _finish(state: TradingAccount, order_id: uuid.UUID, status: FinalStatus) -> None:
    working = state.orders.pop(order_id, None)
    if working is not None:
        book = state.by_instrument[working.order.instrument]
        del book[order_id]
        if not book:
            del state.by_instrument[working.order.instrument]
    state.finished[order_id] = status


def figures(state: TradingAccount, *, sequence: int, at_ns: int, equity: Decimal,
            traded: bool) -> r.Filled | r.Marked:
    """The account's figures as a rule input: lots, exposure at entry and instruments open."""
    lots = exposure = ZERO
    for p in state.positions.values():
        lots += abs(p.quantity)
        exposure += abs(p.cost)
    kind = r.Filled if traded else r.Marked
    return kind(sequence=sequence, at_ns=at_ns, balance=state.balance, equity=equity,
                open_lots=lots, open_exposure=exposure,
                open_instruments=frozenset(state.positions))


def _fold_rule(state: TradingAccount, event: EventPayload) -> None:
    rule = state.rule
    assert rule is not None
    got: r.DayRolled | r.Filled | r.Marked | r.NewsFlagged | None = None
    match event:
        case AccountEquityMarked():
            got = figures(state, sequence=state.seq, at_ns=event.at_ns, equity=event.equity,
                          traded=state.traded)
            if state.traded:
                state.active_day = r.trading_day(event.at_ns, state.rules) \
                    if state.rules is not None else state.active_day
            state.traded = state.moved = False
        case TradingDayStarted():
            got = r.DayRolled(sequence=state.seq, at_ns=event.at_ns, day=event.day)
        case NewsMet():
            got = r.NewsFlagged(sequence=state.seq, at_ns=event.at_ns,
                                instrument=event.instrument)
        case RuleWarningIssued():
            state.rule = replace(rule, warned=rule.warned | {event.rule})
        case RuleViolationDetected():
            state.rule = replace(rule, violated=rule.violated | {event.rule})
        case PhasePassed():
            state.rule = replace(rule, passed=True)
        case RuleStatusChanged():
            state.rule_band = band((i.rule, i.status, i.headroom_pct) for i in event.rules)
        case OrderFilled():
            state.traded = state.moved = True
        case PositionOpened() | PositionChanged() | PositionClosed() | AccountBalanceChanged():
            state.moved = True
    if got is not None:
        state.rule = r.fold(rule, got)
        state.rule_inputs.append((rule, got))
        if len(state.rule_inputs) > 64:  # only the engine's last append needs them
            del state.rule_inputs[:-64]


def evolve(state: TradingAccount, event: EventPayload) -> TradingAccount:
    """Apply one event to `state` (in place) and return it."""
    state.seq += 1
    _evolve(state, event)
    if state.rule is not None:
        _fold_rule(state, event)
    return state


# What the rule state reads of an account (`figures`, `_fold_rule`): its opening, balance,
# positions and marks; fills only flag the next mark.
_RULE_FIGURES = (AccountOpened, AccountBalanceChanged, PositionOpened, PositionChanged,
                 PositionClosed, AccountEquityMarked)
_RULE_EVENTS = (OrderFilled, TradingDayStarted, NewsMet, RuleWarningIssued,
                RuleViolationDetected, PhasePassed, RuleStatusChanged)


def evolve_rules(state: TradingAccount, event: EventPayload, *, sequence: int
                 ) -> TradingAccount:
    """Apply one event (the account's event number `sequence`) as `evolve` does for what the
    rules read, keeping no orders: the rule state of a read model, folded by the engine's
    own code from only the events that move it (any other event may be left out)."""
    state.seq = sequence
    if isinstance(event, _RULE_FIGURES):
        _evolve(state, event)
    if state.rule is not None:
        _fold_rule(state, event)
    state.rule_inputs.clear()
    return state


def rule_relevant(event: EventPayload) -> bool:
    """Whether `evolve_rules` does anything with `event`."""
    return isinstance(event, (*_RULE_FIGURES, *_RULE_EVENTS))


def _evolve(state: TradingAccount, event: EventPayload) -> None:
    match event:
        case OrderFilled():
            working = state.orders[event.order_id]
            working.filled += event.quantity
            working.fills += 1
            if not working.leaves:
                _finish(state, event.order_id, "filled")
        case PositionOpened() | PositionChanged():
            state.positions[event.instrument] = Position(
                event.instrument, event.quantity, event.cost, event.realized, event.commissions)
        case PositionClosed():
            state.positions.pop(event.instrument, None)
        case AccountBalanceChanged():
            state.balance = event.balance
            state.realized += event.realized
            state.commissions += event.commission
        case OrderAccepted(order=order):
            working = Working.of(order)
            state.orders[order.order_id] = working
            state.by_instrument.setdefault(order.instrument, {})[order.order_id] = working
        case OrderRejected() | AccountCommandRejected() | ContractSettled() | \
                OrderCancelRequested():
            pass  # a refusal changes nothing; a settlement's effect is in its position event
        case OrderTriggered():
            state.orders[event.order_id].triggered = True
        case OrderCancelled():
            _finish(state, event.order_id, "cancelled")
        case OrderExpired():
            _finish(state, event.order_id, "expired")
        case OrderModified():
            working = state.orders[event.order_id]
            working.quantity = event.quantity
            working.limit_price = event.limit_price
            working.stop_price = event.stop_price
        case AccountEquityMarked():
            state.marks = dict(event.marks)
            state.marked_at_ns = event.at_ns
        case AccountHalted():
            state.halted, state.halt_reason = True, event.reason
        case AccountResumed():
            state.halted, state.halt_reason = False, None
        case AccountOpened():
            state.status = "open"
            state.currency = event.currency
            state.starting_balance = state.balance = event.starting_balance
            state.rules = event.rules
            state.assessment_id = str(event.assessment_id)
            if event.rules is not None and event.at_ns is not None:
                state.rule = r.initial(state.account_id, balance=event.starting_balance,
                                       started_ns=event.at_ns, rules=event.rules)
                state.active_day = state.rule.day
        case AccountClosed():
            state.status = "closed"
        case RuleWarningIssued() | RuleViolationDetected() | PhasePassed() | \
                TradingDayStarted() | NewsMet() | AccountKillSwitched() | RuleStatusChanged():
            pass  # the rules' own fold (`_fold_rule`)
        case _:
            raise TypeError(f"the trading account does not know {event.TYPE}")


def clone(state: TradingAccount) -> TradingAccount:
    """Return a copy of `state` that no later `evolve` of either one can change."""
    orders = {order_id: replace(w) for order_id, w in state.orders.items()}
    by_instrument = {symbol: {order_id: orders[order_id] for order_id in book}
                     for symbol, book in state.by_instrument.items()}
    return replace(state, positions=dict(state.positions), orders=orders,
                   by_instrument=by_instrument, finished=dict(state.finished),
                   marks=dict(state.marks), rule_inputs=[])


def dump(state: TradingAccount) -> dict[str, Any]:
    """The state as JSON-ready data, for snapshots."""
    return {
        "account_id": state.account_id, "status": state.status, "halted": state.halted,
        "halt_reason": state.halt_reason, "currency": state.currency,
        "starting_balance": str(state.starting_balance), "balance": str(state.balance),
        "realized": str(state.realized), "commissions": str(state.commissions),
        "positions": [[p.instrument, str(p.quantity), str(p.cost), str(p.realized),
                       str(p.commissions)] for p in state.positions.values()],
        # In acceptance order per instrument: time priority survives a snapshot.
        "orders": [{"order": w.order.model_dump(mode="json"), "quantity": str(w.quantity),
                    "limit_price": _text(w.limit_price), "stop_price": _text(w.stop_price),
                    "filled": str(w.filled), "fills": w.fills, "triggered": w.triggered}
                   for book in state.by_instrument.values() for w in book.values()],
        "finished": [[str(order_id), status] for order_id, status in state.finished.items()],
        "marks": {symbol: str(price) for symbol, price in state.marks.items()},
        "rules": None if state.rules is None else state.rules.model_dump(mode="json"),
        "marked_at_ns": state.marked_at_ns,
        "assessment_id": state.assessment_id, "seq": state.seq,
        "rule": None if state.rule is None else r.dump_state(state.rule),
        "active_day": None if state.active_day is None else state.active_day.isoformat(),
        "traded": state.traded, "moved": state.moved, "rule_band": state.rule_band,
    }


def load(data: dict[str, Any]) -> TradingAccount:
    """The state back from `dump`."""
    state = TradingAccount(
        account_id=data["account_id"], status=data["status"], halted=data["halted"],
        halt_reason=data["halt_reason"], currency=data["currency"],
        starting_balance=Decimal(data["starting_balance"]), balance=Decimal(data["balance"]),
        realized=Decimal(data["realized"]), commissions=Decimal(data["commissions"]),
        finished={uuid.UUID(order_id): status for order_id, status in data["finished"]},
        marks={symbol: Decimal(price) for symbol, price in data["marks"].items()},
        rules=None if data.get("rules") is None else RuleSet.model_validate(data["rules"]),
        marked_at_ns=data.get("marked_at_ns", 0), assessment_id=data.get("assessment_id"),
        seq=data.get("seq", 0),
        rule=None if data.get("rule") is None else r.load_state(data["rule"]),
        active_day=None if data.get("active_day") is None
        else date.fromisoformat(data["active_day"]),
        traded=data.get("traded", False), moved=data.get("moved", False),
        rule_band=data.get("rule_band", ""))
    for instrument, quantity, cost, realized, commissions in data["positions"]:
        state.positions[instrument] = Position(instrument, Decimal(quantity), Decimal(cost),
                                               Decimal(realized), Decimal(commissions))
    for item in data["orders"]:
        order = Order.model_validate(item["order"])
        working = Working(order=order, quantity=Decimal(item["quantity"]),
                          limit_price=_decimal(item["limit_price"]),
                          stop_price=_decimal(item["stop_price"]),
                          filled=Decimal(item["filled"]), fills=item["fills"],
                          triggered=item["triggered"])
        state.orders[order.order_id] = working
        state.by_instrument.setdefault(order.instrument, {})[order.order_id] = working
    return state


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
