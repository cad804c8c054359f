"""Print the ticks per second `BarBuilder.on_tick` folds into all six resolutions.

Run: `.venv/bin/python -m market_data.domain.bars_bench [n_ticks]`. Ticks are made up front so
only `on_tick` is timed; the seed is fixed, so runs differ by the machine alone.
"""

from __future__ import annotations

import random
import sys
import time

from market_data.domain.bars import RESOLUTIONS, BarBuilder, ClosedBar
from market_data.domain.ticks import Tick

START_NS = 1_709_300_231_123_000_000


def make_ticks(n: int, *, seed: int = 1) -> list[Tick]:
    """Return `n` valid ticks about 0.5 s apart, about a quarter out of order within a minute."""
    rng = random.Random(seed)
    ticks: list[Tick] = []
    ts, price = START_NS, 100.0
    for _ in range(n):
        ts += int(rng.expovariate(2.0) * 1e9)
        price = round(max(0.01, price * (1 + rng.gauss(0, 0.0005))), 2)
        jitter = -int(rng.random() * 1e8) if rng.random() < 0.25 else 0
        ticks.append(Tick(instrument="BTC-USD", venue="sim", price=price,
                          size=round(rng.expovariate(1.0), 4), venue_ts_ns=ts + jitter,
                          received_ts_ns=ts + 2_000_000))
    return ticks


def main(n: int = 1_000_000, repeats: int = 3) -> None:
    ticks = make_ticks(n)
    best = float("inf")
    for _ in range(repeats):
        builder = BarBuilder("BTC-USD")
        on_tick = builder.on_tick
        started = time.perf_counter()
        outcomes = [on_tick(tick) for tick in ticks]
        best = min(best, time.perf_counter() - started)
    flat = [o for out in outcomes for o in out]
    closed = sum(isinstance(o, ClosedBar) for o in flat)
    print(f"{n} ticks, {len(RESOLUTIONS)} resolutions, best of {repeats}: "
          f"{n / best:,.0f} ticks/s ({best / n * 1e6:.2f} us/tick); "
          f"{closed} bars closed, {len(flat) - closed} ticks refused as late")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
