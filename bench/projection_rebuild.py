"""Projection rebuild: `propstream replay instruments`, in-process, on a generated log.

Generates N instrument events over S symbols (tests/integration/tapes.event_tape: valid
streams with the expected final state of every symbol), produces them into a fresh
namespace's instrument.events, then for each --max-batch: drop(), start(),
run(until_caught_up=True), and prints events/s. The rebuilt table is checked against the
tape's expected state. Wall time is split into sections by timing wrappers around the
runner's and the projection's steps (poll, decode, select, fold, COPY, upsert, offsets,
commit); --cprofile prints where the CPU went in one extra run.

With --workers N, each run is followed by a partition-parallel rebuild (kernel.rebuild: N
worker processes, one set of partitions each, the coordinator holding the lease), checked the
same way; its figure is printed beside the one-process figure and the COPY bound. Its events/s
count from the workers' start signal (all connected and sought, as the one-process figure
counts from after `start`); "with start-up" adds spawning, imports and connections. CPU per
event is summed over the worker processes.

Run: python -m bench.projection_rebuild [--events N] [--symbols S] [--max-batch 2000 5000]
     [--workers 2 3]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import os
import pstats
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql

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
from bench.rebuild_runner import make_runner
from core.adapters import instruments_projection as ip
from kernel import pg as kpg
from kernel import projection as kp
from kernel.kafka import make_producer, send_many
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from kernel.rebuild import RebuildReport
from kernel.rebuild import rebuild as parallel_rebuild
from kernel.runtime import settle_heap
from kernel.settings import Settings
from schemas import default_registry
from tests.integration.tapes import event_tape

SECTIONS = ("poll", "decode", "select", "fold", "copy", "upsert", "offsets", "commit", "other")


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


class Timers:
    """Wall-clock seconds per section, filled by the wrappers below."""

    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)

    def sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.s[name] += time.perf_counter() - t
        return timed

    def coro(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*a: Any, **k: Any) -> Any:
            self.s[name + "#"] += 1
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                self.s[name] += time.perf_counter() - t
        return timed


def instrument(runner: ProjectionRunner, timers: Timers) -> Callable[[], None]:
    """Wrap the runner's steps with timers, per batch (nothing per event, so the timing costs
    nothing measurable); return a function that undoes the module patches."""
    assert runner.stream is not None and runner.stream.consumer is not None
    assert runner.conn is not None
    saved = ip.fold_batch, ip.fold, kp.copy_into, kp.copy_upsert
    ip.fold_batch = timers.sync("fold", saved[0])
    ip.fold = timers.sync("fold", saved[1])  # the "before" projection folds per event
    kp.copy_into = timers.coro("copy", saved[2])
    kp.copy_upsert = timers.coro("copy", saved[3])
    stream = runner.stream
    stream._step_all = timers.sync("decode", stream._step_all)  # type: ignore[method-assign]
    # With overlap the stage decodes in flush, and waits there for the previous batch's
    # transaction: sections overlap then, and "other" can come out negative.
    stage = runner.stage
    stage._flush_overlapped = timers.coro(  # type: ignore[method-assign]
        "decode", stage._flush_overlapped)
    consumer = stream.consumer
    assert consumer is not None
    consumer.poll = timers.coro("poll", consumer.poll)  # type: ignore[method-assign]
    runner.store.write = timers.coro("txn", runner.store.write)  # type: ignore[method-assign]
    runner.store._store_offsets = timers.coro(  # type: ignore[method-assign]
        "offsets", runner.store._store_offsets)
    runner.projection.apply = timers.coro("apply", runner.projection.apply)  # type: ignore[method-assign]
    conn = runner.conn
    execute = conn.execute

    async def timed_execute(query: Any, *a: Any, **k: Any) -> Any:
        text = query.as_string(conn) if isinstance(query, sql.Composable) else str(query)
        name = ("select" if text.startswith("SELECT") else
                "upsert" if text.startswith(('INSERT INTO "instruments"',
                                             "INSERT INTO instruments ")) else "temp")
        t = time.perf_counter()
        try:
            return await execute(query, *a, **k)
        finally:
            timers.s[name] += time.perf_counter() - t

    conn.execute = timed_execute  # type: ignore[method-assign]

    def undo() -> None:
        ip.fold_batch, ip.fold, kp.copy_into, kp.copy_upsert = saved
    return undo


def split(timers: Timers, total: float) -> dict[str, float]:
    s = timers.s
    commit = s["txn"] - s["apply"] - s["offsets"]
    out = {"poll": s["poll"], "decode": s["decode"], "select": s["select"], "fold": s["fold"],
           "copy": s["copy"] - s["upsert"], "upsert": s["upsert"], "offsets": s["offsets"],
           "commit": commit}
    out["other"] = total - sum(out.values())
    out["batches"] = s["apply#"]
    return out


def decode_floor(records: list[tuple[bytes, bytes]]) -> tuple[float, float, float]:
    """CPU µs per event of decode_event and of event_payload alone (the pydantic path), and
    of the projection's fast decoder (envelope + payload Structs), no IO."""
    registry = default_registry()
    t = time.perf_counter()
    envs = [kp.decode_event(v) for _, v in records]
    t1 = time.perf_counter()
    for env in envs:
        registry.event_payload(env)
    t2 = time.perf_counter()
    for _, v in records:
        ip.FAST.decode(v)
    t3 = time.perf_counter()
    n = len(records)
    return (t1 - t) / n * 1e6, (t2 - t1) / n * 1e6, (t3 - t2) / n * 1e6


async def produce_tape(settings: Settings, events: int, symbols: int) -> tuple[int, Any]:
    per_symbol = max(1, events // symbols)
    t = time.perf_counter()
    tape = event_tape(symbols, per_symbol)
    print(f"generated {len(tape.records):,} events over {symbols:,} symbols "
          f"({per_symbol} each) in {time.perf_counter() - t:.1f} s", flush=True)
    await create_topics(settings, [spec_of("instrument.events"),
                                   spec_of("instrument.events.dlq")])
    producer = make_producer(settings, client_id="bench-tape")
    await producer.start()
    try:
        t = time.perf_counter()
        await send_many(producer, settings.topic("instrument.events"), tape.records)
        took = time.perf_counter() - t
    finally:
        await producer.stop()
    print(f"produced {len(tape.records):,} events in {took:.2f} s "
          f"({len(tape.records) / took:,.0f} events/s)", flush=True)
    return len(tape.records), tape


async def check(settings: Settings, tape: Any) -> None:
    conn = await connect(settings)
    try:
        cur = await conn.execute("SELECT symbol, status, version, tick_size, halt_reason "
                                 "FROM instruments")
        rows = {r[0]: r[1:] for r in await cur.fetchall()}
    finally:
        await conn.close()
    assert len(rows) == len(tape.expected), (len(rows), len(tape.expected))
    for symbol, exp in tape.expected.items():
        got = rows[symbol]
        want = (exp.status, exp.version, exp.tick_size, exp.halt_reason)
        assert got == want, (symbol, got, want)


async def copy_bound(settings: Settings, n: int) -> tuple[float, float]:
    """The bound: PostgreSQL COPY of as many rows as there are events, of the read model's own
    shape (the rebuilt rows, renamed to stay distinct), into a fresh table with its primary
    key, in one transaction; text and binary COPY. Returns rows/s of each."""
    conn = await connect(settings)
    try:
        cur = await conn.execute(sql.SQL("SELECT {} FROM instruments").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c))
                               if c in ip.TABLE.as_text else sql.Identifier(c)
                               for c in ip.COLUMNS)))
        base = await cur.fetchall()
        rows = [(f"{r[0]}.{i}", *r[1:]) for i in range(-(-n // len(base))) for r in base][:n]
        await conn.commit()
        rates = []
        for binary in (False, True):
            await conn.execute("DROP TABLE IF EXISTS instruments_copy_bound")
            await conn.execute("CREATE TABLE instruments_copy_bound (LIKE instruments "
                               "INCLUDING ALL)")
            await conn.commit()
            types = await kpg.column_types(conn, "instruments", ip.COLUMNS)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in ip.COLUMNS)
            fmt = sql.SQL(" (FORMAT BINARY)") if binary else sql.SQL("")
            t = time.perf_counter()
            async with conn.cursor() as c, c.copy(sql.SQL(
                    "COPY instruments_copy_bound ({}) FROM STDIN{}").format(cols, fmt)) as copy:
                if binary:
                    c.adapters.register_dumper(None, kpg.JsonTextBinaryDumper)
                    copy.set_types(types)
                for row in rows:
                    await copy.write_row(row)
            await conn.commit()
            rates.append(len(rows) / (time.perf_counter() - t))
        await conn.execute("DROP TABLE instruments_copy_bound")
        await conn.commit()
        return rates[0], rates[1]
    finally:
        await conn.close()


class BeforeProjection(ip.InstrumentsProjection):
    """The instruments projection as it was before this pass (session 6): pydantic envelope
    and payload models for every event (with schemas.fastcodec's envelope Struct), a fold per
    event, a select of every key of every batch, every changed row through the COPY-upsert."""

    fast = None

    def __init__(self) -> None:
        super().__init__()
        self.cache = None  # type: ignore[assignment]

    async def apply(self, conn: Any, events: Any) -> None:
        await ip.TABLE.fold(conn, events, ip.fold)


def projection(variant: str) -> ip.InstrumentsProjection:
    """`now`: as shipped; `before`: see BeforeProjection; `no-fast`: pydantic decoding into
    the batch fold; `no-cache`: every key selected per batch (`no-overlap`, `no-async-commit`:
    the runner's levers, see rebuild)."""
    if variant == "before":
        return BeforeProjection()
    p = ip.InstrumentsProjection()
    if variant == "no-fast":
        p.fast = None  # type: ignore[assignment]
    elif variant == "no-cache":
        p.cache = None  # type: ignore[assignment]
    return p


async def rebuild_parallel(settings: Settings, max_batch: int, workers: int) -> RebuildReport:
    report = await parallel_rebuild(functools.partial(make_runner, settings, max_batch),
                                    workers=workers)
    assert len(report.workers) == workers, report
    return report


async def rebuild(settings: Settings, max_batch: int, *, profile: bool = False,
                  variant: str = "now") -> tuple[int, float, dict[str, float], str]:
    runner = ProjectionRunner(settings, projection(variant), default_registry(),
                              max_batch=max_batch)
    runner.overlap = variant not in ("before", "no-overlap")
    runner.async_commit = variant not in ("before", "no-async-commit")
    await runner.drop()
    await runner.start()
    timers = Timers()
    undo = instrument(runner, timers)
    prof = cProfile.Profile() if profile else None
    settle_heap()  # as `propstream replay` and every `propstream run` process do
    try:
        if prof is not None:
            prof.enable()
        started, cpu = time.perf_counter(), time.process_time()
        count = await runner.run(until_caught_up=True)
        took = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if prof is not None:
            prof.disable()
    finally:
        undo()
        await runner.stop()
    report = ""
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        report = buf.getvalue()
    sections = split(timers, took)
    sections["cpu"] = cpu
    return count, took, sections, report


async def run(events: int, symbols: int, batches: list[int], runs: int, *,
              cprofile: bool = False, baseline: bool = False,
              levers: Sequence[str] = (), workers: Sequence[int] = ()) -> dict[str, Any]:
    settings = fresh_namespace(base_settings(), "br")
    results: dict[int, list[float]] = {b: [] for b in batches}
    before: dict[int, list[float]] = {b: [] for b in batches}
    splits: dict[int, list[dict[str, float]]] = {b: [] for b in batches}
    lever: dict[str, dict[int, list[float]]] = {v: {b: [] for b in batches} for v in levers}
    cpu: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    par: dict[int, dict[int, list[float]]] = {w: {b: [] for b in batches} for w in workers}
    par_total: dict[int, dict[int, list[float]]] = {w: {b: [] for b in batches} for w in workers}
    try:
        n, tape = await produce_tape(settings, events, symbols)
        settle_heap()
        env_us, payload_us, fast_us = decode_floor(tape.records)
        print(f"decode alone (CPU, no IO): pydantic path decode_event {env_us:.1f} µs + "
              f"event_payload {payload_us:.1f} µs per event; fast path (FastEvents) "
              f"{fast_us:.1f} µs = at most {1e6 / fast_us:,.0f} events/s from decoding alone",
              flush=True)
        for r in range(runs):
            for b in batches:
                count, took, sec, _ = await rebuild(settings, b)
                assert count == n, (count, n)
                await check(settings, tape)
                results[b].append(count / took)
                splits[b].append(sec)
                cpu["now"][b].append(sec["cpu"] / count * 1e6)
                print(f"run {r + 1}/{runs} max_batch {b:>6}: {count:,} events in {took:.2f} s "
                      f"= {count / took:,.0f} events/s, {sec['cpu'] / count * 1e6:.1f} µs CPU "
                      f"per event in this process (table checked; {load()})", flush=True)
                if baseline:  # right after, in the same conditions
                    count, took, sec, _ = await rebuild(settings, b, variant="before")
                    await check(settings, tape)
                    before[b].append(count / took)
                    cpu["before"][b].append(sec["cpu"] / count * 1e6)
                    print(f"run {r + 1}/{runs} max_batch {b:>6}, before (session 6): {count:,} "
                          f"events in {took:.2f} s = {count / took:,.0f} events/s, "
                          f"{sec['cpu'] / count * 1e6:.1f} µs CPU per event (table checked; "
                          f"{load()})", flush=True)
                for w in workers:  # right after, in the same conditions
                    rep = await rebuild_parallel(settings, b, w)
                    assert rep.events == n, (rep.events, n)
                    await check(settings, tape)
                    par[w][b].append(rep.events / rep.seconds)
                    par_total[w][b].append(rep.events / rep.total_s)
                    cpu[f"{w} workers"][b].append(rep.cpu_s / rep.events * 1e6)
                    shares = ", ".join(f"{len(x.partitions)} partition(s) {x.events:,} events "
                                       f"{x.wall_s:.2f} s" for x in rep.workers)
                    print(f"run {r + 1}/{runs} max_batch {b:>6}, {w} workers: {rep.events:,} "
                          f"events in {rep.seconds:.2f} s = {rep.events / rep.seconds:,.0f} "
                          f"events/s ({rep.total_s:.2f} s = "
                          f"{rep.events / rep.total_s:,.0f} events/s with start-up), "
                          f"{rep.cpu_s / rep.events * 1e6:.1f} µs CPU per event summed over "
                          f"the workers [{shares}] (table checked; {load()})", flush=True)
                for v in levers:  # one lever off at a time, alternating with the runs above
                    count, took, sec, _ = await rebuild(settings, b, variant=v)
                    await check(settings, tape)
                    lever[v][b].append(count / took)
                    cpu[v][b].append(sec["cpu"] / count * 1e6)
                    print(f"run {r + 1}/{runs} max_batch {b:>6}, {v}: {count:,} events in "
                          f"{took:.2f} s = {count / took:,.0f} events/s, "
                          f"{sec['cpu'] / count * 1e6:.1f} µs CPU per event (table checked; "
                          f"{load()})", flush=True)
        bound_text: list[float] = []
        bound_binary: list[float] = []
        for _ in range(runs):
            text_rate, binary_rate = await copy_bound(settings, n)
            bound_text.append(text_rate)
            bound_binary.append(binary_rate)
        profile_report = ""
        if cprofile:
            _, _, _, profile_report = await rebuild(settings, batches[0], profile=True)
    finally:
        await delete_namespace(settings)
        await drop_pg_schema(settings)

    print()
    print(f"projection rebuild: {n:,} events, {symbols:,} symbols; median of {runs}")
    rows = []
    for b in batches:
        per_batch = n / median([s["batches"] for s in splits[b]])
        rows.append([str(b), f"{median(results[b]):,.0f}", f"{min(results[b]):,.0f}",
                     f"{max(results[b]):,.0f}", f"{per_batch:,.0f}"])
    print(table(["max_batch", "events/s", "min", "max", "events/batch"], rows))
    print("CPU of this process per event (µs, median; PostgreSQL's and Kafka's own CPU not "
          "included): " + "; ".join(
              f"{v} " + ", ".join(f"max_batch {b}: {median(c):.1f}" for b, c in per.items())
              for v, per in cpu.items()))
    if baseline:
        print("before (session 6: pydantic models, per-event fold, select per batch, "
              "everything upserted), alternating with the runs above: " +
              ", ".join(f"max_batch {b}: {median(before[b]):,.0f} events/s "
                        f"(now x{median(results[b]) / median(before[b]):.2f})" for b in batches))
    for v in levers:
        print(f"lever off: {v}, alternating with the runs above: " + ", ".join(
            f"max_batch {b}: {median(lever[v][b]):,.0f} events/s "
            f"(now x{median(results[b]) / median(lever[v][b]):.2f})" for b in batches))
    bound = median(bound_binary)
    best_rate = max(median(v) for v in results.values())
    print(f"bound, same run: PostgreSQL COPY of {n:,} rows of the read model's shape into a "
          f"table with its key: text {median(bound_text):,.0f} rows/s, binary {bound:,.0f} "
          f"rows/s; rebuild / binary bound = {best_rate / bound:.2f}")
    for w in workers:
        print(f"{w} workers, alternating with the runs above: " + ", ".join(
            f"max_batch {b}: {median(par[w][b]):,.0f} events/s (1 process "
            f"{median(results[b]):,.0f}, x{median(par[w][b]) / median(results[b]):.2f}; "
            f"/ binary bound = {median(par[w][b]) / bound:.2f}; with start-up "
            f"{median(par_total[w][b]):,.0f})" for b in batches))
    print()
    print("where the wall time goes (median per section, % of the run; µs per event; with the "
          "overlap, decode includes the wait for the previous batch and sections overlap)")
    srows = []
    for b in batches:
        med = {k: median([s[k] for s in splits[b]]) for k in SECTIONS}
        tot = sum(med.values())
        srows.append([str(b)] + [f"{med[k] / tot * 100:4.1f}% {med[k] / n * 1e6:5.1f}"
                                 for k in SECTIONS])
    print(table(["max_batch", *SECTIONS], srows))
    if profile_report:
        print(f"\ncProfile of one more run at max_batch {batches[0]} (CPU, top by tottime):")
        print(profile_report)
    best = max(batches, key=lambda b: median(results[b]))
    return {"events": n, "symbols": symbols, "decode_us": env_us + payload_us,
            "fast_decode_us": fast_us,
            "copy_bound": {"text": median(bound_text), "binary": bound},
            "rates": {b: median(v) for b, v in results.items()},
            "before": {b: median(v) for b, v in before.items() if v},
            "levers": {v: {b: median(r) for b, r in lever[v].items()} for v in levers},
            "workers": {w: {b: median(r) for b, r in par[w].items()} for w in workers},
            "cpu_us": {v: {b: median(c) for b, c in per.items()} for v, per in cpu.items()},
            "best": best, "splits": {b: {k: median([s[k] for s in splits[b]]) for k in SECTIONS}
                                     for b in batches}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=20_000)
    parser.add_argument("--max-batch", type=int, nargs="+", default=[2000, 5000, 20000])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--cprofile", action="store_true", help="one extra run under cProfile")
    parser.add_argument("--baseline", action="store_true",
                        help="after each run, one of the projection as before this pass")
    parser.add_argument("--levers", nargs="*", default=[],
                        choices=["no-fast", "no-cache", "no-overlap", "no-async-commit"],
                        help="after each run, one with this lever off (each, alternating)")
    parser.add_argument("--workers", type=int, nargs="*", default=[],
                        help="after each run, a partition-parallel rebuild with N workers")
    args = parser.parse_args(argv)
    asyncio.run(run(args.events, args.symbols, args.max_batch, args.runs,
                    cprofile=args.cprofile, baseline=args.baseline, levers=args.levers,
                    workers=args.workers))


if __name__ == "__main__":
    main()
