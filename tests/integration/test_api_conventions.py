"""Idempotency-Key replay and rate limits against the real Redis (and Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis

from kernel.callers import Caller
from kernel.idempotency import record_key
from kernel.settings import Settings
from tests.integration.helpers import (
    asgi_client,
    assert_problem,
    bearer,
    drop_redis_namespace,
    read_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN = "00000000-0000-4000-8000-00000000ad01"
ALICE = "00000000-0000-4000-8000-0000000a11ce"
BOB = "00000000-0000-4000-8000-000000000b0b"
BURSTY = "00000000-0000-4000-8000-0000000b0257"
BTC = {"symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto", "tick_size": "0.01",
       "lot_size": "0.0001", "quote_currency": "USD"}


@pytest_asyncio.fixture(loop_scope="session")
async def market(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The market-data API in-process, as an admin, with a small bucket: 0.25 token/s, burst 2
    (slow enough that no token refills between the requests of a burst on a loaded machine)."""
    from market_data.bootstrap import api as make_api

    limited = settings.model_copy(update={"rate_limit_per_s": 0.25, "rate_limit_burst": 2})
    app = make_api(limited)
    cache = redis.Redis.from_url(settings.cache_url)
    try:
        async with asgi_client(app, headers=bearer(settings)) as c:
            yield c
    finally:
        await cache.aclose()
        await drop_redis_namespace(settings)



async def test_same_key_and_body_replays_the_response_and_decides_once(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    spawn("decider", "instrument").start()
    headers = {"Idempotency-Key": "conv-register-1"}
    first = await api.post("/instruments", json=BTC, headers=headers, timeout=30)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # The same JSON with another key order and spacing is the same request.
    same = b'{"quote_currency":"USD","lot_size":"0.0001","tick_size":"0.01",' \
           b'"asset_class":"crypto","venue":"simulator","symbol":"BTC-USD"}'
    second = await api.post("/instruments", content=same, timeout=30,
                            headers={**headers, "content-type": "application/json"})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"] == "/instruments/BTC-USD"
    assert second.headers["content-type"] == first.headers["content-type"]
    events = await read_topic(settings, "instrument.events")
    assert [e.type for e in events] == ["instrument.registered"]
    assert events[0].actor == ADMIN  # an admin's action keeps its author on the log


async def test_concurrent_requests_with_one_key_decide_once(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await spawn("decider", "instrument").start().ready()
    headers = {"Idempotency-Key": "conv-concurrent-1"}
    a, b = await asyncio.gather(
        api.post("/instruments", json=BTC, headers=headers, timeout=30),
        api.post("/instruments", json=BTC, headers=headers, timeout=30))
    statuses = sorted([a.status_code, b.status_code])
    if statuses == [201, 409]:
        conflict = a if a.status_code == 409 else b
        assert_problem(conflict, 409, "idempotency-key-in-progress")
        assert conflict.headers["retry-after"] == "1"
    else:
        assert statuses == [201, 201]
        assert a.content == b.content
    events = await read_topic(settings, "instrument.events")
    assert [e.type for e in events] == ["instrument.registered"]


async def test_same_key_with_another_body_is_422_and_publishes_nothing_more(
    settings: Settings, market: httpx.AsyncClient
) -> None:
    headers = {"Idempotency-Key": "conv-sim-1"}
    first = await market.post("/market/simulator/start", json={"symbol": "BTC-USD"},
                              headers=headers)
    assert first.status_code == 202, first.text
    replay = await market.post("/market/simulator/start", json={"symbol": "BTC-USD"},
                               headers=headers)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    other = await market.post("/market/simulator/start", json={"symbol": "ETH-USD"},
                              headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    assert len(await read_topic(settings, "market.commands", raw=True)) == 1


async def test_the_same_key_of_another_caller_is_another_request(
    settings: Settings, market: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "conv-sim-2"}
    alice = await market.post("/market/simulator/stop", json={},
                              headers={**headers, **bearer(settings, user_id=ALICE)})
    bob = await market.post("/market/simulator/stop", json={},
                            headers={**headers, **bearer(settings, user_id=BOB)})
    assert alice.status_code == bob.status_code == 202
    assert "idempotent-replayed" not in bob.headers
    assert alice.json()["command_id"] != bob.json()["command_id"]


async def test_a_key_whose_request_is_still_running_is_409_problem(
    settings: Settings, market: httpx.AsyncClient
) -> None:
    cache = redis.Redis.from_url(settings.cache_url)
    try:
        # What the first request holds while it runs (httpx's ASGI client is 127.0.0.1).
        key = record_key(settings.namespace, method="POST", path="/market/simulator/start",
                         caller=Caller(identity=f"user:{ADMIN}", ip="127.0.0.1"),
                         key="conv-running-1")
        await cache.set(key, b'{"state": "pending", "token": "other"}', ex=30)
        resp = await market.post("/market/simulator/start", json={},
                                 headers={"Idempotency-Key": "conv-running-1"})
    finally:
        await cache.aclose()
    assert_problem(resp, 409, "idempotency-key-in-progress")
    assert resp.headers["retry-after"] == "1"


@pytest.mark.parametrize("key", ["", "x" * 201, " leading-space"])
async def test_malformed_idempotency_key_is_422_problem(market: httpx.AsyncClient,
                                                        key: str) -> None:
    resp = await market.post("/market/simulator/start", json={},
                             headers={"Idempotency-Key": key})
    body = assert_problem(resp, 422, "invalid-idempotency-key")
    assert body["request_id"] == resp.headers["x-request-id"]


async def test_a_burst_over_the_limit_is_429_until_retry_after_has_passed(
    settings: Settings, market: httpx.AsyncClient,
) -> None:
    caller = bearer(settings, user_id=BURSTY)
    ok = [await market.post("/market/simulator/start", json={}, headers=caller)
          for _ in range(2)]
    assert [r.status_code for r in ok] == [202, 202]
    assert [r.headers["ratelimit-remaining"] for r in ok] == ["1", "0"]
    limited = await market.post("/market/simulator/start", json={}, headers=caller)
    body = assert_problem(limited, 429, "rate-limited")
    retry_after = int(limited.headers["retry-after"])
    assert retry_after >= 1
    assert body["retry_after"] == retry_after
    assert limited.headers["ratelimit-limit"] == "2"
    assert limited.headers["ratelimit-remaining"] == "0"
    await asyncio.sleep(retry_after)
    again = await market.post("/market/simulator/start", json={}, headers=caller)
    assert again.status_code == 202, again.text


async def test_the_core_api_reports_its_bucket_on_success(
    api: httpx.AsyncClient, spawn: type
) -> None:
    await spawn("decider", "instrument").start().ready()
    resp = await api.post("/instruments", json=BTC, timeout=30)
    assert resp.status_code == 201, resp.text
    assert resp.headers["ratelimit-limit"] == "40"
    assert int(resp.headers["ratelimit-remaining"]) == 39
