"""The WebSocket gateway as a child process on the real Kafka, Redis and PostgreSQL.

Binary frames are checked by a decoder written here from the documented layout (not the
gateway's), against the tick batches read back from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import websockets
from websockets.asyncio.client import ClientConnection

from core.adapters.accounts_projection import DDL as ACCOUNTS_DDL
from core.adapters.assessments_projection import DDL as ASSESSMENTS_DDL
from core.adapters.credentials import KEY_SECRETS_DDL
from core.adapters.users_projection import KEYS_DDL, USERS_DDL
from kernel.kafka import make_producer
from kernel.pg import apply_ddl, connect, ensure_schema
from kernel.settings import Settings
from kernel.tokens import AccessTokens, generate_api_key, new_api_key_id, new_secret
from market_data.adapters.publisher import encode_batch
from market_data.domain.ticks import Tick
from schemas.assessment import AssessmentCompleted
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.simulation import SimulationProgressed
from tests.integration.helpers import (
    PlatformProcess,
    bearer,
    drop_redis_namespace,
    produce,
    read_topic,
)
from tests.support.ws import close_code_of, never_reading_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NS0 = 1_795_000_000_000_000_000
USER_A = "00000000-0000-4000-8000-0000000000a1"
USER_B = "00000000-0000-4000-8000-0000000000b2"
ACCOUNT_A = "10000000-0000-4000-8000-0000000000a1"
ACCOUNT_B = "10000000-0000-4000-8000-0000000000b2"


def decode_binary(frame: bytes) -> list[tuple[int, int, int, int, float, float]]:
    """Little-endian u32 CRC32 of the rest, u16 count, then count x 38 bytes:
    u16 instrument id, u32 epoch, u64 seq, i64 venue ns, f64 price, f64 volume."""
    assert len(frame) >= 6
    assert int.from_bytes(frame[:4], "little") == zlib.crc32(frame[4:]), "CRC"
    count = int.from_bytes(frame[4:6], "little")
    assert len(frame) == 6 + 38 * count
    return [struct.unpack_from("<HIQqdd", frame, 6 + 38 * i) for i in range(count)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Gateway:
    def __init__(self, settings: Settings, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        extra = {"PROPSTREAM_WS_PORT": str(self.port), **env}
        self.proc = PlatformProcess(settings, "ws-gateway", log_dir=log_dir, extra_env=extra)

    def url(self, **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{q}" if q else "")


@pytest_asyncio.fixture(loop_scope="session")
async def gateways(settings: Settings, tmp_path: Path
                   ) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def start(**env: str) -> Gateway:
        gw = Gateway(settings, tmp_path, **env)
        gw.proc.start()
        started.append(gw)
        await gw.proc.ready()
        return gw

    yield start
    for gw in started:
        gw.proc.stop()
    await drop_redis_namespace(settings)  # histories, watch lists (kept 30 days), ids


def token(settings: Settings, user: str, role: str = "trader") -> dict[str, str]:
    return bearer(settings, role=role, user_id=user)  # type: ignore[arg-type]


async def recv_json(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(msg, str):
            data: dict[str, Any] = orjson.loads(msg)
            return data


async def subscribe(ws: ClientConnection, channel: str, **extra: Any) -> dict[str, Any]:
    await ws.send(orjson.dumps({"type": "subscribe", "channel": channel, **extra}).decode())
    ack = await recv_json(ws)
    assert ack["type"] == "subscribed", ack
    return ack


async def publish_ticks(settings: Settings, symbol: str, batches: int, *, per_batch: int = 3,
                        start: int = 0) -> None:
    now = time.time_ns()
    records = []
    for b in range(batches):
        ticks = [Tick(instrument=symbol, venue="simulator", price=100.0 + start + b + i / 10,
                      size=1.0 + i, venue_ts_ns=NS0 + (start + b) * 1000 + i,
                      received_ts_ns=now) for i in range(per_batch)]
        records.append((symbol.encode(), encode_batch(symbol, "simulator", ticks,
                                                      sequence=start + b + 1,
                                                      occurred_at=datetime.now(UTC))))
    await produce(settings, "market.ticks", records)


async def log_ticks(settings: Settings, symbol: str) -> dict[int, tuple[int, float, float]]:
    """seq -> (venue ns, price, size) of every tick of `symbol` on the log."""
    out = {}
    for record in await read_topic(settings, "market.ticks", raw=True):
        env = orjson.loads(record.value)
        if env["aggregate_id"] == symbol:
            for i, row in enumerate(env["payload"]["ticks"]):
                out[record.offset * 1024 + i] = (row["venue_ts_ns"], row["price"], row["size"])
    return out


async def collect_binary(ws: ClientConnection, want: int, timeout: float = 15
                         ) -> list[tuple[int, int, int, int, float, float]]:
    got: list[tuple[int, int, int, int, float, float]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        msg = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        if isinstance(msg, bytes):
            got.extend(decode_binary(msg))
    return got


async def test_binary_frames_carry_the_logs_ticks_in_two_gateways_side_by_side(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    one, two = await asyncio.gather(gateways(), gateways())
    hdr = token(settings, USER_A)
    async with websockets.connect(one.url(format="binary"), additional_headers=hdr) as a, \
            websockets.connect(two.url(format="binary"), additional_headers=hdr) as b:
        assert (await recv_json(a))["type"] == "welcome"
        assert (await recv_json(b))["type"] == "welcome"
        acks = []
        for ws in (a, b):
            acks.append(await subscribe(ws, "market:BTC-USD"))
            assert (await recv_json(ws))["type"] == "snapshot"
        assert acks[0]["instrument_id"] == acks[1]["instrument_id"]
        await publish_ticks(settings, "BTC-USD", 20)
        got_a, got_b = await asyncio.gather(collect_binary(a, 60), collect_binary(b, 60))
    on_log = await log_ticks(settings, "BTC-USD")
    assert len(on_log) == 60
    for got in (got_a, got_b):
        assert len(got) == 60
        assert [e[2] for e in got] == sorted(on_log)  # every tick once, in order
        for ident, epoch, seq, ts, price, size in got:
            assert ident == acks[0]["instrument_id"] and epoch > 0
            assert (ts, price, size) == on_log[seq]
    assert {e[1] for e in got_a} == {e[1] for e in got_b}  # one epoch, shared in Redis


async def test_resume_gets_exactly_the_gap_then_a_snapshot_once_the_history_is_exceeded(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_HISTORY_SIZE="30")
    hdr = token(settings, USER_A)
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        await subscribe(ws, "market:ETH-USD")
        await recv_json(ws)  # snapshot
        await publish_ticks(settings, "ETH-USD", 2)
        seen: list[dict[str, Any]] = []
        while len(seen) < 6:
            msg = await recv_json(ws)
            seen.extend(msg["data"])
    last = seen[-1]
    await publish_ticks(settings, "ETH-USD", 4, start=2)  # 12 ticks missed
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        await asyncio.sleep(0.5)
        ack = await subscribe(ws, "market:ETH-USD",
                              since={"epoch": last["epoch"], "seq": last["seq"]})
        assert ack["resumed"] is True
        replayed = [await recv_json(ws) for _ in range(12)]
        await publish_ticks(settings, "ETH-USD", 1, start=6)
        live = await recv_json(ws)
    seqs = [m["seq"] for m in replayed] + [t["seq"] for t in live["data"]]
    on_log = await log_ticks(settings, "ETH-USD")
    assert seqs == sorted(s for s in on_log if s > last["seq"])  # the gap, then live, no dups
    assert all(m["epoch"] == last["epoch"] for m in replayed)
    last = live["data"][-1]
    await publish_ticks(settings, "ETH-USD", 12, start=7)  # 36 ticks: beyond a history of 30
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        await asyncio.sleep(0.5)
        ack = await subscribe(ws, "market:ETH-USD",
                              since={"epoch": last["epoch"], "seq": last["seq"]})
        assert ack["resumed"] is False and ack["reason"] == "history-exceeded"
        snapshot = await recv_json(ws)
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == max(on_log := await log_ticks(settings, "ETH-USD"))
    assert snapshot["data"]["price"] == on_log[snapshot["seq"]][1]


async def test_market_watch_comes_back_on_reconnect_also_after_a_gateway_restart(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways()
    hdr = token(settings, USER_A)
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        session = (await recv_json(ws))["session"]
        for symbol in ("SOL-USD", "BTC-USD"):
            await subscribe(ws, f"market:{symbol}")
            assert (await recv_json(ws))["type"] == "snapshot"
        await ws.send('{"type":"unsubscribe","channel":"market:BTC-USD"}')
        assert (await recv_json(ws))["type"] == "unsubscribed"
    gw.proc.stop()
    again = await gateways()
    async with websockets.connect(again.url(session=session), additional_headers=hdr) as ws:
        assert (await recv_json(ws))["session"] == session
        ack = await recv_json(ws)
        assert ack["type"] == "subscribed" and ack["auto"] is True
        assert ack["channel"] == "market:SOL-USD"
    other = token(settings, USER_B)  # another user naming the session gets nothing of it
    async with websockets.connect(again.url(session=session), additional_headers=other) as ws:
        await recv_json(ws)
        await ws.send('{"type":"ping","id":"p"}')
        assert await recv_json(ws) == {"type": "pong", "id": "p"}


async def accounts_table(settings: Settings) -> None:
    conn = await connect(settings, autocommit=True)
    try:
        await ensure_schema(conn, settings)
        await apply_ddl(conn, ACCOUNTS_DDL)
        for account, user in ((ACCOUNT_A, USER_A), (ACCOUNT_B, USER_B)):
            await conn.execute(
                "INSERT INTO accounts (account_id, assessment_id, user_id, currency, "
                "starting_balance, balance, status, opened_at, version) VALUES "
                "(%s, %s, %s, 'USD', 100000, 100000, 'active', now(), 1)",
                (account, str(uuid.uuid4()), user))
    finally:
        await conn.close()


def account_event(account: str, n: int) -> tuple[bytes, bytes]:
    return account.encode(), orjson.dumps({
        "event_id": str(uuid.uuid4()), "type": "trading.order-filled", "version": 1,
        "aggregate_id": account, "sequence": n, "occurred_at": "2026-12-06T00:00:00Z",
        "correlation_id": str(uuid.uuid4()), "payload": {"account_id": account, "n": n}})


@contextlib.asynccontextmanager
async def trader_a_b_and_admin(settings: Settings, gw: Gateway
                               ) -> AsyncIterator[tuple[ClientConnection, ...]]:
    """Trader A, trader B and an admin connected, their welcomes read."""
    async with websockets.connect(gw.url(), additional_headers=token(settings, USER_A)) as a, \
            websockets.connect(gw.url(), additional_headers=token(settings, USER_B)) as b, \
            websockets.connect(gw.url(), additional_headers=token(
                settings, "00000000-0000-4000-8000-00000000ad01", "admin")) as admin:
        for ws in (a, b, admin):
            await recv_json(ws)
        yield a, b, admin


async def test_a_trader_never_receives_another_traders_private_messages(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    await accounts_table(settings)
    gw = await gateways()
    async with trader_a_b_and_admin(settings, gw) as (a, b, admin):
        await subscribe(a, f"account:{ACCOUNT_A}")
        await b.send(orjson.dumps({"type": "subscribe", "channel": f"account:{ACCOUNT_A}",
                                   "id": "steal"}).decode())
        refused = await recv_json(b)
        assert refused == {"type": "error", "code": "forbidden",
                           "message": f"account:{ACCOUNT_A} is not yours", "id": "steal"}
        await subscribe(b, f"account:{ACCOUNT_B}")
        await subscribe(admin, f"account:{ACCOUNT_A}")
        for ws in (a, b, admin):
            assert (await recv_json(ws))["type"] == "snapshot"
        await produce(settings, "account.events",
                      [account_event(ACCOUNT_A, 1), account_event(ACCOUNT_B, 1),
                       account_event(ACCOUNT_A, 2)])
        got_a = [await recv_json(a) for _ in range(2)]
        got_admin = [await recv_json(admin) for _ in range(2)]
        got_b = await recv_json(b)
        with pytest.raises(TimeoutError):
            await recv_json(b, timeout=1.0)
    assert [m["data"]["n"] for m in got_a] == [1, 2]
    assert {m["channel"] for m in got_a + got_admin} == {f"account:{ACCOUNT_A}"}
    assert got_b["channel"] == f"account:{ACCOUNT_B}" and got_b["data"]["n"] == 1


ASSESSMENT_A = "20000000-0000-4000-8000-0000000000a1"


async def assessments_table(settings: Settings) -> None:
    conn = await connect(settings, autocommit=True)
    try:
        await ensure_schema(conn, settings)
        await apply_ddl(conn, ASSESSMENTS_DDL)
        await conn.execute(
            "INSERT INTO assessments (assessment_id, purchase_id, user_id, tier_id, "
            "tier_revision, phase, status, rules, terms, account_id, source, created_at, "
            "updated_at, version) VALUES (%s, %s, %s, 'starter', 1, 'challenge', 'active', "
            "'{}', '{}', %s, 'purchase', now(), now(), 1)",
            (ASSESSMENT_A, str(uuid.uuid4()), USER_A, ACCOUNT_A))
    finally:
        await conn.close()


def on_log(payload: EventPayload, aggregate: str, n: int) -> tuple[bytes, bytes]:
    """A record as the platform writes it: its own envelope and codec, keyed by aggregate."""
    return aggregate.encode(), encode(make_event(
        payload, aggregate_id=aggregate, sequence=n, occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(), causation_id=None, event_id=uuid.uuid4()))


async def test_assessment_and_simulation_channels_reach_their_owner_and_admins_only(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    await accounts_table(settings)
    await assessments_table(settings)
    gw = await gateways()
    run = uuid.uuid4()
    assessment = f"assessment:{ASSESSMENT_A}"
    simulation = f"simulation:{ACCOUNT_A}"
    async with trader_a_b_and_admin(settings, gw) as (a, b, admin):
        for channel in (assessment, simulation):
            await b.send(orjson.dumps({"type": "subscribe", "channel": channel}).decode())
            assert await recv_json(b) == {"type": "error", "code": "forbidden",
                                          "message": f"{channel} is not yours"}
        await subscribe(a, assessment)
        snapshot = await recv_json(a)  # the assessment's row, without its rules and terms
        assert snapshot["data"]["status"] == "active"
        assert snapshot["data"]["account_id"] == ACCOUNT_A
        assert "terms" not in snapshot["data"]
        await subscribe(a, simulation)
        assert (await recv_json(a))["data"] is None  # no run yet
        await subscribe(admin, simulation)
        await recv_json(admin)
        progress = [SimulationProgressed(run_id=run, account_id=uuid.UUID(ACCOUNT_A),
                                         paths_done=done, paths_total=1000)
                    for done in (250, 500, 1000)]
        await produce(settings, "simulation.events",
                      [on_log(p, ACCOUNT_A, i + 1) for i, p in enumerate(progress)])
        await produce(settings, "assessment.events", [on_log(AssessmentCompleted(
            phase="challenge", account_id=uuid.UUID(ACCOUNT_A), outcome="failed",
            rule="daily-loss", digest="0" * 64, final=True, at_ns=1), ASSESSMENT_A, 2)])
        got_a = [await recv_json(a) for _ in range(4)]
        got_admin = [await recv_json(admin) for _ in range(3)]
        with pytest.raises(TimeoutError):
            await recv_json(b, timeout=1.0)
    sims = [m for m in got_a if m["channel"] == simulation]
    assert [m["data"]["paths_done"] for m in sims] == [250, 500, 1000]
    assert [m["seq"] for m in sims] == sorted(m["seq"] for m in sims)
    assert [m["data"]["paths_done"] for m in got_admin] == [250, 500, 1000]
    (done,) = [m for m in got_a if m["channel"] == assessment]
    assert (done["event"], done["data"]["outcome"]) == ("assessment.completed", "failed")


async def test_connections_are_limited_per_address_and_per_user(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_MAX_CONNECTIONS_PER_IP="3",
                        PROPSTREAM_WS_MAX_CONNECTIONS_PER_USER="2")
    a, b = token(settings, USER_A), token(settings, USER_B)
    first = await websockets.connect(gw.url(), additional_headers=a)
    second = await websockets.connect(gw.url(), additional_headers=a)
    third = await websockets.connect(gw.url(), additional_headers=a)  # the user's third
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await third.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    for ws in (first, second):
        assert (await recv_json(ws))["type"] == "welcome"
    await asyncio.sleep(0.2)  # the third is counted out once its socket is gone
    other = await websockets.connect(gw.url(), additional_headers=b)
    assert (await recv_json(other))["type"] == "welcome"
    # the address holds three: a fourth is refused before the upgrade, whatever it claims
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(gw.url(), additional_headers={**b, "X-Forwarded-For":
                                                               "198.51.100.1"})
    assert refused.value.response.status_code == 429
    await other.close()
    await asyncio.sleep(0.2)
    again = await websockets.connect(gw.url(), additional_headers=b)  # room again
    assert (await recv_json(again))["type"] == "welcome"
    for ws in (first, second):  # the refusals never touched the connections that were in
        await ws.send('{"type":"ping","id":"p"}')
        assert await recv_json(ws) == {"type": "pong", "id": "p"}
    for ws in (first, second, again):
        await ws.close()


async def test_bad_input_gets_an_error_frame_or_a_close_code_never_a_crash(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_CONTROL_BURST="20", PROPSTREAM_WS_MAX_SUBSCRIPTIONS="3")
    hdr = token(settings, USER_A)
    async with websockets.connect(gw.url()) as anonymous:  # not allowed by default
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await anonymous.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with websockets.connect(gw.url(token="not-a-jwt")) as bad:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await bad.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        await ws.send("{nope")
        assert (await recv_json(ws))["code"] == "bad-json"
        await ws.send('{"type":"launch"}')
        assert (await recv_json(ws))["code"] == "unknown-type"
        for symbol in ("A", "B", "C"):
            await subscribe(ws, f"market:{symbol}")
            await recv_json(ws)
        await ws.send('{"type":"subscribe","channel":"market:D"}')
        assert (await recv_json(ws))["code"] == "too-many-subscriptions"
        await ws.send(b"\x00\xff garbage")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(1000):
                await ws.send('{"type":"ping"}')
            while True:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:
        await recv_json(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.send("x" * 100_000)
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with websockets.connect(gw.url(), additional_headers=hdr) as ws:  # still serving
        await recv_json(ws)
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"


async def test_a_never_reading_client_is_closed_4408_and_does_not_slow_100_others(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_SOCKET_SEND_BUFFER="16384",
                        PROPSTREAM_WS_WRITE_HIGH_BYTES="16384", PROPSTREAM_WS_SLOW_CLOSE_S="1",
                        PROPSTREAM_WS_MAX_CONNECTIONS_PER_USER="0")  # 101 of one user
    hdr = token(settings, USER_A)
    slow = await asyncio.to_thread(never_reading_client, gw.port, hdr, "market:BTC-USD")
    clients = []
    for _ in range(100):
        ws = await websockets.connect(gw.url(format="binary"), additional_headers=hdr)
        await recv_json(ws)
        await subscribe(ws, "market:BTC-USD")
        await recv_json(ws)
        clients.append(ws)
    latencies: list[float] = []
    counts = [0] * len(clients)

    async def read(i: int, ws: ClientConnection) -> None:
        async for msg in ws:
            if isinstance(msg, bytes):
                now = time.time_ns()
                for _ident, _epoch, _seq, ts, _price, _size in decode_binary(msg):
                    latencies.append((now - ts) / 1e6)
                    counts[i] += 1

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(clients)]
    producer = make_producer(settings, client_id="test-ticks")
    await producer.start()
    try:
        for n in range(100):  # 2 s of 20 ticks every 20 ms
            now = time.time_ns()
            ticks = [Tick(instrument="BTC-USD", venue="simulator", price=100.0 + i, size=1.0,
                          venue_ts_ns=now, received_ts_ns=now) for i in range(20)]
            await producer.send_and_wait(settings.topic("market.ticks"), key=b"BTC-USD",
                                         value=encode_batch("BTC-USD", "simulator", ticks,
                                                            sequence=n + 1,
                                                            occurred_at=datetime.now(UTC)))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        for task in readers:
            task.cancel()
        for ws in clients:
            await ws.close()
    assert await asyncio.to_thread(close_code_of, slow) == 4408
    slow.close()
    assert counts == [2000] * 100  # every tick reached every other client
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"100 clients beside a never-reading one: tick published -> frame read "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    # A hub that waited on the stalled client would hold every other client until it is
    # closed, 1 s after it went slow, half of the 2 s of ticks: their p99 would be about a
    # second. A loaded CI host moves it by a few hundred ms (188 ms seen), so the bound sits
    # between the two; the target itself (p99 <= 25 ms) is measured by bench/ws_gateway.py
    # on a quiet machine (p99 7.6 ms beside a stalled client, 9.3 ms without).
    assert p99 < 500, (p50, p99)


async def test_an_expiring_token_is_asked_to_refresh_and_closes_4401_without_one(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_REFRESH_BEFORE_S="2")

    def short_token() -> str:
        return AccessTokens(secret=settings.secret_key, ttl=timedelta(seconds=3)).issue(
            subject=USER_A, role="trader", now=datetime.now(UTC), jti=uuid.uuid4())

    async with websockets.connect(gw.url(token=short_token())) as ws:
        assert (await recv_json(ws))["expires_at"] is not None
        assert (await recv_json(ws, timeout=3))["type"] == "refresh"
        await ws.send(orjson.dumps({"type": "auth", "token": short_token(), "id": "a"}).decode())
        renewed = await recv_json(ws)
        assert renewed["type"] == "authenticated" and renewed["id"] == "a"
        assert (await recv_json(ws, timeout=3))["type"] == "refresh"  # the new token's turn
        expired = await recv_json(ws, timeout=4)
        assert expired["type"] == "error" and expired["code"] == "token-expired"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def api_key_of(settings: Settings, user: str, *, revoked: bool = False,
                     scope: str = "account:read") -> str:
    """An API key of `user` in the users read model, as core's projections store it."""
    key, record = generate_api_key(key_id=new_api_key_id(), secret=new_secret(), owner=user,
                                   scopes=frozenset({scope}))
    conn = await connect(settings, autocommit=True)
    try:
        await ensure_schema(conn, settings)
        await apply_ddl(conn, (USERS_DDL, KEYS_DDL, KEY_SECRETS_DDL))
        await conn.execute(
            "INSERT INTO users (user_id, role, registered_at, updated_at, version) "
            "VALUES (%s, 'trader', now(), now(), 1) ON CONFLICT DO NOTHING", (user,))
        await conn.execute(
            "INSERT INTO api_keys (key_id, owner, scopes, created_at, revoked_at) "
            "VALUES (%s, %s, %s, now(), CASE WHEN %s THEN now() END)",
            (record.key_id, user, sorted(record.scopes), revoked))
        await conn.execute("INSERT INTO api_key_secrets (key_id, user_id, key_hash) "
                           "VALUES (%s, %s, %s)", (record.key_id, user, record.key_hash))
    finally:
        await conn.close()
    return key


async def test_an_api_key_reads_its_owners_account_and_a_revoked_one_closes_4401(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    await accounts_table(settings)
    key, revoked = await api_key_of(settings, USER_A), await api_key_of(settings, USER_A,
                                                                         revoked=True)
    gw = await gateways()
    async with websockets.connect(gw.url(), additional_headers={"X-API-Key": key}) as ws:
        assert (await recv_json(ws))["user"] == USER_A
        await subscribe(ws, f"account:{ACCOUNT_A}")
        assert (await recv_json(ws))["data"]["account_id"] == ACCOUNT_A
        await ws.send(orjson.dumps({"type": "subscribe",
                                    "channel": f"account:{ACCOUNT_B}"}).decode())
        assert (await recv_json(ws))["code"] == "forbidden"
    trading_only = await api_key_of(settings, USER_A, scope="account:trade")
    async with websockets.connect(gw.url(), additional_headers={"X-API-Key": trading_only}
                                  ) as ws:
        await recv_json(ws)
        await ws.send(orjson.dumps({"type": "subscribe",
                                    "channel": f"account:{ACCOUNT_A}"}).decode())
        assert (await recv_json(ws))["code"] == "forbidden"  # no account:read scope
    async with websockets.connect(gw.url(), additional_headers={"X-API-Key": revoked}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_anonymous_clients_read_public_channels_only_when_allowed(
        settings: Settings, gateways: Callable[..., Any]) -> None:
    gw = await gateways(PROPSTREAM_WS_ALLOW_ANONYMOUS="true")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        assert (await http.get("/readyz")).status_code == 200  # what `propstream up` waits on
        assert (await http.get("/livez")).status_code == 200
        assert (await http.get("/elsewhere")).status_code == 404
    async with websockets.connect(gw.url()) as ws:
        welcome = await recv_json(ws)
        assert welcome["user"] is None and welcome["expires_at"] is None
        await subscribe(ws, "market:BTC-USD")
        assert (await recv_json(ws))["type"] == "snapshot"
        await ws.send(orjson.dumps({"type": "subscribe",
                                    "channel": f"account:{ACCOUNT_A}"}).decode())
        assert (await recv_json(ws))["code"] == "unauthenticated"
        await publish_ticks(settings, "BTC-USD", 1)
        assert (await recv_json(ws))["type"] == "ticks"
