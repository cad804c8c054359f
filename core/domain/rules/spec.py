"""What a `RuleSet` means beyond its single fields: trading days, and contradictions.

A trading day starts at `day_boundary_time` in `day_boundary_tz` (wall-clock time, so a
day across a DST change is 23 or 25 hours long). A day is named by the calendar date on
which it starts when the boundary is at or before noon (00:00 → the local date), and by the
date on which it ends when the boundary is in the afternoon or evening (17:00 New York: the
session from Sunday 17:00 to Monday 17:00 is Monday's, as futures markets name it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from schemas.tier import RuleSet, TierTerms

NS = 1_000_000_000
NOON = time(12, 0)
FRIDAY = 4


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _boundary(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def trading_day(at_ns: int, rules: RuleSet) -> date:
    """The trading day an instant belongs to under the rules' boundary."""
    boundary = _boundary(rules.day_boundary_time)
    seconds, rest = divmod(at_ns, NS)
    local = datetime.fromtimestamp(seconds, _zone(rules.day_boundary_tz)).replace(tzinfo=None)
    local += timedelta(microseconds=rest // 1000)
    start = (local - timedelta(hours=boundary.hour, minutes=boundary.minute)).date()
    return start + timedelta(days=1) if boundary > NOON else start


def day_start_ns(day: date, rules: RuleSet) -> int:
    """The instant (ns since the epoch) at which trading day `day` starts."""
    boundary = _boundary(rules.day_boundary_time)
    on = day - timedelta(days=1) if boundary > NOON else day
    local = datetime.combine(on, boundary, tzinfo=_zone(rules.day_boundary_tz))
    return int(local.astimezone(UTC).timestamp()) * NS


def next_day_start_ns(at_ns: int, rules: RuleSet) -> int:
    """When the day after the one `at_ns` belongs to starts: when the engine rolls over."""
    return day_start_ns(trading_day(at_ns, rules) + timedelta(days=1), rules)


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A parameter that cannot hold together with another one."""

    path: tuple[str | int, ...]
    message: str


def contradictions(rules: RuleSet, *, at: tuple[str | int, ...] = ()) -> list[Contradiction]:
    """Parameters that are each in range but cannot hold together; the path names the field."""
    found: list[Contradiction] = []

    def refuse(name: str, message: str) -> None:
        found.append(Contradiction((*at, name), message))

    if rules.daily_loss_limit_pct > rules.max_loss_pct:
        refuse("daily_loss_limit_pct", f"the daily loss limit ({rules.daily_loss_limit_pct} %) "
                                       f"is above the maximum loss ({rules.max_loss_pct} %)")
    if (rules.max_duration_days is not None
            and rules.max_duration_days < rules.min_trading_days):
        refuse("max_duration_days", f"{rules.max_duration_days} days cannot hold "
                                    f"{rules.min_trading_days} minimum trading days")
    if (rules.max_risk_per_trade_pct is not None
            and rules.max_risk_per_trade_pct > rules.max_loss_pct):
        refuse("max_risk_per_trade_pct",
               f"one trade may risk {rules.max_risk_per_trade_pct} %, more than the maximum "
               f"loss ({rules.max_loss_pct} %)")
    if (rules.max_open_exposure_pct is not None
            and rules.max_open_exposure_pct > rules.max_leverage * 100):
        refuse("max_open_exposure_pct",
               f"an exposure of {rules.max_open_exposure_pct} % of the balance is beyond the "
               f"leverage 1:{rules.max_leverage} the phase allows")
    if rules.max_loss_mode == "static" and not rules.max_loss_trailing_lock:
        refuse("max_loss_trailing_lock", "only a trailing maximum loss can be left unlocked")
    return found


def terms_contradictions(terms: TierTerms) -> list[Contradiction]:
    """Every phase's contradictions, with paths from the terms (phases.<i>.rules.<field>)."""
    found: list[Contradiction] = []
    for index, phase in enumerate(terms.phases):
        found += contradictions(phase.rules, at=("phases", index, "rules"))
    return found


__all__ = ["Contradiction", "contradictions", "day_start_ns", "next_day_start_ns",
           "terms_contradictions", "trading_day"]
