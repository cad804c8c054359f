"""Run the benchmarks with modest sizes and print a summary against the targets.

`make bench` calls this (after `propstream infra up`). Each benchmark also runs alone with
bigger sizes: python -m bench.producer / bench.projection_rebuild / bench.command_round_trip /
bench.auth_load (--help for their flags). Figures on a shared machine move a lot between
runs: use --runs.

Run: python -m bench.run_all [--events N] [--runs R] [--rates 50 100] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import (
    auth_load,
    command_round_trip,
    market_ingest,
    market_pipeline,
    producer,
    projection_rebuild,
)
from bench.common import median, table

PRODUCER_TARGET = 100_000
REBUILD_TARGET = 50_000
P99_TARGET_MS = 30.0


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def main_async(args: argparse.Namespace) -> None:
    started = time.monotonic()
    print("== producer ==", flush=True)
    prod = await producer.run(args.events, args.runs, min(args.events, 20_000),
                              java=not args.no_java)
    print("\n== projection rebuild ==", flush=True)
    rebuild = await projection_rebuild.run(args.events, max(1, args.events // 10),
                                           args.max_batch, args.runs)
    print("\n== command round trip ==", flush=True)
    rt = await command_round_trip.run(args.rates, args.seconds, args.runs, args.bus_seconds,
                                      args.warmup)
    print("\n== market data ==", flush=True)
    ingest = await market_ingest.run(args.events * 2, args.runs)
    bar_rate = await market_pipeline.bars(args.events * 4, 20)
    redis_latency = await market_pipeline.tick_to_redis(500, args.seconds)
    print("\n== auth load ==", flush=True)
    auth = await auth_load.run(args.auth_clients, args.auth_clients, 3 * args.auth_clients,
                               args.seconds)
    print(auth_load.report(auth, args.auth_clients), flush=True)

    rows: list[list[Any]] = []
    kernel = prod["rates"]["kernel"]
    rows.append(["producer, kernel.kafka.send_many", f"{kernel:,.0f} events/s",
                 f">= {PRODUCER_TARGET:,}", verdict(kernel >= PRODUCER_TARGET)])
    per_record = prod["rates"]["send"]
    rows.append(["producer, aiokafka send() per record", f"{per_record:,.0f} events/s",
                 "(for comparison)", ""])
    if "java" in prod["rates"]:
        rows.append(["producer, Kafka ProducerPerformance", f"{prod['rates']['java']:,.0f} "
                     "events/s", "(reference)", ""])
    rows.append(["producer, encode cost", f"{prod['encode_us']:.2f} µs/event", "", ""])
    best = rebuild["best"]
    rate = rebuild["rates"][best]
    rows.append([f"projection rebuild (max_batch {best})", f"{rate:,.0f} events/s",
                 f">= {REBUILD_TARGET:,}", verdict(rate >= REBUILD_TARGET)])
    for path, results in (("HTTP", rt["http"]), ("bus", rt["bus"])):
        for r, rs in results.items():
            p99 = median([x["p99"] for x in rs])
            achieved = median([x["achieved"] for x in rs])
            target = f"p99 <= {P99_TARGET_MS:.0f} ms" if path == "HTTP" else "(split)"
            rows.append([f"command round trip {path} at {r:.0f}/s (achieved {achieved:.0f}/s)",
                         f"p99 {p99:.1f} ms", target,
                         verdict(p99 <= P99_TARGET_MS) if path == "HTTP" else ""])
    rows.append(["market ingest (Binance tape -> Kafka)", f"{ingest['ingest']:,.0f} ticks/s",
                 ">= 100,000", verdict(ingest["ingest"] >= 100_000)])
    rows.append(["bar processor", f"{bar_rate:,.0f} ticks/s", "(no target)", ""])
    rows.append(["tick -> Redis latest price", f"p99 {redis_latency['p99']:.1f} ms",
                 "(no target)", ""])
    rows.append([f"argon2id hash ({auth['hash_ms']:.0f} ms) / login at {args.auth_clients} "
                 f"clients ({auth['login']['req_s']:.1f}/s)",
                 f"p50 {auth['login']['p50']:.0f} ms, p99 {auth['login']['p99']:.0f} ms",
                 "(no target)", ""])
    rows.append([f"GET /me at {args.auth_clients} clients ({auth['me']['req_s']:.0f}/s)",
                 f"p50 {auth['me']['p50']:.1f} ms, p99 {auth['me']['p99']:.1f} ms",
                 "(no target)", ""])
    print()
    print(f"summary (median of {args.runs} run(s); {time.monotonic() - started:.0f} s in all)")
    print(table(["benchmark", "figure", "target", ""], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000,
                        help="records for the producer and the rebuild")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--max-batch", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 100])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bus-seconds", type=float, default=5)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--no-java", action="store_true")
    parser.add_argument("--auth-clients", type=int, default=200,
                        help="concurrent clients (and users) of the auth load")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
