"""A prediction contract resolved by an admin settles a trader's position, for real: the
instrument decider and projection as processes, the account engine in-process on the real
Kafka, the core API in-process. The account's balance moves by exactly
quantity x (outcome - price paid) less the instrument's commission."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
import pytest_asyncio

from core.bootstrap import account_decider
from core.processors.account_engine import AccountEngine
from kernel.settings import Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventEnvelope, make_command, make_event
from schemas.market import MarketTicksPublished, TickRow
from schemas.trading import PlaceOrder
from tests.integration.helpers import (
    assert_problem,
    bearer,
    produce,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

D = Decimal
RAIN = {"symbol": "RAIN-NYC", "venue": "polymarket", "asset_class": "prediction",
        "tick_size": "0.01", "lot_size": "1", "quote_currency": "USD",
        "commission_per_unit": "0.01", "description": "Rain in New York tomorrow?"}
BTC = {"symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto", "tick_size": "0.01",
       "lot_size": "0.0001", "quote_currency": "USD"}
ASSESSMENT = uuid.UUID("00000000-0000-4000-8000-0000000c0a11")
ACCOUNT = account_id_for(str(ASSESSMENT))


@pytest_asyncio.fixture(loop_scope="session")
async def engine(settings: Settings) -> AsyncIterator[AccountEngine]:
    """The account engine in this process, running until the test ends."""
    runner = account_decider(settings)
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.ready.wait(), timeout=60)
        yield runner
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.stop()


async def _command(settings: Settings, payload: CommandPayload) -> None:
    env = make_command(payload, aggregate_id=ACCOUNT, command_id=uuid.uuid4(),
                       issued_at=datetime.now(UTC))
    await produce(settings, "account.commands", [(ACCOUNT.encode(), encode(env))])


async def _tick(settings: Settings, bid: float, ask: float) -> None:
    now = time.time_ns()
    row = TickRow(venue_ts_ns=now, received_ts_ns=now, price=bid, size=0.0, bid=bid, ask=ask)
    env = make_event(MarketTicksPublished(instrument="RAIN-NYC", venue="polymarket",
                                          ticks=(row,)),
                     aggregate_id="RAIN-NYC", sequence=1, occurred_at=datetime.now(UTC),
                     correlation_id=uuid.uuid4(), causation_id=None, event_id=uuid.uuid4())
    await produce(settings, "market.ticks", [(b"RAIN-NYC", encode(env))])


async def _account_events(settings: Settings) -> list[EventEnvelope]:
    return [e for e in await read_topic(settings, "account.events")
            if e.aggregate_id == ACCOUNT]


async def _until(settings: Settings, event_type: str, what: str) -> list[EventEnvelope]:
    async def there() -> bool:
        return any(e.type == event_type for e in await _account_events(settings))

    await wait_until(there, timeout=60, what=what)
    return await _account_events(settings)


async def test_an_admin_resolution_settles_the_position_at_the_outcome(
        settings: Settings, api: httpx.AsyncClient, spawn: type,
        engine: AccountEngine) -> None:
    spawn("decider", "instrument").start()
    spawn("projection", "instruments").start()
    for spec in (RAIN, BTC):
        created = await api.post("/instruments", json=spec, timeout=60)
        assert created.status_code == 201, created.text
    assert created.json()["commission_per_unit"] == "0"
    rain = (await api.get("/instruments/RAIN-NYC")).json()
    assert (rain["commission_per_unit"], rain["slippage_ticks"]) == ("0.01", 0)

    async def known() -> bool:
        return engine.view.instrument("RAIN-NYC") is not None

    await wait_until(known, timeout=60, what="the engine to know RAIN-NYC")
    await _command(settings, OpenAccount(assessment_id=ASSESSMENT, user_id=uuid.uuid4(),
                                         starting_balance=D(10_000), currency="USD"))
    await _until(settings, "account.opened", "the account to open")

    # A quote, then a market buy of 100 YES at the ask: 0.42, plus 0.01 per unit.
    await _tick(settings, 0.40, 0.42)

    async def quoted() -> bool:
        return engine.quote("RAIN-NYC") is not None

    await wait_until(quoted, timeout=60, what="the engine to hold a RAIN-NYC quote")
    await _command(settings, PlaceOrder(client_order_id="yes-100", instrument="RAIN-NYC",
                                        side="buy", type="market", quantity=D(100)))
    events = await _until(settings, "trading.order-filled", "the buy to fill")
    fill = next(e for e in events if e.type == "trading.order-filled")
    assert D(str(fill.payload["price"])) == D("0.42")
    assert D(str(fill.payload["commission"])) == D("1.00")

    resolved = await api.post("/instruments/RAIN-NYC/resolve", json={"outcome": 1}, timeout=60)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["status"], resolved.json()["outcome"],
            resolved.json()["resolution_source"]) == ("resolved", 1, "admin")

    events = await _until(settings, "trading.contract-settled", "the settlement")
    settled = [e for e in events if e.type == "trading.contract-settled"]
    assert len(settled) == 1 and D(str(settled[0].payload["realized"])) == D("58.00")
    balance = [e for e in events if e.type == "account.balance-changed"][-1]
    # 10,000 + 100 x (1 - 0.42) - 100 x 0.01
    assert D(str(balance.payload["balance"])) == D("10057.00")
    assert balance.payload["cause"] == "settlement"
    assert [e.type for e in events].count("position.closed") == 1

    # Resolving again as it resolved changes nothing; another outcome is refused, and so is
    # a linear instrument and a trader.
    again = await api.post("/instruments/RAIN-NYC/resolve", json={"outcome": 1})
    assert again.status_code == 200 and again.json()["outcome"] == 1, again.text
    assert_problem(await api.post("/instruments/RAIN-NYC/resolve", json={"outcome": 0}),
                   409, "resolution-conflict")
    assert_problem(await api.post("/instruments/BTC-USD/resolve", json={"outcome": 0}),
                   409, "instrument-not-resolvable")
    assert_problem(await api.post("/instruments/RAIN-NYC/resolve", json={"outcome": 2}),
                   422, "validation-failed")
    as_trader = bearer(settings, role="trader", user_id=str(uuid.uuid4()))
    assert_problem(await api.post("/instruments/RAIN-NYC/resolve", json={"outcome": 0},
                                  headers=as_trader), 403, "forbidden")

    # Nothing settles twice, and no order is taken on the resolved contract.
    await _command(settings, PlaceOrder(client_order_id="late", instrument="RAIN-NYC",
                                        side="buy", type="market", quantity=D(1)))
    events = await _until(settings, "trading.order-rejected", "the late order's refusal")
    rejected = next(e for e in events if e.type == "trading.order-rejected")
    assert rejected.payload["reason"] == "instrument-resolved"
    assert [e.type for e in events].count("trading.contract-settled") == 1
