"""Where an account stands against each rule now, pure: what `GET /assessments/{id}/rules`
shows and a dashboard draws.

For each rule the phase's spec switches on: the current value, the limit, the headroom
`limit - value` (money, days or lots) and `headroom_pct` (headroom / limit x 100, 4 places),
the same arithmetic (`kernels`) the verdicts use, on the rule state folded so far; and a
status. Limit rules (daily loss, maximum loss, duration, open lots, open exposure): `ok`,
`warning` (at or past `warning_threshold_pct` of the limit), `violated` (a violation was
recorded, or the figures are past the limit now). Goals (profit target, minimum trading
days): `pending`, `met`, `passed` (the phase passed). Consistency: `ok`, or `withheld` while
the best day is above its share of the profit. Event-only rules (weekend, news, risk per
trade) have no running figure; they show `violated` once violated, else `ok`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from core.domain.rules import kernels as k
from core.domain.rules.evaluate import PCT_PLACES, RuleName
from core.domain.rules.state import RuleState
from schemas.rules import RuleStanding as Status
from schemas.rules import StatusRule
from schemas.tier import RuleSet

BAND_PCT = Decimal(5)  # a headroom crossing a multiple of this % of its limit is a change


@dataclass(frozen=True, slots=True)
class RuleStatus:
    rule: StatusRule
    status: Status
    value: Decimal | None
    limit: Decimal | None
    headroom: Decimal | None
    headroom_pct: Decimal | None


def _room(value: Decimal, limit: Decimal) -> tuple[Decimal, Decimal | None]:
    headroom = limit - value
    return headroom, None if limit == 0 else (headroom * 100 / limit).quantize(PCT_PLACES)


def _limit(spec: RuleSet, s: RuleState, rule: RuleName, value: Decimal, limit: Decimal, *,
           cap: bool = False) -> RuleStatus:
    code = k.classify(value, limit, spec.warning_threshold_pct)
    past = value > limit if cap else code == k.BREACHED
    status: Status = "violated" if rule in s.violated or past else \
        "warning" if code >= k.WARNING else "ok"
    return RuleStatus(rule, status, value, limit, *_room(value, limit))


def _goal(s: RuleState, rule: StatusRule, value: Decimal, limit: Decimal) -> RuleStatus:
    status: Status = "passed" if s.passed else "met" if value >= limit else "pending"
    return RuleStatus(rule, status, value, limit, *_room(value, limit))


def status(spec: RuleSet, s: RuleState) -> list[RuleStatus]:
    """Every rule the spec switches on, in a fixed order, as it stands on `s`."""
    out: list[RuleStatus] = []
    value, limit = k.daily_loss(s.equity, s.day_start_balance, s.day_start_equity,
                                s.initial_balance, spec.daily_loss_limit_pct,
                                spec.daily_loss_base)
    out.append(_limit(spec, s, "daily-loss", value, limit))
    value, limit = k.max_loss(s.equity, s.high_water, s.initial_balance, spec.max_loss_pct,
                              trailing=spec.max_loss_mode == "trailing",
                              lock=spec.max_loss_trailing_lock)
    out.append(_limit(spec, s, "max-loss", value, limit))
    profit = s.balance - s.initial_balance
    if spec.profit_target_pct is not None:
        value, limit = k.profit_target(s.balance, s.initial_balance, spec.profit_target_pct)
        out.append(_goal(s, "profit-target", value, limit))
    if spec.min_trading_days > 0:
        out.append(_goal(s, "min-trading-days", Decimal(s.trading_days),
                         Decimal(spec.min_trading_days)))
    if spec.max_duration_days is not None:
        out.append(_limit(spec, s, "max-duration", Decimal(s.days),
                          Decimal(spec.max_duration_days)))
    if spec.max_open_lots is not None:
        out.append(_limit(spec, s, "max-open-lots", s.open_lots, spec.max_open_lots, cap=True))
    if spec.max_open_exposure_pct is not None:
        value, limit = k.open_exposure(s.open_exposure, s.initial_balance,
                                       spec.max_open_exposure_pct)
        out.append(_limit(spec, s, "max-open-exposure", value, limit, cap=True))
    if spec.consistency_limit_pct is not None:
        best, allowed = k.consistency(s.best_day, profit, spec.consistency_limit_pct)
        withheld = profit > 0 and best > allowed
        out.append(RuleStatus("consistency", "withheld" if withheld else "ok", best, allowed,
                              *_room(best, allowed)))
    flags: list[tuple[bool, RuleName]] = [
        (spec.max_risk_per_trade_pct is not None, "risk-per-trade"),
        (spec.no_weekend_holding, "weekend-holding"), (spec.no_news_holding, "news-holding")]
    for on, rule in flags:
        if on:
            out.append(RuleStatus(rule, "violated" if rule in s.violated else "ok",
                                  None, None, None, None))
    return out


def band(found: Iterable[tuple[str, str, Decimal | None]]) -> str:
    """The standing's band, from (rule, status, headroom_pct) of each rule: it changes when a
    status does or a headroom crosses a multiple of `BAND_PCT` %. The engine records
    `rules.status-changed` when it changes, so a dashboard is pushed the moves that matter
    and not every mark."""
    return "|".join(f"{rule}:{st}:{'' if pct is None else math.floor(pct / BAND_PCT)}"
                    for rule, st, pct in found)


__all__ = ["BAND_PCT", "RuleStatus", "Status", "StatusRule", "band", "status"]
