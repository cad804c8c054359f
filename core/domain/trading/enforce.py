"""Rule enforcement on a trading account, pure: verdicts as events, the order-time check, and
the steps that end trading (halt, cancel every open order, flatten every position).

The account engine calls these in the transaction of the event that moved a rule; each
returns events for it to record and fold with `evolve`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache

from core.domain import rules as r
from core.domain.rules import kernels as k
from core.domain.rules.status import band, status
from core.domain.trading.execution import Step
from core.domain.trading.market import ZERO, Market, Quote, Terms
from core.domain.trading.orders import place
from core.domain.trading.state import TradingAccount
from schemas.envelope import EventPayload
from schemas.rules import (
    PhasePassed,
    RuleStatusChanged,
    RuleStatusItem,
    RuleViolationDetected,
    RuleWarningIssued,
    TradingDayStarted,
)
from schemas.tier import RuleSet
from schemas.trading import AccountHalted, OrderAccepted, OrderRejected, OrderRejection, PlaceOrder

_EVENT = {"warning": RuleWarningIssued, "violation": RuleViolationDetected,
          "passed": PhasePassed}
_REFUSAL: dict[str, OrderRejection] = {"risk-per-trade": "risk-limit",
                                       "max-open-lots": "lots-limit",
                                       "max-open-exposure": "exposure-limit"}


def verdict_event(v: r.Verdict) -> EventPayload | None:
    """The account event of a verdict (a withheld pass or an order refusal has none)."""
    kind = _EVENT.get(v.kind)
    if kind is None:
        return None
    return kind(rule=v.rule, value=v.value, limit=v.limit, headroom=v.headroom,
                headroom_pct=v.headroom_pct, at_ns=v.at_ns, first_sequence=v.first_sequence,
                last_sequence=v.last_sequence, inputs=dict(v.inputs), digest=v.digest)


def status_event(state: TradingAccount, at_ns: int) -> RuleStatusChanged | None:
    """The account's standing against its rules when its band moved since the last one
    recorded (`rules.status-changed`), else None; nothing once the phase is settled."""
    if state.rules is None or state.rule is None or state.rule.settled:
        return None
    found = status(state.rules, state.rule)
    if band((s.rule, s.status, s.headroom_pct) for s in found) == state.rule_band:
        return None
    return RuleStatusChanged(at_ns=at_ns, rules=tuple(
        RuleStatusItem(rule=s.rule, status=s.status, value=s.value, limit=s.limit,
                       headroom=s.headroom, headroom_pct=s.headroom_pct) for s in found))


def judge(spec: RuleSet, state: TradingAccount, inputs: Sequence[tuple[r.RuleState, r.Input]]
          ) -> list[r.Verdict]:
    """The verdicts of inputs already folded into `state.rule`, each judged on the rule state
    it was folded onto (what `step` gives), none the state already remembers, one per rule
    and kind; every verdict of the input that fails or passes the phase, none after it."""
    rule = state.rule
    assert rule is not None
    out: list[r.Verdict] = []
    seen: set[tuple[str, str]] = set()
    for before, given in inputs:
        for v in r.step(spec, before, given)[1]:
            if v.kind not in _EVENT or (v.kind, v.rule) in seen:
                continue
            if (v.kind == "violation" and v.rule in rule.violated) or (
                    v.kind == "warning" and v.rule in rule.warned) or (
                    v.kind == "passed" and rule.passed) or rule.settled:
                continue
            seen.add((v.kind, v.rule))
            out.append(v)
        if any(v.kind in ("violation", "passed") for v in out):
            break
    return out


def day_started(state: TradingAccount, now_ns: int) -> TradingDayStarted | None:
    """The start of the trading day `now_ns` is in, if the rules are still on an earlier one."""
    due = next_day_ns(state)
    if due is None or now_ns < due or state.rules is None or state.rule is None:
        return None
    day = r.trading_day(now_ns, state.rules)
    return TradingDayStarted(day=day, at_ns=now_ns) if day > state.rule.day else None


def next_day_ns(state: TradingAccount) -> int | None:
    """When the account's next trading day starts (the engine rolls it over then)."""
    if state.rule is None or state.rules is None:
        return None
    return _next_day(state.rule.day, state.rules)


@lru_cache(maxsize=4096)
def _next_day(day: date, rules: RuleSet) -> int:
    # Every tick asks (time zones make it ~5 µs): the day and the spec change rarely.
    return r.next_day_start_ns(r.day_start_ns(day, rules), rules)


def inactive_days(state: TradingAccount) -> int | None:
    """Trading days since the last fill, when the rules abandon after that many; else None."""
    if state.rule is None or state.rules is None or state.rules.max_inactive_days is None \
            or state.active_day is None or state.rule.settled:
        return None
    days = (state.rule.day - state.active_day).days
    return days if days >= state.rules.max_inactive_days else None


def loss_floor(state: TradingAccount) -> Decimal | None:
    """The equity at or under which the daily or maximum loss rule gives its next verdict
    (the warning, or once warned the violation); None when the rules judge nothing more."""
    spec, rule = state.rules, state.rule
    if spec is None or rule is None or rule.settled:
        return None
    share = spec.warning_threshold_pct / 100
    daily_ref = rule.day_start_balance
    if spec.daily_loss_base == "day-start-equity":
        daily_ref = rule.day_start_equity
    elif spec.daily_loss_base == "day-start-higher":
        daily_ref = max(rule.day_start_balance, rule.day_start_equity)
    _, daily = k.daily_loss(rule.equity, rule.day_start_balance, rule.day_start_equity,
                            rule.initial_balance, spec.daily_loss_limit_pct,
                            spec.daily_loss_base)
    value, allowance = k.max_loss(rule.equity, rule.high_water, rule.initial_balance,
                                  spec.max_loss_pct, trailing=spec.max_loss_mode == "trailing",
                                  lock=spec.max_loss_trailing_lock)
    max_ref = value + rule.equity
    floors = [daily_ref - daily * (1 if "daily-loss" in rule.warned else share),
              max_ref - allowance * (1 if "max-loss" in rule.warned else share)]
    return max(floors)


def rule_wake(state: TradingAccount, symbol: str) -> tuple[Decimal | None, Decimal | None]:
    """The bid at or under which a long (the ask at or over which a short) in `symbol` moves
    equity to `loss_floor`, other positions held at their last marks: (bid_at_most,
    ask_at_least). Exact for an account holding one position."""
    floor = loss_floor(state)
    position = state.positions.get(symbol)
    if floor is None or position is None or not position.quantity:
        return None, None
    equity = state.balance
    for other in state.positions.values():
        equity += other.unrealized(state.marks.get(other.instrument) or other.average_price)
    mark = state.marks.get(symbol) or position.average_price
    level = mark + (floor - equity) / position.quantity
    return (level, None) if position.quantity > 0 else (None, level)


def reduces(state: TradingAccount, cmd: PlaceOrder) -> bool:
    """Whether the order only reduces the instrument's position (no exits attached)."""
    held = state.positions[cmd.instrument].quantity if cmd.instrument in state.positions \
        else ZERO
    signed = cmd.quantity if cmd.side == "buy" else -cmd.quantity
    return (bool(held) and (held > 0) != (signed > 0) and cmd.quantity <= abs(held)
            and cmd.stop_loss is None and cmd.take_profit is None)


def refuse_intent(state: TradingAccount, cmd: PlaceOrder, accepted: Sequence[EventPayload], *,
                  quote: Quote | None, now_ns: int) -> list[EventPayload] | None:
    """The rules' order-time check of an order the trading domain accepted: a refusal
    (`trading.order-rejected` with a machine-readable reason) or None to keep its events."""
    spec, rule = state.rules, state.rule
    if spec is None or rule is None or not any(isinstance(e, OrderAccepted) for e in accepted):
        return None
    if rule.settled:
        return _refused(cmd, "phase-ended", "the phase is passed or failed")
    entry = cmd.limit_price or cmd.stop_price or (
        None if quote is None else (quote.ask if cmd.side == "buy" else quote.bid))
    if entry is None:
        return None
    if reduces(state, cmd):
        return None  # it only reduces: never refused by an exposure rule
    held = state.positions[cmd.instrument].quantity if cmd.instrument in state.positions \
        else ZERO
    signed = cmd.quantity if cmd.side == "buy" else -cmd.quantity
    lots = sum((abs(p.quantity) for p in state.positions.values()), ZERO)
    exposure = sum((abs(p.cost) for p in state.positions.values()), ZERO)
    grow = abs(held + signed) - abs(held)
    intent = r.OrderIntent(at_ns=now_ns, instrument=cmd.instrument, quantity=cmd.quantity,
                           entry=entry, stop=cmd.stop_loss, lots_after=lots + grow,
                           exposure_after=exposure + grow * entry)
    for v in r.evaluate(spec, rule, intent):
        if v.kind == "refused":
            return _refused(cmd, _REFUSAL[v.rule],
                            f"{v.rule}: {v.value} over {v.limit} (verdict {v.digest[:12]})")
    return None


def _refused(cmd: PlaceOrder, reason: OrderRejection, detail: str) -> list[EventPayload]:
    return [OrderRejected(action="place", client_order_id=cmd.client_order_id,
                          reason=reason, detail=detail[:500])]


def halt_and_cancel(state: TradingAccount, reason: str, now_ns: int) -> list[EventPayload]:
    """Halt the account and cancel every open order (exit legs too)."""
    out: list[EventPayload] = [] if state.halted else [AccountHalted(reason=reason[:200])]
    step = Step(state, now_ns)
    for order_id, working in list(state.orders.items()):
        if step.is_open(order_id):
            step.cancel(step.live(working), "account-halted")
    return out + step.events


def flatten(state: TradingAccount, *, tag: str, quotes: Mapping[str, Quote | None],
            markets: Mapping[str, Market], terms: Terms, now_ns: int
            ) -> list[list[EventPayload]]:
    """A market order closing each open position at the touch (one list of events per
    position, to be recorded in turn; a stale quote leaves its position with a refusal)."""
    out = []
    for n, (symbol, position) in enumerate(sorted(state.positions.items())):
        if not position.quantity:
            continue
        ref = hashlib.sha256(f"{tag}/{symbol}".encode()).hexdigest()[:24]
        cmd = PlaceOrder(client_order_id=f"flat-{ref}-{n}", instrument=symbol,
                         side="sell" if position.quantity > 0 else "buy", type="market",
                         quantity=abs(position.quantity), time_in_force="IOC")
        out.append(place(state, cmd, quote=quotes.get(symbol), market=markets.get(symbol),
                         terms=terms, now_ns=now_ns, markets=markets))
    return out


__all__ = ["day_started", "flatten", "halt_and_cancel", "inactive_days", "judge", "loss_floor",
           "next_day_ns", "reduces", "refuse_intent", "rule_wake", "status_event", "verdict_event"]
