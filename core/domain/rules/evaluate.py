"""The one rule evaluator: `step(spec, state, input) -> (state, verdicts)`, pure.

Deterministic: the verdicts, their times and their hashes depend only on the spec, the state
and the input. Idempotent: an input at or below the state's sequence gives nothing (a
duplicate or a late redelivery); a rule already violated never gives a second violation; a
warning is given once per rule per trading day; once the phase is passed or failed nothing
more is judged (the inputs still fold, so the state stays true).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from core.domain.rules import kernels as k
from core.domain.rules.spec import FRIDAY
from core.domain.rules.state import (
    DayRolled,
    Figures,
    Filled,
    Input,
    NewsFlagged,
    OrderIntent,
    RuleState,
    fold,
)
from schemas.tier import RuleSet

RuleName = Literal["daily-loss", "max-loss", "profit-target", "max-duration", "risk-per-trade",
                   "consistency", "max-open-lots", "max-open-exposure", "weekend-holding",
                   "news-holding"]
VerdictKind = Literal["warning", "violation", "passed", "withheld", "refused"]
HASH_VERSION = 1
ZERO = Decimal(0)
PCT_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One finding of one rule, with what was compared and a hash over its inputs.

    `headroom` is `limit - value` in money (or days, lots) and `headroom_pct` that as a
    percentage of the limit: how far the account is from the limit (for the target: how much
    profit is still to make). `value` is None for an order without a stop-loss.
    """

    kind: VerdictKind
    rule: RuleName
    at_ns: int
    first_sequence: int
    last_sequence: int
    value: Decimal | None
    limit: Decimal
    headroom: Decimal | None
    headroom_pct: Decimal | None
    inputs: tuple[tuple[str, str], ...]
    digest: str


def canonical(value: Decimal | int | str) -> str:
    """The one text of a number in a hash: no exponent, no trailing zeros, no -0."""
    if isinstance(value, Decimal):
        if value == 0:
            return "0"
        text = format(value.normalize(), "f")
        return text
    return str(value)


@lru_cache(maxsize=1024)
def spec_digest(spec: RuleSet) -> str:
    """sha256 of the spec's parameters that differ from their defaults, keys sorted: a field
    added later with a default leaves the digest of older specs (and their verdicts) alone."""
    data = _plain(spec.model_dump(exclude_defaults=True))
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def _plain(value: object) -> object:
    """JSON values with every Decimal canonical ("5.0" and "5" are one parameter)."""
    if isinstance(value, Decimal):
        return canonical(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def verdict_digest(spec: RuleSet, *, account_id: str, kind: str, rule: str, at_ns: int,
                   first_sequence: int, last_sequence: int,
                   inputs: tuple[tuple[str, str], ...]) -> str:
    """sha256 over the canonical inputs of a verdict (docs/rules.md, "Hash stamp")."""
    body = {"v": HASH_VERSION, "spec_version": spec.schema_version, "spec": spec_digest(spec),
            "account": account_id, "kind": kind, "rule": rule, "at_ns": at_ns,
            "events": [first_sequence, last_sequence], "inputs": dict(inputs)}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def _verdict(spec: RuleSet, state: RuleState, kind: VerdictKind, rule: RuleName, *,
             at_ns: int, value: Decimal | None, limit: Decimal,
             **named: Decimal | int) -> Verdict:
    headroom = None if value is None else limit - value
    pct = (None if headroom is None or limit == 0
           else (headroom * 100 / limit).quantize(PCT_PLACES))
    inputs = tuple(sorted({"value": "none" if value is None else canonical(value),
                           "limit": canonical(limit),
                           **{name: canonical(v) for name, v in named.items()}}.items()))
    first = state.first_sequence or state.sequence
    return Verdict(kind=kind, rule=rule, at_ns=at_ns, first_sequence=first,
                   last_sequence=state.sequence, value=value, limit=limit, headroom=headroom,
                   headroom_pct=pct, inputs=inputs,
                   digest=verdict_digest(spec, account_id=state.account_id, kind=kind,
                                         rule=rule, at_ns=at_ns, first_sequence=first,
                                         last_sequence=state.sequence, inputs=inputs))


def _limit(spec: RuleSet, state: RuleState, rule: RuleName, value: Decimal, limit: Decimal,
           at_ns: int, out: list[Verdict], **named: Decimal | int) -> None:
    """A warning or a violation of a limit rule, each at most as often as allowed."""
    code = k.classify(value, limit, spec.warning_threshold_pct)
    if code == k.BREACHED and rule not in state.violated:
        out.append(_verdict(spec, state, "violation", rule, at_ns=at_ns, value=value,
                            limit=limit, **named))
    elif code == k.WARNING and rule not in state.warned and rule not in state.violated:
        out.append(_verdict(spec, state, "warning", rule, at_ns=at_ns, value=value,
                            limit=limit, **named))


def _cap(spec: RuleSet, state: RuleState, rule: RuleName, value: Decimal, limit: Decimal,
         at_ns: int, out: list[Verdict]) -> None:
    """Open lots and exposure: holding exactly the limit is allowed (the order check lets an
    order reach it), above it is a breach; the warning as for any limit."""
    if value > limit:
        if rule not in state.violated:
            out.append(_verdict(spec, state, "violation", rule, at_ns=at_ns, value=value,
                                limit=limit))
    elif (k.classify(value, limit, spec.warning_threshold_pct) >= k.WARNING
          and rule not in state.warned and rule not in state.violated):
        out.append(_verdict(spec, state, "warning", rule, at_ns=at_ns, value=value,
                            limit=limit))


def _money_rules(spec: RuleSet, s: RuleState, at_ns: int, out: list[Verdict]) -> None:
    value, limit = k.daily_loss(s.equity, s.day_start_balance, s.day_start_equity,
                                s.initial_balance, spec.daily_loss_limit_pct,
                                spec.daily_loss_base)
    _limit(spec, s, "daily-loss", value, limit, at_ns, out, equity=s.equity,
           day_start_balance=s.day_start_balance, day_start_equity=s.day_start_equity)
    value, limit = k.max_loss(s.equity, s.high_water, s.initial_balance, spec.max_loss_pct,
                              trailing=spec.max_loss_mode == "trailing",
                              lock=spec.max_loss_trailing_lock)
    _limit(spec, s, "max-loss", value, limit, at_ns, out, equity=s.equity,
           high_water=s.high_water)


def _open_rules(spec: RuleSet, s: RuleState, at_ns: int, out: list[Verdict]) -> None:
    if spec.max_open_lots is not None:
        _cap(spec, s, "max-open-lots", s.open_lots, spec.max_open_lots, at_ns, out)
    if spec.max_open_exposure_pct is not None:
        value, limit = k.open_exposure(s.open_exposure, s.initial_balance,
                                       spec.max_open_exposure_pct)
        _cap(spec, s, "max-open-exposure", value, limit, at_ns, out)


def _pass(spec: RuleSet, s: RuleState, at_ns: int, out: list[Verdict]) -> None:
    """Target reached on closed profit, flat, minimum days done, consistent: passed."""
    if spec.profit_target_pct is None or s.open_lots != 0:
        return
    profit, target = k.profit_target(s.balance, s.initial_balance, spec.profit_target_pct)
    if profit < target or s.trading_days < spec.min_trading_days:
        return
    if spec.consistency_limit_pct is not None:
        best, allowed = k.consistency(s.best_day, profit, spec.consistency_limit_pct)
        if best > allowed:
            if s.withheld_on != s.day:
                out.append(_verdict(spec, s, "withheld", "consistency", at_ns=at_ns,
                                    value=best, limit=allowed, total_profit=profit))
            return
    out.append(_verdict(spec, s, "passed", "profit-target", at_ns=at_ns, value=profit,
                        limit=target, trading_days=s.trading_days,
                        min_trading_days=spec.min_trading_days, best_day=s.best_day))


def _order(spec: RuleSet, s: RuleState, order: OrderIntent) -> tuple[Verdict, ...]:
    """Refusals of an order about to be placed (it is not folded)."""
    if s.settled:
        return ()
    out: list[Verdict] = []
    at = order.at_ns
    if spec.max_risk_per_trade_pct is not None:
        if order.stop is None:
            allowed = s.balance * spec.max_risk_per_trade_pct / 100
            out.append(_verdict(spec, s, "refused", "risk-per-trade", at_ns=at, value=None,
                                limit=allowed, quantity=order.quantity, entry=order.entry))
        else:
            risk, allowed = k.risk_per_trade(order.entry, order.stop, order.quantity,
                                             s.balance, spec.max_risk_per_trade_pct)
            if risk > allowed:
                out.append(_verdict(spec, s, "refused", "risk-per-trade", at_ns=at,
                                    value=risk, limit=allowed, quantity=order.quantity,
                                    entry=order.entry, stop=order.stop))
    if (spec.max_open_lots is not None and order.lots_after > spec.max_open_lots
            and order.lots_after > s.open_lots):
        out.append(_verdict(spec, s, "refused", "max-open-lots", at_ns=at,
                            value=order.lots_after, limit=spec.max_open_lots))
    if spec.max_open_exposure_pct is not None and order.exposure_after > s.open_exposure:
        value, limit = k.open_exposure(order.exposure_after, s.initial_balance,
                                       spec.max_open_exposure_pct)
        if value > limit:
            out.append(_verdict(spec, s, "refused", "max-open-exposure", at_ns=at,
                                value=value, limit=limit))
    return tuple(out)


def _judge(spec: RuleSet, before: RuleState, s: RuleState, event: Input) -> list[Verdict]:
    out: list[Verdict] = []
    if isinstance(event, Figures):
        _money_rules(spec, s, event.at_ns, out)
        if isinstance(event, Filled):
            _open_rules(spec, s, event.at_ns, out)
        if not any(v.kind == "violation" for v in out):  # a breach on this input fails it
            _pass(spec, s, event.at_ns, out)
    elif isinstance(event, DayRolled):
        if event.day <= before.day:
            return out
        if spec.no_weekend_holding and before.day.weekday() == FRIDAY and s.open_lots > 0:
            out.append(_verdict(spec, s, "violation", "weekend-holding", at_ns=event.at_ns,
                                value=s.open_lots, limit=ZERO))
        if spec.max_duration_days is not None:
            _limit(spec, s, "max-duration", Decimal(s.days), Decimal(spec.max_duration_days),
                   event.at_ns, out, start_day=s.start_day.toordinal(),
                   day=s.day.toordinal())
        _money_rules(spec, s, event.at_ns, out)
    elif (isinstance(event, NewsFlagged) and spec.no_news_holding
          and event.instrument in s.open_instruments):
        out.append(_verdict(spec, s, "violation", "news-holding", at_ns=event.at_ns,
                            value=s.open_lots, limit=ZERO))
    return out


def _remember(state: RuleState, verdicts: list[Verdict]) -> RuleState:
    for v in verdicts:
        if v.kind == "violation":
            state = replace(state, violated=state.violated | {v.rule})
        elif v.kind == "warning":
            state = replace(state, warned=state.warned | {v.rule})
        elif v.kind == "passed":
            state = replace(state, passed=True)
        elif v.kind == "withheld":
            state = replace(state, withheld_on=state.day)
    return state


def step(spec: RuleSet, state: RuleState, event: Input
         ) -> tuple[RuleState, tuple[Verdict, ...]]:
    """Fold `event` into `state` and judge it: the next state and the verdicts, in rule order.

    A breach of several rules on one input gives one violation each; after it the phase is
    failed and later inputs give nothing.
    """
    if isinstance(event, OrderIntent):
        return state, _order(spec, state, event)
    if event.sequence <= state.sequence:
        return state, ()
    after = fold(state, event)
    if state.settled:
        return after, ()
    verdicts = _judge(spec, state, after, event)
    return _remember(after, verdicts), tuple(verdicts)


def evaluate(spec: RuleSet, state: RuleState, event: Input) -> tuple[Verdict, ...]:
    """The verdicts of `event` on `state` (the state it leaves is `step`'s)."""
    return step(spec, state, event)[1]


def replay(spec: RuleSet, state: RuleState, events: Sequence[Input]
           ) -> tuple[RuleState, list[Verdict]]:
    """Every verdict of a run of inputs, in order: what `propstream verify` re-derives."""
    verdicts: list[Verdict] = []
    for event in events:
        state, found = step(spec, state, event)
        verdicts += found
    return state, verdicts


__all__ = ["HASH_VERSION", "RuleName", "Verdict", "VerdictKind", "canonical", "evaluate",
           "replay", "spec_digest", "step", "verdict_digest"]
