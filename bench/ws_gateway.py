"""WebSocket gateway: deliveries/s and tick -> frame latency at 1,000 clients x 50 instruments.

The gateway (`propstream run ws-gateway`) runs pinned to core 0; the load generator (1,000
binary clients, each subscribed to the same 50 `market:` channels) is a separate process
pinned to core 1; this process publishes ticks into a fresh namespace's market.ticks at a
steady rate. A delivery is one tick reaching one client (frames bundle ticks). Latency is
the tick's publish time (its venue and receive time are set then) to the client reading the
frame, sampled on the frame's first (oldest) tick.

Beside it, a bare broadcast loop of the same library (`websockets.broadcast` of a frame of
the same layout, the ticks made in the server itself: no Kafka, no Redis, no routing),
pinned the same way, gives the ratio of our overhead.

Run: flock /tmp/bench.lock python -m bench.ws_gateway [--clients 1000] [--rate 5000]
     [--latency-rate 50] [--seconds 10] [--round-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


# -- the load generator (its own process) ------------------------------------------------------


async def clients_main(url: str, n: int, seconds: float, ready: Path, out: Path,
                       token: str) -> None:
    import websockets

    conns: list[Any] = []

    async def connect_one() -> Any:
        ws = await websockets.connect(url, additional_headers={
            "Authorization": f"Bearer {token}"} if token else None, max_queue=None,
            open_timeout=60, ping_interval=None)
        await ws.recv()  # welcome
        for symbol in INSTRUMENTS:
            await ws.send(json.dumps({"type": "subscribe", "channel": f"market:{symbol}"}))
        replies = 0
        while replies < 2 * len(INSTRUMENTS):  # subscribed + snapshot each
            if isinstance(await ws.recv(), str):
                replies += 1
        return ws

    for start in range(0, n, 50):
        conns.extend(await asyncio.gather(*(connect_one() for _ in range(min(50, n - start)))))
    counts = [0] * n
    frames = [0] * n
    lat: list[float] = []
    measuring = False

    async def read(i: int, ws: Any) -> None:
        sample = i % 10 == 0
        async for msg in ws:
            if isinstance(msg, bytes) and measuring:
                counts[i] += int.from_bytes(msg[4:6], "little")
                frames[i] += 1
                if sample:
                    lat.append((time.time_ns() - int.from_bytes(msg[20:28], "little",
                                                                 signed=True)) / 1e6)

    tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(conns)]
    await asyncio.to_thread(ready.write_text, "ready")
    await asyncio.sleep(2.0)  # warm-up: rounds settle
    measuring = True
    began = time.monotonic()
    await asyncio.sleep(seconds)
    measuring = False
    took = time.monotonic() - began
    result = json.dumps({"deliveries": sum(counts), "frames": sum(frames), "seconds": took,
                         "latency_ms": lat, "min_client": min(counts),
                         "max_client": max(counts)})
    await asyncio.to_thread(out.write_text, result)
    for t in tasks:
        t.cancel()
    for ws in conns:
        ws.transport.abort()


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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    from kernel.kafka import make_producer
    from market_data.adapters.publisher import encode_batch
    from market_data.domain.ticks import Tick

    producer = make_producer(settings, client_id="bench-ws", linger_ms=1)
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
            for symbol, count in zip(INSTRUMENTS, per, strict=True):
                if not count:
                    continue
                ticks = [Tick(instrument=symbol, venue="simulator", price=100.0 + j, size=1.0,
                              venue_ts_ns=ts, received_ts_ns=ts) for j in range(count)]
                await producer.send(topic, key=symbol.encode(), value=encode_batch(
                    symbol, "simulator", ticks, sequence=seq, occurred_at=datetime.now(UTC)))
                sent += count
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def run_case(*, name: str, server: list[str], port: int, env: dict[str, str],
                   settings: Any, clients: int, rate: float, seconds: float, token: str,
                   via_kafka: bool, workdir: Path) -> dict[str, Any]:
    proc = _spawn(server, 0, env, workdir / f"{name}-server.log")
    load: subprocess.Popen[bytes] | None = None
    try:
        await _wait_ready(port)
        ready, out = workdir / f"{name}.ready", workdir / f"{name}.json"
        fmt = "?format=binary"
        load = _spawn([sys.executable, "-m", "bench.ws_gateway", "clients",
                       "--url", f"ws://127.0.0.1:{port}/ws{fmt}", "--clients", str(clients),
                       "--seconds", str(seconds), "--ready", str(ready), "--out", str(out),
                       "--token", token], 1, env, workdir / f"{name}-clients.log")
        while not ready.exists():
            if load.poll() is not None:
                raise RuntimeError((workdir / f"{name}-clients.log").read_text()[-2000:])
            await asyncio.sleep(0.2)
        stop = asyncio.Event()
        publisher = asyncio.create_task(_publish(settings, rate, stop)) if via_kafka else None
        await asyncio.sleep(2.0)  # the clients' warm-up
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(seconds)  # the clients' measured window
        cpu1, t1 = _cpu_s(proc.pid), time.monotonic()
        await asyncio.to_thread(load.wait)
        stop.set()
        if publisher is not None:
            await publisher
        data: dict[str, Any] = json.loads(out.read_text())
        data["server_cpu"] = (cpu1 - cpu0) / (t1 - t0)
        return data
    finally:
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
            f"{100 * result['server_cpu']:.0f} %"]


async def main_async(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from kernel.tokens import AccessTokens
    from schemas.topics import CATALOGUE
    from tests.conftest import process_env

    settings = fresh_namespace(base_settings(), "bws")
    names = {"market.ticks", "market.bars", "market.events",
             *(t for t in settings.ws_private_topics if t in {s.name for s in CATALOGUE})}
    await create_topics(settings, [spec_of(n) for n in sorted(names)])
    token = AccessTokens(secret=settings.secret_key, ttl=timedelta(hours=1)).issue(
        subject=str(uuid.uuid4()), role="trader", now=datetime.now(UTC), jti=uuid.uuid4())
    port = 18000 + os.getpid() % 1000
    env = process_env(settings) | {"PROPSTREAM_WS_PORT": str(port), "PROPSTREAM_LOG_LEVEL":
                                   "WARNING", "PROPSTREAM_WS_WRITE_HIGH_BYTES": str(1 << 20)}
    gateway = [sys.executable, "-m", "propstream", "run", "ws-gateway"]
    bare = [sys.executable, "-m", "bench.ws_gateway", "bare", "--port", str(port)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        work = Path(tmp)
        try:
            cases = [("throughput", args.rate, args.round_ms), ("latency", args.latency_rate, 0)]
            for case, rate, round_ms in cases:
                result = await run_case(
                    name=f"gw-{case}", server=gateway, port=port, settings=settings,
                    env=env | {"PROPSTREAM_WS_ROUND_MS": str(round_ms)}, clients=args.clients,
                    rate=rate, seconds=args.seconds, token=token, via_kafka=True, workdir=work)
                rows.append(_row(f"gateway, {case} (round {round_ms} ms)", rate, result))
                result = await run_case(
                    name=f"bare-{case}", server=[*bare, "--rate", str(rate), "--round-ms",
                                                 str(max(round_ms, 2))],
                    port=port, settings=settings, env=env, clients=args.clients, rate=rate,
                    seconds=args.seconds, token="", via_kafka=False, workdir=work)
                rows.append(_row(f"bare websockets.broadcast, {case}", rate, result))
        finally:
            await delete_namespace(settings)
            from tests.integration.helpers import drop_redis_namespace

            await drop_redis_namespace(settings)  # histories, watch lists, instrument ids
    print(f"{args.clients} binary clients x {len(INSTRUMENTS)} instruments, server on one core,"
          f" {args.seconds:.0f} s measured")
    print(table(["case", "ticks/s offered", "deliveries/s", "frames/s", "p50 ms", "p99 ms",
                 "ticks per client min/max", "server CPU"], rows))


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
    parser.add_argument("--round-ms", type=int, default=20,
                        help="PROPSTREAM_WS_ROUND_MS of the throughput case")
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
