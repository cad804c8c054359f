"""CPU cost of sealing and opening one personal value, and of what a users page adds.

Measures, in this process: `seal` and `open_sealed` of a 24-character email (AES-256-GCM,
subject and field as associated data), the unwrap of one data key under the key-encryption
key, and a 100-user page's opening work (100 unwraps + 200 opens) — what GET /users?limit=100
adds over reading the rows. Median of --rounds rounds of --n operations each.

Run: python -m bench.sealing [--n 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench.common import table
from kernel.sealing import KeyWrapper, new_data_key, open_sealed, seal

SUBJECT = "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"
EMAIL = "ada.lovelace@example.com"


def per_op_us(fn: Callable[[], object], n: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - started) * 1e6 / n)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    key = new_data_key()
    wrapper = KeyWrapper("bench key-encryption secret")
    wrapped = wrapper.wrap(key, subject=SUBJECT)
    sealed = seal(key, subject=SUBJECT, field="email", text=EMAIL)
    page = [(wrapper.wrap(new_data_key(), subject=f"u{i}"), f"u{i}") for i in range(100)]
    page_values = [(w, s, seal(wrapper.unwrap(w, subject=s), subject=s, field="email",
                               text=EMAIL)) for w, s in page]

    def open_page() -> None:
        for w, s, v in page_values:
            k = wrapper.unwrap(w, subject=s)
            open_sealed(k, subject=s, field="email", value=v)
            open_sealed(k, subject=s, field="email", value=v)

    rows = [
        ["seal one value", f"{per_op_us(lambda: seal(key, subject=SUBJECT, field='email', text=EMAIL), args.n, args.rounds):.1f}"],  # noqa: E501
        ["open one value", f"{per_op_us(lambda: open_sealed(key, subject=SUBJECT, field='email', value=sealed), args.n, args.rounds):.1f}"],  # noqa: E501
        ["unwrap one data key", f"{per_op_us(lambda: wrapper.unwrap(wrapped, subject=SUBJECT), args.n, args.rounds):.1f}"],  # noqa: E501
        ["open a 100-user page (100 unwraps, 200 opens)",
         f"{per_op_us(open_page, max(1, args.n // 200), args.rounds):.1f}"],
    ]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(table(["operation", "µs (median)"], rows))


if __name__ == "__main__":
    main()
