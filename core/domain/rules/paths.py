"""The rules over many simulated paths at once: the kernels of `kernels.py` on float arrays.

Monte Carlo keeps one `Paths` (an array per state field, one element per path) and, at each
step, marks every path's equity and balance with `mark`, then reads `judge`: per rule, a code
per path (0 within, 1 warning, 2 breached) and the headroom. The arithmetic is the same
functions the live evaluator calls with Decimals (tests/unit/core/rules/test_vectorized.py
proves element by element that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from core.domain.rules import kernels as k
from schemas.tier import RuleSet

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Limits:
    """A spec's parameters as float64 (0-d arrays: the kernels take money of one type)."""

    daily_pct: F64
    daily_base: k.DailyBase
    max_pct: F64
    trailing: bool
    lock: bool
    target_pct: F64 | None
    consistency_pct: F64 | None
    threshold_pct: F64

    @classmethod
    def of(cls, spec: RuleSet) -> Limits:
        def f(value: Decimal) -> F64:
            return np.asarray(float(value), dtype=np.float64)

        def opt(value: Decimal | None) -> F64 | None:
            return None if value is None else f(value)
        return cls(daily_pct=f(spec.daily_loss_limit_pct), daily_base=spec.daily_loss_base,
                   max_pct=f(spec.max_loss_pct), trailing=spec.max_loss_mode == "trailing",
                   lock=spec.max_loss_trailing_lock, target_pct=opt(spec.profit_target_pct),
                   consistency_pct=opt(spec.consistency_limit_pct),
                   threshold_pct=f(spec.warning_threshold_pct))


@dataclass(slots=True)
class Paths:
    """The rule state of n paths, updated in place."""

    initial: F64
    balance: F64
    equity: F64
    high_water: F64
    day_start_balance: F64
    day_start_equity: F64
    best_day: F64

    @classmethod
    def start(cls, n: int, balance: float) -> Paths:
        def full() -> F64:
            return np.full(n, balance, dtype=np.float64)
        return cls(initial=full(), balance=full(), equity=full(), high_water=full(),
                   day_start_balance=full(), day_start_equity=full(),
                   best_day=np.zeros(n, dtype=np.float64))

    def mark(self, balance: F64, equity: F64) -> None:
        """New figures for every path (after a simulated step)."""
        self.balance = balance
        self.equity = equity
        np.maximum(self.high_water, equity, out=self.high_water)

    def roll_day(self) -> None:
        """A day boundary on every path."""
        np.maximum(self.best_day, self.balance - self.day_start_balance, out=self.best_day)
        self.day_start_balance = self.balance.copy()
        self.day_start_equity = self.equity.copy()


@dataclass(frozen=True, slots=True)
class Judged:
    """Per rule: a code per path (see `kernels.classify`) and the headroom (limit - value)."""

    daily_loss: NDArray[np.int64]
    daily_headroom: F64
    max_loss: NDArray[np.int64]
    max_headroom: F64
    target_reached: NDArray[np.bool_] | None
    consistent: NDArray[np.bool_] | None


def judge(limits: Limits, p: Paths) -> Judged:
    """Every money rule on every path, for the figures last marked."""
    d_value, d_limit = k.daily_loss(p.equity, p.day_start_balance, p.day_start_equity,
                                    p.initial, limits.daily_pct, limits.daily_base)
    m_value, m_limit = k.max_loss(p.equity, p.high_water, p.initial, limits.max_pct,
                                  trailing=limits.trailing, lock=limits.lock)
    reached = consistent = None
    if limits.target_pct is not None:
        profit, target = k.profit_target(p.balance, p.initial, limits.target_pct)
        reached = profit >= target
        if limits.consistency_pct is not None:
            best = np.maximum(p.best_day, p.balance - p.day_start_balance)
            value, allowed = k.consistency(best, profit, limits.consistency_pct)
            consistent = value <= allowed
    return Judged(daily_loss=k.classify(d_value, d_limit, limits.threshold_pct),
                  daily_headroom=d_limit - d_value,
                  max_loss=k.classify(m_value, m_limit, limits.threshold_pct),
                  max_headroom=m_limit - m_value, target_reached=reached,
                  consistent=consistent)


__all__ = ["Judged", "Limits", "Paths", "judge"]
