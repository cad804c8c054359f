"""Configuration of the market simulator: frozen, keyword-only, validated on construction.

Units, once for every class here:
- `mu` and `sigma` are annualised, with a year of `SECONDS_PER_YEAR` (365 days of 24 h: the
  simulated markets trade around the clock). For a `price` instrument they are the drift and
  volatility of the log price; for a `probability` instrument `sigma` is the volatility of the
  logit of the probability and there is no drift.
- `dt_seconds` is the simulated time one step advances.
- A regime transition matrix gives probabilities per step (one `dt_seconds`), not per second.
- News jumps are in log-return units for prices and in logit units for probabilities.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from market_data.exceptions import SimulatorConfigError
from schemas.instrument import SYMBOL_RE

SECONDS_PER_YEAR = 365 * 24 * 3600
RegimeName = Literal["low", "medium", "high"]
REGIMES: tuple[RegimeName, ...] = ("low", "medium", "high")
InstrumentKind = Literal["price", "probability"]
HEADLINE_FIELDS = frozenset({"symbol", "signal"})

# Bounds that keep every intermediate value finite and every tick count an exact integer in a
# float64: a mid of at most 2**36 ticks plus a spread of at most 100 % stays under 2**38 ticks,
# and 2**38 ticks times a tick numerator below 2**14 stays under 2**53.
MAX_SIGMA = 1_000.0
MAX_ABS_MU = 1_000.0
MAX_MID_TICKS = 2**36
MAX_TICK_NUMERATOR = 2**14
ROW_SUM_TOLERANCE = 1e-9

Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


def _fail(owner: str, name: str, problem: str) -> SimulatorConfigError:
    return SimulatorConfigError(f"{owner}.{name} {problem}")


def _finite(owner: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(owner, name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _fail(owner, name, f"must be finite, got {value!r}")
    return float(value)


def _in_range(owner: str, name: str, value: float, low: float, high: float) -> None:
    if not low <= _finite(owner, name, value) <= high:
        raise _fail(owner, name, f"must be in [{low}, {high}], got {value!r}")


def _positive_decimal(owner: str, name: str, value: Decimal) -> Fraction:
    if not isinstance(value, Decimal):
        # A float such as 0.1 is not 0.1; the caller must say which decimal it means.
        raise _fail(owner, name, f"must be a Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite() or value <= 0:
        raise _fail(owner, name, f"must be a finite Decimal > 0, got {value}")
    return Fraction(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeConfig:
    """Volatility regimes low / medium / high as a Markov chain over simulation steps.

    `sigma` is annualised, one value per regime in the order of `REGIMES`.
    `transition_matrix[i][j]` is the probability of moving from regime i to regime j in ONE
    step (one `dt_seconds` of the instrument); rows follow `REGIMES` and each sums to 1.
    The default keeps a regime for 5,000 steps on average (about 8 minutes at 100 ms).
    """

    sigma: tuple[float, float, float] = (0.3, 0.6, 1.2)
    transition_matrix: Matrix3 = (
        (0.9998, 0.00015, 0.00005),
        (0.0001, 0.9998, 0.0001),
        (0.00005, 0.00015, 0.9998),
    )
    initial: RegimeName = "medium"

    def __post_init__(self) -> None:
        owner = "RegimeConfig"
        if len(self.sigma) != len(REGIMES):
            raise _fail(owner, "sigma", f"must have one value per regime {REGIMES}")
        for name, value in zip(REGIMES, self.sigma, strict=True):
            _in_range(owner, f"sigma[{name}]", value, 0.0, MAX_SIGMA)
        if len(self.transition_matrix) != len(REGIMES):
            raise _fail(owner, "transition_matrix", f"must have {len(REGIMES)} rows")
        for source, row in zip(REGIMES, self.transition_matrix, strict=True):
            label = f"transition_matrix[{source}]"
            if len(row) != len(REGIMES):
                raise _fail(owner, label, f"must have {len(REGIMES)} entries, got {len(row)}")
            for target, p in zip(REGIMES, row, strict=True):
                _in_range(owner, f"{label}[{target}]", p, 0.0, 1.0)
            total = math.fsum(row)
            if abs(total - 1.0) > ROW_SUM_TOLERANCE:
                raise _fail(owner, label, f"must sum to 1 (within 1e-9), sums to {total!r}")
        if self.initial not in REGIMES:
            raise _fail(owner, "initial", f"must be one of {REGIMES}, got {self.initial!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class NewsConfig:
    """News as a Poisson process with signed jumps.

    Events arrive at `rate_per_hour` (λ). A jump's size is |N(mean_abs_jump, jump_stdev)|;
    its sign is + (bullish) with `bullish_probability`, else - (bearish). Headlines are
    templates with the fields {symbol} and {signal}.
    """

    rate_per_hour: float = 2.0
    mean_abs_jump: float = 0.005
    jump_stdev: float = 0.002
    bullish_probability: float = 0.5
    headlines: tuple[str, ...] = (
        "{symbol}: {signal} surprise in the latest report",
        "{symbol}: analysts turn {signal} after an unexpected announcement",
        "{symbol}: {signal} rumour spreads across desks",
    )

    def __post_init__(self) -> None:
        owner = "NewsConfig"
        _in_range(owner, "rate_per_hour", self.rate_per_hour, 0.0, 1e9)
        _in_range(owner, "mean_abs_jump", self.mean_abs_jump, 0.0, 50.0)
        if self.mean_abs_jump <= 0:
            raise _fail(owner, "mean_abs_jump", "must be > 0 (set rate_per_hour=0 for no news)")
        _in_range(owner, "jump_stdev", self.jump_stdev, 0.0, 50.0)
        _in_range(owner, "bullish_probability", self.bullish_probability, 0.0, 1.0)
        if not self.headlines:
            raise _fail(owner, "headlines", "must hold at least one template")
        for i, template in enumerate(self.headlines):
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if not fields <= HEADLINE_FIELDS:
                raise _fail(owner, f"headlines[{i}]", f"uses unknown fields "
                            f"{sorted(fields - HEADLINE_FIELDS)}; allowed: "
                            f"{sorted(HEADLINE_FIELDS)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class InstrumentSimConfig:
    """One simulated instrument.

    `initial` is the first price (kind "price") or probability (kind "probability").
    The quoted spread is max(`spread_ticks` ticks, `spread_bps` of the mid), rounded up to
    whole ticks. Trade sizes are lognormal with median `size_median` and log-stdev
    `size_log_stdev`, rounded to `lot_size` (at least one lot).
    """

    symbol: str
    kind: InstrumentKind = "price"
    initial: Decimal
    tick_size: Decimal
    mu: float = 0.0
    spread_ticks: int = 1
    spread_bps: float = 0.0
    size_median: float = 1.0
    size_log_stdev: float = 0.5
    lot_size: Decimal = Decimal("0.001")
    dt_seconds: float = 0.1
    regimes: RegimeConfig = field(default_factory=RegimeConfig)
    news: NewsConfig = field(default_factory=NewsConfig)

    def __post_init__(self) -> None:
        owner = f"InstrumentSimConfig({self.symbol!r})"
        if not isinstance(self.symbol, str) or not SYMBOL_RE.fullmatch(self.symbol):
            raise _fail(owner, "symbol", f"must match {SYMBOL_RE.pattern}")
        if self.kind not in ("price", "probability"):
            raise _fail(owner, "kind", f"must be 'price' or 'probability', got {self.kind!r}")
        tick = _positive_decimal(owner, "tick_size", self.tick_size)
        if tick.numerator > MAX_TICK_NUMERATOR:
            raise _fail(owner, "tick_size", f"has too many significant digits: {self.tick_size}")
        if not isinstance(self.initial, Decimal) or not self.initial.is_finite():
            raise _fail(owner, "initial", f"must be a finite Decimal, got {self.initial!r}")
        if self.initial <= 0:
            raise _fail(owner, "initial", f"must be > 0, got {self.initial}")
        _in_range(owner, "mu", self.mu, -MAX_ABS_MU, MAX_ABS_MU)
        if isinstance(self.spread_ticks, bool) or not isinstance(self.spread_ticks, int):
            raise _fail(owner, "spread_ticks", f"must be an int, got {self.spread_ticks!r}")
        if self.spread_ticks < 1:
            raise _fail(owner, "spread_ticks", f"must be >= 1, got {self.spread_ticks}")
        _in_range(owner, "spread_bps", self.spread_bps, 0.0, 10_000.0)
        _in_range(owner, "size_median", self.size_median, 0.0, 1e9)
        if self.size_median <= 0:
            raise _fail(owner, "size_median", f"must be > 0, got {self.size_median}")
        _in_range(owner, "size_log_stdev", self.size_log_stdev, 0.0, 5.0)
        lot = _positive_decimal(owner, "lot_size", self.lot_size)
        if lot.numerator > MAX_TICK_NUMERATOR:
            raise _fail(owner, "lot_size", f"has too many significant digits: {self.lot_size}")
        _in_range(owner, "dt_seconds", self.dt_seconds, 0.0, 86_400.0)
        if self.dt_seconds <= 0:
            raise _fail(owner, "dt_seconds", f"must be > 0, got {self.dt_seconds}")
        if self.kind == "price":
            if self.initial < self.tick_size:
                raise _fail(owner, "initial", f"must be at least one tick ({self.tick_size})")
            if Fraction(self.initial) / tick > MAX_MID_TICKS:
                raise _fail(owner, "initial", f"is too many ticks from zero ({self.initial})")
        else:
            if self.mu != 0:
                raise _fail(owner, "mu", "must be 0 for a probability instrument (no drift)")
            if tick.numerator != 1:
                raise _fail(owner, "tick_size", "of a probability instrument must divide 1 "
                            f"(e.g. 0.01, 0.005), got {self.tick_size}")
            if tick.denominator < self.spread_ticks + 2:
                raise _fail(owner, "tick_size", f"{self.tick_size} leaves no room for a "
                            f"{self.spread_ticks}-tick spread inside (0, 1)")
            if not self.tick_size <= self.initial <= 1 - self.tick_size:
                raise _fail(owner, "initial", "of a probability instrument must be in "
                            f"[tick_size, 1 - tick_size], got {self.initial}")


def check_together(configs: tuple[InstrumentSimConfig, ...]) -> None:
    """Raise if two configs share a symbol or the instruments do not share one dt.

    One dt per simulator keeps "one step" a single amount of simulated time, which is what a
    runner schedules and what a per-step transition matrix means.
    """
    seen: set[str] = set()
    for config in configs:
        if config.symbol in seen:
            raise SimulatorConfigError(f"symbol {config.symbol!r} is configured twice")
        seen.add(config.symbol)
    dts = {config.dt_seconds for config in configs}
    if len(dts) > 1:
        raise SimulatorConfigError(
            f"all instruments of one simulator must share dt_seconds, got {sorted(dts)}; "
            "run one simulator per dt"
        )


__all__ = [
    "HEADLINE_FIELDS",
    "MAX_MID_TICKS",
    "REGIMES",
    "SECONDS_PER_YEAR",
    "InstrumentKind",
    "InstrumentSimConfig",
    "NewsConfig",
    "RegimeConfig",
    "RegimeName",
    "check_together",
]
