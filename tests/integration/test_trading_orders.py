"""Orders through the API on the real broker: the account engine decides them against ticks
published to market.ticks, and the routes answer with its decision.

Processes: the instrument decider and the account engine (`propstream run decider ...`), the
instruments and accounts projections; the core API runs in-process. An instrument is
registered through the API, a ticker task publishes a fresh touch every 200 ms, and each
test opens its own account (account.open on account.commands, as the assessment policy
sends it) for a trader of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from kernel.kafka import apply_topics, make_producer
from kernel.settings import Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import make_command, make_event
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE
from tests.conftest import _namespaces
from tests.integration.helpers import (
    PlatformProcess,
    asgi_client,
    assert_problem,
    bearer,
    end_offsets,
    produce,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PROCESSES = (("decider", "instrument"), ("decider", "account"), ("projection", "instruments"),
             ("projection", "accounts"))
D = Decimal


@dataclass
class Ticker:
    """Publishes BTC-USD's touch every `every` seconds, stamped now: the engine's quote stays
    fresh, and a new touch reaches resting orders on the next beat."""

    settings: Settings
    bid: str = "100.00"
    ask: str = "100.02"
    every: float = 0.2

    async def run(self) -> None:
        producer = make_producer(self.settings, client_id="test-ticker")
        await producer.start()
        try:
            n = 0
            while True:
                n += 1
                now = datetime.now(UTC)
                at = int(now.timestamp() * 1e9)
                row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(self.bid),
                              size=5.0, bid=float(self.bid), ask=float(self.ask))
                env = make_event(MarketTicksPublished(instrument="BTC-USD", venue="simulator",
                                                      ticks=(row,)),
                                 aggregate_id="BTC-USD", sequence=n, occurred_at=now,
                                 event_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
                                 causation_id=None)
                await producer.send_and_wait(self.settings.topic("market.ticks"),
                                             value=encode(env), key=b"BTC-USD")
                await asyncio.sleep(self.every)
        finally:
            await producer.stop()


@dataclass
class Platform:
    settings: Settings
    ticker: Ticker


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(base_settings: Settings,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    ns = base_settings.model_copy(update={"namespace": "t" + uuid.uuid4().hex[:10],
                                          "command_timeout_ms": 15000})
    await apply_topics(ns, CATALOGUE)
    _namespaces.append(ns)
    logs: Path = tmp_path_factory.mktemp("trading-orders")
    procs = [PlatformProcess(ns, *argv, log_dir=logs).start() for argv in PROCESSES]
    ticker = Ticker(ns)
    task = asyncio.create_task(ticker.run())
    try:
        for proc in procs:
            await proc.ready()
        from core.bootstrap import api as make_api

        async with asgi_client(make_api(ns), headers=bearer(ns)) as admin:
            for symbol in ("BTC-USD", "ETH-USD"):  # ETH-USD never gets a tick
                resp = await admin.post("/instruments", json={
                    "symbol": symbol, "venue": "simulator", "asset_class": "crypto",
                    "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"})
                assert resp.status_code == 201, resp.text
        yield Platform(ns, ticker)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for proc in procs:
            proc.stop()


@dataclass
class Trader:
    client: httpx.AsyncClient
    account_id: str
    user_id: uuid.UUID

    @property
    def orders(self) -> str:
        return f"/accounts/{self.account_id}/orders"


async def open_account(settings: Settings, user_id: uuid.UUID) -> str:
    assessment = uuid.uuid4()
    account_id = account_id_for(str(assessment))
    env = make_command(OpenAccount(assessment_id=assessment, user_id=user_id,
                                   starting_balance=D(100_000), currency="USD"),
                       aggregate_id=account_id, command_id=uuid.uuid4(),
                       issued_at=datetime.now(UTC), actor="policy:assessment")
    await produce(settings, "account.commands", [(account_id.encode(), encode(env))])
    return account_id


@pytest_asyncio.fixture(loop_scope="session")
async def trader(platform: Platform) -> AsyncIterator[Trader]:
    from core.bootstrap import api as make_api

    user_id = uuid.uuid4()
    account_id = await open_account(platform.settings, user_id)
    headers = bearer(platform.settings, role="trader", user_id=str(user_id))
    async with asgi_client(make_api(platform.settings), headers=headers) as client:
        async def shown() -> bool:
            return (await client.get(f"/accounts/{account_id}")).status_code == 200

        await wait_until(shown, timeout=30, what="the account in the read model")
        yield Trader(client, account_id, user_id)


def order(client_id: str, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"client_order_id": client_id, "instrument": "BTC-USD",
                              "side": "buy", "type": "market", "quantity": "1"}
    values.update(fields)
    return values


async def account_events(settings: Settings, account_id: str) -> list[Any]:
    return [e for e in await read_topic(settings, "account.events")
            if e.aggregate_id == account_id]


async def test_a_market_order_answers_201_with_its_fill(platform: Platform,
                                                       trader: Trader) -> None:
    resp = await trader.client.post(trader.orders, json=order("m-1"))
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert got["status"] == "filled" and len(got["fills"]) == 1
    assert D(got["fills"][0]["price"]) == D(platform.ticker.ask)
    assert D(got["average_price"]) == D(platform.ticker.ask)
    assert resp.headers["location"] == f"{trader.orders}/{got['order_id']}"


async def test_a_retry_of_the_same_body_returns_the_same_order_without_a_second_fill(
        platform: Platform, trader: Trader) -> None:
    first = await trader.client.post(trader.orders, json=order("r-1", quantity="0.5"))
    again = await trader.client.post(trader.orders, json=order("r-1", quantity="0.500"))
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.json()["fills"] == first.json()["fills"]
    other = await trader.client.post(trader.orders, json=order("r-1", quantity="2"))
    assert_problem(other, 409, "duplicate-client-order-id")
    events = await account_events(platform.settings, trader.account_id)
    assert [e.type for e in events].count("trading.order-filled") == 1


async def test_a_limit_away_from_the_market_works_until_a_later_tick_fills_it(
        platform: Platform, trader: Trader) -> None:
    resp = await trader.client.post(trader.orders, json=order(
        "l-1", type="limit", limit_price="99.50"))
    assert resp.status_code == 201, resp.text
    assert (resp.json()["status"], resp.json()["fills"]) == ("working", [])
    order_id = resp.json()["order_id"]
    platform.ticker.bid, platform.ticker.ask = "99.40", "99.45"
    try:
        async def filled() -> bool:
            events = await account_events(platform.settings, trader.account_id)
            return any(e.type == "trading.order-filled" and e.payload["order_id"] == order_id
                       for e in events)

        await wait_until(filled, timeout=30, what="the resting limit filled by a tick")
    finally:
        platform.ticker.bid, platform.ticker.ask = "100.00", "100.02"
    fill = next(e for e in await account_events(platform.settings, trader.account_id)
                if e.type == "trading.order-filled")
    assert D(str(fill.payload["price"])) == D("99.50")
    # Filled: it can no longer be cancelled.
    assert_problem(await trader.client.delete(f"{trader.orders}/{order_id}"), 409,
                   "order-not-open")


async def test_cancel_and_modify_a_working_order(platform: Platform, trader: Trader) -> None:
    resp = await trader.client.post(trader.orders, json=order(
        "w-1", type="limit", limit_price="90.00"))
    order_id = resp.json()["order_id"]
    modified = await trader.client.patch(f"{trader.orders}/{order_id}",
                                         json={"quantity": "2", "limit_price": "91.00"})
    assert modified.status_code == 200, modified.text
    assert (D(modified.json()["quantity"]), D(modified.json()["limit_price"])) == (2, 91)
    cancelled = await trader.client.delete(f"{trader.orders}/{order_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert_problem(await trader.client.patch(f"{trader.orders}/{order_id}",
                                             json={"quantity": "3"}), 409, "order-not-open")
    assert_problem(await trader.client.delete(f"{trader.orders}/{uuid.uuid4()}"), 404,
                   "order-unknown")
    types = [e.type for e in await account_events(platform.settings, trader.account_id)]
    assert types.count("trading.order-modified") == 1
    assert types.count("trading.order-cancelled") == 1


async def test_refusals_answer_the_engines_reason(platform: Platform, trader: Trader) -> None:
    stale = await trader.client.post(trader.orders, json=order("s-1", instrument="ETH-USD"))
    assert assert_problem(stale, 422, "stale-quote")["reason"] == "stale-quote"
    unknown = await trader.client.post(trader.orders, json=order("u-1", instrument="NOPE-USD"))
    assert assert_problem(unknown, 422, "instrument-unknown")["reason"] == "instrument-unknown"


async def test_bad_input_and_off_grid_prices_are_422_with_nothing_sent(
        platform: Platform, trader: Trader) -> None:
    before = await end_offsets(platform.settings, "account.commands")
    off = await trader.client.post(trader.orders, json=order(
        "g-1", type="limit", limit_price="99.995"))
    assert assert_problem(off, 422, "off-tick")["reason"] == "off-tick"
    for bad in ({"quantity": "0"}, {"quantity": "-1"}, {"quantity": "NaN"},
                {"quantity": "Infinity"}, {"quantity": "1e30"}, {"type": "limit"},
                {"leverage": "100"}):
        resp = await trader.client.post(trader.orders, json=order("b-1", **bad))
        assert_problem(resp, 422, "validation-failed")
    assert await end_offsets(platform.settings, "account.commands") == before


async def test_another_traders_account_is_404_with_nothing_sent(platform: Platform,
                                                               trader: Trader) -> None:
    someone = uuid.uuid4()
    theirs = await open_account(platform.settings, someone)
    # Their account exists in the read model before we try it.
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(platform.settings), headers=bearer(
            platform.settings, role="trader", user_id=str(someone))) as owner:
        async def shown() -> bool:
            return (await owner.get(f"/accounts/{theirs}")).status_code == 200

        await wait_until(shown, timeout=30, what="the other account in the read model")
    before = await end_offsets(platform.settings, "account.commands")
    resp = await trader.client.post(f"/accounts/{theirs}/orders", json=order("x-1"))
    unknown = await trader.client.post(f"/accounts/{uuid.uuid4()}/orders", json=order("x-1"))
    assert assert_problem(resp, 404, "account-not-found")["detail"].startswith("no account")
    assert_problem(unknown, 404, "account-not-found")
    assert await end_offsets(platform.settings, "account.commands") == before
    assert [e.type for e in await account_events(platform.settings, theirs)] == [
        "account.opened"]


async def test_an_admin_halts_and_resumes_an_account(platform: Platform, trader: Trader) -> None:
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(platform.settings), headers=bearer(platform.settings)) as c:
        halted = await c.post(f"/accounts/{trader.account_id}/halt", json={"reason": "review"})
        assert halted.status_code == 200, halted.text
        assert (halted.json()["halted"], halted.json()["changed"]) == (True, True)
        # Halting twice changes nothing and is answered, not left undecided.
        again = await c.post(f"/accounts/{trader.account_id}/halt", json={"reason": "again"})
        assert again.status_code == 200, again.text
        assert again.json()["changed"] is False
        refused = await trader.client.post(trader.orders, json=order("h-1"))
        assert assert_problem(refused, 409, "account-halted")["reason"] == "account-halted"
        resumed = await c.post(f"/accounts/{trader.account_id}/resume", json={"reason": "ok"})
        assert (resumed.status_code, resumed.json()["halted"]) == (200, False)
    placed = await trader.client.post(trader.orders, json=order("h-2"))
    assert placed.status_code == 201, placed.text
    types = [e.type for e in await account_events(platform.settings, trader.account_id)]
    assert types.count("account.halted") == 1 and types.count("account.resumed") == 1
