"""Market-data ingest: a replayed Binance tape, parsed, deduplicated, batched, into Kafka.

One process, one event loop: the Binance parser (market_data.domain.venues.binance) turns
combined-stream trade frames into ticks, the TickPublisher drops repeated trade ids, batches
per instrument (100 ticks or 50 ms) and sends with kernel.kafka.send_many. Printed beside the
raw producer rate of the same process (pre-encoded records through send_many), as a ratio.

Run: python -m bench.market_ingest [--frames N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    median,
    spec_of,
)
from kernel.kafka import make_producer, send_many
from kernel.runtime import settle_heap
from market_data.adapters import publisher as mp
from market_data.adapters.publisher import TickPublisher
from market_data.domain.venues.binance import BinanceFeed
from market_data.domain.venues.common import TimeGuard

SYMBOLS = {"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD", "SOLUSDT": "SOL-USD",
           "BNBUSDT": "BNB-USD"}
T0_MS = 1_795_000_000_000


def tape(frames: int, *, duplicates: float = 0.02, seed: int = 5) -> list[bytes]:
    """Combined-stream `trade` frames as Binance documents them, ~2 % re-sent."""
    rng = random.Random(seed)
    out: list[bytes] = []
    prices = {s: 100.0 + 1000 * i for i, s in enumerate(SYMBOLS)}
    trade_ids = dict.fromkeys(SYMBOLS, 1_000_000)
    for i in range(frames):
        if out and rng.random() < duplicates:
            out.append(out[rng.randrange(len(out))])
            continue
        symbol = rng.choice(list(SYMBOLS))
        prices[symbol] *= 1 + rng.gauss(0, 0.0005)
        trade_ids[symbol] += 1
        ts = T0_MS + i // 50
        out.append(orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": {
            "e": "trade", "E": ts + 1, "s": symbol, "t": trade_ids[symbol],
            "p": f"{prices[symbol]:.2f}", "q": f"{rng.uniform(0.001, 2):.5f}", "T": ts,
            "m": rng.random() < 0.5, "M": True}}))
    return out


def producer_performance_bound(settings: Any, topic: str, records: list[bytes],
                               runs: int) -> tuple[float, float]:
    """Kafka's ProducerPerformance sending the publisher's own batch envelopes (same bytes,
    the kernel producer's settings): the bound. Returns (records/s, ticks/s) medians."""
    from bench.producer import java_producer_perf
    from kernel.infra.kafka import TOOLS_POM, fetch_jars

    tools_libs = settings.cache_dir / "kafka" / "tools-libs"
    fetch_jars(TOOLS_POM, tools_libs, what="Kafka tools")
    payload_file = Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "batches.txt"
    payload_file.write_bytes(b"\n".join(records))
    ticks_per_record = sum(len(orjson.loads(r)["payload"]["ticks"]) for r in records) / len(
        records)
    rates = []
    for r in range(runs):
        out = java_producer_perf(settings, topic, len(records), payload_file, tools_libs)
        rates.append(out["rate"])
        print(f"run {r + 1}/{runs} bound   ProducerPerformance {out['line']}", flush=True)
    shutil.rmtree(payload_file.parent, ignore_errors=True)
    return median(rates), median(rates) * ticks_per_record


async def run(frames: int, runs: int, *, bound: bool = False) -> dict[str, float]:
    settings = fresh_namespace(base_settings(), "mi")
    await create_topics(settings, [spec_of("market.ticks")])
    topic = settings.topic("market.ticks")
    data = tape(frames)
    received_ns = T0_MS * 1_000_000 + 10**9
    ingest: list[float] = []
    raw: list[float] = []
    published = duplicates = 0
    batches: list[bytes] = []
    try:
        for r in range(runs):
            producer = make_producer(settings, client_id="bench-ingest")
            await producer.start()
            try:
                await producer.client._wait_on_metadata(topic)
                feed = BinanceFeed(SYMBOLS, guard=TimeGuard(max_age_ns=10**18, max_ahead_ns=10**18))
                publisher = TickPublisher(producer, topic)
                sent: list[bytes] = []
                if bound and r == 0:  # keep the first run's batch envelopes for the bound
                    sent_send_many = mp.send_many

                    async def keep(p: Any, t: str, recs: Any, *, _sent: list[bytes] = sent,
                                   _send: Any = sent_send_many, **k: Any) -> Any:
                        _sent.extend(v for _, v in recs)
                        return await _send(p, t, recs, **k)
                    mp.send_many = keep  # type: ignore[assignment]
                settle_heap()  # as every `propstream run` process does once started
                started, cpu = time.perf_counter(), time.process_time()
                for i, frame in enumerate(data):
                    result = feed.parse(frame, received_ns)
                    if isinstance(result, list):
                        publisher.publish(result)
                    if i % 5000 == 4999:
                        await publisher.flush()
                await publisher.flush()
                took = time.perf_counter() - started
                cpu = time.process_time() - cpu
                if bound and r == 0:
                    mp.send_many = sent_send_many  # type: ignore[assignment]
                    batches = sent
                ingest.append(publisher.published / took)
                published, duplicates = publisher.published, publisher.duplicates
                print(f"run {r + 1}/{runs} ingest  {frames:,} frames -> {published:,} ticks "
                      f"({duplicates:,} duplicates dropped) in {took:.2f} s: "
                      f"{ingest[-1]:,.0f} ticks/s; CPU {cpu / frames * 1e6:.2f} µs per frame "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
                records = [(b"BTC-USD", frame) for frame in data]
                started = time.perf_counter()
                await send_many(producer, topic, records)
                raw.append(len(records) / (time.perf_counter() - started))
                print(f"run {r + 1}/{runs} raw     {len(records):,} records: "
                      f"{raw[-1]:,.0f} records/s", flush=True)
            finally:
                await producer.stop()
        if bound:
            bound_records, bound_ticks = producer_performance_bound(settings, topic, batches,
                                                                    runs)
    finally:
        await delete_namespace(settings)
    result = {"ingest": median(ingest), "raw": median(raw), "published": published,
              "duplicates": duplicates}
    if bound:
        result |= {"bound_records": bound_records, "bound_ticks": bound_ticks}
        print(f"bound, same run: ProducerPerformance sends the same {len(batches):,} batch "
              f"envelopes at {bound_records:,.0f} records/s = {bound_ticks:,.0f} ticks/s; "
              f"ingest / bound = {result['ingest'] / bound_ticks:.2f}")
    print(f"\nmarket ingest: {result['ingest']:,.0f} normalised ticks/s (median of {runs}); "
          f"raw producer {result['raw']:,.0f} records/s; ratio "
          f"{result['ingest'] / result['raw']:.2f}; target >= 100,000 ticks/s: "
          f"{'met' if result['ingest'] >= 100_000 else 'MISSED'}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bound", action="store_true",
                        help="also run Kafka's ProducerPerformance on the same batch envelopes")
    args = parser.parse_args(argv)
    asyncio.run(run(args.frames, args.runs, bound=args.bound))


if __name__ == "__main__":
    main()
