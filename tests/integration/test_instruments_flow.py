"""HTTP command -> Kafka -> decided events -> projection row in PostgreSQL, for real."""

from __future__ import annotations

import uuid

import httpx
import pytest

from kernel.settings import Settings
from tests.integration.helpers import (
    asgi_client,
    bearer,
    command_record,
    produce,
    read_topic,
    register_command,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

BTC = {"symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto", "tick_size": "0.01",
       "lot_size": "0.0001", "quote_currency": "USD"}


async def test_register_instrument_over_http_reaches_the_read_model(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    spawn("decider", "instrument").start()
    spawn("projection", "instruments").start()

    created = await api.post("/instruments", json=BTC, timeout=30)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/instruments/BTC-USD"
    assert created.json()["status"] == "active"
    assert created.json()["version"] == 1

    async def visible() -> bool:
        return (await api.get("/instruments/BTC-USD")).status_code == 200

    await wait_until(visible, timeout=30, what="BTC-USD in the read model")
    row = (await api.get("/instruments/BTC-USD")).json()
    assert row["tick_size"] == "0.01"
    assert row["quote_currency"] == "USD"

    again = await api.post("/instruments", json=BTC)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"] == "urn:propstream:problem:instrument-already-registered"

    halted = await api.post("/instruments/BTC-USD/halt", json={"reason": "exchange outage"})
    assert halted.status_code == 200, halted.text
    assert halted.json()["status"] == "halted"
    assert halted.json()["version"] == 3  # registered, rejected re-registration, halted

    missing = await api.patch("/instruments/NOPE", json={"tick_size": "0.5"})
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:propstream:problem:instrument-not-registered"

    events = await read_topic(settings, "instrument.events")
    assert [e.type for e in events] == [
        "instrument.registered", "instrument.command-rejected", "instrument.halted",
        "instrument.command-rejected",
    ]


async def test_list_instruments_paginates_with_a_cursor(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await spawn("decider", "instrument").start().ready()
    await spawn("projection", "instruments").start().ready()
    symbols = [f"SYM{i:02d}" for i in range(7)]
    await produce(settings, "instrument.commands",
                  [command_record(register_command(s)) for s in symbols])

    async def all_there() -> bool:
        page = (await api.get("/instruments", params={"limit": 500})).json()
        return len(page["items"]) == len(symbols)

    await wait_until(all_there, timeout=30, what="7 instruments projected")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/instruments", params=params)).json()
        pages += 1
        seen += [item["symbol"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(symbols)
    assert pages == 3

    bad = await api.get("/instruments", params={"cursor": "not-a-cursor!"})
    assert bad.status_code == 400
    assert bad.json()["type"] == "urn:propstream:problem:invalid-cursor"


async def test_same_command_id_twice_yields_one_event(
    settings: Settings, spawn: type
) -> None:
    spawn("decider", "instrument").start()
    command = register_command("ETH-USD", uuid.uuid4())
    other = register_command("SOL-USD")
    await produce(settings, "instrument.commands",
                  [command_record(command), command_record(command), command_record(other)])

    async def decided() -> bool:
        return len(await read_topic(settings, "propstream.replies", raw=True)) >= 3

    await wait_until(decided, timeout=30, what="three replies")
    events = await read_topic(settings, "instrument.events")
    assert [(e.aggregate_id, e.type) for e in events if e.aggregate_id == "ETH-USD"] == [
        ("ETH-USD", "instrument.registered")]
    replies = [r.value for r in await read_topic(settings, "propstream.replies", raw=True)]
    from schemas.codec import decode_model
    from schemas.replies import CommandReply

    eth = [decode_model(v, CommandReply) for v in replies]
    eth = [r for r in eth if r.command_id == command.command_id]
    assert [(r.status, r.duplicate) for r in eth] == [("accepted", False), ("accepted", True)]


async def test_same_idempotency_key_over_http_yields_one_event(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    spawn("decider", "instrument").start()
    headers = {"Idempotency-Key": "register-eth-1"}
    body = {**BTC, "symbol": "ETH-USD"}
    first = await api.post("/instruments", json=body, headers=headers, timeout=30)
    second = await api.post("/instruments", json=body, headers=headers, timeout=30)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    events = await read_topic(settings, "instrument.events")
    assert len(events) == 1


async def test_api_bad_input_is_problem_json(api: httpx.AsyncClient, spawn: type) -> None:
    unready = await api.get("/instruments/NOPE")
    assert unready.status_code == 503
    assert unready.json()["type"] == "urn:propstream:problem:read-model-unavailable"
    assert unready.headers["retry-after"] == "2"
    await spawn("projection", "instruments").start().ready()
    cases = [
        (await api.post("/instruments", content=b"{not json",
                        headers={"content-type": "application/json"}), 422),
        (await api.post("/instruments", json={**BTC, "tick_size": "-1"}), 422),
        (await api.post("/instruments", json={**BTC, "symbol": "bad symbol"}), 422),
        (await api.post("/instruments", json={k: v for k, v in BTC.items() if k != "venue"}),
         422),
        (await api.post("/instruments", content=b"x" * (70 * 1024),
                        headers={"content-type": "application/json"}), 413),
        (await api.get("/instruments", params={"limit": 0}), 422),
        (await api.get("/instruments/NOPE"), 404),
        (await api.get("/no-such-route"), 404),
        (await api.patch("/instruments/BTC-USD", json={}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status
        assert body["type"].startswith("urn:propstream:problem:")
        assert response.headers["x-request-id"]


async def test_readyz_checks_kafka_postgres_and_redis(api: httpx.AsyncClient) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "postgres": "ok", "redis": "ok"}
    assert (await api.get("/livez")).json() == {"status": "ok"}
    metrics = await api.get("/metrics")
    assert "propstream_command_round_trip_seconds" in metrics.text


async def test_undecided_command_answers_202_then_its_outcome_can_be_polled(
    settings: Settings, spawn: type
) -> None:
    api_app_settings = settings.model_copy(update={"command_timeout_ms": 300})
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(api_app_settings), headers=bearer(settings)) as quick:
            pending = await quick.post("/instruments", json={**BTC, "symbol": "LATE-USD"})
            assert pending.status_code == 202, pending.text
            location = pending.headers["location"]
            assert location == pending.json()["location"]
            assert location.startswith("/commands/")
            assert (await quick.get(location)).status_code == 404  # not decided yet

            await spawn("decider", "instrument").start().ready()

            async def decided() -> bool:
                return (await quick.get(location)).status_code == 200

            await wait_until(decided, timeout=60, what="the late command's outcome")
            outcome = (await quick.get(location)).json()
            assert outcome["status"] == "accepted"
            assert outcome["events"][0]["type"] == "instrument.registered"


async def test_change_answers_202_accepted_when_the_read_model_lags(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    """No projection runs: the halt is decided, but there is no row to show yet."""
    await spawn("decider", "instrument").start().ready()
    registered = await api.post("/instruments", json={**BTC, "symbol": "LAG-USD"})
    assert registered.status_code == 201
    from kernel.pg import connect

    conn = await connect(settings)  # the table exists but is empty: the projection never ran
    try:
        from core.adapters.instruments_projection import DDL

        await conn.execute(DDL)
        await conn.commit()
    finally:
        await conn.close()
    halted = await api.post("/instruments/LAG-USD/halt", json={"reason": "x"})
    assert halted.status_code == 202, halted.text
    assert halted.json()["status"] == "accepted"
    assert halted.headers["location"] == "/instruments/LAG-USD"
    events = await read_topic(settings, "instrument.events")
    assert [e.type for e in events] == ["instrument.registered", "instrument.halted"]
