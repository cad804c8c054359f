"""What Kafka transactions cost the decider: throughput and per-batch latency, with and
without, at batch sizes 1, 50 and 500, on the real broker (in-process decider).

Each case: a fresh namespace, N instrument commands (register, update, halt, resume and a
re-sent duplicate per symbol) on instrument.commands, then one DeciderRunner decides them
all with `max_batch` = the batch size. "txn" is the platform's mode (events, replies and
offsets in one transaction per command partition, retry backoff 5 ms); "txn-100ms" the same
with aiokafka's default retry backoff (KAFKA-5477); "plain" at-least-once (events and
replies acknowledged, then offsets committed; no fencing). Per-batch latency is the time of
`handle_batch` (decide + produce + commit).

Run: python -m bench.decider_txn [--commands N] [--sizes 1 50 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    percentile,
    spec_of,
    table,
)
from core.domain.instruments import InstrumentAggregate
from kernel.decider import DeciderRunner
from kernel.kafka import make_producer, send_many
from kernel.kafkalog import KafkaLog
from kernel.log import Batch
from schemas import default_registry
from schemas.codec import encode
from tests.integration.tapes import command_tape

FAMILY = ("instrument.commands", "instrument.events", "instrument.snapshots",
          "instrument.commands.dlq", "propstream.replies")


async def case(mode: str, batch: int, commands: int) -> dict[str, float]:
    settings = fresh_namespace(base_settings(), "dt")
    await create_topics(settings, [spec_of(n) for n in FAMILY])
    tape = command_tape(symbols=max(1, commands // 5), seed=batch)
    producer = make_producer(settings, client_id="bench-commands")
    await producer.start()
    await send_many(producer, settings.topic("instrument.commands"),
                    [(c.aggregate_id.encode(), encode(c)) for c in tape.commands])
    await producer.stop()
    log = KafkaLog(settings, txn_retry_backoff_ms=100 if mode == "txn-100ms" else 5)
    decider = DeciderRunner(settings, InstrumentAggregate(), default_registry(), log=log,
                            max_batch=batch, snapshot_every=10_000_000,
                            mode="at-least-once" if mode == "plain" else "transactional")
    latencies: list[float] = []
    real = decider.runner.handle_batch

    async def timed(b: Batch) -> int:
        t0 = time.perf_counter()
        n = await real(b)
        latencies.append((time.perf_counter() - t0) * 1000)
        return n

    decider.runner.handle_batch = timed  # type: ignore[method-assign]
    await decider.start()
    try:
        # Joining the group and loading the (empty) partitions is not what is measured.
        first = await decider.run(count=1)
        latencies.clear()
        started = time.perf_counter()
        done = first + await decider.run(count=len(tape.commands) - first)
        took = time.perf_counter() - started
    finally:
        await decider.stop()
        await delete_namespace(settings)
    latencies.sort()
    return {"commands": done, "per_s": (done - first) / took, "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99), "batches": len(latencies)}


async def main(commands: int, sizes: list[int]) -> None:
    rows = []
    results: dict[tuple[str, int], dict[str, float]] = {}
    for size in sizes:
        n = min(commands, 400) if size == 1 else commands
        for mode in ("plain", "txn", "txn-100ms"):
            r = await case(mode, size, n)
            results[(mode, size)] = r
            print(f"{mode:9} batch {size:3}: {r['commands']:,.0f} commands, "
                  f"{r['per_s']:,.0f}/s, batch p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms "
                  f"({r['batches']:.0f} batches)", flush=True)
            rows.append((mode, size, f"{r['commands']:,.0f}", f"{r['per_s']:,.0f}",
                         f"{r['p50']:.1f}", f"{r['p99']:.1f}"))
    print()
    print(table(["mode", "batch", "commands", "commands/s", "batch p50 ms", "batch p99 ms"],
                rows))
    print()
    for size in sizes:
        plain, txn = results[("plain", size)], results[("txn", size)]
        slow = results[("txn-100ms", size)]
        print(f"batch {size}: txn/plain throughput {txn['per_s'] / plain['per_s']:.2f}, "
              f"p50 latency x{txn['p50'] / plain['p50']:.2f}; backoff 100 ms vs 5 ms: "
              f"p50 x{slow['p50'] / txn['p50']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 500])
    args = parser.parse_args()
    asyncio.run(main(args.commands, args.sizes))
