"""The market-data API in-process against the real PostgreSQL, Redis and Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis

from kernel.pg import connect
from market_data.adapters.bars_projection import DDL as BARS_DDL
from market_data.adapters.redis_levels import LevelsStore
from market_data.adapters.redis_prices import PriceStore
from market_data.entrypoints.http import udf
from propstream.processes import projection_runner
from propstream.settings import PlatformSettings as Settings
from schemas.codec import decode_command, encode
from schemas.envelope import make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec, TradingHours
from schemas.market import MarketTicksPublished, TickRow
from tests.integration.helpers import (
    asgi_client,
    assert_problem,
    bearer,
    drop_redis_namespace,
    produce,
    read_topic,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

S = 1_000_000_000
DAY = 86_400
NOW = int(time.time())
T0 = (NOW - 2 * DAY) // 60 * 60  # ten closed 1m bars from here
TODAY = NOW // DAY * DAY

# Registered on instrument.events as core's decider would; market data's own projection
# (market-instruments) folds them into the table its API reads.
INSTRUMENTS = [
    InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                   tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"), quote_currency="USD",
                   description="Bitcoin / US dollar"),
    InstrumentSpec(symbol="ES", venue="cme", asset_class="index", tick_size=Decimal("0.25"),
                   lot_size=Decimal("1"), quote_currency="USD", description="E-mini S&P 500",
                   trading_hours=TradingHours.model_validate(
                       {"timezone": "America/New_York",
                        "sessions": [{"days": [0, 1, 2, 3, 4], "open": "09:30:00",
                                      "close": "16:00:00"}]})),
]


async def _project_instruments(settings: Settings) -> None:
    records = []
    for spec in INSTRUMENTS:
        cause = uuid.uuid4()
        env = make_event(InstrumentRegistered(spec=spec), aggregate_id=spec.symbol, sequence=1,
                         occurred_at=datetime.now(UTC), correlation_id=cause,
                         causation_id=cause, event_id=uuid.uuid4())
        records.append((spec.symbol.encode(), encode(env)))
    await produce(settings, "instrument.events", records)
    runner = projection_runner(settings, "market-instruments")
    await runner.start()
    try:
        await runner.run(until_caught_up=True)
    finally:
        await runner.stop()


async def _seed(settings: Settings, cache: redis.Redis) -> None:
    conn = await connect(settings, autocommit=True)
    try:
        await conn.execute(BARS_DDL)
        bars: list[tuple[Any, ...]] = [
            ("BTC-USD", "1m", (T0 + 60 * i) * S, (T0 + 60 * i + 60) * S, 100.0 + i,
             102.0 + i, 99.0 + i, 101.0 + i, 1.5, 3) for i in range(10)]
        bars += [
            ("BTC-USD", "1d", (TODAY - DAY) * S, TODAY * S, 90.0, 101.0, 89.0, 100.0, 50.0, 900),
            ("BTC-USD", "1d", TODAY * S, (TODAY + DAY) * S, 100.0, 112.0, 98.0, 110.0, 7.0, 70),
        ]
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO market_bars (instrument, resolution, open_time_ns, close_time_ns, "
                "open, high, low, close, volume, trades) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", bars)
    finally:
        await conn.close()
    ts = (NOW - 5) * S
    ticks = tuple(TickRow(venue_ts_ns=ts + i * 1000, received_ts_ns=ts + i * 1000,
                          price=108.0 + i, size=0.1, bid=107.5 + i, ask=108.5 + i,
                          side="buy", trade_id=f"t{i}") for i in range(3))
    await PriceStore(cache, namespace=settings.namespace).apply(
        [MarketTicksPublished(instrument="BTC-USD", venue="simulator", ticks=ticks)])
    await LevelsStore(cache, namespace=settings.namespace).put_many({"BTC-USD": {
        "ath": 120.0, "atl": 80.0, "last": 110.0, "enigma": 75.0,
        "fibonacci": [{"pct": 0.0, "price": 80.0}, {"pct": 100.0, "price": 120.0}]}})


@pytest_asyncio.fixture(loop_scope="session")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from market_data.bootstrap import api as make_api

    cache = redis.Redis.from_url(settings.cache_url)
    await _project_instruments(settings)
    await _seed(settings, cache)
    app = make_api(settings)
    try:
        async with asgi_client(app, headers=bearer(settings)) as c:
            yield c
    finally:
        await cache.aclose()
        await drop_redis_namespace(settings)



# -- prices and levels ---------------------------------------------------------------------


async def test_prices_latest_and_ticks_come_from_redis(client: httpx.AsyncClient) -> None:
    all_prices = await client.get("/market/prices")
    assert all_prices.status_code == 200
    assert all_prices.headers["cache-control"] == "no-store"
    assert [p["instrument"] for p in all_prices.json()] == ["BTC-USD"]

    one = await client.get("/market/prices/BTC-USD")
    assert one.status_code == 200 and one.headers["cache-control"] == "no-store"
    body = one.json()
    assert (body["price"], body["bid"], body["ask"], body["venue"]) == (
        110.0, 109.5, 110.5, "simulator")
    assert abs(body["time"] - (NOW - 5)) < 1

    ticks = await client.get("/market/prices/BTC-USD/ticks", params={"limit": 2})
    assert ticks.status_code == 200
    assert [t["price"] for t in ticks.json()] == [109.0, 110.0]


async def test_price_of_unknown_symbol_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/market/prices/NOPE"), 404, "price-not-found")
    assert_problem(await client.get("/market/prices/NOPE/ticks"), 404, "price-not-found")


@pytest.mark.parametrize("limit", [0, 201])
async def test_ticks_limit_out_of_bounds_is_422_problem(client: httpx.AsyncClient,
                                                       limit: int) -> None:
    assert_problem(await client.get("/market/prices/BTC-USD/ticks", params={"limit": limit}), 422,
             "validation-failed")


async def test_levels(client: httpx.AsyncClient) -> None:
    resp = await client.get("/market/levels/BTC-USD")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["instrument"], body["ath"], body["atl"], body["enigma"]) == (
        "BTC-USD", 120.0, 80.0, 75.0)
    assert len(body["fibonacci"]) == 2
    assert_problem(await client.get("/market/levels/NOPE"), 404, "levels-not-found")


# -- bars ----------------------------------------------------------------------------------


async def test_bars_of_a_closed_range_are_cacheable_with_etag_and_304(
        client: httpx.AsyncClient) -> None:
    params = {"resolution": "1m", "from": T0, "to": T0 + 600}
    resp = await client.get("/market/bars/BTC-USD", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["from"], body["to"], body["resolution"]) == (T0, T0 + 600, "1m")
    assert [b["time"] for b in body["bars"]] == [T0 + 60 * i for i in range(10)]
    assert body["bars"][0]["close_time"] == T0 + 60
    assert resp.headers["cache-control"] == "public, max-age=3600"
    etag = resp.headers["etag"]
    assert etag.startswith('"')

    again = await client.get("/market/bars/BTC-USD", params=params,
                             headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag

    other = await client.get("/market/bars/BTC-USD", params=params,
                             headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


async def test_bars_limit_keeps_the_newest(client: httpx.AsyncClient) -> None:
    resp = await client.get("/market/bars/BTC-USD",
                            params={"resolution": "1m", "from": T0, "to": T0 + 600, "limit": 3})
    assert [b["time"] for b in resp.json()["bars"]] == [T0 + 420, T0 + 480, T0 + 540]


async def test_bars_of_a_range_reaching_now_are_not_cached(client: httpx.AsyncClient) -> None:
    resp = await client.get("/market/bars/BTC-USD", params={"resolution": "1d"})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-cache"
    assert "etag" in resp.headers


async def test_bars_from_after_to_is_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/market/bars/BTC-USD",
                                     params={"from": T0 + 600, "to": T0}), 422, "invalid-range")
    assert body["detail"] == f"`from` ({T0 + 600}) is after `to` ({T0}); both are unix seconds"


async def test_bars_unknown_resolution_is_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/bars/BTC-USD", params={"resolution": "2m"})
    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"][0]["location"] == "query.resolution"


async def test_bars_range_too_large_is_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/market/bars/BTC-USD",
                                     params={"resolution": "1m", "from": T0,
                                             "to": T0 + 10_001 * 60}), 422, "range-too-large")
    assert "10001 bars" in body["detail"]


@pytest.mark.parametrize("limit", [0, 5001])
async def test_bars_limit_out_of_bounds_is_422_problem(client: httpx.AsyncClient,
                                                      limit: int) -> None:
    assert_problem(await client.get("/market/bars/BTC-USD", params={"limit": limit}), 422,
             "validation-failed")


async def test_bars_of_unknown_symbol_are_empty(client: httpx.AsyncClient) -> None:
    resp = await client.get("/market/bars/NOPE", params={"from": T0, "to": T0 + 600})
    assert resp.status_code == 200 and resp.json()["bars"] == []


# -- UDF -----------------------------------------------------------------------------------


async def test_udf_config(client: httpx.AsyncClient) -> None:
    resp = await client.get("/udf/config")
    assert resp.status_code == 200
    body = resp.json()
    assert body["supported_resolutions"] == ["1", "5", "15", "60", "240", "1D"]
    assert body["supports_search"] is True
    assert body["supports_group_request"] is False
    assert body["supports_marks"] is False and body["supports_timescale_marks"] is False
    assert body["supports_time"] is True
    assert [e["value"] for e in body["exchanges"]] == ["", "cme", "simulator"]
    assert [t["value"] for t in body["symbols_types"]] == ["", "crypto", "index"]


async def test_udf_symbols(client: httpx.AsyncClient) -> None:
    btc = (await client.get("/udf/symbols", params={"symbol": "BTC-USD"})).json()
    assert (btc["name"], btc["ticker"], btc["type"], btc["session"], btc["timezone"]) == (
        "BTC-USD", "BTC-USD", "crypto", "24x7", "Etc/UTC")
    assert (btc["exchange"], btc["listed_exchange"]) == ("simulator", "simulator")
    assert (btc["pricescale"], btc["minmov"], btc["volume_precision"]) == (100, 1, 4)
    assert btc["has_intraday"] is True and btc["data_status"] == "streaming"
    assert btc["supported_resolutions"] == ["1", "5", "15", "60", "240", "1D"]

    es = (await client.get("/udf/symbols", params={"symbol": "cme:ES"})).json()
    assert (es["pricescale"], es["minmov"]) == (100, 25)
    assert (es["session"], es["timezone"]) == ("0930-1600:23456", "America/New_York")


async def test_udf_unknown_symbol_is_udf_error(client: httpx.AsyncClient) -> None:
    resp = await client.get("/udf/symbols", params={"symbol": "NOPE"})
    assert resp.status_code == 200
    assert resp.json() == {"s": "error", "errmsg": "unknown symbol"}


async def test_udf_search(client: httpx.AsyncClient) -> None:
    found = (await client.get("/udf/search", params={"query": "btc", "limit": 10})).json()
    assert found == [{"symbol": "BTC-USD", "full_name": "simulator:BTC-USD",
                      "description": "Bitcoin / US dollar", "exchange": "simulator",
                      "ticker": "BTC-USD", "type": "crypto"}]
    by_type = (await client.get("/udf/search", params={"query": "", "type": "index"})).json()
    assert [f["symbol"] for f in by_type] == ["ES"]
    by_exchange = (await client.get("/udf/search", params={"exchange": "simulator"})).json()
    assert [f["symbol"] for f in by_exchange] == ["BTC-USD"]


async def test_udf_history_ok_in_seconds(client: httpx.AsyncClient) -> None:
    resp = await client.get("/udf/history", params={
        "symbol": "BTC-USD", "resolution": "1", "from": T0 + 120, "to": T0 + 300})
    body = resp.json()
    assert body["s"] == "ok"
    assert body["t"] == [T0 + 120, T0 + 180, T0 + 240]  # `to` is not inclusive
    assert body["o"] == [102.0, 103.0, 104.0] and body["c"] == [103.0, 104.0, 105.0]
    assert set(body) == {"s", "t", "o", "h", "l", "c", "v"}


async def test_udf_history_empty_range_points_at_older_data(client: httpx.AsyncClient) -> None:
    later = await client.get("/udf/history", params={
        "symbol": "BTC-USD", "resolution": "1", "from": T0 + 3600, "to": T0 + 7200})
    assert later.json() == {"s": "no_data", "nextTime": T0 + 540}
    before = await client.get("/udf/history", params={
        "symbol": "BTC-USD", "resolution": "1", "from": T0 - 3600, "to": T0})
    assert before.json() == {"s": "no_data"}


async def test_udf_history_countback_adds_earlier_bars(client: httpx.AsyncClient) -> None:
    resp = await client.get("/udf/history", params={
        "symbol": "BTC-USD", "resolution": "1", "from": T0 + 300, "to": T0 + 600,
        "countback": 8})
    assert resp.json()["t"] == [T0 + 60 * i for i in range(2, 10)]
    beyond = await client.get("/udf/history", params={
        "symbol": "BTC-USD", "resolution": "1", "from": T0 + 3600, "to": T0 + 7200,
        "countback": 2})
    assert beyond.json()["t"] == [T0 + 480, T0 + 540]


@pytest.mark.parametrize(("params", "message"), [
    ({"symbol": "BTC-USD", "resolution": "1", "from": T0 + 600, "to": T0}, "is after `to`"),
    ({"symbol": "BTC-USD", "resolution": "7", "from": T0, "to": T0 + 600},
     "unsupported resolution"),
    ({"symbol": "NOPE", "resolution": "1", "from": T0, "to": T0 + 600}, "unknown symbol"),
    ({"symbol": "BTC-USD", "resolution": "1", "from": T0, "to": T0 + 10_001 * 60},
     "at most 10000"),
    ({"symbol": "BTC-USD", "resolution": "1", "from": "yesterday", "to": T0}, "from"),
    ({"symbol": "BTC-USD", "resolution": "1", "to": T0}, "from"),
])
async def test_udf_history_bad_input_is_udf_error_with_200(
        client: httpx.AsyncClient, params: dict[str, Any], message: str) -> None:
    resp = await client.get("/udf/history", params=params)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["s"] == "error" and message in body["errmsg"], body
    assert set(body) == {"s", "errmsg"}


async def test_udf_time_is_plain_unix_seconds(client: httpx.AsyncClient) -> None:
    resp = await client.get("/udf/time")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert abs(int(resp.text) - time.time()) < 5


async def test_udf_quotes(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # "Today" is the day the bars were seeded for, even if midnight UTC passed since.
    monkeypatch.setattr(udf, "now_ns", lambda: NOW * S)
    resp = await client.get("/udf/quotes", params={"symbols": "BTC-USD,NOPE"})
    body = resp.json()
    assert body["s"] == "ok"
    ok, missing = body["d"]
    assert missing == {"s": "error", "n": "NOPE", "v": {}}
    assert (ok["s"], ok["n"]) == ("ok", "BTC-USD")
    v = ok["v"]
    assert set(v) == {"ch", "chp", "short_name", "exchange", "description", "lp", "ask",
                      "bid", "open_price", "high_price", "low_price", "prev_close_price",
                      "volume"}
    assert (v["lp"], v["bid"], v["ask"]) == (110.0, 109.5, 110.5)
    assert (v["open_price"], v["high_price"], v["low_price"], v["volume"]) == (
        100.0, 112.0, 98.0, 7.0)
    assert v["prev_close_price"] == 100.0
    assert v["ch"] == pytest.approx(10.0) and v["chp"] == pytest.approx(10.0)


# -- simulator control and health -----------------------------------------------------------


async def test_simulator_commands_are_published_keyed_by_aggregate(
        client: httpx.AsyncClient, settings: Settings) -> None:
    sent = [
        await client.post("/market/simulator/start"),
        await client.post("/market/simulator/stop", json={"symbol": "BTC-USD"}),
        await client.post("/market/simulator/regime", json={"symbol": "BTC-USD",
                                                            "regime": "high"}),
        await client.post("/market/simulator/news", json={
            "symbol": "BTC-USD", "headline": "ETF approved", "jump": 0.05}),
    ]
    assert [r.status_code for r in sent] == [202] * 4, [r.text for r in sent]
    records = await read_topic(settings, "market.commands", raw=True)
    commands = {str(c.command_id): (m.key, c) for m in records
                if (c := decode_command(m.value))}
    expected = [("*", "market.start-simulator", {}),
                ("BTC-USD", "market.stop-simulator", {}),
                ("BTC-USD", "market.override-regime", {"regime": "high"}),
                ("BTC-USD", "market.inject-news", {"headline": "ETF approved", "jump": 0.05})]
    for resp, (aggregate, type_, payload) in zip(sent, expected, strict=True):
        key, command = commands[resp.json()["command_id"]]
        assert key == aggregate.encode()
        assert (command.aggregate_id, command.type, command.payload) == (
            aggregate, type_, payload)


async def test_simulator_control_is_for_admins_only(client: httpx.AsyncClient,
                                                    settings: Settings) -> None:
    request = client.build_request("POST", "/market/simulator/start")
    del request.headers["authorization"]
    anonymous = await client.send(request)
    assert_problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    garbled = await client.post("/market/simulator/start", headers={"Authorization": "Bearer x"})
    assert_problem(garbled, 401, "token-invalid")
    trader = await client.post("/market/simulator/start",
                               headers=bearer(settings, role="trader"))
    assert_problem(trader, 403, "forbidden")
    # Market data itself stays public.
    assert (await client.get("/market/prices", headers={"Authorization": ""})).status_code \
        == 200
    assert await read_topic(settings, "market.commands", raw=True) == []


@pytest.mark.parametrize("body", [
    {"symbol": "BTC-USD", "headline": "crash", "jump": 2.5},
    {"symbol": "BTC-USD", "headline": "crash", "jump": -3},
    {"symbol": "BTC-USD", "headline": "", "jump": 0.1},
    {"symbol": "btc usd", "headline": "x", "jump": 0.1},
])
async def test_simulator_news_out_of_bounds_is_422_problem(client: httpx.AsyncClient,
                                                           body: dict[str, Any]) -> None:
    assert_problem(await client.post("/market/simulator/news", json=body), 422, "validation-failed")


async def test_simulator_unknown_regime_is_422_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/market/simulator/regime",
                               json={"symbol": "BTC-USD", "regime": "wild"}), 422,
             "validation-failed")


async def test_readyz_checks_postgres_redis_and_kafka(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ok",
                           "checks": {"kafka": "ok", "postgres": "ok", "redis": "ok"}}
    assert (await client.get("/livez")).status_code == 200
