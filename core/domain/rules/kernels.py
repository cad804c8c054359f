"""The arithmetic of every rule, written once for a scalar and for an array of paths.

Each kernel takes money as `Decimal` (the live engine: one account, exact) or as a numpy
`float64` array (Monte Carlo: one element per simulated path) and returns the rule's
`(value, limit)`: the quantity the rule compares and the level at which it is breached. Only
operators and `_max`/`_min` are used, so the same lines run on both; the spec's parameters
(percentages, modes) are scalars shared by every path. docs/rules.md states each formula.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

Money = TypeVar("Money", Decimal, float, NDArray[np.float64])
DailyBase = Literal["starting-balance", "day-start-balance", "day-start-equity",
                    "day-start-higher"]

# Codes of `classify`, also the verdict order: 0 within, 1 warning, 2 breached.
OK, WARNING, BREACHED = 0, 1, 2


def _max(a: Money, b: Money) -> Money:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def _min(a: Money, b: Money) -> Money:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.minimum(a, b)
    return a if a <= b else b


def daily_loss(equity: Money, day_start_balance: Money, day_start_equity: Money,
               initial: Money, pct: Money, base: DailyBase) -> tuple[Money, Money]:
    """Loss since the day's reference level (floating P&L included) and the day's allowance."""
    if base == "day-start-equity":
        reference = day_start_equity
    elif base == "day-start-higher":
        reference = _max(day_start_balance, day_start_equity)
    else:
        reference = day_start_balance
    amount_of = initial if base == "starting-balance" else reference
    return reference - equity, amount_of * pct / 100


def max_loss(equity: Money, high_water: Money, initial: Money, pct: Money, *,
             trailing: bool, lock: bool) -> tuple[Money, Money]:
    """Loss from the reference level (the starting balance, or the equity high-water mark
    capped so the floor stops at the starting balance) and the allowance."""
    allowance = initial * pct / 100
    if not trailing:
        reference = initial
    elif lock:
        reference = _min(high_water, initial + allowance)
    else:
        reference = high_water
    return reference - equity, allowance


def profit_target(balance: Money, initial: Money, pct: Money) -> tuple[Money, Money]:
    """Closed profit against the target."""
    return balance - initial, initial * pct / 100


def consistency(best_day: Money, total_profit: Money, pct: Money) -> tuple[Money, Money]:
    """The best day's profit against its allowed share of the total profit."""
    return best_day, total_profit * pct / 100


def open_exposure(exposure: Money, initial: Money, pct: Money) -> tuple[Money, Money]:
    """Open notional at entry prices against its share of the starting balance."""
    return exposure, initial * pct / 100


def risk_per_trade(entry: Money, stop: Money, quantity: Money, balance: Money,
                   pct: Money) -> tuple[Money, Money]:
    """What the order loses if its stop is hit, against its share of the balance."""
    return abs(entry - stop) * quantity, balance * pct / 100


def classify(value: Money, limit: Money, threshold_pct: Money) -> Any:
    """0 within, 1 at or past `threshold_pct` % of the limit, 2 at or past the limit.

    An `int` for a scalar, an int array for paths. Reaching the limit is a breach (the
    published rules speak of "reaching" or "hitting" it).
    """
    return 1 * (value >= limit) + 1 * (value >= limit * threshold_pct / 100)


__all__ = ["BREACHED", "OK", "WARNING", "DailyBase", "Money", "classify", "consistency",
           "daily_loss", "max_loss", "open_exposure", "profit_target", "risk_per_trade"]
