"""What the market simulator produces: the step, and the regime and news records for the log.

These become `market.regime-changed` and `market.news-published` at the edge; here they are
plain frozen records so the domain stays free of the wire contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from market_data.domain.simulator_config import RegimeName
from market_data.domain.ticks import Tick

Signal = Literal["bullish", "bearish"]
Source = Literal["simulated", "admin"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RegimeChange:
    """An instrument's volatility regime changed at `at_ns`; `sigma` is the new one."""

    instrument: str
    at_ns: int
    from_regime: RegimeName
    to_regime: RegimeName
    sigma: float
    source: Source


@dataclass(frozen=True, kw_only=True, slots=True)
class NewsEvent:
    """News moved an instrument at `at_ns` by `jump` (log return, or logit for probabilities).

    `strength` is |jump| in units of the instrument's typical jump (`mean_abs_jump`).
    """

    instrument: str
    at_ns: int
    headline: str
    jump: float
    signal: Signal
    strength: float
    source: Source


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulationStep:
    """What one step produced: one tick per instrument, then the events that happened."""

    sequence: int
    at_ns: int
    ticks: tuple[Tick, ...]
    regime_changes: tuple[RegimeChange, ...]
    news: tuple[NewsEvent, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class InstrumentState:
    """The unquantised state of one instrument: its regime and its mid (price or probability)."""

    instrument: str
    regime: RegimeName
    sigma: float
    mid: float
