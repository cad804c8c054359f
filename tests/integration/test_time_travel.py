"""Time travel on real Kafka and PostgreSQL: the account engine trades in-process against
ticks, the live state of the account is recorded at several instants, and
`GET /accounts/{id}?as_of=` each instant answers exactly that state, rebuilt from the account
history's snapshots and the log's tail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from core.adapters.account_history_projection import AccountHistoryProjection
from core.adapters.accounts_projection import AccountsProjection
from core.domain.trading import TradingAccount, clone
from core.processors.account_engine import AccountEngine
from core.views.account_history import account_as_of
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered
from schemas.market import MarketTicksPublished, TickRow
from schemas.trading import CancelOrder, PlaceOrder, order_id_for
from tests.integration.helpers import (
    asgi_client,
    assert_problem,
    bearer,
    produce,
    record_counts,
    spec,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REGISTRY = default_registry()


async def _event(settings: Settings, topic: str, key: str, payload: EventPayload, n: int,
                 at: datetime) -> None:
    event_id = uuid.uuid4()
    env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id, occurred_at=at,
                     correlation_id=event_id, causation_id=None)
    await produce(settings, topic, [(key.encode(), encode(env))])


class Session:
    """One account trading BTC-USD through the engine, in-process on the real log."""

    def __init__(self, settings: Settings, engine: AccountEngine, account: str) -> None:
        self.settings = settings
        self.engine = engine
        self.account = account
        self.ticks = 0

    def live(self) -> tuple[int, TradingAccount] | None:
        for pstate in self.engine.partitions.values():
            got = pstate.aggregates.get(self.account)
            if got is not None:
                return got.version, clone(got.value)
        return None

    def version(self) -> int:
        got = self.live()
        return 0 if got is None else got[0]

    async def tick(self, bid: str) -> None:
        self.ticks += 1
        now = datetime.now(UTC)
        ns = int(now.timestamp() * 1e9)
        row = TickRow(venue_ts_ns=ns, received_ts_ns=ns, price=float(bid), size=5.0,
                      bid=float(bid), ask=float(Decimal(bid) + Decimal("0.02")))
        await _event(self.settings, "market.ticks", "BTC-USD",
                     MarketTicksPublished(instrument="BTC-USD", venue="simulator",
                                          ticks=(row,)), self.ticks, now)

    async def command(self, payload: CommandPayload) -> None:
        env = make_command(payload, aggregate_id=self.account, command_id=uuid.uuid4(),
                           issued_at=datetime.now(UTC))
        await produce(self.settings, "account.commands", [(self.account.encode(), encode(env))])

    async def step(self, act: Callable[[], Awaitable[None]], *, events: int) -> None:
        """Do `act` and wait until the engine folded at least `events` more events."""
        before = self.version()
        await act()

        async def moved() -> bool:
            return self.version() >= before + events

        await wait_until(moved, timeout=60, what=f"{events} events after version {before}")
        settled = self.version()
        while True:  # and nothing more comes (an equity mark may follow a tick's fills)
            await asyncio.sleep(0.3)
            if self.version() == settled:
                return
            settled = self.version()


def _place(client: str, side: str, kind: str, qty: str, limit: str | None = None
           ) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument="BTC-USD", side=side,  # type: ignore[arg-type]
                      type=kind, quantity=Decimal(qty),  # type: ignore[arg-type]
                      limit_price=None if limit is None else Decimal(limit))


async def _running(*runners: Any) -> list[asyncio.Task[Any]]:
    tasks = []
    for runner in runners:
        await runner.start()
        tasks.append(asyncio.create_task(runner.run()))
    return tasks


async def _stopped(tasks: list[asyncio.Task[Any]], *runners: Any) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for runner in runners:
        await runner.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def trader_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(settings)) as client:
        yield client


async def test_the_account_as_of_each_instant_equals_the_live_state_recorded_then(
        settings: Settings, trader_client: httpx.AsyncClient) -> None:
    user, assessment = uuid.uuid4(), uuid.uuid4()
    account = account_id_for(str(assessment))
    await _event(settings, "instrument.events", "BTC-USD",
                 InstrumentRegistered(spec=spec("BTC-USD")), 1, datetime.now(UTC))
    # As `core.bootstrap.account_decider` builds it, with quotes fresh for the whole test.
    # Marks at most every 100 ms of tick time: the tick at 101.00 below must mark, however
    # quickly the steps since the last mark ran (at 1 s it did not when they took < 1 s).
    engine = AccountEngine(settings, REGISTRY, max_quote_age_ms=600_000, mark_interval_ms=100,
                           snapshot_every=settings.decider_snapshot_every)
    # Snapshots every 3 events of the account: most instants are read as snapshot + tail.
    history = ProjectionRunner(settings, AccountHistoryProjection(every_events=3,
                                                                  every_records=50), REGISTRY)
    accounts = ProjectionRunner(settings, AccountsProjection(), REGISTRY)
    tasks = await _running(engine, history, accounts)
    session = Session(settings, engine, account)
    recorded: list[tuple[datetime, dict[str, Any]]] = []

    def record() -> None:
        got = session.live()
        assert got is not None
        version, state = got
        now = datetime.now(UTC)
        recorded.append((now, account_as_of(state, version=version, last_event_at=None,
                                            as_of=now).model_dump(mode="json")))

    try:
        opened_before = datetime.now(UTC)
        await session.tick("100.00")
        await session.step(lambda: session.command(OpenAccount(
            assessment_id=assessment, user_id=user, starting_balance=Decimal(10_000),
            currency="USD")), events=1)
        record()
        # Each step's events come in one step of the engine (a decision, or a tick's fills
        # and mark): at least this many, then nothing more.
        steps: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (lambda: session.command(_place("m1", "buy", "market", "1")), 3),
            (lambda: session.command(_place("l1", "buy", "limit", "2", "99.00")), 1),
            (lambda: session.command(_place("l2", "buy", "limit", "1", "90.00")), 1),
            (lambda: session.tick("98.50"), 2),  # trades through l1: filled
            (lambda: session.command(_place("m2", "sell", "market", "1.5")), 3),
            (lambda: session.command(CancelOrder(order_id=order_id_for(account, "l2"))), 1),
            (lambda: session.tick("101.00"), 1),  # marks the equity
            (lambda: session.command(_place("m3", "sell", "market", "1.5")), 3),
        ]
        for act, events in steps:
            await session.step(act, events=events)
            record()
        final = session.version()

        client = trader_client
        me = bearer(settings, role="trader", user_id=str(user))
        path = f"/accounts/{account}"

        async def caught_up() -> bool:
            resp = await client.get(path, params={"as_of": "2999-01-01T00:00:00Z"}, headers=me)
            return resp.status_code == 200 and resp.json()["version"] == final

        await wait_until(caught_up, timeout=60, what="the account history")

        for instant, live in recorded:
            resp = await client.get(path, params={"as_of": instant.isoformat()}, headers=me)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["as_of"].replace("Z", "+00:00") == instant.isoformat()
            for key in ("as_of", "last_event_at"):
                body.pop(key), live.pop(key, None)
            assert body == live, instant
        orders_then = [o["client_order_id"] for o in recorded[3][1]["open_orders"]]
        assert orders_then == ["l1", "l2"]  # after both limits, before the tick that filled l1
        assert recorded[-1][1]["positions"] == []  # and at the end the position is closed

        # Before the account opened: it did not exist then.
        before = (opened_before - timedelta(seconds=5)).isoformat()
        assert_problem(await client.get(path, params={"as_of": before}, headers=me),
                       404, "account-not-found")
        # In the future: the account as it is now.
        later = await client.get(path, params={"as_of": "2999-01-01T00:00:00+02:00"},
                                 headers=me)
        assert later.status_code == 200 and later.json()["version"] == final
        # Not an instant.
        for bad in ("yesterday", "2026-01-02T09:30:00", "2026-13-02T09:30:00Z", "1700000000"):
            assert_problem(await client.get(path, params={"as_of": bad}, headers=me),
                           422, "invalid-as-of")
        # Someone else's account, as another trader: not found, as for any unknown id.
        other = bearer(settings, role="trader", user_id=str(uuid.uuid4()))
        assert_problem(await client.get(path, params={"as_of": before}, headers=other),
                       404, "account-not-found")
        analyst = bearer(settings, role="analyst", user_id=str(uuid.uuid4()))
        assert_problem(await client.get(path, params={"as_of": before}, headers=analyst),
                       403, "forbidden")
        admin = await client.get(path, params={"as_of": recorded[2][0].isoformat()},
                                 headers=bearer(settings))
        assert admin.status_code == 200 and admin.json()["version"] == recorded[2][1]["version"]

        # The history is disposable: rebuilt from the log, it equals the live one row for row.
        await _stopped(tasks[1:2], history)
        live_tables = await _history_tables(settings)
        assert len(live_tables[1]) >= 3  # snapshots every 3 events: several were written
        rebuild = ProjectionRunner(settings, AccountHistoryProjection(every_events=3,
                                                                      every_records=50), REGISTRY)
        await rebuild.drop()
        await rebuild.start()
        try:
            total = sum((await record_counts(settings, "account.events")).values())
            await rebuild.run(count=total, timeout=60)
        finally:
            await rebuild.stop()
        assert await _history_tables(settings) == live_tables
    finally:
        await _stopped(tasks, engine, history, accounts)


async def _history_tables(settings: Settings) -> tuple[list[Any], list[Any]]:
    async with await connect(settings) as conn:
        current = await (await conn.execute(
            "SELECT account_id, partition, version, events_offset, at, snapshot_version, "
            "snapshot_offset, state FROM account_history ORDER BY account_id")).fetchall()
        snapshots = await (await conn.execute(
            "SELECT * FROM account_snapshots ORDER BY account_id, version")).fetchall()
    return current, snapshots
