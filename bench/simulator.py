"""Market simulator throughput: steps/s and ticks/s of `MarketSimulator.step`, in-process.

No infrastructure. Builds N instruments (90 % prices, 10 % probabilities, default regimes and
news), warms up, then times S steps R times and prints the median. The time includes building
the `Tick` objects, which is most of it at large N; not included is anything downstream
(encoding, Kafka). Lives in bench/ because market_data/domain/ stays free of clocks and IO.

Run: python -m bench.simulator [--instruments 1000] [--steps 2000] [--runs 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from decimal import Decimal

from market_data.domain.simulator import InstrumentSimConfig, MarketSimulator

STEP_NS = 100_000_000


def configs(count: int) -> list[InstrumentSimConfig]:
    out = []
    for i in range(count):
        if i % 10 == 9:
            out.append(InstrumentSimConfig(symbol=f"PM-{i}", kind="probability",
                                           initial=Decimal("0.5"), tick_size=Decimal("0.001")))
        else:
            out.append(InstrumentSimConfig(symbol=f"SIM-{i}", initial=Decimal("100"),
                                           tick_size=Decimal("0.01"), mu=0.05, spread_bps=2.0))
    return out


def measure(instruments: int, steps: int, runs: int, seed: int) -> tuple[float, float]:
    """Return the median seconds per step and the mean ticks per step."""
    sim = MarketSimulator(configs(instruments), seed=seed)
    now = 0
    for _ in range(min(steps, 200)):
        sim.step(now)
        now += STEP_NS
    per_step: list[float] = []
    ticks = 0
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(steps):
            ticks += len(sim.step(now).ticks)
            now += STEP_NS
        per_step.append((time.perf_counter() - started) / steps)
    return statistics.median(per_step), ticks / (steps * runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=1_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seconds, ticks_per_step = measure(args.instruments, args.steps, args.runs, args.seed)
    print(f"instruments={args.instruments} steps={args.steps} runs={args.runs}")
    print(f"median {seconds * 1e3:.3f} ms/step  {1 / seconds:,.0f} steps/s  "
          f"{ticks_per_step / seconds:,.0f} ticks/s")
    print(f"real time needs {1e3 * 0.1:.0f} ms/step at dt=0.1 s: "
          f"{100 * seconds / 0.1:.1f} % of one core")


if __name__ == "__main__":
    main()
