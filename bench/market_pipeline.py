"""Bar processor throughput, and tick -> Redis latest-price latency, on the real stack.

1. bars: N ticks (batches of 100 per instrument, as the publisher writes them) produced into
   a fresh namespace's market.ticks; the BarService folds them in-process (all six
   resolutions, levels into Redis, state and offsets into PostgreSQL): ticks/s.
2. tick -> Redis: the prices processor (StreamProcessor + PriceStore) in-process while a
   publisher sends batches of 10 ticks at a steady rate; latency from the batch's receive time
   (set when it is handed to the publisher) to the end of its Redis write: p50/p99/max.

Run: python -m bench.market_pipeline [--ticks N] [--rate BATCHES_PER_S] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as redis

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    percentile,
    spec_of,
)
from kernel.kafka import make_producer, send_many
from kernel.projection import Applied
from kernel.stream import StreamProcessor
from market_data.adapters.publisher import TickPublisher, encode_batch
from market_data.adapters.redis_prices import PriceStore
from market_data.domain.ticks import Tick
from market_data.services.bars import BarService
from schemas import default_registry
from schemas.market import MarketTicksPublished

NS0 = 1_795_000_000_000_000_000


async def bars(ticks: int, instruments: int) -> float:
    settings = fresh_namespace(base_settings(), "mb")
    await create_topics(settings, [spec_of("market.ticks"), spec_of("market.bars"),
                                   spec_of("market.ticks.dlq")])
    producer = make_producer(settings, client_id="bench-bars")
    await producer.start()
    per = ticks // instruments
    records = []
    for k in range(instruments):
        name = f"B{k:03d}"
        tape = [Tick(name, "simulator", 100 + (i % 50) * 0.1, 1.0, NS0 + i * 250_000_000,
                     NS0 + i * 250_000_000, trade_id=str(i)) for i in range(per)]
        for n, s in enumerate(range(0, per, 100)):
            records.append((name.encode(), encode_batch(name, "simulator", tape[s:s + 100],
                                                        sequence=n + 1,
                                                        occurred_at=datetime.now(UTC))))
    await send_many(producer, settings.topic("market.ticks"), records)
    await producer.stop()
    service = BarService(settings)
    await service.start()
    try:
        started = time.perf_counter()
        await service.run(count=len(records))
        took = time.perf_counter() - started
    finally:
        await service.stop()
        await delete_namespace(settings)
    rate = per * instruments / took
    print(f"bars: {per * instruments:,} ticks ({len(records):,} batches, {instruments} "
          f"instruments) folded into {service.bars_closed:,} closed bars in {took:.2f} s: "
          f"{rate:,.0f} ticks/s", flush=True)
    return rate


async def tick_to_redis(rate: int, seconds: float) -> dict[str, float]:
    settings = fresh_namespace(base_settings(), "mr")
    await create_topics(settings, [spec_of("market.ticks"), spec_of("market.ticks.dlq")])
    client = redis.Redis.from_url(settings.cache_url)
    store = PriceStore(client, namespace=settings.namespace)
    latencies: list[float] = []

    async def handle(events: Sequence[Applied]) -> None:
        batches = [a.payload for a in events if isinstance(a.payload, MarketTicksPublished)]
        await store.apply(batches)
        now = time.time_ns()
        latencies.extend((now - b.ticks[-1].received_ts_ns) / 1e6 for b in batches)

    processor = StreamProcessor(settings, name="bench-prices", topics=("market.ticks",),
                                registry=default_registry(), handle=handle)
    await processor.start()
    runner = asyncio.create_task(processor.run())
    producer = make_producer(settings, client_id="bench-feed")
    await producer.start()
    publisher = TickPublisher(producer, settings.topic("market.ticks"), deduplicate=False,
                              max_ticks=10, max_wait_s=0.005)
    stop = asyncio.Event()
    flusher = asyncio.create_task(publisher.run(stop))
    try:
        await asyncio.sleep(3)  # the group joins before the measured feed starts
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            now = time.time_ns()
            publisher.publish([Tick(f"R{n % 20:02d}", "bench", 100.0, 1.0, now, now,
                                    trade_id=f"{n}-{i}") for i in range(10)])
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        await asyncio.sleep(2)
    finally:
        stop.set()
        await flusher
        runner.cancel()
        await producer.stop()
        await processor.stop()
        await client.aclose()
        await delete_namespace(settings)
    ordered = sorted(latencies[len(latencies) // 10:])  # the first tenth is warm-up
    result = {"p50": percentile(ordered, 50), "p99": percentile(ordered, 99),
              "max": ordered[-1] if ordered else float("nan"), "batches": float(len(ordered))}
    print(f"tick -> Redis at {rate} batches/s of 10 ticks for {seconds:.0f} s: "
          f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms "
          f"over {len(ordered):,} batches", flush=True)
    return result


async def run(ticks: int, instruments: int, rate: int, seconds: float) -> None:
    await bars(ticks, instruments)
    await tick_to_redis(rate, seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--rate", type=int, default=500, help="batches of 10 ticks per second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    asyncio.run(run(args.ticks, args.instruments, args.rate, args.seconds))


if __name__ == "__main__":
    main()
