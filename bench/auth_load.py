"""Login and authenticated-read latency under 200 concurrent clients on loopback.

Starts, in a fresh namespace, the user decider, the users projection and the core API as
child processes (`python -m propstream run …`, on a free port), registers --users users
over HTTP, then runs two closed-loop phases with --clients concurrent clients (one
keep-alive connection each): (a) POST /auth/login, --logins requests in all; (b) GET /me
with each client's own access token, for --seconds. Latency runs from issuing a request to
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
import redis.asyncio as redis

from bench.command_round_trip import Child, until
from bench.common import (
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
UNLIMITED = {"PROPSTREAM_LOGIN_RATE_PER_S": "100000", "PROPSTREAM_LOGIN_BURST": "1000000",
             "PROPSTREAM_REGISTER_RATE_PER_S": "100000", "PROPSTREAM_REGISTER_BURST": "1000000",
             "PROPSTREAM_RATE_LIMIT_PER_S": "100000", "PROPSTREAM_RATE_LIMIT_BURST": "1000000"}


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
            except httpx.HTTPError:
                statuses[0] += 1  # counted as status 0, not timed
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
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await until(ready, 90, "the API's /readyz")
            hash_ms = await asyncio.to_thread(argon2_ms)
            emails = [f"bench{i:05d}@example.com" for i in range(users)]
            pending = iter(emails)
            register = await _phase(api, closed_loop(min(clients, 20), lambda i: _register(
                client, next(pending)), total=users))
            if register["statuses"].get(201, 0) != users:
                raise RuntimeError(f"registration failed: {register['statuses']}")
            tokens: dict[int, str] = {}
            login = await _phase(api, closed_loop(
                clients, lambda i: _login(client, emails, i, tokens), total=logins))
        # A fresh pool per phase: connections left idle past the server's keep-alive timeout
        # at the end of the login phase would be closed under the next request.
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
            me = await _phase(api, closed_loop(
                clients, lambda i: _me(client, tokens[i % len(tokens)]), seconds=seconds))
    finally:
        for child in children:
            child.stop()
        await delete_namespace(settings)
        await drop_pg_schema(settings)
        cache = redis.Redis.from_url(settings.cache_url)
        keys = [k async for k in cache.scan_iter(match=f"{settings.namespace}:*")]
        if keys:
            await cache.delete(*keys)
        await cache.aclose()
    return {"hash_ms": hash_ms, "register": register, "login": login, "me": me}


async def _phase(api: Child, phase: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run a phase; add the API process's CPU milliseconds per answered request."""
    before = api.cpu_seconds()
    result = await phase
    result["api_cpu_ms"] = (api.cpu_seconds() - before) * 1000 / max(1, result["n"])
    return result


async def _register(client: httpx.AsyncClient, email: str) -> int:
    resp = await client.post("/auth/register", json={"email": email, "password": PASSWORD,
                                                     "display_name": "Bench"})
    return resp.status_code


async def _login(client: httpx.AsyncClient, emails: list[str], i: int,
                 tokens: dict[int, str]) -> int:
    resp = await client.post("/auth/login", json={"email": emails[i % len(emails)],
                                                  "password": PASSWORD})
    if resp.status_code == 200:
        tokens[i] = resp.json()["access_token"]
    return resp.status_code


async def _me(client: httpx.AsyncClient, token: str) -> int:
    resp = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    return resp.status_code


def report(result: dict[str, Any], clients: int) -> str:
    rows = []
    for name, key in (("register (20 clients)", "register"),
                      (f"login ({clients} clients)", "login"),
                      (f"GET /me ({clients} clients)", "me")):
        r = result[key]
        rows.append([name, r["n"], f"{r['req_s']:,.1f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                     f"{r['max']:.1f}", f"{r['api_cpu_ms']:.1f}", r["statuses"]])
    head = (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}; argon2id "
            f"{result['hash_ms']:.1f} ms per hash (median of 10, this process)\n"
            "login and register rate limits raised for the run (settings env): this "
            "measures the service, not the limiter\n")
    return head + table(["phase", "requests", "req/s", "p50 ms", "p99 ms", "max ms",
                         "API CPU ms/req", "statuses"], rows)


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
