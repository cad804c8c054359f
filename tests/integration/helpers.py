"""Helpers for integration tests: platform processes, reading topics, waiting."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as redis
from aiokafka import TopicPartition
from fastapi import FastAPI

from kernel.kafka import make_consumer, make_producer, partitions_of
from kernel.settings import Settings
from kernel.tokens import AccessTokens
from schemas.codec import decode_event, encode
from schemas.envelope import CommandEnvelope, EventEnvelope, make_command
from schemas.identity import Role
from schemas.instrument import InstrumentSpec, RegisterInstrument
from tests.conftest import process_env

PROBLEM_JSON = "application/problem+json"


@asynccontextmanager
async def asgi_client(app: FastAPI, *,
                      headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An app in-process (lifespan included) behind an httpx client, 500s answered not raised."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     headers=headers) as client:
            yield client


def bearer(settings: Settings, *, role: Role = "admin",
           user_id: str = "00000000-0000-4000-8000-00000000ad01") -> dict[str, str]:
    """An Authorization header with an access token signed by the settings' secret."""
    token = AccessTokens(secret=settings.secret_key).issue(
        subject=user_id, role=role, now=datetime.now(UTC), jti=uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}


async def drop_redis_namespace(settings: Settings) -> None:
    """Delete every Redis key of the test's namespace (the server is shared)."""
    cache = redis.Redis.from_url(settings.cache_url)
    try:
        keys = [k async for k in cache.scan_iter(match=f"{settings.namespace}:*")]
        if keys:
            await cache.delete(*keys)
    finally:
        await cache.aclose()


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and type, carrying its request id."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = resp.json()
    assert body["type"] == f"urn:propstream:problem:{slug}"
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


class PlatformProcess:
    """One `propstream run …` child in the test's namespace, output kept in a log file."""

    started = 0

    def __init__(self, settings: Settings, *argv: str, log_dir: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.extra_env = extra_env or {}
        self.argv = [sys.executable, "-m", "propstream", "run", *argv]
        PlatformProcess.started += 1
        self.log = log_dir / f"{'-'.join(argv)}-{PlatformProcess.started}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PlatformProcess:
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        env = {**process_env(self.settings), **self.extra_env}
        self.proc = subprocess.Popen(self.argv, env=env, stdout=out,
                                     stderr=subprocess.STDOUT)
        out.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def ready(self, marker: str = "", timeout: float = 60) -> PlatformProcess:
        """Wait until the process logged `marker` (by default: its start-up line)."""
        want = marker or ("partitions assigned" if "decider" in self.argv else "process started")

        async def logged() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv} exited: {self.output()[-2000:]}")
            return want in self.output()

        await wait_until(logged, timeout=timeout, what=f"{want!r} from {self.argv[4:]}")
        return self

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The process's JSON log lines whose `event` is `event`."""
        out = []
        for line in self.output().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                data = orjson.loads(line)
                if data.get("event") == event:
                    out.append(data)
        return out

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float,
                     what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


async def read_topic(settings: Settings, name: str, *, raw: bool = False) -> list[Any]:
    """Every record of a catalogue topic, in partition then offset order."""
    return (await read_topics(settings, [name], raw=raw))[name]


async def read_topics(settings: Settings, names: list[str], *,
                      raw: bool = False) -> dict[str, list[Any]]:
    """Every record of each catalogue topic in `names`, in partition then offset order, read
    by one consumer (starting one per topic costs ~0.5 s each: 41 topics took 23 s)."""
    consumer = make_consumer(settings, client_id="test-reader")
    await consumer.start()
    try:
        parts = [tp for name in names
                 for tp in await partitions_of(consumer, settings.topic(name))]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        records: dict[TopicPartition, list[Any]] = {tp: [] for tp in parts}
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for tp, msgs in batch.items():
                records[tp].extend(msgs)
        out: dict[str, list[Any]] = {}
        for name in names:
            got = [m for tp in parts if tp.topic == settings.topic(name) for m in records[tp]]
            out[name] = got if raw else [decode_event(m.value) for m in got]
        return out
    finally:
        await consumer.stop()


async def record_counts(settings: Settings, name: str) -> dict[int, int]:
    """Records per partition of a catalogue topic. Not its end offsets: written in Kafka
    transactions, each commit marker takes an offset too."""
    counts: dict[int, int] = {}
    for m in await read_topic(settings, name, raw=True):
        counts[m.partition] = counts.get(m.partition, 0) + 1
    return counts


async def end_offsets(settings: Settings, name: str) -> dict[int, int]:
    consumer = make_consumer(settings, client_id="test-offsets")
    await consumer.start()
    try:
        parts = await partitions_of(consumer, settings.topic(name))
        ends = await consumer.end_offsets(parts)
        return {tp.partition: o for tp, o in ends.items()}
    finally:
        await consumer.stop()


class EndOffsetWatcher:
    """End offsets of one topic from a consumer kept open: a few milliseconds a look instead
    of a client start-up each time, for tests that must act while a worker is mid-stream."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.topic = settings.topic(name)
        self.consumer = make_consumer(settings, client_id="test-offsets-watch")
        self.parts: list[Any] = []

    async def __aenter__(self) -> EndOffsetWatcher:
        await self.consumer.start()
        self.parts = await partitions_of(self.consumer, self.topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def ends(self) -> dict[int, int]:
        ends = await self.consumer.end_offsets(self.parts)
        return {tp.partition: o for tp, o in ends.items()}


async def produce(settings: Settings, name: str, records: list[tuple[bytes | None, bytes]],
                  *, partition: int | None = None) -> None:
    producer = make_producer(settings, client_id="test-producer")
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(name), value=v, key=k, partition=partition)
                   for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def spec(symbol: str, **overrides: Any) -> InstrumentSpec:
    data: dict[str, Any] = {"symbol": symbol, "venue": "simulator", "asset_class": "crypto",
                            "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"}
    data.update(overrides)
    return InstrumentSpec.model_validate(data)


def register_command(symbol: str, command_id: uuid.UUID | None = None) -> CommandEnvelope:
    return make_command(RegisterInstrument(spec=spec(symbol)), aggregate_id=symbol,
                        command_id=command_id or uuid.uuid4(), issued_at=datetime.now(UTC))


def command_record(command: CommandEnvelope) -> tuple[bytes, bytes]:
    return command.aggregate_id.encode(), encode(command)


def by_causation(events: list[EventEnvelope]) -> dict[uuid.UUID, list[EventEnvelope]]:
    out: dict[uuid.UUID, list[EventEnvelope]] = {}
    for e in events:
        assert e.causation_id is not None
        out.setdefault(e.causation_id, []).append(e)
    return out
