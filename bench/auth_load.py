"""Login and authenticated-read latency under 200 concurrent clients on loopback.

Starts, in a fresh namespace, the user decider, the users projection and the core API as
child processes (`python -m propstream run …`, on a free port), registers --users users
over HTTP, then runs two closed-loop phases with --clients concurrent clients (one
keep-alive HTTP/1.1 connection each, on plain asyncio streams: see `Connection`):
(a) POST /auth/login, --logins requests in all; (b) GET /me with each client's own access
token, for --seconds; (c) GET /users?limit=100 as an admin (registered through the CLI's
path), with up to 20 clients, for --seconds / 2: the admin's page, whose email and display
name are opened per user (decision 0004). Latency runs from issuing a request to
its answer; req/s is answers over the phase's wall time. The argon2id cost of one hash is
measured in this process in the same run, for scale: a login is one verification.

The login and register rate limits are raised for the run through the settings' variables
(PROPSTREAM_LOGIN_RATE_PER_S and friends), so this measures the service, not the limiter.
The clients share the machine with the service: on 2 cores they take CPU from it.

Run: python -m bench.auth_load [--users 200] [--clients 200] [--logins 600] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as redis

from bench.command_round_trip import Child, until
from bench.common import (
    UNLIMITED,
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    percentile,
    table,
)
from core.domain.passwords import Passwords
from schemas.topics import CATALOGUE

PASSWORD = "bench password 12345"


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams, for the load only.

    httpx spent ~11 ms of client CPU per request at 200 connections here, more than the API
    spent answering, so the client and not the service set the figure. This reads just what
    uvicorn sends: a status line, headers with Content-Length, the body.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, *, body: Any = None,
                      token: str | None = None) -> tuple[int, bytes]:
        payload = orjson.dumps(body) if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}",
                f"Content-Length: {len(payload)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token is not None:
            head.append(f"Authorization: Bearer {token}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        for attempt in (1, 2):  # the server may have closed an idle connection
            try:
                return await self._exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def argon2_ms(runs: int = 10) -> float:
    """Median milliseconds of one argon2id hash with the platform's parameters."""
    passwords = Passwords()
    passwords.hash(PASSWORD)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        passwords.hash(PASSWORD)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def summary(latencies: list[float], took: float, statuses: collections.Counter[int]
            ) -> dict[str, Any]:
    latencies.sort()
    return {"n": len(latencies), "req_s": len(latencies) / took,
            "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else float("nan"), "statuses": dict(statuses)}


async def closed_loop(clients: int, one: Any, *, total: int | None = None,
                      seconds: float | None = None) -> dict[str, Any]:
    """`clients` workers each calling `one(worker)` back to back until the budget is spent."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    left = [total if total is not None else 1 << 62]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds if seconds is not None else float("inf")

    async def worker(i: int) -> None:
        while left[0] > 0 and loop.time() < deadline:
            left[0] -= 1
            started = time.perf_counter()
            try:
                status = await one(i)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                statuses[0] += 1  # a broken exchange: counted as status 0, not timed
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1

    started = loop.time()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    return summary(latencies, loop.time() - started, statuses)


async def run(users: int, clients: int, logins: int, seconds: float) -> dict[str, Any]:
    settings = fresh_namespace(base_settings(), "ba").model_copy(update={
        "api_port": free_port(), "command_timeout_ms": 30000})
    await create_topics(settings, CATALOGUE)
    os.environ.update(UNLIMITED)
    log_dir = Path(tempfile.mkdtemp(prefix="auth-load-"))
    api = Child(settings, log_dir, "api")
    children = [Child(settings, log_dir, "decider", "user"),
                Child(settings, log_dir, "projection", "users"), api]
    base = f"http://{settings.host}:{settings.api_port}"
    conns = [Connection(settings.host, settings.api_port) for _ in range(clients)]
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
            async def ready() -> bool:
                try:
                    return (await probe.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(ready, 90, "the API's /readyz")
        hash_ms = await asyncio.to_thread(argon2_ms)
        emails = [f"bench{i:05d}@example.com" for i in range(users)]
        pending = iter(emails)
        register = await _phase(api, closed_loop(min(clients, 20), lambda i: _register(
            conns[i], next(pending)), total=users))
        if register["statuses"].get(201, 0) != users:
            raise RuntimeError(f"registration failed: {register['statuses']}")
        tokens: dict[int, str] = {}
        login = await _phase(api, closed_loop(
            clients, lambda i: _login(conns[i], emails, i, tokens), total=logins))
        me = await _phase(api, closed_loop(
            clients, lambda i: _me(conns[i], tokens[i % len(tokens)]), seconds=seconds))
        admin = await _admin_token(settings, conns[0])
        page = await _phase(api, closed_loop(
            min(clients, 20), lambda i: _users_page(conns[i], admin), seconds=seconds / 2))
    finally:
        for conn in conns:
            conn.close()
        for child in children:
            child.stop()
        await delete_namespace(settings)
        await drop_pg_schema(settings)
        cache = redis.Redis.from_url(settings.cache_url)
        keys = [k async for k in cache.scan_iter(match=f"{settings.namespace}:*")]
        if keys:
            await cache.delete(*keys)
        await cache.aclose()
    return {"hash_ms": hash_ms, "register": register, "login": login, "me": me,
            "users_page": page}


async def _phase(api: Child, phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run a phase; add the API's and this client's CPU milliseconds per answered request."""
    before, client_before = api.cpu_seconds(), time.process_time()
    result = await phase
    n = max(1, result["n"])
    result["api_cpu_ms"] = (api.cpu_seconds() - before) * 1000 / n
    result["client_cpu_ms"] = (time.process_time() - client_before) * 1000 / n
    return result


async def _register(conn: Connection, email: str) -> int:
    status, _ = await conn.request("POST", "/auth/register", body={
        "email": email, "password": PASSWORD, "display_name": "Bench"})
    return status


async def _login(conn: Connection, emails: list[str], i: int, tokens: dict[int, str]) -> int:
    status, body = await conn.request("POST", "/auth/login", body={
        "email": emails[i % len(emails)], "password": PASSWORD})
    if status == 200:
        tokens[i] = orjson.loads(body)["access_token"]
    return status


async def _admin_token(settings: Any, conn: Connection) -> str:
    from core.bootstrap import register_user

    email = "bench-admin@example.com"
    await register_user(settings, email=email, password=PASSWORD, display_name="Bench admin",
                        role="admin")
    for _ in range(100):
        status, body = await conn.request("POST", "/auth/login", body={
            "email": email, "password": PASSWORD})
        if status == 200:
            return str(orjson.loads(body)["access_token"])
        await asyncio.sleep(0.2)
    raise RuntimeError("the bench admin cannot log in")


async def _users_page(conn: Connection, token: str) -> int:
    status, _ = await conn.request("GET", "/users?limit=100", token=token)
    return status


async def _me(conn: Connection, token: str) -> int:
    status, _ = await conn.request("GET", "/me", token=token)
    return status


def report(result: dict[str, Any], clients: int) -> str:
    rows = []
    for name, key in (("register (20 clients)", "register"),
                      (f"login ({clients} clients)", "login"),
                      (f"GET /me ({clients} clients)", "me"),
                      (f"GET /users?limit=100 ({min(clients, 20)} clients)", "users_page")):
        r = result[key]
        rows.append([name, r["n"], f"{r['req_s']:,.1f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                     f"{r['max']:.1f}", f"{r['api_cpu_ms']:.2f}", f"{r['client_cpu_ms']:.1f}",
                     r["statuses"]])
    head = (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}; argon2id "
            f"{result['hash_ms']:.1f} ms per hash (median of 10, this process)\n"
            "login and register rate limits raised for the run (settings env): this "
            "measures the service, not the limiter\n")
    return head + table(["phase", "requests", "req/s", "p50 ms", "p99 ms", "max ms",
                         "API CPU ms/req", "client CPU ms/req", "statuses"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--logins", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.users, args.clients, args.logins, args.seconds))
    print(report(result, args.clients))


if __name__ == "__main__":
    main()
