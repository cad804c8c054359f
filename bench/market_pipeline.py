"""Bar processor throughput, and tick -> Redis latest-price latency, on the real stack.

1. bars: N ticks (batches of 100 per instrument, as the publisher writes them) produced into
   a fresh namespace's market.ticks; the BarService folds them in-process (all six
   resolutions, levels into Redis, state and offsets into PostgreSQL): ticks/s.
2. tick -> Redis: the prices processor (StreamProcessor + PriceStore) in-process while a
   publisher sends batches of 10 ticks at a steady rate; latency from the batch's receive time
   (set when it is handed to the publisher) to the end of its Redis write: p50/p99/max.

Run: python -m bench.market_pipeline [--ticks N] [--rate BATCHES_PER_S] [--seconds S]
     python -m bench.market_pipeline --skip-bars --seconds 15 \
         --commit-interval-ms per-poll 0 100 --runs 2     # levers alternating run by run
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as redis

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    percentile,
    spec_of,
    table,
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


class Stages:
    """Per batch, by event id: when it was sealed (its envelope's occurred_at), acknowledged
    by the broker (the publisher's send_many returned), handed to the processor's handler
    (decoded), and written to Redis. Decoding alone is timed around kernel.stream's decode."""

    def __init__(self) -> None:
        self.acked: dict[str, int] = {}
        self.decode_s = 0.0
        self.decoded = 0
        self.rows: list[tuple[float, float, float, float, float]] = []
        self.commits: list[float] = []

    def patch(self) -> Callable[[], None]:
        import kernel.stream as ks
        import market_data.adapters.publisher as mp

        saved_send, saved_decode = mp.send_many, ks.decode_event

        async def send_many_timed(producer: Any, topic: str, records: Any, **k: Any) -> Any:
            out = await saved_send(producer, topic, records, **k)
            now = time.time_ns()
            for _, value in records:
                self.acked[orjson.loads(value)["event_id"]] = now
            return out

        def decode_timed(data: bytes | None, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return saved_decode(data, **k)
            finally:
                self.decode_s += time.perf_counter() - t
                self.decoded += 1

        mp.send_many = send_many_timed  # type: ignore[assignment]
        ks.decode_event = decode_timed  # type: ignore[assignment]

        def undo() -> None:
            mp.send_many, ks.decode_event = saved_send, saved_decode  # type: ignore[assignment]
        return undo

    def time_commits(self, processor: StreamProcessor) -> None:
        consumer = processor.runner.consumer
        assert consumer is not None
        real = consumer.commit

        async def commit(offsets: Any) -> None:
            t = time.perf_counter()
            try:
                await real(offsets)
            finally:
                self.commits.append((time.perf_counter() - t) * 1000)

        consumer.commit = commit  # type: ignore[method-assign]

    def record(self, events: Sequence[Applied], handled_ns: int, done_ns: int) -> None:
        for a in events:
            if not isinstance(a.payload, MarketTicksPublished):
                continue
            received = a.payload.ticks[-1].received_ts_ns
            sealed = int(a.envelope.occurred_at.timestamp() * 1e9)
            acked = self.acked.get(str(a.envelope.event_id), handled_ns)
            self.rows.append(((sealed - received) / 1e6, (acked - sealed) / 1e6,
                              (handled_ns - acked) / 1e6, (done_ns - handled_ns) / 1e6,
                              (done_ns - received) / 1e6))


PER_POLL = "per-poll"


def _interval(text: str) -> float | None:
    return None if text == PER_POLL else float(text)


async def tick_to_redis(rate: int, seconds: float, *, max_wait_ms: float | None = None,
                        linger_ms: int | None = None,
                        fetch_max_wait_ms: int | None = None,
                        commit_interval_ms: float | str | None = "default",
                        open_batches: bool = False) -> dict[str, float]:
    """`max_wait_ms`/`linger_ms`/`fetch_max_wait_ms` None and `commit_interval_ms`
    "default": the production defaults (TickPublisher, make_producer, make_consumer,
    StreamProcessor); `commit_interval_ms` None commits after every poll."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    import kernel.kafkalog as kl

    saved_consumer, saved_close = kl.make_consumer, BatchBuilder.close
    if open_batches:  # the lever off: send_many's batches linger again, as before
        BatchBuilder.close = lambda self: None  # type: ignore[method-assign]
    if fetch_max_wait_ms is not None:
        kl.make_consumer = functools.partial(  # type: ignore[assignment]
            saved_consumer, fetch_max_wait_ms=fetch_max_wait_ms)
    settings = fresh_namespace(base_settings(), "mr")
    await create_topics(settings, [spec_of("market.ticks"), spec_of("market.ticks.dlq")])
    producer = (make_producer(settings, client_id="bench-feed") if linger_ms is None else
                make_producer(settings, client_id="bench-feed", linger_ms=linger_ms))
    await producer.start()
    await producer.partitions_for(settings.topic("market.ticks"))  # metadata before joining
    client = redis.Redis.from_url(settings.cache_url)
    store = PriceStore(client, namespace=settings.namespace)
    stages = Stages()
    undo = stages.patch()

    async def handle(events: Sequence[Applied]) -> None:
        handled = time.time_ns()
        batches = [a.payload for a in events if isinstance(a.payload, MarketTicksPublished)]
        await store.apply(batches)
        stages.record(events, handled, time.time_ns())

    interval: dict[str, Any] = ({} if commit_interval_ms == "default" else
                                {"commit_interval_ms": commit_interval_ms})
    processor = StreamProcessor(settings, name="bench-prices", topics=("market.ticks",),
                                registry=default_registry(), handle=handle, **interval)
    await processor.start()
    stages.time_commits(processor)
    runner = asyncio.create_task(processor.run())
    options: dict[str, Any] = {} if max_wait_ms is None else {"max_wait_s": max_wait_ms / 1000}
    publisher = TickPublisher(producer, settings.topic("market.ticks"), deduplicate=False,
                              **options)
    stop = asyncio.Event()
    flusher = asyncio.create_task(publisher.run(stop))
    load = os.getloadavg()
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
        undo()
        kl.make_consumer = saved_consumer  # type: ignore[assignment]
        BatchBuilder.close = saved_close  # type: ignore[method-assign]
    rows = stages.rows[len(stages.rows) // 10:]  # the first tenth is warm-up
    names = ("wait to seal", "produce+ack", "fetch+decode", "redis", "total")
    cols = {name: sorted(r[i] for r in rows) for i, name in enumerate(names)}
    ordered = cols["total"]
    result = {"p50": percentile(ordered, 50), "p99": percentile(ordered, 99),
              "max": ordered[-1] if ordered else float("nan"), "batches": float(len(ordered))}
    wait = publisher.max_wait_s * 1000
    every = processor.runner.commit_interval_ms
    policy = ("committed after every poll" if every is None else
              f"committed in the background, at most every {every:g} ms")
    loads = " ".join(f"{x:.2f}" for x in load)
    print(f"tick -> Redis at {rate} batches/s of 10 ticks ({rate * 10:,} ticks/s, 20 "
          f"instruments) for {seconds:.0f} s, publisher max_wait {wait:g} ms, producer linger "
          f"{'default' if linger_ms is None else linger_ms}"
          f"{' (batches left open)' if open_batches else ''}, consumer fetch_max_wait "
          f"{'default' if fetch_max_wait_ms is None else fetch_max_wait_ms}, offsets "
          f"{policy}"
          f": p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, max {result['max']:.1f} ms "
          f"over {len(ordered):,} batches (load average at start {loads})",
          flush=True)
    print(table(["stage (ms)", "p50", "p99", "max"],
                [[n, f"{percentile(cols[n], 50):.2f}", f"{percentile(cols[n], 99):.2f}",
                  f"{cols[n][-1]:.2f}" if cols[n] else "nan"] for n in names]))
    if stages.decoded:
        print(f"decode (inside fetch+decode): {stages.decode_s / stages.decoded * 1e6:.0f} µs "
              f"per batch of 10 ticks", flush=True)
    if stages.commits:
        commits = sorted(stages.commits)
        print(f"offset commits: {len(commits):,}, p50 {percentile(commits, 50):.2f} ms, p99 "
              f"{percentile(commits, 99):.2f} ms", flush=True)
    return result


async def run(ticks: int, instruments: int, rate: int, seconds: float, *,
              max_wait_ms: list[float] | None, linger_ms: list[int] | None, skip_bars: bool,
              fetch_max_wait_ms: int | None = None,
              commit_interval_ms: list[str] | None = None, runs: int = 1,
              open_batches: list[bool] | None = None) -> None:
    if not skip_bars:
        await bars(ticks, instruments)
    summary: list[tuple[str, dict[str, float]]] = []
    for _ in range(runs):  # alternating: each lever's runs interleave with the others'
        for wait in max_wait_ms or [None]:  # type: ignore[list-item]
            for linger in linger_ms or [None]:  # type: ignore[list-item]
                for every in commit_interval_ms or ["default"]:
                    for left_open in open_batches or [False]:
                        got = await tick_to_redis(
                            rate, seconds, max_wait_ms=wait, linger_ms=linger,
                            fetch_max_wait_ms=fetch_max_wait_ms,
                            commit_interval_ms="default" if every == "default" else
                            _interval(every), open_batches=left_open)
                        summary.append((f"max_wait {wait}, linger {linger}, commits {every}"
                                        f"{', batches open' if left_open else ''}", got))
    if len(summary) > 1:
        print(table(["run", "p50", "p99", "max"],
                    [[name, f"{r['p50']:.1f}", f"{r['p99']:.1f}", f"{r['max']:.1f}"]
                     for name, r in summary]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000)
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--rate", type=int, default=500, help="batches of 10 ticks per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-wait-ms", type=float, nargs="+",
                        help="publisher flush interval(s) to compare (default: production's)")
    parser.add_argument("--linger-ms", type=int, nargs="+",
                        help="feed producer linger(s) to compare (default: production's)")
    parser.add_argument("--skip-bars", action="store_true", help="only tick -> Redis")
    parser.add_argument("--fetch-max-wait-ms", type=int,
                        help="the prices consumer's fetch_max_wait_ms (default: production's)")
    parser.add_argument("--commit-interval-ms", nargs="+",
                        help=f"the prices processor's commit interval(s) to compare, or "
                             f"{PER_POLL!r} (default: production's)")
    parser.add_argument("--open-batches", action="store_true",
                        help="also run with send_many's batches left open (the lever off), "
                             "alternating")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the comparison, alternating the levers run by run")
    args = parser.parse_args(argv)
    asyncio.run(run(args.ticks, args.instruments, args.rate, args.seconds,
                    max_wait_ms=args.max_wait_ms, linger_ms=args.linger_ms,
                    skip_bars=args.skip_bars, fetch_max_wait_ms=args.fetch_max_wait_ms,
                    commit_interval_ms=args.commit_interval_ms, runs=args.runs,
                    open_batches=[True, False] if args.open_batches else None))


if __name__ == "__main__":
    main()
