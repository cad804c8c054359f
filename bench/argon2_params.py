"""Cost of one argon2id hash for candidate parameters: median of N hashes, in-process.

Picks the parameters behind core.domain.passwords.DEFAULT_PARAMS (target 50-100 ms per hash
on the 2-core development machine) and prints the figures decision 0002 quotes.

Run: python -m bench.argon2_params [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from core.domain.passwords import DEFAULT_PARAMS, Argon2Params, Passwords

CANDIDATES = (
    # OWASP's argon2id minimums (2025 cheat sheet): 19 MiB t=2, 46 MiB t=1, 12 MiB t=3.
    Argon2Params(time_cost=3, memory_cost_kib=12 * 1024, parallelism=1),
    Argon2Params(time_cost=2, memory_cost_kib=19 * 1024, parallelism=1),
    Argon2Params(time_cost=1, memory_cost_kib=46 * 1024, parallelism=1),
    Argon2Params(time_cost=2, memory_cost_kib=32 * 1024, parallelism=1),
    Argon2Params(time_cost=3, memory_cost_kib=32 * 1024, parallelism=1),
    Argon2Params(time_cost=2, memory_cost_kib=46 * 1024, parallelism=1),
    Argon2Params(time_cost=1, memory_cost_kib=64 * 1024, parallelism=1),
    Argon2Params(time_cost=2, memory_cost_kib=64 * 1024, parallelism=1),
    Argon2Params(time_cost=2, memory_cost_kib=64 * 1024, parallelism=2),
)


def measure(params: Argon2Params, runs: int) -> tuple[float, float, float]:
    """Return the median, min and max milliseconds of one hash, and check verify works."""
    passwords = Passwords(params)
    password = "correct horse battery staple"
    passwords.hash(password)  # warm-up: first allocation of the memory
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        digest = passwords.hash(password)
        samples.append((time.perf_counter() - start) * 1000)
    assert passwords.verify(digest, password)
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print(f"cpus={os.cpu_count()} runs={args.runs} load average={os.getloadavg()[0]:.2f}")
    print("time_cost memory_kib parallelism   median_ms   min_ms   max_ms")
    for params in CANDIDATES:
        median, low, high = measure(params, args.runs)
        chosen = "  <- DEFAULT_PARAMS" if params == DEFAULT_PARAMS else ""
        print(f"{params.time_cost:9d} {params.memory_cost_kib:10d} {params.parallelism:11d}"
              f" {median:11.1f} {low:8.1f} {high:8.1f}{chosen}")


if __name__ == "__main__":
    main()
