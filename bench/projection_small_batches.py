"""Projection cost per small batch: the live path, one event per batch, on real Kafka and
PostgreSQL, with the one-statement write (kernel.projection_small) on and off.

Registers --symbols instruments, then per round and per variant (alternating: `statement`,
the one-statement write of a small batch; `transaction`, the COPY transaction every batch
took before) starts the instruments projection in a child process (the real
`ProjectionRunner`, on uvloop as `propstream run` does) and produces --events halt/resume
events on the registered instruments at --rate events/s, each sent and acknowledged alone, so
each arrives as a batch of one. The child measures, from the first to the last measured batch:
its CPU (time.process_time: decode, poll loop, aiokafka fetches, SQL, all of it) per batch,
the CPU and wall of the store's write per batch, and then its idle CPU per second. A warm-up
of one event per instrument (rows loaded into the row cache) is not measured.

--direct instead measures the store's write alone (no Kafka, no runner), in this process:
CPU and wall per write of batches of --sizes events (halt/resume, distinct instruments, rows
in the row cache), each path alternating, which is how the threshold (SMALL_BATCH) is chosen.

Run: flock /work/bench.lock python -m bench.projection_small_batches [--events 1000]
     [--rate 100] [--rounds 2]   (BENCH_PROFILE=dir: cProfile of each child, not for figures)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    median,
    spec_of,
    table,
)
from kernel.kafka import make_producer, send_many
from kernel.projection_small import SMALL_BATCH
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.instrument import InstrumentHalted, InstrumentRegistered, InstrumentResumed
from tests.integration.helpers import spec

VARIANTS = ("statement", "transaction")


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def backend_cpu(pid: int) -> float:
    """CPU seconds of a local PostgreSQL backend so far (utime + stime, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def event(symbol: str, payload: EventPayload, sequence: int) -> tuple[bytes, bytes]:
    cause = uuid.uuid4()
    return symbol.encode(), encode(make_event(
        payload, aggregate_id=symbol, sequence=sequence, occurred_at=datetime.now(UTC),
        correlation_id=cause, causation_id=cause, event_id=uuid.uuid4()))


# -- the child: the projection, measuring itself ---------------------------------------------

async def child(namespace: str, variant: str, warm: int, events: int, idle_s: float) -> None:
    from core.adapters.instruments_projection import InstrumentsProjection
    from kernel.projection import ProjectionRunner
    from kernel.runtime import settle_heap
    from schemas import default_registry

    settings = base_settings().model_copy(update={"namespace": namespace})
    runner = ProjectionRunner(settings, InstrumentsProjection(), default_registry())
    await runner.start()
    await runner.run(until_caught_up=True, timeout=60)  # what earlier variants left
    runner.store.small_batch = SMALL_BATCH if variant == "statement" else 0
    store = runner.store
    write = store.write
    seen = 0
    batches = 0
    write_cpu = write_wall = 0.0
    marks: dict[str, tuple[float, float, float]] = {}
    done = asyncio.Event()

    async def measured(evs: Any, offsets: Any) -> None:
        nonlocal seen, batches, write_cpu, write_wall
        c, w = time.process_time(), time.perf_counter()
        await write(evs, offsets)
        c, w = time.process_time() - c, time.perf_counter() - w
        before = seen
        seen += len(evs)
        if before >= warm:
            batches += 1
            write_cpu += c
            write_wall += w
        if before < warm <= seen:
            marks["start"] = (time.process_time(), time.perf_counter(), backend_cpu(backend))
        if seen >= warm + events and "end" not in marks:
            marks["end"] = (time.process_time(), time.perf_counter(), backend_cpu(backend))
            done.set()

    store.write = measured  # type: ignore[assignment,method-assign]
    assert runner.conn is not None
    backend = runner.conn.info.backend_pid
    settle_heap()
    profile_to = os.environ.get("BENCH_PROFILE")  # a directory: cProfile stats per variant
    prof = None
    if profile_to:
        import cProfile

        prof = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
        prof.enable()
    task = asyncio.create_task(runner.run())
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.path.join(str(profile_to), f"{variant}.prof"))
        c0 = time.process_time()
        await asyncio.sleep(idle_s)
        idle = (time.process_time() - c0) / idle_s
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await runner.stop()
    (c0, w0, b0), (c1, w1, b1) = marks["start"], marks["end"]
    # The first measured batch's own cost falls before "start": count batches after it.
    n = max(1, batches - 1)
    print(json.dumps({"cpu_per_batch": (c1 - c0) / n, "wall_per_batch": (w1 - w0) / n,
                      "pg_cpu_per_batch": (b1 - b0) / n,
                      "write_cpu": write_cpu / batches, "write_wall": write_wall / batches,
                      "batches": batches, "events": seen - warm, "idle_cpu_per_s": idle}),
          flush=True)


# -- the store alone ---------------------------------------------------------------------------

async def direct(sizes: list[int], writes: int, rounds: int) -> None:
    from core.adapters.instruments_projection import InstrumentsProjection
    from kernel.log import LogRecord, TopicPartition
    from kernel.pg import apply_ddl, connect
    from kernel.projection import OFFSETS_DDL, PgProjectionStore, ProjectionRunner
    from kernel.runtime import settle_heap
    from schemas import default_registry

    settings = fresh_namespace(base_settings(), "bd")
    projection = InstrumentsProjection()
    store = PgProjectionStore(projection)
    decode = ProjectionRunner(settings, projection, default_registry()).decode
    tp = TopicPartition("bench", 0)
    symbols = [f"S{i:04d}" for i in range(max(sizes))]
    seq = dict.fromkeys(symbols, 1)
    offset = 0

    def batch(n: int) -> list[Any]:
        nonlocal offset
        out = []
        for s in symbols[:n]:
            seq[s] += 1
            payload: EventPayload = (InstrumentHalted(reason="bench") if seq[s] % 2 == 0
                                     else InstrumentResumed())
            offset += 1
            out.append(decode(LogRecord("bench", 0, offset, None, event(s, payload, seq[s])[1])))
        return out

    cpu: dict[tuple[str, int], list[float]] = {}
    wall: dict[tuple[str, int], list[float]] = {}
    pg_cpu: dict[tuple[str, int], list[float]] = {}
    conn = await connect(settings)
    store.conn = conn
    backend = conn.info.backend_pid
    try:
        await apply_ddl(conn, [OFFSETS_DDL, *projection.ddl()])
        await projection.cache.start(conn)
        regs = [decode(LogRecord("bench", 0, i, None, event(s, InstrumentRegistered(
            spec=spec(s)), 1)[1])) for i, s in enumerate(symbols)]
        await store.write(regs, {tp: len(regs)})
        settle_heap()
        for r in range(rounds):
            for n in sizes:
                for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                    store.small_batch = 10**9 if variant == "statement" else 0
                    batches = [batch(n) for _ in range(writes)]
                    for b in batches[:5]:  # warm: statements composed and prepared
                        await store.write(b, {tp: offset})
                    c, w, pg = time.process_time(), time.perf_counter(), backend_cpu(backend)
                    for b in batches[5:]:
                        await store.write(b, {tp: offset})
                    k = (variant, n)
                    pg_cpu.setdefault(k, []).append((backend_cpu(backend) - pg) / (writes - 5))
                    cpu.setdefault(k, []).append((time.process_time() - c) / (writes - 5))
                    wall.setdefault(k, []).append((time.perf_counter() - w) / (writes - 5))
            print(f"round {r + 1}/{rounds} done ({load()}, {datetime.now(UTC):%H:%M:%S} UTC)",
                  flush=True)
    finally:
        await conn.close()
        await drop_pg_schema(settings)
    print(f"\nstore.write alone, µs per write: CPU of this process / of its PostgreSQL backend "
          f"(wall); median of {rounds} x {writes - 5} writes; {load()}")

    def both(v: str, n: int) -> float:
        return median(cpu[(v, n)]) + median(pg_cpu[(v, n)])

    rows = [[str(n)] + [f"{median(cpu[(v, n)]) * 1e6:,.0f} / {median(pg_cpu[(v, n)]) * 1e6:,.0f} "
                        f"({median(wall[(v, n)]) * 1e6:,.0f})" for v in VARIANTS]
            + [f"{median(cpu[('statement', n)]) / median(cpu[('transaction', n)]):.2f}",
               f"{both('statement', n) / both('transaction', n):.2f}"]
            for n in sizes]
    print(table(["events", "statement", "transaction", "CPU ratio", "CPU ratio with PG"],
                rows))


# -- the parent: the log, the pacing, the table ----------------------------------------------

async def produce_paced(settings: Any, records: list[tuple[bytes, bytes]], rate: float) -> None:
    producer = make_producer(settings, client_id="bench-small", linger_ms=0)
    await producer.start()
    try:
        topic = settings.topic("instrument.events")
        start = time.perf_counter()
        for i, (key, value) in enumerate(records):
            await (await producer.send(topic, value=value, key=key))
            wait = start + (i + 1) / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
    finally:
        await producer.stop()


async def phase(settings: Any, variant: str, records: list[tuple[bytes, bytes]], warm: int,
                rate: float, idle_s: float) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.projection_small_batches", "--child", variant,
        "--namespace", settings.namespace, "--warm", str(warm),
        "--events", str(len(records) - warm), "--idle", str(idle_s),
        stdout=subprocess.PIPE, env=os.environ.copy())
    assert proc.stdout is not None
    while (line := await asyncio.wait_for(proc.stdout.readline(), timeout=120)).strip() != (
            b"ready"):  # the child's log lines come first
        assert line, "the child ended before it was ready"
    await produce_paced(settings, records, rate)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    assert proc.returncode == 0, proc.returncode
    result = [x for x in out.splitlines() if x.startswith(b"{")]
    return dict(json.loads(result[-1]))


async def run(symbols: int, events: int, rate: float, rounds: int, idle_s: float) -> None:
    settings = fresh_namespace(base_settings(), "bs")
    seq = dict.fromkeys((f"S{i:04d}" for i in range(symbols)), 1)
    halted = dict.fromkeys(seq, False)

    def next_events(n: int) -> list[tuple[bytes, bytes]]:
        out = []
        names = list(seq)
        for i in range(n):
            s = names[i % len(names)]
            seq[s] += 1
            payload: EventPayload = (InstrumentResumed() if halted[s]
                                     else InstrumentHalted(reason="bench"))
            halted[s] = not halted[s]
            out.append(event(s, payload, seq[s]))
        return out

    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        await create_topics(settings, [spec_of("instrument.events"),
                                       spec_of("instrument.events.dlq")])
        producer = make_producer(settings, client_id="bench-small")
        await producer.start()
        try:
            await send_many(producer, settings.topic("instrument.events"),
                            [event(s, InstrumentRegistered(spec=spec(s)), 1) for s in seq])
        finally:
            await producer.stop()
        for r in range(rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                got = await phase(settings, variant, next_events(symbols + events), symbols,
                                  rate, idle_s)
                results[variant].append(got)
                print(f"round {r + 1}/{rounds} {variant:>11}: {got['batches']:.0f} batches of "
                      f"{got['events'] / got['batches']:.2f} events; CPU "
                      f"{got['cpu_per_batch'] * 1e6:,.0f} µs/batch (process), write CPU "
                      f"{got['write_cpu'] * 1e6:,.0f} µs, write "
                      f"wall {got['write_wall'] * 1e6:,.0f} µs; PostgreSQL backend CPU "
                      f"{got['pg_cpu_per_batch'] * 1e6:,.0f} µs/batch; idle CPU "
                      f"{got['idle_cpu_per_s'] * 1e3:.1f} ms/s ({load()}, "
                      f"{datetime.now(UTC):%H:%M:%S} UTC)", flush=True)
        # Everything applied, each instrument as its last event left it.
        import psycopg

        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            cur = await conn.execute(
                f'SELECT symbol, status, version FROM "{settings.pg_schema}".instruments')
            rows = {s: (st, v) for s, st, v in await cur.fetchall()}
        assert rows == {s: ("halted" if halted[s] else "active", seq[s]) for s in seq}, rows
    finally:
        await delete_namespace(settings)
        await drop_pg_schema(settings)
    print()
    print(f"projection, one event per batch at {rate:g} events/s, {events} measured events per "
          f"phase, median of {rounds} (table checked)")
    rows_out = []
    for v in VARIANTS:
        rs = results[v]
        rows_out.append([v] + [f"{median([x[k] for x in rs]) * 1e6:,.0f}" for k in
                               ("cpu_per_batch", "write_cpu", "write_wall", "pg_cpu_per_batch",
                                "wall_per_batch")]
                        + [f"{median([x['idle_cpu_per_s'] for x in rs]) * 1e3:.1f}"])
    print(table(["variant", "CPU µs/batch", "write CPU µs", "write wall µs", "PG CPU µs/batch",
                 "interval µs",
                 "idle CPU ms/s"], rows_out))
    s, t = (median([x["cpu_per_batch"] for x in results[v]]) for v in VARIANTS)
    print(f"statement / transaction, process CPU per batch: {s / t:.2f} ({load()})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--events", type=int, default=1000, help="measured events per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s")
    parser.add_argument("--rounds", type=int, default=2, help="phases per variant")
    parser.add_argument("--idle", type=float, default=2.0, help="idle seconds measured")
    parser.add_argument("--direct", action="store_true", help="the store's write alone")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 5, 20, 50, 200])
    parser.add_argument("--writes", type=int, default=205, help="writes per size (--direct)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import uvloop

        uvloop.run(child(args.namespace, args.child, args.warm, args.events, args.idle))
        return
    if args.direct:
        import uvloop

        uvloop.run(direct(args.sizes, args.writes, args.rounds))
        return
    asyncio.run(run(args.symbols, args.events, args.rate, args.rounds, args.idle))


if __name__ == "__main__":
    main()
