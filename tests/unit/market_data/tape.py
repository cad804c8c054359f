"""A generated tape of ticks with gaps, ties, out-of-order, late and invalid ticks.

Each entry says what the bar builder must do with it, known by construction, so the test can
compute the expected bars independently from the accepted ticks alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from market_data.domain.ticks import Tick

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# 2024-03-01T13:37:11.123Z: deliberately not on any bucket boundary.
START_NS = 1_709_300_231_123_000_000

Expect = Literal["ok", "late", "invalid"]


@dataclass(frozen=True)
class TapeTick:
    tick: Tick
    expect: Expect


@dataclass(frozen=True)
class Watermark:
    now_ns: int


Entry = TapeTick | Watermark


def _times(rng: np.random.Generator, n: int, mean_gap_s: float, days: int) -> np.ndarray:
    gaps = rng.exponential(mean_gap_s, n) * SECOND
    ts = START_NS + np.cumsum(gaps).astype(np.int64)
    ts = ts[ts < START_NS + days * DAY]
    # Quiet stretches of 1 to 8 hours with no trades at all.
    keep = np.ones(ts.shape, dtype=bool)
    for _ in range(12):
        begin = START_NS + int(rng.integers(0, days * DAY))
        keep &= ~((ts >= begin) & (ts < begin + int(rng.integers(1, 9)) * HOUR))
    ts = ts[keep]
    # Ties: some ticks share the venue time of the one before.
    ties = np.flatnonzero(rng.random(ts.shape) < 0.01)
    ts[ties[ties > 0]] = ts[ties[ties > 0] - 1]
    return ts


def generate(seed: int = 7, *, days: int = 5) -> tuple[list[Entry], list[str]]:
    """Return the tape (ticks and watermarks, in arrival order) and its instruments."""
    rng = np.random.default_rng(seed)
    instruments = ["BTC-USD", "ETH-USD", "SOL-USD"]
    rows: list[tuple[int, str, float, float]] = []
    for k, instrument in enumerate(instruments):
        ts = _times(rng, 70_000, 6.0, days)
        if instrument == "SOL-USD":  # a whole UTC day without trades: no 1d bar for it
            day = START_NS - START_NS % DAY + 2 * DAY
            ts = ts[(ts < day) | (ts >= day + DAY)]
        steps = rng.normal(0, 0.0008, ts.shape)
        prices = np.round((100.0 * (k + 1)) * np.exp(np.cumsum(steps)), 2)
        sizes = np.round(rng.exponential(1.0, ts.shape), 4)
        sizes[rng.random(ts.shape) < 0.005] = 0.0
        rows += zip(ts.tolist(), [instrument] * len(ts), prices.tolist(), sizes.tolist(),
                    strict=True)
    rows.sort(key=lambda r: r[0])
    latency = rng.integers(1_000_000, 50_000_000, len(rows)).tolist()
    ticks = [Tick(instrument=i, venue="sim", price=p, size=s, venue_ts_ns=t,
                  received_ts_ns=t + lat, trade_id=str(n))
             for n, ((t, i, p, s), lat) in enumerate(zip(rows, latency, strict=True))]
    # Out of order within a 1m period: swap neighbours of one instrument in the same minute.
    for j in np.flatnonzero(rng.random(len(ticks) - 1) < 0.03).tolist():
        a, b = ticks[j], ticks[j + 1]
        if (a.instrument == b.instrument and a.venue_ts_ns // MINUTE == b.venue_ts_ns // MINUTE
                and a.venue_ts_ns != b.venue_ts_ns):
            ticks[j], ticks[j + 1] = b, a
    entries: list[Entry] = []
    max_ts = 0
    for n, tick in enumerate(ticks):
        entries.append(TapeTick(tick, "ok"))
        max_ts = max(max_ts, tick.venue_ts_ns)
        u = rng.random()
        if u < 0.005:
            # Before the start of this tick's minute, which the tick itself has closed.
            late_ts = (tick.venue_ts_ns - tick.venue_ts_ns % MINUTE
                       - int(rng.integers(1, 600)) * SECOND)
            entries.append(TapeTick(Tick(instrument=tick.instrument, venue="sim",
                                         price=tick.price * 1.5, size=1.0, venue_ts_ns=late_ts,
                                         received_ts_ns=tick.received_ts_ns), "late"))
        elif u < 0.008:
            entries.append(TapeTick(_invalid(rng, tick), "invalid"))
        if n % 500 == 499:
            entries.append(Watermark(max_ts))
    return entries, instruments


def _invalid(rng: np.random.Generator, tick: Tick) -> Tick:
    bad: list[dict[str, float | int]] = [
        {"price": math.nan}, {"price": math.inf}, {"price": -math.inf}, {"price": 0.0},
        {"price": -tick.price}, {"size": -1.0}, {"size": math.nan},
        {"venue_ts_ns": tick.received_ts_ns + HOUR},
        {"venue_ts_ns": 900_000_000 * SECOND},
    ]
    change = bad[int(rng.integers(0, len(bad)))]
    values = {"instrument": tick.instrument, "venue": "sim", "price": tick.price * 2,
              "size": tick.size, "venue_ts_ns": tick.venue_ts_ns,
              "received_ts_ns": tick.received_ts_ns} | change
    return Tick(**values)  # type: ignore[arg-type]
