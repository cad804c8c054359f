"""The order routes and their handler on a deciding bus: the real account engine's `decide`
(TradingAggregate with an EngineContext holding a market and a quote), every outcome mapped
to HTTP, and nothing sent for a request refused at the edge."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from core.domain import trading
from core.entrypoints.http import orders
from core.entrypoints.http.deps import get_bus, get_registry
from core.handlers import trading as handlers
from core.processors.account_engine import EngineContext, TradingAggregate
from core.views.assessments import AccountPublic
from kernel.auth import ROLE_SCOPES, Principal
from kernel.http import install_conventions
from kernel.problems import Problem
from schemas.account import OpenAccount, account_id_for
from schemas.envelope import CommandEnvelope, make_command
from schemas.identity import Role
from schemas.trading import order_id_for
from tests.support.deciding_bus import T0, DecidingBus

pytestmark = pytest.mark.asyncio

D = Decimal
ASSESSMENTS = (uuid.UUID(int=1), uuid.UUID(int=2))
ACCOUNT, OTHERS = (uuid.UUID(account_id_for(str(a))) for a in ASSESSMENTS)
TRADER = "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02"
SOMEONE = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
ADMIN = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
BTC = trading.Market(symbol="BTC-USD", tick_size=D("0.5"), lot_size=D("0.001"))
GRID = handlers.Grid(tick_size=D("0.5"), lot_size=D("0.001"))
ORDERS = f"/accounts/{ACCOUNT}/orders"

trader_gate = get_args(orders.Trader)[1].dependency
admin_gate = get_args(orders.Admin)[1].dependency
stopper_gate = get_args(orders.Stopper)[1].dependency


def ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


@dataclass
class Market:
    """What the engine knows: BTC-USD and its touch, fresh at every decision unless stale."""

    stale: bool = False
    bid: D = field(default_factory=lambda: D("100.0"))
    ask: D = field(default_factory=lambda: D("100.5"))

    def context(self, command: CommandEnvelope, now: datetime) -> EngineContext:
        at = ns(now)

        def quote(symbol: str) -> trading.Quote | None:
            if symbol != "BTC-USD":
                return None
            age = 60_000_000_000 if self.stale else 0
            return trading.Quote("BTC-USD", self.bid, self.ask, None, None, at - age)

        return EngineContext(now=now, command_id=command.command_id, actor=command.actor,
                             now_ns=at, market=lambda s: BTC if s == "BTC-USD" else None,
                             quote=quote)


@dataclass
class Reads:
    """The accounts and instruments read models as the routes read them."""

    accounts: dict[uuid.UUID, AccountPublic] = field(default_factory=dict)
    grids: dict[str, handlers.Grid] = field(default_factory=lambda: {"BTC-USD": GRID})

    async def look(self, account_id: uuid.UUID, symbol: str | None = None
                   ) -> tuple[AccountPublic | None, handlers.Grid | None]:
        return self.accounts.get(account_id), None if symbol is None else self.grids.get(symbol)


def account(account_id: uuid.UUID, owner: str, status: str = "open") -> AccountPublic:
    return AccountPublic(account_id=account_id, assessment_id=uuid.uuid4(),
                         user_id=uuid.UUID(owner), currency="USD", starting_balance=D(100_000),
                         balance=D(100_000), status=status,  # type: ignore[arg-type]
                         opened_at=T0, closed_at=None, close_reason=None, version=1,
                         equity=D(100_000), unrealized=D(0), margin_used=D(0),
                         margin_free=D(100_000), halted=False)


@dataclass
class World:
    bus: DecidingBus
    market: Market
    reads: Reads
    caller: list[Principal]
    client: httpx.AsyncClient

    def act_as(self, role: Role, user_id: str, scopes: frozenset[str] | None = None) -> None:
        self.caller[0] = Principal(user_id=user_id, role=role,
                                   via="token" if scopes is None else "api-key",
                                   scopes=ROLE_SCOPES[role] if scopes is None else scopes)

    def trading_events(self) -> list[str]:
        return [e.type for e in self.bus.events_of(str(ACCOUNT))]


async def open_account(bus: DecidingBus, assessment_id: uuid.UUID, owner: str) -> None:
    account_id = account_id_for(str(assessment_id))
    env = make_command(OpenAccount(assessment_id=assessment_id, user_id=uuid.UUID(owner),
                                   starting_balance=D(100_000), currency="USD"),
                       aggregate_id=str(account_id), command_id=uuid.uuid4(), issued_at=T0)
    reply = await bus.send("account.commands", env)
    assert reply is not None and reply.status == "accepted"


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    market = Market()
    bus = DecidingBus({"account.commands": TradingAggregate()}, context=market.context)
    await open_account(bus, ASSESSMENTS[0], TRADER)
    await open_account(bus, ASSESSMENTS[1], SOMEONE)
    reads = Reads(accounts={ACCOUNT: account(ACCOUNT, TRADER), OTHERS: account(OTHERS, SOMEONE)})
    caller = [Principal(user_id=TRADER, role="trader", via="token",
                        scopes=ROLE_SCOPES["trader"])]
    app = FastAPI()
    install_conventions(app, cors_origins=(), max_body=65536)
    app.include_router(orders.router)
    app.dependency_overrides.update({
        get_bus: lambda: bus, get_registry: lambda: bus.registry,
        orders.get_reads: lambda: reads,
        orders.COMMAND_LIMIT[0].dependency: lambda: None,
        # The declared rules still run (tested below, apart); here they admit the caller.
        trader_gate: lambda: caller[0], admin_gate: lambda: caller[0],
        stopper_gate: lambda: caller[0],
    })
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield World(bus=bus, market=market, reads=reads, caller=caller, client=client)


def body(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"client_order_id": "c-1", "instrument": "BTC-USD", "side": "buy",
                              "type": "market", "quantity": "1"}
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


def principal_of(role: Role, scopes: frozenset[str] | None = None) -> Principal:
    return Principal(user_id=TRADER, role=role, via="token" if scopes is None else "api-key",
                     scopes=ROLE_SCOPES[role] if scopes is None else scopes)


def problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = resp.json()
    assert found["type"].rsplit(":", 1)[-1] == slug, found
    return found


# -- place ------------------------------------------------------------------------------------


async def test_a_market_order_answers_201_with_its_fill_at_the_touch(world: World) -> None:
    resp = await world.client.post(ORDERS, json=body())
    assert resp.status_code == 201, resp.text
    got = resp.json()
    order_id = str(order_id_for(str(ACCOUNT), "c-1"))
    assert resp.headers["location"] == f"{ORDERS}/{order_id}"
    assert (got["order_id"], got["status"], got["client_order_id"]) == (order_id, "filled", "c-1")
    assert D(got["filled_quantity"]) == 1 and D(got["average_price"]) == D("100.5")
    assert [D(f["price"]) for f in got["fills"]] == [D("100.5")]
    assert got["fills"][0]["order_id"] == order_id and got["duplicate"] is False


async def test_a_limit_away_from_the_market_answers_201_working_without_fills(
        world: World) -> None:
    resp = await world.client.post(ORDERS, json=body(type="limit", limit_price="95"))
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert (got["status"], got["fills"], got["average_price"]) == ("working", [], None)
    assert D(got["filled_quantity"]) == 0 and D(got["limit_price"]) == 95


async def test_a_partial_fill_beyond_the_quoted_size_answers_partially_filled(
        world: World) -> None:
    def thin(command: CommandEnvelope, now: datetime) -> EngineContext:
        ctx = world.market.context(command, now)
        quote = trading.Quote("BTC-USD", D("100.0"), D("100.5"), D("0.4"), D("0.4"), ns(now))
        return EngineContext(now=ctx.now, command_id=ctx.command_id, actor=ctx.actor,
                             now_ns=ctx.now_ns, market=ctx.market, quote=lambda s: quote)

    world.bus.context = thin
    resp = await world.client.post(ORDERS, json=body(type="limit", limit_price="101"))
    got = resp.json()
    assert got["status"] == "partially-filled", got
    assert D(got["filled_quantity"]) == D("0.4")


async def test_a_retry_of_the_same_body_answers_the_same_order_without_a_second_fill(
        world: World) -> None:
    first = await world.client.post(ORDERS, json=body())
    again = await world.client.post(ORDERS, json=body())
    assert again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.json()["fills"] == first.json()["fills"] and again.json()["duplicate"] is True
    assert world.trading_events().count("trading.order-filled") == 1


async def test_the_same_client_order_id_with_another_body_is_409_duplicate(
        world: World) -> None:
    await world.client.post(ORDERS, json=body())
    found = problem(await world.client.post(ORDERS, json=body(quantity="2")), 409,
                    "duplicate-client-order-id")
    assert found["reason"] == "duplicate-client-order-id" and "c-1" in found["detail"]


@pytest.mark.parametrize(("change", "status", "reason"), [
    ({"instrument": "NOPE-USD"}, 422, "instrument-unknown"),
    ({"type": "limit", "limit_price": "100", "stop_loss": "101"}, 422, "invalid-brackets"),
    ({"time_in_force": "FOK", "type": "limit", "limit_price": "99"}, 422, "fok-unfillable"),
    ({"quantity": "100000"}, 422, "insufficient-margin"),
])
async def test_an_order_the_engine_refuses_is_the_problem_of_its_reason(
        world: World, change: dict[str, Any], status: int, reason: str) -> None:
    found = problem(await world.client.post(ORDERS, json=body(**change)), status, reason)
    assert found["reason"] == reason and found["detail"]
    assert "trading.order-rejected" in world.trading_events()


async def test_a_stale_quote_is_422_stale_quote(world: World) -> None:
    world.market.stale = True
    found = problem(await world.client.post(ORDERS, json=body()), 422, "stale-quote")
    assert "old" in found["detail"]


async def test_a_halted_account_refuses_an_order_that_adds_exposure_with_409(
        world: World) -> None:
    world.act_as("admin", ADMIN)
    halted = await world.client.post(f"/accounts/{ACCOUNT}/halt", json={"reason": "review"})
    assert halted.status_code == 200, halted.text
    world.act_as("trader", TRADER)
    problem(await world.client.post(ORDERS, json=body()), 409, "account-halted")


@pytest.mark.parametrize(("change", "slug"), [
    ({"quantity": "0.0005"}, "off-lot"),
    ({"type": "limit", "limit_price": "100.25"}, "off-tick"),
    ({"type": "limit", "limit_price": "95", "stop_loss": "90.1"}, "off-tick"),
])
async def test_off_the_read_models_grid_is_422_and_nothing_is_sent(
        world: World, change: dict[str, Any], slug: str) -> None:
    sent = len(world.bus.sent)
    found = problem(await world.client.post(ORDERS, json=body(**change)), 422, slug)
    assert found["reason"] == slug and "command_id" not in found
    assert len(world.bus.sent) == sent


@pytest.mark.parametrize("bad", [
    {"quantity": "0"}, {"quantity": "-1"}, {"quantity": "NaN"}, {"quantity": "Infinity"},
    {"quantity": "-Infinity"}, {"quantity": "1e30"}, {"quantity": "0.0000000000001"},
    {"type": "limit", "limit_price": "0"}, {"type": "limit", "limit_price": "-5"},
    {"type": "limit", "limit_price": "NaN"}, {"type": "limit", "limit_price": "1e40"},
    {"type": "limit"}, {"type": "stop"}, {"type": "stop-limit", "stop_price": "99"},
    {"type": "market", "limit_price": "99"}, {"leverage": "100"}, {"side": "short"},
    {"client_order_id": None}, {"client_order_id": "has space"}, {"time_in_force": "GTD"},
    {"instrument": ""},
])
async def test_bad_input_is_a_422_problem_and_nothing_is_sent(
        world: World, bad: dict[str, Any]) -> None:
    sent = len(world.bus.sent)
    values = body(**bad)
    if bad.get("client_order_id", "") is None:
        values.pop("client_order_id", None)
    found = problem(await world.client.post(ORDERS, json=values), 422, "validation-failed")
    assert found["errors"]
    assert len(world.bus.sent) == sent


async def test_raw_nan_and_infinity_tokens_are_refused_too(world: World) -> None:
    sent = len(world.bus.sent)
    for raw in (b'{"client_order_id":"c","instrument":"BTC-USD","side":"buy",'
                b'"type":"market","quantity":NaN}',
                b'{"client_order_id":"c","instrument":"BTC-USD","side":"buy",'
                b'"type":"limit","quantity":1,"limit_price":Infinity}'):
        resp = await world.client.post(ORDERS, content=raw,
                                       headers={"content-type": "application/json"})
        assert resp.status_code == 422, resp.text
    assert len(world.bus.sent) == sent


@pytest.mark.parametrize("target", [OTHERS, uuid.UUID(int=7)])
async def test_another_traders_or_an_unknown_account_is_the_same_404_and_nothing_is_sent(
        world: World, target: uuid.UUID) -> None:
    sent = len(world.bus.sent)
    answers = [
        await world.client.post(f"/accounts/{target}/orders", json=body()),
        await world.client.delete(f"/accounts/{target}/orders/{uuid.uuid4()}"),
        await world.client.patch(f"/accounts/{target}/orders/{uuid.uuid4()}",
                                 json={"quantity": "2"}),
    ]
    for resp in answers:
        found = problem(resp, 404, "account-not-found")
        assert found["detail"] == f"no account {target} of yours"
    assert len(world.bus.sent) == sent


async def test_no_decision_in_time_is_202_pointing_at_the_command(world: World) -> None:
    world.bus.undecided.add("trading.place-order")
    resp = await world.client.post(ORDERS, json=body())
    assert resp.status_code == 202
    command_id = resp.json()["command_id"]
    assert resp.headers["location"] == f"/commands/{command_id}"
    assert resp.json()["status"] == "pending"


async def test_a_late_duplicate_without_its_events_is_202_pointing_at_the_order(
        world: World) -> None:
    await world.client.post(ORDERS, json=body())
    world.bus.trim = True
    resp = await world.client.post(ORDERS, json=body())
    assert resp.status_code == 202
    assert resp.headers["location"] == f"{ORDERS}/{order_id_for(str(ACCOUNT), 'c-1')}"
    assert resp.json()["status"] == "accepted"


async def test_the_place_command_id_derives_from_account_client_id_and_body() -> None:
    one = handlers.place_command_id(str(ACCOUNT), "c-1", orders.PlaceOrder(**body()))
    assert one == handlers.place_command_id(str(ACCOUNT), "c-1",
                                            orders.PlaceOrder(**body(quantity="1.000")))
    assert one != handlers.place_command_id(str(ACCOUNT), "c-1",
                                            orders.PlaceOrder(**body(quantity="2")))
    assert one != handlers.place_command_id(str(OTHERS), "c-1", orders.PlaceOrder(**body()))


# -- cancel and modify ------------------------------------------------------------------------


async def working(world: World, client_id: str = "w-1") -> str:
    resp = await world.client.post(ORDERS, json=body(client_order_id=client_id, type="limit",
                                                     limit_price="95"))
    assert resp.json()["status"] == "working", resp.text
    order_id: str = resp.json()["order_id"]
    return order_id


async def test_cancel_of_a_working_order_answers_cancelled_then_409_not_open(
        world: World) -> None:
    order_id = await working(world)
    resp = await world.client.delete(f"{ORDERS}/{order_id}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled" and resp.json()["order_id"] == order_id
    problem(await world.client.delete(f"{ORDERS}/{order_id}"), 409, "order-not-open")


async def test_cancel_of_a_filled_order_is_409_and_of_an_unknown_one_404(world: World) -> None:
    filled = (await world.client.post(ORDERS, json=body())).json()["order_id"]
    found = problem(await world.client.delete(f"{ORDERS}/{filled}"), 409, "order-not-open")
    assert "filled" in found["detail"]
    problem(await world.client.delete(f"{ORDERS}/{uuid.uuid4()}"), 404, "order-unknown")


async def test_a_cancel_retried_with_its_idempotency_key_is_the_same_command(
        world: World) -> None:
    order_id = await working(world)
    key = {"Idempotency-Key": "cancel-once"}
    first = await world.client.delete(f"{ORDERS}/{order_id}", headers=key)
    again = await world.client.delete(f"{ORDERS}/{order_id}", headers=key)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["command_id"] == again.json()["command_id"]
    assert world.trading_events().count("trading.order-cancelled") == 1


async def test_modify_answers_the_new_terms(world: World) -> None:
    order_id = await working(world)
    resp = await world.client.patch(f"{ORDERS}/{order_id}",
                                    json={"quantity": "2", "limit_price": "96"})
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert (D(got["quantity"]), D(got["limit_price"]), got["stop_price"]) == (2, 96, None)


async def test_modify_of_a_cancelled_order_is_409_and_of_an_unknown_one_404(
        world: World) -> None:
    order_id = await working(world)
    await world.client.delete(f"{ORDERS}/{order_id}")
    problem(await world.client.patch(f"{ORDERS}/{order_id}", json={"quantity": "2"}), 409,
            "order-not-open")
    problem(await world.client.patch(f"{ORDERS}/{uuid.uuid4()}", json={"quantity": "2"}), 404,
            "order-unknown")


@pytest.mark.parametrize(("change", "status", "slug"), [
    ({"stop_price": "90"}, 422, "invalid-modify"),
    ({"limit_price": "95.2"}, 422, "off-tick"),
])
async def test_a_modify_the_engine_refuses_is_the_problem_of_its_reason(
        world: World, change: dict[str, Any], status: int, slug: str) -> None:
    order_id = await working(world)
    problem(await world.client.patch(f"{ORDERS}/{order_id}", json=change), status, slug)


@pytest.mark.parametrize("bad", [{}, {"quantity": "0"}, {"limit_price": "NaN"},
                                 {"quantity": "2", "side": "sell"}, {"order_id": "x"}])
async def test_a_bad_modify_is_422_and_nothing_is_sent(world: World,
                                                         bad: dict[str, Any]) -> None:
    order_id = await working(world)
    sent = len(world.bus.sent)
    problem(await world.client.patch(f"{ORDERS}/{order_id}", json=bad), 422,
            "validation-failed")
    assert len(world.bus.sent) == sent


# -- halt and resume --------------------------------------------------------------------------


async def test_an_admin_halts_and_resumes_an_account(world: World) -> None:
    world.act_as("admin", ADMIN)
    halted = await world.client.post(f"/accounts/{ACCOUNT}/halt", json={"reason": "review"})
    assert halted.status_code == 200, halted.text
    assert (halted.json()["halted"], halted.json()["changed"]) == (True, True)
    again = await world.client.post(f"/accounts/{ACCOUNT}/halt", json={"reason": "review"})
    assert again.status_code == 200, again.text
    assert (again.json()["halted"], again.json()["changed"]) == (True, False)
    resumed = await world.client.post(f"/accounts/{ACCOUNT}/resume", json={"reason": "ok"})
    assert (resumed.json()["halted"], resumed.json()["changed"]) == (False, True)
    assert world.trading_events()[-2:] == ["account.halted", "account.resumed"]


async def test_halting_an_unknown_or_closed_account_sends_nothing(world: World) -> None:
    world.act_as("admin", ADMIN)
    world.reads.accounts[OTHERS] = account(OTHERS, SOMEONE, status="closed")
    sent = len(world.bus.sent)
    problem(await world.client.post(f"/accounts/{uuid.UUID(int=9)}/halt",
                                    json={"reason": "x"}), 404, "account-not-found")
    problem(await world.client.post(f"/accounts/{OTHERS}/halt", json={"reason": "x"}), 409,
            "account-not-open")
    problem(await world.client.post(f"/accounts/{ACCOUNT}/halt", json={}), 422,
            "validation-failed")
    assert len(world.bus.sent) == sent


# -- the kill switch ----------------------------------------------------------------------------


async def test_a_trader_pulls_the_kill_switch_on_their_own_account(world: World) -> None:
    resp = await world.client.post(f"/accounts/{ACCOUNT}/kill", json={"reason": "runaway"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["halted"], resp.json()["changed"]) == (True, True)
    assert world.trading_events()[-1] == "account.kill-switched"
    killed = world.bus.events_of(str(ACCOUNT))[-1]
    assert killed.payload == {"by": TRADER, "reason": "runaway"}


async def test_a_trader_may_not_kill_another_traders_account_and_nothing_is_sent(
        world: World) -> None:
    sent = len(world.bus.sent)
    for target in (OTHERS, uuid.UUID(int=9)):
        problem(await world.client.post(f"/accounts/{target}/kill", json={"reason": "x"}), 404,
                "account-not-found")
    problem(await world.client.post(f"/accounts/{ACCOUNT}/kill", json={}), 422,
            "validation-failed")
    assert len(world.bus.sent) == sent


async def test_an_admin_kills_any_account_naming_themselves(world: World) -> None:
    world.act_as("admin", ADMIN)
    resp = await world.client.post(f"/accounts/{OTHERS}/kill", json={"reason": "abuse"})
    assert resp.status_code == 200, resp.text
    assert world.bus.events_of(str(OTHERS))[-1].payload == {"by": ADMIN, "reason": "abuse"}
    problem(await world.client.post(f"/accounts/{uuid.UUID(int=9)}/kill",
                                    json={"reason": "x"}), 404, "account-not-found")


@pytest.mark.parametrize(("who", "slug"), [
    (principal_of("analyst"), "forbidden"),
    (principal_of("trader", frozenset({"account:read"})), "scope-missing"),
    (principal_of("admin", frozenset({"reports:read"})), "scope-missing"),
])
async def test_the_kill_switch_is_a_traders_with_account_trade_or_an_admins(
        who: Principal, slug: str) -> None:
    with pytest.raises(Problem) as refused:
        await stopper_gate(who)
    assert (refused.value.status, refused.value.slug) == (403, slug)
    assert await stopper_gate(principal_of("trader")) == principal_of("trader")
    assert await stopper_gate(principal_of("admin")) == principal_of("admin")


# -- who may call -----------------------------------------------------------------------------


def principal(role: Role, scopes: frozenset[str] | None = None) -> Principal:
    return Principal(user_id=TRADER, role=role, via="token" if scopes is None else "api-key",
                     scopes=ROLE_SCOPES[role] if scopes is None else scopes)


async def test_a_trader_with_account_trade_may_send_orders() -> None:
    assert await trader_gate(principal("trader")) == principal("trader")


@pytest.mark.parametrize(("who", "slug"), [
    (principal("admin"), "forbidden"), (principal("analyst"), "forbidden"),
    (principal("trader", frozenset({"account:read"})), "scope-missing"),
])
async def test_orders_are_refused_to_admins_analysts_and_keys_without_account_trade(
        who: Principal, slug: str) -> None:
    with pytest.raises(Problem) as refused:
        await trader_gate(who)
    assert (refused.value.status, refused.value.slug) == (403, slug)


@pytest.mark.parametrize(("who", "slug"), [
    (principal("trader"), "forbidden"),
    (principal("admin", frozenset({"reports:read"})), "scope-missing"),
])
async def test_halts_are_an_admins_with_the_admin_scope(who: Principal, slug: str) -> None:
    with pytest.raises(Problem) as refused:
        await admin_gate(who)
    assert (refused.value.status, refused.value.slug) == (403, slug)



async def test_the_largest_quantity_on_the_finest_lot_is_checked_not_an_error(
        world: World) -> None:
    world.reads.grids["BTC-USD"] = handlers.Grid(tick_size=D("0.5"),
                                                 lot_size=D("0.000000000007"))
    sent = len(world.bus.sent)
    found = problem(await world.client.post(
        ORDERS, json=body(quantity="999999999999.999999999998")), 422, "off-lot")
    assert found["reason"] == "off-lot" and len(world.bus.sent) == sent


async def test_log_times_are_kept_to_the_microsecond() -> None:
    assert handlers.at(1_796_000_000_123_456_789).isoformat() == \
        "2026-11-30T00:53:20.123456+00:00"
