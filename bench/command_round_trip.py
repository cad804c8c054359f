"""Command round trip: HTTP -> Kafka -> decider -> reply -> HTTP answer, at steady rates.

Starts, in a fresh namespace, the instrument decider, the instruments projection and the API
as child processes (`python -m propstream run …`), warms up, then drives an open-loop
schedule of requests at each --rates value for --seconds: alternately POST /instruments (a
new unique symbol) and POST /instruments/{symbol}/halt (a symbol registered earlier in the
run) with a lean keep-alive HTTP/1.1 client (`bench.leanhttp`; httpx saturated at ~50 req/s on
the shared 2 cores). Latency runs from the moment a request is issued to its answer; the
achieved rate is completed requests over the window. Then the same rates through
CommandBus.send in this process (no HTTP) to split HTTP cost from Kafka cost.

Where the time goes, from timestamps that change nothing in the services: a tap consumer in
this process (read committed) sees each command record (its CreateTime is when the API
produced it) and each reply (CreateTime: when the decider produced it; the tap's clock: when
its transaction became visible to a reader); the API's access log gives its own time per
request (by X-Request-ID). Hops per request:
  in      = command produced - request issued (HTTP in, auth, idempotency, parse, handler)
  decider = reply produced - command produced (decider fetch wait, decode, decide, produce)
  commit  = reply visible to the tap - reply produced (transaction commit + a fetch)
  out     = answer received - reply visible (API reply consumer, API out, HTTP out)
CreateTime has millisecond resolution, so each hop is +-1 ms.

Each service's CPU per completed request comes from /proc/<pid>/stat, and its run-queue wait
(time runnable but waiting for a CPU) from /proc/<pid>/task/*/schedstat: on a shared machine
the second tells how much of the latency is the machine's load.

Run: python -m bench.command_round_trip [--rates 50 100 200] [--seconds 20] [--runs 1]
     [--code DIR]   the services of another tree (`git archive REV | tar -x -C DIR`), to
                    alternate before/after run by run with the same client
     [--profile DIR] py-spy of each service per rate (py-spy is no project dependency:
                    `.cache/bootstrap/bin/uv pip install --python .venv/bin/python py-spy`)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import (
    UNLIMITED,
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    median,
    percentile,
    table,
)
from bench.leanhttp import LeanClient
from kernel.commands import CommandBus
from kernel.kafka import make_consumer, partitions_of
from kernel.tokens import AccessTokens
from propstream.settings import PlatformSettings as Settings
from schemas.envelope import make_command
from schemas.instrument import HaltInstrument, InstrumentSpec, RegisterInstrument
from schemas.topics import CATALOGUE, REPLIES


def child_env(settings: Settings) -> dict[str, str]:
    env = {**os.environ, **UNLIMITED}
    env.update({
        "PROPSTREAM_ENV": "test",
        "PROPSTREAM_NAMESPACE": settings.namespace,
        "PROPSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "PROPSTREAM_PG_PORT": str(settings.pg_port),
        "PROPSTREAM_REDIS_PORT": str(settings.redis_port),
        "PROPSTREAM_API_PORT": str(settings.api_port),
        "PROPSTREAM_LOG_LEVEL": "INFO",
        "PROPSTREAM_COMMAND_TIMEOUT_MS": str(settings.command_timeout_ms),
    })
    return env


class Child:
    def __init__(self, settings: Settings, log_dir: Path, *argv: str,
                 code: str | None = None) -> None:
        self.argv = [sys.executable, "-m", "propstream", "run", *argv]
        self.log = log_dir / f"{settings.namespace}-{'-'.join(argv)}.log"
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        env = child_env(settings)
        if code is not None:  # another tree of our code (an A/B run): it comes first
            env["PYTHONPATH"] = code
        self.proc = subprocess.Popen(self.argv, env=env, stdout=out, cwd=code,
                                     stderr=subprocess.STDOUT)
        out.close()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the child so far (/proc/<pid>/stat)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def runqueue_wait_seconds(self) -> float:
        """Seconds the child's threads waited for a CPU while runnable (schedstat): the
        share of the latency that is this machine's load, not our code."""
        total = 0
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
        return total / 1e9

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"waiting for {what}")


def spec_body(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "venue": "simulator", "asset_class": "crypto",
            "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"}


class Load:
    """Register / halt requests: a new symbol, then a halt of one registered earlier."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0
        self.registered: collections.deque[str] = collections.deque()

    def next(self) -> tuple[str, str, dict[str, Any]]:
        self.n += 1
        if self.n % 2 == 0 and self.registered:
            symbol = self.registered.popleft()
            return "halt", f"/instruments/{symbol}/halt", {"reason": "bench"}
        symbol = f"{self.prefix}{self.n:07d}"
        return "register", "/instruments", spec_body(symbol)


CpuProbe = Callable[[], dict[str, float]]


def _proc_cpu(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU seconds of `pid` (with its reaped children's when `reaped`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def infra_cpu(settings: Settings) -> dict[str, float]:
    """CPU seconds so far of the infrastructure the command touches: the Kafka broker, Redis,
    and PostgreSQL (the postmaster with the backends it reaped, plus the live backends). The
    platform's own processes are not all there is: this is the rest of the machine's bill."""
    run = settings.cache_dir / "run"
    out = {name: _proc_cpu(pid) if (pid := _pid_file(run / f"{name}.pid")) else float("nan")
           for name in ("kafka", "redis")}
    postmaster = _pid_file(settings.cache_dir / "postgres" / "data" / "postmaster.pid")
    pg = float("nan")
    if postmaster is not None:
        pg = _proc_cpu(postmaster, reaped=True)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                pg += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    out["postgres"] = pg
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat): busy is everything but idle
    and iowait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def cpu_now(children: dict[str, Child], settings: Settings | None = None) -> dict[str, float]:
    out = {name: c.cpu_seconds() for name, c in children.items()}
    out["client"] = time.process_time()
    if settings is not None:
        out.update(infra_cpu(settings))
    for name, c in children.items():  # not CPU: waiting for one (printed apart)
        out[f"{name} runq-wait"] = c.runqueue_wait_seconds()
    return out


async def open_loop(rate: float, total: int,
                    start_one: Callable[[int], Coroutine[Any, Any, None]]) -> tuple[float, float]:
    """Start `start_one(i)` for i < total at `rate` per second, on schedule whatever the
    answers take (open loop); wait for all. Return (the schedule's worst lag, seconds
    taken), both in seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    lag = 0.0
    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        tasks.append(asyncio.create_task(start_one(i)))
    await asyncio.gather(*tasks)
    return lag, loop.time() - start


Sample = tuple[str, str, float, float]  # kind, symbol, issued (wall s), answered (wall s)


async def steady(rate: float, seconds: float,
                 one: Callable[[list[Any]], Awaitable[tuple[str, int]]],
                 cpu: CpuProbe | None = None) -> dict[str, Any]:
    """Issue `one(note)` at `rate` per second (open loop) for `seconds`; collect latencies.
    `one` may append (kind, symbol) to `note` to have the sample kept for the hop split."""
    cpu_before = cpu() if cpu is not None else {}
    busy_before = machine_busy()
    latencies: list[float] = []
    samples: list[Sample] = []
    statuses: collections.Counter[str] = collections.Counter()

    async def timed() -> None:
        t = time.perf_counter()
        wall = time.time()
        note: list[Any] = []
        try:
            kind, status = await one(note)
            statuses[f"{kind} {status}"] += 1
        except Exception as exc:  # counted, not raised: the run goes on
            statuses[f"error {type(exc).__name__}"] += 1
            return
        latencies.append((time.perf_counter() - t) * 1000)
        if note:
            samples.append((note[0], note[1], wall, time.time()))

    total = int(rate * seconds)
    lag, took = await open_loop(rate, total, lambda _i: timed())
    cpu_ms: dict[str, float] = {}
    if cpu is not None:  # CPU milliseconds per completed request, per process
        after = cpu()
        cpu_ms = {k: (after[k] - cpu_before[k]) * 1000 / max(1, len(latencies)) for k in after}
    busy_after = machine_busy()
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    latencies.sort()
    return {"rate": rate, "busy": busy, "sent": total, "ok": len(latencies),
            "achieved": len(latencies) / took,
            "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99), "max": latencies[-1] if latencies else float("nan"),
            "statuses": dict(statuses), "lag_ms": lag * 1000, "cpu_ms": cpu_ms,
            "samples": samples, "load": load_average()}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Tap:
    """Watches a commands topic and the replies (read committed) without touching them: the
    CreateTime of each command (when the API produced it) and of its reply (when the decider
    produced it), and when each reply became visible here. `key_of(command)` names a command
    as the caller's samples do (None: not one of ours)."""

    def __init__(self, settings: Settings, commands_topic: str = "instrument.commands",
                 key_of: Callable[[dict[str, Any]], Any] | None = None,
                 decider: str = "decider") -> None:
        self.settings = settings
        self.commands_topic = commands_topic
        self.key_of = key_of or _instrument_key
        self.decider = decider  # the hop's name in the report
        self.commands: dict[Any, tuple[float, str]] = {}  # key -> (produced, command id)
        self.replies: dict[str, tuple[float, float]] = {}  # command id -> produced, seen
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.consumer = make_consumer(self.settings, client_id="bench-tap")
        await self.consumer.start()
        parts = (await partitions_of(self.consumer, self.settings.topic(self.commands_topic))
                 + await partitions_of(self.consumer, self.settings.topic(REPLIES.name)))
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        replies = self.settings.topic(REPLIES.name)
        while True:
            batch = await self.consumer.getmany(timeout_ms=500)
            seen = time.time()
            for tp, messages in batch.items():
                for m in messages:
                    data = orjson.loads(m.value)
                    if tp.topic == replies:
                        self.replies[data["command_id"]] = (m.timestamp / 1000, seen)
                    elif (key := self.key_of(data)) is not None:
                        self.commands[key] = (m.timestamp / 1000, data["command_id"])

    def hops(self, samples: Iterable[tuple[Any, float, float]]) -> dict[str, list[float]]:
        """Per hop, sorted milliseconds over the samples (key, issued, answered: wall
        seconds) the tap saw whole."""
        out: dict[str, list[float]] = {"in": [], self.decider: [], "commit": [], "out": []}
        for key, issued, answered in samples:
            cmd = self.commands.get(key)
            if cmd is None or cmd[1] not in self.replies:
                continue
            produced, (replied, seen) = cmd[0], self.replies[cmd[1]]
            out["in"].append((produced - issued) * 1000)
            out[self.decider].append((replied - produced) * 1000)
            out["commit"].append((seen - replied) * 1000)
            out["out"].append((answered - seen) * 1000)
        return {k: sorted(v) for k, v in out.items()}


def _instrument_key(data: dict[str, Any]) -> tuple[str, str]:
    return ("halt" if "halt" in data["type"] else "register", data["aggregate_id"])


def hop_line(hops: dict[str, list[float]]) -> str:
    return "; ".join(f"{k} p50 {percentile(v, 50):.1f} p99 {percentile(v, 99):.1f}"
                     for k, v in hops.items()) + f" (n={len(hops['in'])})"


async def http_runs(settings: Settings, rates: list[float], seconds: float, runs: int,
                    warmup: int, cpu: CpuProbe, tap: Tap | None,
                    profile: str | None = None, pids: dict[str, int] | None = None,
                    ) -> dict[float, list[dict[str, Any]]]:
    pids = pids or {}
    out: dict[float, list[dict[str, Any]]] = {r: [] for r in rates}
    admin = AccessTokens(secret=settings.secret_key).issue(
        subject="00000000-0000-4000-8000-0000000be7c4", role="admin", now=datetime.now(UTC),
        jti=uuid.uuid4())
    client = LeanClient(settings.host, settings.api_port,
                        headers={"Authorization": f"Bearer {admin}"})
    try:
        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status == 200
            except OSError:
                return False
        await until(ready, 60, "the API's /readyz")
        for run in range(runs):
            for rate in rates:
                load = Load(f"B{run}R{int(rate)}X")
                label = f"bench-{run}-{int(rate)}"

                async def one(note: list[Any], load: Load = load,
                              label: str = label) -> tuple[str, int]:
                    kind, path, body = load.next()
                    symbol = body.get("symbol") or path.split("/")[2]
                    resp = await client.post(path, json=body,
                                             headers={"X-Request-ID": f"{label}-{load.n}"})
                    if kind == "register" and resp.status == 201:
                        load.registered.append(body["symbol"])
                    note += [kind, symbol]
                    return kind, resp.status

                if warmup:
                    warm = Load(f"W{run}R{int(rate)}X")

                    async def warm_one(note: list[Any], load: Load = warm) -> tuple[str, int]:
                        kind, path, body = load.next()
                        resp = await client.post(path, json=body)
                        if kind == "register" and resp.status == 201:
                            load.registered.append(body["symbol"])
                        return kind, resp.status
                    await steady(min(rate, 50), warmup / min(rate, 50), warm_one)
                spy_bin = str(Path(sys.executable).parent / "py-spy")
                spies = [subprocess.Popen(  # noqa: ASYNC220 - started, then left to run
                    [spy_bin, "record", "--format", "raw", "--nonblocking", "-r", "200",
                     "-d", str(int(seconds)), "-o", f"{profile}/{name}-{int(rate)}.txt",
                     "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for name, pid in pids.items()] if profile else []
                res = await steady(rate, seconds, one, cpu)
                for spy in spies:
                    spy.wait()  # it ends with the run
                res["label"] = label
                if tap is not None:
                    await asyncio.sleep(0.5)  # the tap's last fetch
                    res["hops"] = tap.hops(((kind, symbol), issued, answered) for
                                           kind, symbol, issued, answered in res["samples"])
                out[rate].append(res)
                print(f"run {run + 1}/{runs} HTTP {rate:>5.0f} req/s: achieved "
                      f"{res['achieved']:6.1f}/s p50 {res['p50']:6.1f} p95 {res['p95']:6.1f} "
                      f"p99 {res['p99']:6.1f} max {res['max']:7.1f} ms; "
                      f"client lag max {res['lag_ms']:.0f} ms; {res['statuses']}; CPU ms/req "
                      f"{ {k: round(v, 2) for k, v in res['cpu_ms'].items()} }; "
                      f"machine busy {100 * res['busy']:.0f} % of {os.cpu_count()} CPUs; "
                      f"load {res['load']}; connections opened so far {client.opened}", flush=True)
                if "hops" in res:
                    print("    hops: " + hop_line(res["hops"]), flush=True)
    finally:
        await client.close()
    return out


async def bus_runs(settings: Settings, rates: list[float], seconds: float,
                   runs: int, cpu: CpuProbe) -> dict[float, list[dict[str, Any]]]:
    bus = CommandBus(settings, client_id="bench-bus")
    await bus.start()
    out: dict[float, list[dict[str, Any]]] = {r: [] for r in rates}
    try:
        for run in range(runs):
            for rate in rates:
                load = Load(f"C{run}R{int(rate)}X")

                async def one(note: list[Any], load: Load = load) -> tuple[str, int]:
                    kind, _path, body = load.next()
                    symbol = body.get("symbol") or _path.split("/")[2]
                    payload = (RegisterInstrument(spec=InstrumentSpec.model_validate(body))
                               if kind == "register" else HaltInstrument(reason="bench"))
                    command = make_command(payload, aggregate_id=symbol,
                                           command_id=uuid.uuid4(), issued_at=datetime.now(UTC))
                    reply = await bus.send("instrument.commands", command)
                    if reply is None:
                        return kind, 202
                    if kind == "register" and reply.status == "accepted":
                        load.registered.append(symbol)
                    return kind, 200 if reply.status == "accepted" else 409

                res = await steady(rate, seconds, one, cpu)
                out[rate].append(res)
                print(f"run {run + 1}/{runs} bus  {rate:>5.0f} cmd/s: achieved "
                      f"{res['achieved']:6.1f}/s p50 {res['p50']:6.1f} p90 {res['p90']:6.1f} "
                      f"p99 {res['p99']:6.1f} max {res['max']:7.1f} ms; "
                      f"client lag max {res['lag_ms']:.0f} ms; {res['statuses']}", flush=True)
    finally:
        await bus.stop()
    return out


def server_side(api_log: str, results: dict[float, list[dict[str, Any]]]) -> None:
    """Fill p50/p99 of the API's own request time (its log, by our X-Request-ID)."""
    by_id: dict[str, float] = {}
    for line in api_log.splitlines():
        if '"http request"' in line and '"bench-' in line:
            rec = json.loads(line)
            by_id[rec["request_id"]] = rec["ms"]
    for rs in results.values():
        for r in rs:
            ms = sorted(v for k, v in by_id.items() if k.startswith(r["label"] + "-"))
            r["srv_p50"], r["srv_p99"] = percentile(ms, 50), percentile(ms, 99)


def summarise(label: str, results: dict[float, list[dict[str, Any]]]) -> list[list[str]]:
    rows = []
    for rate, rs in results.items():
        def m(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return median([r[key] for r in rs])
        bad = sum(v for r in rs for k, v in r["statuses"].items()
                  if not k.endswith((" 200", " 201")))
        srv = (f"{m('srv_p50'):.1f} / {m('srv_p99'):.1f}" if "srv_p50" in rs[0] else "-")
        rows.append([label, f"{rate:.0f}", f"{m('achieved'):.1f}", f"{m('p50'):.1f}",
                     f"{m('p95'):.1f}", f"{m('p99'):.1f}", f"{m('max'):.1f}", srv, str(bad)])
    return rows


async def run(rates: list[float], seconds: float, runs: int, bus_seconds: float,
              warmup: int, *, use_tap: bool = True,
              profile: str | None = None, code: str | None = None) -> dict[str, Any]:
    settings = fresh_namespace(base_settings(), "bc")
    await create_topics(settings, CATALOGUE)
    log_dir = settings.cache_dir / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if code is not None:
        print(f"services run the code in {code}", flush=True)
    children = [Child(settings, log_dir, "decider", "instrument", code=code),
                Child(settings, log_dir, "projection", "instruments", code=code),
                Child(settings, log_dir, "api", code=code)]
    try:
        decider = children[0]
        http: dict[float, list[dict[str, Any]]] = {}

        async def assigned() -> bool:
            if decider.proc.poll() is not None:
                raise RuntimeError(f"decider exited: {decider.output()[-1500:]}")
            return "partitions assigned" in decider.output()
        await until(assigned, 90, "the decider's partitions")
        named = {"api": children[2], "decider": children[0], "projection": children[1]}

        def cpu() -> dict[str, float]:
            return cpu_now(named, settings)
        tap = Tap(settings) if use_tap else None
        if tap is not None:
            await tap.start()
        try:
            http = await http_runs(settings, rates, seconds, runs, warmup, cpu, tap, profile,
                                   {k: c.proc.pid for k, c in named.items()})
        finally:
            if tap is not None:
                await tap.stop()
        bus = await bus_runs(settings, rates, bus_seconds, runs, cpu) if bus_seconds > 0 else {}
    finally:
        for child in children:
            child.stop()
        if http:
            server_side(children[2].output(), http)
        await delete_namespace(settings)
        await drop_pg_schema(settings)
    print()
    print(f"command round trip (register/halt alternating), median of {runs}; "
          "latency in ms; 'not 2xx' = 202 (no reply in time), errors, refusals")
    rows = summarise("HTTP", http) + summarise("bus", bus)
    print(table(["path", "rate/s", "achieved/s", "p50", "p95", "p99", "max",
                 "API-side p50/p99", "not 2xx"], rows))
    print("API-side = the API's own request time from its log (X-Request-ID); the rest of "
          "the HTTP figure is uvicorn before/after the app, the loopback and the client")
    refused = sum(int(row[-1]) for row in rows)
    if refused:
        print(f"WARNING: {refused} requests were not answered 2xx (see the statuses above): "
              "the latencies include them, so these figures are not the service's")
    hop_rows = []
    for rate, rs in http.items():
        for i, r in enumerate(rs):
            if "hops" in r:
                hop_rows.append([f"{rate:.0f}", str(i + 1), str(len(r["hops"]["in"]))] + [
                    f"{percentile(v, 50):.1f} / {percentile(v, 99):.1f}"
                    for v in r["hops"].values()] + [
                    f"{r.get('srv_p50', float('nan')):.1f} / {r.get('srv_p99', float('nan')):.1f}",
                    r["load"]])
    if hop_rows:
        print()
        print("where the HTTP latency goes, p50 / p99 ms per hop (see the module docstring)")
        print(table(["rate/s", "run", "n", "in", "decider", "commit", "out", "API-side",
                     "load"], hop_rows))
    print()
    print("CPU ms per completed request, by process (median of runs; client = this process, "
          "with the tap consumer unless --no-tap; '<process> runq-wait': ms its threads waited "
          "for a CPU while runnable, the machine's load)")
    crow = []
    for label, results in (("HTTP", http), ("bus", bus)):
        for rate, rs in results.items():
            keys = [k for k in rs[0]["cpu_ms"] if "runq" not in k]
            waits = [k for k in rs[0]["cpu_ms"] if "runq" in k]
            crow.append([label, f"{rate:.0f}"] + [f"{median([r['cpu_ms'][k] for r in rs]):.2f}"
                                                  for k in keys]
                        + [f"{median([sum(r['cpu_ms'][k] for k in keys) for r in rs]):.2f}",
                           f"{100 * median([r['busy'] for r in rs]):.0f}"]
                        + [f"{median([r['cpu_ms'][k] for r in rs]):.2f}" for k in waits])
    if crow:
        first = next(iter(http.values()))[0]["cpu_ms"]
        print("'all' = every process above, the bench client included; 'busy %' = the whole "
              f"machine's CPUs ({os.cpu_count()}) over the run, anything else running included")
        print(table(["path", "rate/s", *[k for k in first if "runq" not in k], "all", "busy %",
                     *[k for k in first if "runq" in k]], crow))
    return {"http": http, "bus": bus}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=20, help="per rate, HTTP")
    parser.add_argument("--bus-seconds", type=float, default=10,
                        help="per rate through CommandBus.send (0 = skip)")
    parser.add_argument("--runs", type=int, default=1, help="repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=200, help="requests before each rate")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy (raw folded stacks) of each service during each HTTP rate")
    parser.add_argument("--code", metavar="DIR",
                        help="run the services from this tree of the code (e.g. `git archive` "
                             "of the base commit), for before/after runs alternating")
    parser.add_argument("--no-tap", action="store_true",
                        help="no tap consumer (no hop split; the client's CPU alone)")
    args = parser.parse_args(argv)
    spy_bin = Path(sys.executable).parent / "py-spy"
    if args.profile and not spy_bin.exists():
        raise SystemExit(f"--profile needs py-spy at {spy_bin} (see the docstring)")
    print(f"load average at start: {load_average()}", flush=True)
    asyncio.run(run(args.rates, args.seconds, args.runs, args.bus_seconds, args.warmup,
                    use_tap=not args.no_tap, profile=args.profile, code=args.code))
    print(f"load average at end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
