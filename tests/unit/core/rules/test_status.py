"""The rule status of a rule state, rule by rule: limits ok / warning / violated with money
headroom, goals pending / met / passed, consistency withheld, event-only rules."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from core.domain import rules
from core.domain.rules.status import RuleStatus, status
from schemas.tier import RuleSet

T0 = 1_796_000_000_000_000_000
SPEC = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
               profit_target_pct=Decimal(8), min_trading_days=2, max_duration_days=30,
               consistency_limit_pct=Decimal(50), max_risk_per_trade_pct=Decimal(1),
               no_weekend_holding=True)


def _state(**changes: object) -> rules.RuleState:
    start = rules.initial("acc", balance=Decimal(100_000), started_ns=T0, rules=SPEC)
    return replace(start, **changes)  # type: ignore[arg-type]


def _of(found: list[RuleStatus]) -> dict[str, RuleStatus]:
    return {s.rule: s for s in found}


def test_a_fresh_account_is_ok_with_the_whole_limit_as_headroom() -> None:
    got = _of(status(SPEC, _state()))
    assert list(got) == ["daily-loss", "max-loss", "profit-target", "min-trading-days",
                         "max-duration", "consistency", "risk-per-trade", "weekend-holding"]
    assert got["daily-loss"] == RuleStatus("daily-loss", "ok", Decimal(0), Decimal(5000),
                                           Decimal(5000), Decimal(100))
    assert got["profit-target"].status == "pending"
    assert got["profit-target"].headroom == 8000
    assert got["weekend-holding"] == RuleStatus("weekend-holding", "ok", None, None, None, None)


def test_a_loss_past_the_warning_share_warns_and_past_the_limit_is_violated() -> None:
    warned = _of(status(SPEC, _state(equity=Decimal(95_900))))["daily-loss"]
    assert (warned.status, warned.value, warned.headroom, warned.headroom_pct) == (
        "warning", Decimal(4100), Decimal(900), Decimal(18))
    assert _of(status(SPEC, _state(equity=Decimal(94_000))))["daily-loss"].status == "violated"
    recorded = _state(equity=Decimal(99_000), violated=frozenset({"daily-loss"}))
    assert _of(status(SPEC, recorded))["daily-loss"].status == "violated"


def test_goals_are_met_then_passed_and_an_inconsistent_profit_is_withheld() -> None:
    up = dict(balance=Decimal(108_500), equity=Decimal(108_500), high_water=Decimal(108_500),
              day_start_balance=Decimal(100_000), traded_today=True, trading_days=2)
    got = _of(status(SPEC, _state(**up)))
    assert (got["profit-target"].status, got["profit-target"].headroom) == ("met", -500)
    assert got["min-trading-days"].status == "met"
    assert got["consistency"].status == "withheld"  # all 8,500 on one day: over 50 %
    assert _of(status(SPEC, _state(**up, passed=True)))["profit-target"].status == "passed"
