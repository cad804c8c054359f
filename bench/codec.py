"""Codec: µs per envelope + payload decode, the pydantic path against the compiled fast path.

Three tapes of records as they are on the log: instrument events (tests/integration/tapes,
the projection-rebuild tape), tick batches of 100 ticks (the publisher's flush) and closed
bars; plus instrument commands. For each: decode_event/decode_command + the registry's
payload, through pydantic only (the fast path switched off) and through schemas.fastcodec,
after `settle_heap()` as every process does. CPU time, no IO; median of --runs.

Run: python -m bench.codec [--records N] [--runs R]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import median, table
from kernel.runtime import settle_heap
from schemas import default_registry, fastcodec
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import make_command, make_event
from schemas.instrument import HaltInstrument, InstrumentChanges, UpdateInstrument
from schemas.market import MarketBarClosed, MarketTicksPublished, TickRow
from tests.integration.tapes import event_tape

T0 = datetime(2026, 12, 5, tzinfo=UTC)
NS0 = 1_795_000_000_000_000_000


def tick_batches(n: int, per_batch: int = 100) -> list[bytes]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        ticks = tuple(TickRow(venue_ts_ns=NS0 + i * 1000 + j, received_ts_ns=NS0 + i * 1000 + j,
                              price=round(100 + rng.random(), 2), size=rng.random(),
                              side=rng.choice(("buy", "sell")), trade_id=str(i * 1000 + j))
                      for j in range(per_batch))
        payload = MarketTicksPublished(instrument="BTC-USD", venue="binance", ticks=ticks)
        out.append(encode(make_event(payload, aggregate_id="BTC-USD", sequence=i + 1,
                                     occurred_at=T0, correlation_id=uuid.uuid4(),
                                     causation_id=None, event_id=uuid.uuid4())))
    return out


def bars(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        payload = MarketBarClosed(instrument="BTC-USD", resolution="1m",
                                  open_time_ns=NS0 + i * 60_000_000_000,
                                  close_time_ns=NS0 + (i + 1) * 60_000_000_000, open=100.0,
                                  high=101.5, low=99.25, close=100.5, volume=12.5, trades=40)
        out.append(encode(make_event(payload, aggregate_id="BTC-USD", sequence=i + 1,
                                     occurred_at=T0 + timedelta(minutes=i),
                                     correlation_id=uuid.uuid4(), causation_id=uuid.uuid4(),
                                     event_id=uuid.uuid4())))
    return out


def commands(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        payload: Any = (HaltInstrument(reason="maintenance") if i % 2 else
                        UpdateInstrument(changes=InstrumentChanges(tick_size=Decimal("0.05"))))
        out.append(encode(make_command(payload, aggregate_id=f"X{i:05d}",
                                       command_id=uuid.uuid4(), issued_at=T0,
                                       actor=str(uuid.uuid4()))))
    return out


def timed(records: list[bytes], decode: Callable[[bytes], Any], payload: Callable[[Any], Any]
          ) -> float:
    settle_heap()
    t = time.process_time()
    for data in records:
        payload(decode(data))
    return (time.process_time() - t) / len(records) * 1e6


def measure(records: list[bytes], *, command: bool, runs: int) -> tuple[float, float]:
    registry = default_registry()
    decode = decode_command if command else decode_event
    payload = registry.command_payload if command else registry.event_payload
    saved_decode, saved_convert = fastcodec.decode, fastcodec.convert

    def off(*_: Any) -> Any:
        raise fastcodec.Fallback

    slow, fast = [], []
    for _ in range(runs):
        fastcodec.decode, fastcodec.convert = off, off  # type: ignore[assignment]
        try:
            slow.append(timed(records, decode, payload))
        finally:
            fastcodec.decode, fastcodec.convert = saved_decode, saved_convert
        fast.append(timed(records, decode, payload))
    return median(slow), median(fast)


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    n = args.records
    tapes = {
        "instrument events (rebuild tape)": ([v for _, v in event_tape(n // 10, 10).records],
                                             False),
        "tick batch, 100 ticks": (tick_batches(max(1, n // 50)), False),
        "bar closed": (bars(n), False),
        "instrument commands": (commands(n), True),
    }
    rows, out = [], {}
    for name, (records, command) in tapes.items():
        slow, fast = measure(records, command=command, runs=args.runs)
        out[name] = (slow, fast)
        rows.append([name, f"{len(records):,}", f"{slow:.1f}", f"{fast:.1f}",
                     f"x{slow / fast:.2f}"])
    print(f"envelope + payload decode, CPU µs per record, median of {args.runs}")
    print(table(["records", "n", "pydantic µs", "fast µs", "speed-up"], rows))
    return out


if __name__ == "__main__":
    main()
