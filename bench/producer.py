"""Producer throughput: the kernel producer (aiokafka) next to Kafka's own ProducerPerformance.

Real encoded EventEnvelopes (schemas.codec.encode of schemas.envelope.make_event), keyed by
aggregate id, into a fresh 3-partition topic. Every variant uses `kernel.kafka.make_producer`
(idempotent, acks=all); what changes is how records are handed to it:

  send_and_wait   await send_and_wait() per record (a sample only: one round trip each)
  send            await send() per record, gather the futures (aiokafka's ordinary path)
  send-l10        the same with linger_ms=10
  kernel          kernel.kafka.send_many: records grouped by partition into
                  create_batch()/send_batch(), every acknowledgement awaited (what the
                  decider uses)
  java            org.apache.kafka.tools.ProducerPerformance, same record bytes (payload file,
                  but no keys), acks=all, enable.idempotence=true, same linger.ms and batch
                  size, same record count
  java-long       the same with --java-long records (default 1,000,000): JIT warm-up weighs
                  less; not the same count, shown apart

Run: python -m bench.producer [--events N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    median,
    spec_of,
    table,
)
from kernel.infra.kafka import TOOLS_POM, fetch_jars
from kernel.kafka import Record, make_consumer, make_producer, partitions_of, send_many
from kernel.settings import Settings
from schemas.codec import encode
from schemas.envelope import EventEnvelope, make_event
from schemas.instrument import InstrumentHalted, InstrumentResumed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LINGER_MS = 2  # make_producer's default
BATCH_BYTES = 1024 * 1024  # make_producer's max_batch_size
REQUEST_BYTES = 2 * 1024 * 1024  # make_producer's max_request_size
SAMPLE_SEND_AND_WAIT = 1000



# -- the records -----------------------------------------------------------------------------


def build_envelopes(n: int, symbols: int) -> list[EventEnvelope]:
    """Halted/resumed events as the decider writes them, round-robin over `symbols` ids."""
    out = []
    for i in range(n):
        s, seq = i % symbols, i // symbols + 1
        payload = InstrumentHalted(reason="feed gap") if seq % 2 else InstrumentResumed()
        cause = uuid.uuid4()
        out.append(make_event(payload, aggregate_id=f"X{s:05d}", sequence=seq,
                              occurred_at=T0 + timedelta(microseconds=i),
                              correlation_id=cause, causation_id=cause, event_id=uuid.uuid4()))
    return out


def encode_all(envelopes: Sequence[EventEnvelope]) -> tuple[list[Record], float]:
    started = time.perf_counter()
    records = [(e.aggregate_id.encode(), encode(e)) for e in envelopes]
    return records, time.perf_counter() - started


# -- the variants ----------------------------------------------------------------------------


async def _timed(settings: Settings, topic: str, records: Sequence[Record], how: str,
                 linger_ms: int) -> float:
    producer = make_producer(settings, client_id=f"bench-{how}", linger_ms=linger_ms)
    await producer.start()
    try:
        await producer.client._wait_on_metadata(topic)  # not part of the measurement
        started = time.perf_counter()
        if how == "send_and_wait":
            for key, value in records:
                await producer.send_and_wait(topic, value=value, key=key)
        elif how == "send":
            futures = [await producer.send(topic, value=value, key=key)
                       for key, value in records]
            await asyncio.gather(*futures)
        elif how == "send_many":
            await send_many(producer, topic, records)
        else:
            raise ValueError(how)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def total_records(settings: Settings, topic: str) -> int:
    consumer = make_consumer(settings, client_id="bench-count")
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        await consumer.stop()


def java_producer_perf(settings: Settings, topic: str, n: int, payload_file: Path,
                       tools_libs: Path) -> dict[str, Any]:
    """Run ProducerPerformance; return its own final figures (JVM start-up excluded)."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java is not on PATH")
    argv = [java, "-Xms256m", "-Xmx512m", "-cp", f"{tools_libs}/*",
            "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
            "--num-records", str(n), "--payload-file", str(payload_file),
            "--throughput", "-1", "--producer-props",
            f"bootstrap.servers={settings.bootstrap_servers}", "acks=all",
            "enable.idempotence=true", f"linger.ms={LINGER_MS}", f"batch.size={BATCH_BYTES}",
            f"max.request.size={REQUEST_BYTES}", "compression.type=none"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    last = [ln for ln in out.stdout.splitlines() if "records sent" in ln]
    if out.returncode != 0 or not last:
        raise RuntimeError(f"ProducerPerformance failed ({out.returncode}): "
                           f"{(out.stderr or out.stdout)[-1500:]}")
    m = re.search(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                  r"([\d.]+) ms avg latency, ([\d.]+) ms max latency", last[-1])
    assert m is not None, last[-1]
    return {"records": int(m.group(1)), "rate": float(m.group(2)), "mb_s": float(m.group(3)),
            "avg_ms": float(m.group(4)), "max_ms": float(m.group(5)), "line": last[-1]}


# -- the run ---------------------------------------------------------------------------------


async def run(events: int, runs: int, symbols: int, *, java: bool = True,
              java_long: int = 0, quiet: bool = False) -> dict[str, Any]:
    def say(*a: object) -> None:
        if not quiet:
            print(*a, flush=True)

    settings = fresh_namespace(base_settings(), "bp")
    spec = spec_of("instrument.events")
    variants = [("send_and_wait", "send_and_wait", LINGER_MS),
                ("send", "send", LINGER_MS),
                ("send-l10", "send", 10),
                ("kernel", "send_many", LINGER_MS)]
    names = [v[0] for v in variants] + (["java"] if java else [])
    names += ["java-long"] if java and java_long else []
    specs = [spec.model_copy(update={"name": f"bench.{name.replace('_', '-')}"})
             for name in names]
    await create_topics(settings, specs)
    topics = {name: settings.topic(s.name) for name, s in zip(names, specs, strict=True)}

    say(f"building {events:,} envelopes over {symbols:,} aggregate ids …")
    t = time.perf_counter()
    envelopes = build_envelopes(events, symbols)
    build_s = time.perf_counter() - t
    encode_us = []
    records: list[Record] = []
    for _ in range(runs):
        records, took = encode_all(envelopes)
        encode_us.append(took / events * 1e6)
    sizes = sorted(len(v) for _, v in records)
    mean_size = sum(sizes) / len(sizes)
    say(f"record value size: mean {mean_size:.0f} B, min {sizes[0]} B, max {sizes[-1]} B "
        f"(key {len(records[0][0])} B)")
    say(f"make_event: {build_s / events * 1e6:.2f} µs/event; "
        f"encode: {median(encode_us):.2f} µs/event (median of {runs})")

    tools_libs = settings.cache_dir / "kafka" / "tools-libs"
    payload_file = settings.cache_dir / "bench" / "payloads.txt"
    if java:
        fetch_jars(TOOLS_POM, tools_libs, what="Kafka tools")
        payload_file.parent.mkdir(parents=True, exist_ok=True)
        payload_file.write_bytes(b"\n".join(v for _, v in records[:20000]))

    rates: dict[str, list[float]] = {n: [] for n in names}
    java_lines: list[str] = []
    sent: dict[str, int] = dict.fromkeys(names, 0)
    for r in range(runs):
        for name, how, linger in variants:
            batch = records[:SAMPLE_SEND_AND_WAIT] if how == "send_and_wait" else records
            took = await _timed(settings, topics[name], batch, how, linger)
            sent[name] += len(batch)
            rates[name].append(len(batch) / took)
            say(f"run {r + 1}/{runs} {name:<14} {len(batch):>8,} records "
                f"{took:7.3f} s {len(batch) / took:>10,.0f} events/s")
        if java:
            res = await asyncio.to_thread(java_producer_perf, settings, topics["java"], events,
                                          payload_file, tools_libs)
            sent["java"] += res["records"]
            rates["java"].append(res["rate"])
            java_lines.append(res["line"])
            say(f"run {r + 1}/{runs} {'java':<14} {res['records']:>8,} records "
                f"{'':>9} {res['rate']:>10,.0f} events/s  ({res['line'].strip()})")
        if java and java_long:  # the same tool with the JIT warm: more records per run
            res = await asyncio.to_thread(java_producer_perf, settings, topics["java-long"],
                                          java_long, payload_file, tools_libs)
            sent["java-long"] += res["records"]
            rates["java-long"].append(res["rate"])
            java_lines.append(res["line"])
            say(f"run {r + 1}/{runs} {'java-long':<14} {res['records']:>8,} records "
                f"{'':>9} {res['rate']:>10,.0f} events/s  ({res['line'].strip()})")

    for name in names:  # every record really landed
        have = await total_records(settings, topics[name])
        if have != sent[name]:
            raise AssertionError(f"{name}: topic holds {have} records, sent {sent[name]}")
    await delete_namespace(settings)

    med = {n: median(v) for n, v in rates.items()}
    kernel = med["kernel"]
    rows = []
    for n in names:
        ratio_java = f"{med[n] / med['java']:.2f}" if java else "-"
        rows.append([n, f"{med[n]:,.0f}", f"{min(rates[n]):,.0f}", f"{max(rates[n]):,.0f}",
                     f"{med[n] / kernel:.2f}", ratio_java])
    say()
    say(f"producer: {events:,} records of ~{mean_size:.0f} B, 3 partitions, acks=all, "
        f"idempotent, linger {LINGER_MS} ms, batch {BATCH_BYTES // 1024} KiB; median of {runs}")
    say(table(["variant", "events/s", "min", "max", "x kernel", "x java"], rows))
    enc = median(encode_us)
    best = max((n for n in names if not n.startswith("java")), key=lambda n: med[n])
    with_encode = 1 / (1 / med[best] + enc / 1e6)
    say(f"encode {enc:.2f} µs/event (separate from send); {best} including encode: "
        f"{with_encode:,.0f} events/s")
    return {"events": events, "runs": runs, "size": mean_size, "encode_us": enc,
            "build_us": build_s / events * 1e6, "rates": med, "all": rates,
            "best": best, "with_encode": with_encode, "java_lines": java_lines}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="records per variant")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--symbols", type=int, default=20_000, help="distinct aggregate ids")
    parser.add_argument("--no-java", action="store_true", help="skip ProducerPerformance")
    parser.add_argument("--java-long", type=int, default=1_000_000,
                        help="records of an extra ProducerPerformance run per repetition, so "
                        "its JIT warm-up weighs less (0 = skip)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.events, args.runs, args.symbols, java=not args.no_java,
                    java_long=args.java_long))


if __name__ == "__main__":
    main()
