"""WebSocket gateway: deliveries/s and tick -> frame latency at 1,000 clients x 50 instruments.

The gateway (`propstream run ws-gateway`) runs pinned to core 0; the load generator (1,000
binary clients, each subscribed to the same 50 `market:` channels) is a separate process
pinned to core 1; this process publishes ticks into a fresh namespace's market.ticks at a
steady rate. A delivery is one tick reaching one client (frames bundle ticks). Latency is
the tick's publish time (its venue and receive time are set then) to the client reading the
frame, sampled on the frame's first (oldest) tick.

The load generator is `--load go` by default: bench/wsload, a Go program (standard library
only) doing what `clients_main` does, and checking every frame's CRC (`bad frames`). It is
built into .cache/bin/wsload when that is missing or older than its source (`go` on PATH;
without it the bench says so and falls back to python), and runs with GOMAXPROCS=1, so that
the Go runtime stays on the one core it is pinned to (2 measured no better). `--load python`
is the uvloop client below (`_RawClient`). Measured on the 2-core dev VM, both cost 10-17 us
of CPU a frame (Go 10-13, Python 12-17: mostly the kernel's loopback read and wakeup), neither
saturates its core at the default rates; `load gen. CPU` shows how busy it was. The latency
at 1,000 clients is mostly the server's fan-out: one socket write per client, ~7 us each on
this loopback even for a bare uvloop loop, so the median client waits half of ~8-17 ms.

Beside it, a bare broadcast loop of the same library (`websockets.broadcast` of a frame of
the same layout, the ticks made in the server itself: no Kafka, no Redis, no routing),
pinned the same way, gives the ratio of our overhead.

A last pair of runs measures backpressure: --slow-clients reading clients (100) at
--slow-rate ticks/s (2,000, round 0), without and then beside --stalled clients (1) that
subscribe to every channel and never read; the stalled ones should be closed 4408 and the
others' latency stay where it was.

Run: flock /tmp/bench.lock python -m bench.ws_gateway [--clients 1000] [--rate 5000]
     [--latency-rate 10] [--seconds 10] [--round-ms 20] [--load go|python]
     [--stalled 1] [--slow-clients 100] [--slow-rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    percentile,
    spec_of,
    table,
)

INSTRUMENTS = [f"B{i:02d}-USD" for i in range(50)]
ROOT = Path(__file__).resolve().parent.parent
WSLOAD_SRC = ROOT / "bench" / "wsload"
WSLOAD_BIN = ROOT / ".cache" / "bin" / "wsload"


# -- the load generator (its own process) ------------------------------------------------------


class _RawClient(asyncio.Protocol):
    """A WebSocket client reduced to what the bench needs: it counts the ticks of binary
    frames by their header and samples the first tick's time, without the library's
    per-message work (a Python client per message would be the bottleneck, not the server)."""

    def __init__(self, stats: _Stats, sample: bool, want_texts: int) -> None:
        self.stats, self.sample, self.want_texts = stats, sample, want_texts
        self.buf = bytearray()
        self.open = False
        self.texts = 0
        self.ticks = 0
        self.replied = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(_masked(0x1, text.encode()))

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            assert buf.startswith(b"HTTP/1.1 101"), bytes(buf[:200])
            del buf[:end + 4]
            self.open = True
        pos = 0
        size_all = len(buf)
        while size_all - pos >= 2:
            size, head = buf[pos + 1] & 0x7F, 2
            if size == 126:
                if size_all - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif size == 127:
                if size_all - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if size_all - pos < head + size:
                break
            opcode, body = buf[pos] & 0x0F, pos + head
            if opcode == 0x2:
                if self.stats.measuring:
                    self.ticks += int.from_bytes(buf[body + 4:body + 6], "little")
                    self.stats.frames += 1
                    if self.sample:
                        ts = int.from_bytes(buf[body + 20:body + 28], "little", signed=True)
                        self.stats.latency_ms.append((now - ts) / 1e6)
            elif opcode == 0x1:
                self.texts += 1
                if self.texts >= self.want_texts and not self.replied.done():
                    self.replied.set_result(None)
            elif opcode == 0x9 and self.transport is not None:  # ping: pong
                self.transport.write(_masked(0xA, bytes(buf[body:body + size])))
            pos = body + size
        del buf[:pos]


class _Stats:
    def __init__(self) -> None:
        self.measuring = False
        self.frames = 0
        self.latency_ms: list[float] = []


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    head = (bytes((0x80 | opcode, 0x80 | size)) if size < 126
            else bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def clients_main(url: str, n: int, seconds: float, ready: Path, out: Path,
                       token: str) -> None:
    import base64
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    stats = _Stats()
    loop = asyncio.get_running_loop()
    conns: list[_RawClient] = []

    async def connect_one(i: int) -> _RawClient:
        _, client = await loop.create_connection(
            lambda: _RawClient(stats, i % 10 == 0, 1 + 2 * len(INSTRUMENTS)), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        assert client.transport is not None
        client.transport.write(
            (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
        for symbol in INSTRUMENTS:
            client.send_text(json.dumps({"type": "subscribe", "channel": f"market:{symbol}"}))
        await asyncio.wait_for(client.replied, 60)  # welcome, then subscribed + snapshot each
        return client

    for start in range(0, n, 50):
        conns.extend(await asyncio.gather(*(connect_one(start + i)
                                            for i in range(min(50, n - start)))))
    await asyncio.to_thread(ready.write_text, "ready")
    await asyncio.sleep(2.0)  # warm-up: rounds settle
    stats.measuring = True
    began = time.monotonic()
    await asyncio.sleep(seconds)
    stats.measuring = False
    took = time.monotonic() - began
    counts = [c.ticks for c in conns]
    result = json.dumps({"deliveries": sum(counts), "frames": stats.frames, "seconds": took,
                         "latency_ms": stats.latency_ms, "min_client": min(counts),
                         "max_client": max(counts)})
    await asyncio.to_thread(out.write_text, result)
    for c in conns:
        if c.transport is not None:
            c.transport.abort()


# -- the bare broadcast loop (its own process) -------------------------------------------------


async def bare_main(port: int, rate: float, round_ms: int) -> None:
    import websockets
    from websockets.asyncio.server import broadcast, serve

    from ws_gateway.domain.frames import TickEntry, encode_frame

    clients: set[Any] = set()

    async def handler(ws: Any) -> None:
        clients.add(ws)
        await ws.send('{"type":"welcome"}')
        try:
            async for msg in ws:
                if '"subscribe"' in msg:
                    await ws.send('{"type":"subscribed"}')
                    await ws.send('{"type":"snapshot"}')
        except websockets.ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=16):
        seq = 0
        owed = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(round_ms / 1000)
            now = time.monotonic()
            owed += (now - last) * rate
            last = now
            k = int(owed)
            owed -= k
            if not k or not clients:
                continue
            ts = time.time_ns()
            entries = [TickEntry("market:X", i % 50, 1, seq + i, ts, 100.0, 1.0)
                       for i in range(k)]
            seq += k
            broadcast(clients, encode_frame(entries))


# -- the driver ---------------------------------------------------------------------------------


def _tick_to_send(port: int) -> tuple[float, float]:
    """The gateway's own tick -> written histogram (receive time to the end of the round's
    writes), as bucket upper bounds in ms at p50 and p99."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("propstream_ws_tick_to_send_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0

    def at(q: float) -> float:
        for le, count in buckets:
            if total and count >= q * total:
                return le * 1000
        return float("nan")

    return at(0.5), at(0.99)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_command(load: str) -> tuple[str, list[str]]:
    """(the load generator used, its argv before the clients' flags): the Go one, built first
    when its binary is missing or older than its source; python when asked or when `go` is
    not on PATH."""
    if load == "python":
        return "python", [sys.executable, "-m", "bench.ws_gateway", "clients"]
    sources = [f for f in WSLOAD_SRC.iterdir()
               if (f.suffix == ".go" and not f.name.endswith("_test.go")) or f.name == "go.mod"]
    newest = max(f.stat().st_mtime for f in sources)
    if not WSLOAD_BIN.exists() or WSLOAD_BIN.stat().st_mtime < newest:
        go = shutil.which("go")
        if go is None:
            print("NOTE: `go` is not on PATH, so the Go load generator (bench/wsload) cannot be"
                  " built; falling back to --load python (the uvloop client, no CRC check)",
                  file=sys.stderr)
            return "python", [sys.executable, "-m", "bench.ws_gateway", "clients"]
        why = "missing" if not WSLOAD_BIN.exists() else "older than its source"
        print(f"building {WSLOAD_BIN.relative_to(ROOT)} ({why}): go build -C bench/wsload -o "
              f"{WSLOAD_BIN} .", file=sys.stderr)
        WSLOAD_BIN.parent.mkdir(parents=True, exist_ok=True)
        # -C: the module is bench/wsload's own (go.mod there, none at the root).
        subprocess.run([go, "build", "-C", str(WSLOAD_SRC), "-o", str(WSLOAD_BIN), "."],
                       check=True)
    return "go", [str(WSLOAD_BIN)]


def _spawn(argv: list[str], core: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", str(core), *argv], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def _wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            line = await reader.readline()
            writer.close()
            if b" 200 " in line or b" 426 " in line or b" 404 " in line:
                return
        except OSError:
            pass
        await asyncio.sleep(0.3)
    raise TimeoutError(f"nothing ready on port {port}")


async def _publish(settings: Any, rate: float, stop: asyncio.Event) -> int:
    from kernel.kafka import make_producer, send_many
    from market_data.adapters.publisher import encode_batch
    from market_data.domain.ticks import Tick

    producer = make_producer(settings, client_id="bench-ws")
    await producer.start()
    topic = settings.topic("market.ticks")
    sent, seq, owed = 0, 0, 0.0
    last = time.monotonic()
    try:
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            owed += (now - last) * rate
            last = now
            k = int(owed)
            owed -= k
            if not k:
                continue
            per = [k // len(INSTRUMENTS) + (1 if i < k % len(INSTRUMENTS) else 0)
                   for i in range(len(INSTRUMENTS))]
            ts = time.time_ns()
            seq += 1
            records = []
            for symbol, count in zip(INSTRUMENTS, per, strict=True):
                if not count:
                    continue
                ticks = [Tick(instrument=symbol, venue="simulator", price=100.0 + j, size=1.0,
                              venue_ts_ns=ts, received_ts_ns=ts) for j in range(count)]
                records.append((symbol.encode(), encode_batch(
                    symbol, "simulator", ticks, sequence=seq, occurred_at=datetime.now(UTC))))
                sent += count
            # the platform's publisher path (market_data.adapters.publisher): whole batches,
            # closed at once (no linger), acknowledged before the next round
            await send_many(producer, topic, records)
    finally:
        await producer.stop()
    return sent


async def run_case(*, name: str, server: list[str], port: int, env: dict[str, str],
                   settings: Any, clients: int, rate: float, seconds: float, token: str,
                   via_kafka: bool, workdir: Path, load_cmd: list[str],
                   stalled: int = 0) -> dict[str, Any]:
    from tests.support.ws import close_code_of, never_reading_client

    proc = _spawn(server, 0, env, workdir / f"{name}-server.log")
    load: subprocess.Popen[bytes] | None = None
    slow: list[Any] = []
    try:
        await _wait_ready(port)
        for _ in range(stalled):  # subscribed to every channel, never reading
            slow.append(await asyncio.to_thread(
                never_reading_client, port, {"Authorization": f"Bearer {token}"},
                *(f"market:{symbol}" for symbol in INSTRUMENTS)))
        ready, out = workdir / f"{name}.ready", workdir / f"{name}.json"
        fmt = "?format=binary"
        load = _spawn([*load_cmd,
                       "--url", f"ws://127.0.0.1:{port}/ws{fmt}", "--clients", str(clients),
                       "--seconds", str(seconds), "--ready", str(ready), "--out", str(out),
                       "--token", token], 1, env | {"GOMAXPROCS": "1"},
                      workdir / f"{name}-clients.log")
        while not ready.exists():
            if load.poll() is not None:
                raise RuntimeError((workdir / f"{name}-clients.log").read_text()[-2000:])
            await asyncio.sleep(0.2)
        stop = asyncio.Event()
        publisher = asyncio.create_task(_publish(settings, rate, stop)) if via_kafka else None
        await asyncio.sleep(2.0)  # the clients' warm-up
        cpu0, load0, t0 = _cpu_s(proc.pid), _cpu_s(load.pid), time.monotonic()
        await asyncio.sleep(seconds)  # the clients' measured window
        cpu1, load1, t1 = _cpu_s(proc.pid), _cpu_s(load.pid), time.monotonic()
        await asyncio.to_thread(load.wait)
        stop.set()
        if publisher is not None:
            await publisher
        data: dict[str, Any] = json.loads(out.read_text())
        data["server_cpu"] = (cpu1 - cpu0) / (t1 - t0)
        data["load_cpu"] = (load1 - load0) / (t1 - t0)  # far from 100 %: not the limit
        metrics_port = env.get("PROPSTREAM_METRICS_PORT")
        if via_kafka and metrics_port:
            data["tick_to_send"] = await asyncio.to_thread(_tick_to_send, int(metrics_port))
        data["stalled_closes"] = [await asyncio.to_thread(close_code_of, sock, 5)
                                  for sock in slow]
        return data
    finally:
        for sock in slow:
            sock.close()
        for p in (load, proc):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def _row(name: str, rate: float, result: dict[str, Any]) -> list[object]:
    lat = sorted(result["latency_ms"])
    per_s = result["deliveries"] / result["seconds"]
    return [name, f"{rate:,.0f}", f"{per_s:,.0f}",
            f"{result['frames'] / result['seconds']:,.0f}",
            f"{percentile(lat, 50):.1f}", f"{percentile(lat, 99):.1f}",
            f"{result['min_client']:,}/{result['max_client']:,}",
            f"{100 * result['server_cpu']:.0f} %", f"{100 * result['load_cpu']:.0f} %",
            "≤{:.1f} / ≤{:.1f}".format(*result["tick_to_send"]) if "tick_to_send" in result
            else "—",
            f"{result['bad_frames']:,}" if "bad_frames" in result else "—"]


async def main_async(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from kernel.tokens import AccessTokens
    from schemas.ws import CHANNELS
    from tests.conftest import process_env

    settings = fresh_namespace(base_settings(), "bws")
    names = {family.topic for family in CHANNELS.values()}
    await create_topics(settings, [spec_of(n) for n in sorted(names)])
    token = AccessTokens(secret=settings.secret_key, ttl=timedelta(hours=1)).issue(
        subject=str(uuid.uuid4()), role="trader", now=datetime.now(UTC), jti=uuid.uuid4())
    port = 18000 + os.getpid() % 1000
    env = process_env(settings) | {"PROPSTREAM_WS_PORT": str(port), "PROPSTREAM_LOG_LEVEL":
                                   "WARNING", "PROPSTREAM_WS_WRITE_HIGH_BYTES": str(1 << 20),
                                   # 1,000 clients of one user from one address
                                   "PROPSTREAM_WS_MAX_CONNECTIONS_PER_IP": "0",
                                   "PROPSTREAM_WS_MAX_CONNECTIONS_PER_USER": "0",
                                   "PROPSTREAM_METRICS_PORT": str(port + 1)}
    gateway = [sys.executable, "-m", "propstream", "run", "ws-gateway"]
    bare = [sys.executable, "-m", "bench.ws_gateway", "bare", "--port", str(port)]
    load, load_cmd = _load_command(args.load)
    rows: list[list[object]] = []
    slow_rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        work = Path(tmp)
        try:
            cases = [("throughput", args.rate, args.round_ms), ("latency", args.latency_rate, 0)]
            for case, rate, round_ms in cases:
                result = await run_case(
                    name=f"gw-{case}", server=gateway, port=port, settings=settings,
                    env=env | {"PROPSTREAM_WS_ROUND_MS": str(round_ms)}, clients=args.clients,
                    rate=rate, seconds=args.seconds, token=token, via_kafka=True, workdir=work,
                    load_cmd=load_cmd)
                rows.append(_row(f"gateway, {case} (round {round_ms} ms)", rate, result))
                result = await run_case(
                    name=f"bare-{case}", server=[*bare, "--rate", str(rate), "--round-ms",
                                                 str(max(round_ms, 2))],
                    port=port, settings=settings, env=env, clients=args.clients, rate=rate,
                    seconds=args.seconds, token="", via_kafka=False, workdir=work,
                    load_cmd=load_cmd)
                rows.append(_row(f"bare websockets.broadcast, {case}", rate, result))
            if args.stalled:
                # 100 clients beside never-reading ones, against the same without them
                slow_env = env | {"PROPSTREAM_WS_ROUND_MS": "0",
                                  "PROPSTREAM_WS_WRITE_HIGH_BYTES": str(64 * 1024),
                                  "PROPSTREAM_WS_SLOW_CLOSE_S": "2"}
                for stalled in (0, args.stalled):
                    result = await run_case(
                        name=f"gw-stalled-{stalled}", server=gateway, port=port,
                        settings=settings, env=slow_env, clients=args.slow_clients,
                        rate=args.slow_rate, seconds=args.seconds, token=token,
                        via_kafka=True, workdir=work, load_cmd=load_cmd, stalled=stalled)
                    closes = result["stalled_closes"]
                    slow_rows.append(_row(
                        f"gateway, {args.slow_clients} clients + {stalled} never reading "
                        f"(closed: {', '.join(map(str, closes)) or '—'})",
                        args.slow_rate, result))
        finally:
            await delete_namespace(settings)
            from tests.integration.helpers import drop_redis_namespace

            await drop_redis_namespace(settings)  # histories, watch lists, instrument ids
    print(f"{args.clients} binary clients x {len(INSTRUMENTS)} instruments, server on one core,"
          f" {args.seconds:.0f} s measured, load generator: {load}"
          + (" (bench/wsload, GOMAXPROCS=1)" if load == "go" else " (uvloop _RawClient)"))
    header = ["case", "ticks/s offered", "deliveries/s", "frames/s", "p50 ms", "p99 ms",
              "ticks per client min/max", "server CPU", "load gen. CPU",
              "in-gateway tick->written p50/p99 ms", "bad frames"]
    print(table(header, rows))
    if slow_rows:
        print(f"\nslow clients (round 0, write-high 64 KiB, closed 4408 after 2 s slow): the "
              f"{args.slow_clients} reading clients' latency with and without them")
        print(table(header, slow_rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("clients")
    c.add_argument("--url", required=True)
    c.add_argument("--clients", type=int, required=True)
    c.add_argument("--seconds", type=float, required=True)
    c.add_argument("--ready", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--token", default="")
    b = sub.add_parser("bare")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--rate", type=float, required=True)
    b.add_argument("--round-ms", type=int, default=2)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000, help="ticks/s, throughput case")
    parser.add_argument("--latency-rate", type=float, default=10, help="ticks/s, latency case")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--stalled", type=int, default=1,
                        help="never-reading clients of the slow-client case (0: skip it)")
    parser.add_argument("--slow-clients", type=int, default=100,
                        help="reading clients beside them")
    parser.add_argument("--slow-rate", type=float, default=2000,
                        help="ticks/s of the slow-client case")
    parser.add_argument("--round-ms", type=int, default=20,
                        help="PROPSTREAM_WS_ROUND_MS of the throughput case")
    parser.add_argument("--load", choices=("go", "python"), default="go",
                        help="the load generator: bench/wsload (Go) or the uvloop client")
    args = parser.parse_args(argv)
    import uvloop

    if args.cmd == "clients":
        uvloop.run(clients_main(args.url, args.clients, args.seconds, args.ready, args.out,
                                args.token))
    elif args.cmd == "bare":
        uvloop.run(bare_main(args.port, args.rate, args.round_ms))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
