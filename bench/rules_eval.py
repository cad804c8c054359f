"""Rule evaluations per second of the pure evaluator (core.domain.rules), beside numpy.

1. Single event, live: `step(spec, state, input)` on one account (Decimals), every rule of a
   full spec judged per input. Two streams: equity marks that stay inside every limit (the
   common case: fold + arithmetic, no verdict) and marks that each give a warning on a fresh
   day (+ one sha256 stamp). Throughput = inputs/s, best of --repeat; p50/p99 per input.
2. Vectorized: one `Paths` of --paths (10k) simulated accounts; one evaluation = one path's
   mark judged by the money rules (daily loss, maximum loss, target, consistency):
   `paths.mark(balance, equity)` + `judge(limits, paths)` per step. Beside it, in the same
   run, the same arithmetic hand-written as plain numpy expressions (no kernels, no
   dataclasses): "numpy's own rate" for it. The ratio says what the shared scalar/array code
   costs. All on float64, --steps steps of fresh random figures drawn before timing.

Run: flock /tmp/bench.lock .venv/bin/python -m bench.rules_eval [--paths 10000] [--steps 2000]
     [--events 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import timedelta
from decimal import Decimal

import numpy as np

from bench.common import percentile, table
from core.domain.rules import DayRolled, Marked, initial, step, trading_day
from core.domain.rules.paths import Limits, Paths, judge
from schemas.tier import RuleSet

D = Decimal
T0 = 1_767_600_000_000_000_000
SPEC = RuleSet(daily_loss_limit_pct=D(5), daily_loss_base="day-start-higher",
               max_loss_pct=D(10), max_loss_mode="trailing", profit_target_pct=D(8),
               min_trading_days=4, consistency_limit_pct=D(40), max_open_lots=D(50),
               max_open_exposure_pct=D(1000), max_duration_days=60, no_weekend_holding=True,
               no_news_holding=True, day_boundary_tz="Europe/Prague")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def quiet_marks(n: int, seed: int) -> list[Marked]:
    """Marks of an open position wandering within ±2 % of 100,000: no verdict."""
    rng = random.Random(seed)
    held = frozenset({"BTC-USD"})
    return [Marked(i + 1, T0 + i * 1_000_000_000, D(100_000),
                   D(100_000) + D(rng.randint(-200_000, 200_000)) / 100, D(1), D(50_000), held)
            for i in range(n)]


def single(n: int, repeat: int) -> list[list[object]]:
    rows: list[list[object]] = []
    start = initial("acc-1", balance=D(100_000), started_ns=T0, rules=SPEC)
    marks = quiet_marks(n, 1)
    best = float("inf")
    for _ in range(repeat):
        state = start
        t0 = time.perf_counter()
        for m in marks:
            state, found = step(SPEC, state, m)
            assert not found
        best = min(best, time.perf_counter() - t0)
    lat = []
    state = start
    for m in marks[:20_000]:
        t0 = time.perf_counter_ns()
        state, _ = step(SPEC, state, m)
        lat.append(time.perf_counter_ns() - t0)
    lat.sort()
    rows.append(["single: mark, no verdict", f"{n / best:,.0f}",
                 f"{percentile(lat, 50) / 1000:.1f}", f"{percentile(lat, 99) / 1000:.1f}"])

    # A warning on every input: each mark after a day rollover crosses 80 % of the daily loss
    # (no period limit and weekends allowed, so the phase runs on for every day).
    spec = SPEC.model_copy(update={"max_duration_days": None, "no_weekend_holding": False})
    start = initial("acc-1", balance=D(100_000), started_ns=T0, rules=spec)
    day = trading_day(T0, spec)
    pairs = []
    held = frozenset({"BTC-USD"})
    for i in range(n // 2):
        day += timedelta(days=1)
        at = T0 + i * 86_400_000_000_000
        pairs.append((Marked(3 * i + 1, at - 1, D(100_000), D(100_000), D(1), D(50_000), held),
                      DayRolled(3 * i + 2, at, day),
                      Marked(3 * i + 3, at + 1, D(100_000), D(95_950), D(1), D(50_000), held)))
    best = float("inf")
    lat = []
    for r in range(repeat):
        state = start
        spent = 0.0
        for recover, roll, mark in pairs:
            state, _ = step(spec, state, recover)
            state, _ = step(spec, state, roll)
            t0 = time.perf_counter_ns()
            state, found = step(spec, state, mark)
            took = time.perf_counter_ns() - t0
            spent += took
            if r == 0:
                lat.append(took)
            assert found and found[0].kind == "warning", found
        best = min(best, spent / 1e9)
    lat.sort()
    rows.append(["single: mark with a warning (sha256)", f"{len(pairs) / best:,.0f}",
                 f"{percentile(lat, 50) / 1000:.1f}", f"{percentile(lat, 99) / 1000:.1f}"])
    return rows


def hand_written(pct_daily: float, pct_max: float, pct_target: float, pct_cons: float,
                 thr: float, initial_: np.ndarray, balance: np.ndarray, equity: np.ndarray,
                 hwm: np.ndarray, dsb: np.ndarray, dse: np.ndarray,
                 best: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same rules, as one would write them for numpy alone."""
    np.maximum(hwm, equity, out=hwm)
    ref = np.maximum(dsb, dse)
    d_val = ref - equity
    d_lim = ref * pct_daily / 100
    d_code = 1 * (d_val >= d_lim) + 1 * (d_val >= d_lim * thr / 100)
    allow = initial_ * pct_max / 100
    m_val = np.minimum(hwm, initial_ + allow) - equity
    m_code = 1 * (m_val >= allow) + 1 * (m_val >= allow * thr / 100)
    profit = balance - initial_
    reached = profit >= initial_ * pct_target / 100
    consistent = np.maximum(best, balance - dsb) <= profit * pct_cons / 100
    return d_code, d_lim - d_val, m_code, allow - m_val, reached, consistent


def vectorized(n: int, steps: int, repeat: int) -> list[list[object]]:
    rng = np.random.default_rng(7)
    balances = [100_000 + rng.normal(0, 2_000, n) for _ in range(16)]
    equities = [b + rng.normal(0, 1_500, n) for b in balances]
    limits = Limits.of(SPEC)
    best_k = best_h = float("inf")
    for _ in range(repeat):
        paths = Paths.start(n, 100_000.0)
        t0 = time.perf_counter()
        for s in range(steps):
            paths.mark(balances[s % 16], equities[s % 16])
            judge(limits, paths)
        best_k = min(best_k, time.perf_counter() - t0)

        p = Paths.start(n, 100_000.0)
        t0 = time.perf_counter()
        for s in range(steps):
            hand_written(5.0, 10.0, 8.0, 40.0, 80.0, p.initial, balances[s % 16],
                         equities[s % 16], p.high_water, p.day_start_balance,
                         p.day_start_equity, p.best_day)
        best_h = min(best_h, time.perf_counter() - t0)
    # Cross-check: the two give the same codes on the last figures.
    paths = Paths.start(n, 100_000.0)
    paths.mark(balances[3], equities[3])
    mine = judge(limits, paths)
    p = Paths.start(n, 100_000.0)
    theirs = hand_written(5.0, 10.0, 8.0, 40.0, 80.0, p.initial, balances[3], equities[3],
                          p.high_water, p.day_start_balance, p.day_start_equity, p.best_day)
    assert np.array_equal(mine.daily_loss, theirs[0]) and np.array_equal(mine.max_loss,
                                                                         theirs[2])
    # numpy's floor: one element-wise subtraction into a preallocated array, per element.
    a, b, out = balances[0], equities[0], np.empty(n)
    best_o = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            np.subtract(a, b, out=out)
        best_o = min(best_o, time.perf_counter() - t0)
    rate_k = n * steps / best_k
    rate_h = n * steps / best_h
    per_step_us_k = best_k / steps * 1e6
    per_step_us_h = best_h / steps * 1e6
    return [[f"paths ({n:,}): kernels (core.domain.rules.paths)", f"{rate_k:,.0f}",
             f"{per_step_us_k:.1f} / step", ""],
            [f"paths ({n:,}): same arithmetic, plain numpy", f"{rate_h:,.0f}",
             f"{per_step_us_h:.1f} / step", f"kernels = {rate_k / rate_h:.2f}x numpy"],
            [f"paths ({n:,}): numpy, one subtraction (a floor)", f"{n * steps / best_o:,.0f}",
             f"{best_o / steps * 1e6:.1f} / step", ""]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = single(args.events, args.repeat)
    rows += vectorized(args.paths, args.steps, args.repeat)
    print(f"rules_eval: best of {args.repeat}, {load()}, numpy {np.__version__}")
    print(table(["what", "evaluations/s", "p50 us", "p99 us"], rows))


if __name__ == "__main__":
    main()
