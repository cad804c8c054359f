"""End to end on the real broker and database: a trader places every order type against the
simulator and sees fills, positions and equity move (issue 11, Tests).

Processes, each a child (`propstream run ...`): the market simulator, the instrument
decider, the account engine, and the projections instruments and accounts (the group of the
accounts, orders, fills, positions and equity tables). The core and market APIs run in-process.
No tick is made here: the simulator ticks the instrument the admin registers, and the test
only reads `market.ticks` to know the touch.

The simulated walk is random, so the test is deterministic in outcome, not in prices: the
instrument is put in the low-volatility regime (its walk moves about a tick in a few
seconds), every resting level is at least 1 % from the touch, and the admin moves the market
through them with injected news (+5 %, then -10 %: an exact log-return jump on the
simulator's next step). Random news (about twice an hour, ~0.5 %) cannot reach a level.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from kernel.kafka import apply_topics, make_consumer, partitions_of
from propstream.settings import PlatformSettings as Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_event, encode
from schemas.envelope import make_command
from schemas.topics import CATALOGUE
from schemas.trading import child_order_id, order_id_for
from tests.conftest import _namespaces
from tests.integration.helpers import (
    PlatformProcess,
    asgi_client,
    assert_problem,
    bearer,
    produce,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PROCESSES = (("market", "simulator"), ("decider", "instrument"), ("decider", "account"),
             ("projection", "instruments"), ("projection", "accounts"))
D = Decimal
ZERO = D(0)
SYMBOL = "E2E-USD"  # not among the simulator's known levels: a crypto instrument from 100
TICK = D("0.01")
STARTING = D(100_000)
PER_UNIT, RATE = D("0.05"), D("0.0002")
WAIT = 20.0  # seconds for any one condition; the module's budget is 60 s in all


# -- the market as the test sees it --------------------------------------------------------------


@dataclass(frozen=True)
class Touch:
    at_ns: int
    bid: Decimal
    ask: Decimal


@dataclass
class Tape:
    """The simulator's touches of SYMBOL as they reach `market.ticks`, on the engine's grid
    (bid rounded down, ask up, as `quote_from_tick` does)."""

    settings: Settings
    touches: list[Touch] = field(default_factory=list)

    async def run(self) -> None:
        consumer = make_consumer(self.settings, client_id="test-tape")
        await consumer.start()
        try:
            parts = await partitions_of(consumer, self.settings.topic("market.ticks"))
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=1000)
                for records in batch.values():
                    for record in records:
                        payload = decode_event(record.value).payload
                        if payload["instrument"] != SYMBOL:
                            continue
                        for row in payload["ticks"]:
                            self.touches.append(Touch(
                                at_ns=row["venue_ts_ns"],
                                bid=_grid(row["bid"], ROUND_FLOOR),
                                ask=_grid(row["ask"], ROUND_CEILING)))
        finally:
            await consumer.stop()

    @property
    def latest(self) -> Touch:
        assert self.touches, "no tick of the simulator yet"
        return self.touches[-1]

    async def at(self, ns: int) -> Touch:
        """The touch stamped at `ns` (a read model keeps microseconds)."""
        def found() -> list[Touch]:
            return [t for t in self.touches if abs(t.at_ns - ns) < 1_000]

        async def seen() -> bool:
            return bool(found())

        await wait_until(seen, timeout=5, what=f"the tick at {ns} on the tape", every=0.05)
        assert len(found()) == 1, found()
        return found()[0]

    async def quoted(self, side: str, level: Decimal) -> bool:
        """Whether the simulator quoted `level` as its ask (`side` buy) or bid (sell); the
        tape may be a poll behind the engine, so it is given a moment to catch up."""
        def seen() -> bool:
            return any((t.ask if side == "buy" else t.bid) == level for t in self.touches)

        async def check() -> bool:
            return seen()

        with contextlib.suppress(AssertionError):
            await wait_until(check, timeout=5, what="the tape", every=0.05)
        return seen()


def _grid(value: float, rounding: str) -> Decimal:
    return (D(repr(value)) / TICK).to_integral_value(rounding) * TICK


def price(level: Decimal) -> str:
    return str(level.quantize(TICK))


# -- the platform --------------------------------------------------------------------------------


@dataclass
class Platform:
    settings: Settings
    tape: Tape
    admin: httpx.AsyncClient
    market: httpx.AsyncClient


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(base_settings: Settings,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    # The read routes poll: their buckets are raised so waiting is never a 429.
    ns = base_settings.model_copy(update={"namespace": "t" + uuid.uuid4().hex[:10],
                                          "command_timeout_ms": 15000,
                                          "read_rate_per_s": 1000.0, "read_burst": 1000})
    await apply_topics(ns, CATALOGUE)
    _namespaces.append(ns)
    logs: Path = tmp_path_factory.mktemp("trading-e2e")
    procs = [PlatformProcess(ns, *argv, log_dir=logs).start() for argv in PROCESSES]
    tape = Tape(ns)
    task = asyncio.create_task(tape.run())
    from core.bootstrap import api as core_api
    from market_data.bootstrap import api as market_api

    try:
        async with asgi_client(core_api(ns), headers=bearer(ns)) as admin, \
                asgi_client(market_api(ns), headers=bearer(ns)) as market:
            for proc in procs:
                await proc.ready()
            resp = await admin.post("/instruments", json={
                "symbol": SYMBOL, "venue": "simulator", "asset_class": "crypto",
                "tick_size": str(TICK), "lot_size": "0.001", "quote_currency": "USD",
                "commission_per_unit": str(PER_UNIT), "commission_rate": str(RATE)})
            assert resp.status_code == 201, resp.text

            async def ticking() -> bool:
                return len(tape.touches) >= 3

            await wait_until(ticking, timeout=WAIT, what=f"the simulator ticking {SYMBOL}")
            resp = await market.post("/market/simulator/regime",
                                     json={"symbol": SYMBOL, "regime": "low"})
            assert resp.status_code == 202, resp.text
            yield Platform(ns, tape, admin, market)
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
    held: Decimal = ZERO  # the position the fills answered so far add up to

    @property
    def base(self) -> str:
        return f"/accounts/{self.account_id}"

    def order_id(self, client_order_id: str) -> str:
        return str(order_id_for(self.account_id, client_order_id))

    async def place(self, client_order_id: str, **fields: Any) -> dict[str, Any]:
        body = {"client_order_id": client_order_id, "instrument": SYMBOL, **fields}
        resp = await self.client.post(f"{self.base}/orders", json=body)
        assert resp.status_code == 201, resp.text
        placed: dict[str, Any] = resp.json()
        for fill in placed["fills"]:
            q = D(fill["quantity"])
            self.held += q if fill["side"] == "buy" else -q
        return placed

    async def get(self, path: str, **params: Any) -> Any:
        resp = await self.client.get(f"{self.base}{path}", params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def orders(self) -> dict[str, dict[str, Any]]:
        page = await self.get("/orders", limit=200)
        assert page["next_cursor"] is None
        return {o["order_id"]: o for o in page["items"]}

    async def fills(self) -> list[dict[str, Any]]:
        page = await self.get("/fills", limit=200)
        assert page["next_cursor"] is None
        items: list[dict[str, Any]] = page["items"]
        return items

    async def position(self) -> dict[str, Any] | None:
        items = (await self.get("/positions", status="all"))["items"]
        assert len(items) <= 1
        return items[0] if items else None


async def settled(fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], *,
                  what: str) -> Any:
    """Fetch until `ok` holds (the read models follow the log), and answer the last fetch."""
    last: list[Any] = []

    async def check() -> bool:
        last[:] = [await fetch()]
        return ok(last[0])

    try:
        await wait_until(check, timeout=WAIT, what=what, every=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {last[0] if last else None}") from None
    return last[0]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def trader(platform: Platform) -> AsyncIterator[Trader]:
    """A trader of their own with a 100,000 USD account, opened as the assessment policy
    opens it (account.open on account.commands)."""
    from core.bootstrap import api as core_api

    user_id = uuid.uuid4()
    assessment = uuid.uuid4()
    account_id = account_id_for(str(assessment))
    env = make_command(OpenAccount(assessment_id=assessment, user_id=user_id,
                                   starting_balance=STARTING, currency="USD"),
                       aggregate_id=account_id, command_id=uuid.uuid4(),
                       issued_at=datetime.now(UTC), actor="policy:assessment")
    await produce(platform.settings, "account.commands", [(account_id.encode(), encode(env))])
    headers = bearer(platform.settings, role="trader", user_id=str(user_id))
    async with asgi_client(core_api(platform.settings), headers=headers) as client:
        async def shown() -> bool:
            return (await client.get(f"/accounts/{account_id}")).status_code == 200

        await wait_until(shown, timeout=WAIT, what="the account in the read model")
        yield Trader(client, account_id)


# -- what a read is expected to show -------------------------------------------------------------


def statuses_are(want: dict[str, str]) -> Callable[[dict[str, dict[str, Any]]], bool]:
    return lambda rows: all(oid in rows and rows[oid]["status"] == status
                            for oid, status in want.items())


def holding(quantity: Decimal) -> Callable[[dict[str, Any] | None], bool]:
    return lambda row: row is not None and D(row["quantity"]) == quantity


def marked_after(ns: int) -> Callable[[dict[str, Any]], bool]:
    return lambda row: row["marked_at"] is not None and _ns(row["marked_at"]) > ns


def _ns(stamp: str) -> int:
    at = datetime.fromisoformat(stamp)
    return (int(at.timestamp()) * 1_000_000 + at.microsecond) * 1000


def commission(fill: dict[str, Any]) -> Decimal:
    q, p = D(fill["quantity"]), D(fill["price"])
    return (PER_UNIT * q + RATE * p * q).quantize(D("1e-12"))


async def fills_of(trader: Trader, order_id: str) -> list[dict[str, Any]]:
    return [f for f in await trader.fills() if f["order_id"] == order_id]


async def mark_after_fills(platform: Platform, trader: Trader) -> dict[str, Any]:
    """The account once equity is marked on a tick after its newest fill."""
    newest = max(_ns(f["filled_at"]) for f in await trader.fills())
    account: dict[str, Any] = await settled(lambda: trader.get(""), marked_after(newest),
                                            what="equity marked after the newest fill")
    return account


async def move(platform: Platform, *, jump: float, past: Decimal) -> Touch:
    """Inject news that jumps the simulated price by `jump` (a log return), and wait until
    the tape shows the touch beyond `past`; answer the first touch that is."""
    resp = await platform.market.post("/market/simulator/news", json={
        "symbol": SYMBOL, "jump": jump,
        "headline": f"{SYMBOL}: test moves the market {jump:+.0%}"})
    assert resp.status_code == 202, resp.text
    up = jump > 0

    def beyond(t: Touch) -> bool:
        return t.bid > past if up else t.ask < past

    async def moved() -> bool:
        return beyond(platform.tape.latest)

    await wait_until(moved, timeout=WAIT, what=f"the simulated touch past {past}")
    return next(t for t in platform.tape.touches if beyond(t))


# -- the test ------------------------------------------------------------------------------------


async def test_a_trader_trades_every_order_type_against_the_simulator(
        platform: Platform, trader: Trader) -> None:
    tape = platform.tape
    oid = trader.order_id

    # Market buy and sell at the touch, taker, with the instrument's commission.
    bought = await trader.place("mkt-buy", side="buy", type="market", quantity="0.1")
    assert bought["status"] == "filled", bought
    [fill] = bought["fills"]
    assert fill["liquidity"] == "taker" and await tape.quoted("buy", D(fill["price"]))
    assert D(fill["commission"]) == commission(fill)
    await settled(trader.position, holding(D("0.1")), what="the position after the market buy")

    sold = await trader.place("mkt-sell", side="sell", type="market", quantity="0.04")
    assert sold["status"] == "filled", sold
    assert await tape.quoted("sell", D(sold["fills"][0]["price"]))
    await settled(trader.position, holding(D("0.06")), what="the position after the market sell")

    # A marketable limit takes the touch, never beyond its limit.
    limit = tape.latest.ask + D("0.50")
    marketable = await trader.place("lim-now", side="buy", type="limit", quantity="0.05",
                                    limit_price=price(limit))
    assert marketable["status"] == "filled", marketable
    assert D(marketable["average_price"]) <= limit
    assert await tape.quoted("buy", D(marketable["average_price"]))

    # IOC beyond the quoted size: what the touch quotes fills, the rest is cancelled.
    ioc = await trader.place("ioc", side="buy", type="limit", time_in_force="IOC",
                             quantity="50", limit_price=price(tape.latest.ask + D("0.50")))
    assert ioc["status"] == "cancelled" and 0 < D(ioc["filled_quantity"]) < 50, ioc
    # FOK: whole now, or refused with nothing filled.
    fok = await trader.place("fok", side="buy", type="market", time_in_force="FOK",
                             quantity="0.005")
    assert fok["status"] == "filled" and D(fok["filled_quantity"]) == D("0.005"), fok
    killed = await trader.client.post(f"{trader.base}/orders", json={
        "client_order_id": "fok-big", "instrument": SYMBOL, "side": "buy", "type": "market",
        "time_in_force": "FOK", "quantity": "50"})
    assert assert_problem(killed, 422, "fok-unfillable")["reason"] == "fok-unfillable"

    # A market buy with an attached stop-loss and take-profit: both legs work once it fills.
    p0 = tape.latest.bid
    bracket = await trader.place("bracket", side="buy", type="market", quantity="0.05",
                                 stop_loss=price(p0 * D("0.97")),
                                 take_profit=price(p0 * D("1.02")))
    assert bracket["status"] == "filled", bracket
    assert sorted(leg["role"] for leg in bracket["exit_orders"]) == ["stop-loss",
                                                                     "take-profit"]
    stop_loss = str(child_order_id(uuid.UUID(oid("bracket")), "stop-loss"))
    take_profit = str(child_order_id(uuid.UUID(oid("bracket")), "take-profit"))

    rows = await settled(trader.orders, statuses_are({
        oid("mkt-buy"): "filled", oid("mkt-sell"): "filled", oid("lim-now"): "filled",
        oid("ioc"): "cancelled", oid("fok"): "filled", oid("fok-big"): "rejected",
        oid("bracket"): "filled", stop_loss: "working", take_profit: "working"}),
        what="the immediate orders in the read model")
    assert rows[oid("ioc")]["reason"] == "ioc-remainder"
    assert D(rows[oid("ioc")]["filled_quantity"]) == D(ioc["filled_quantity"])
    assert rows[oid("fok-big")]["reason"] == "fok-unfillable"
    assert D(rows[oid("fok-big")]["filled_quantity"]) == 0
    assert (rows[stop_loss]["parent_id"], rows[stop_loss]["type"]) == (oid("bracket"), "stop")
    assert rows[take_profit]["type"] == "limit"
    await settled(trader.position, holding(trader.held), what="the position after the fills")

    # Resting orders around the touch p0, each for a move the admin makes below.
    day = await trader.place("day-sell", side="sell", type="limit", time_in_force="DAY",
                             quantity="0.02", limit_price=price(p0 * D("1.015")))
    rest = await trader.place("rest-buy", side="buy", type="limit", quantity="0.03",
                              limit_price=price(p0 * D("0.985")))
    stop = await trader.place("stop-sell", side="sell", type="stop", quantity="0.02",
                              stop_price=price(p0 * D("0.99")))
    stop_limit = await trader.place("stop-limit-buy", side="buy", type="stop-limit",
                                    quantity="0.01", stop_price=price(p0 * D("1.01")),
                                    limit_price=price(p0 * D("1.08")))
    for placed in (day, rest, stop, stop_limit):
        assert (placed["status"], placed["fills"]) == ("working", []), placed
    # Modify: from a level the moves never reach to one the fall crosses.
    await trader.place("modify-buy", side="buy", type="limit", quantity="0.01",
                       limit_price=price(p0 * D("0.90")))
    modified = await trader.client.patch(f"{trader.base}/orders/{oid('modify-buy')}", json={
        "quantity": "0.02", "limit_price": price(p0 * D("0.975"))})
    assert modified.status_code == 200, modified.text
    # Cancel: at a level the fall would cross.
    await trader.place("cancel-buy", side="buy", type="limit", quantity="0.01",
                       limit_price=price(p0 * D("0.96")))
    cancelled = await trader.client.delete(f"{trader.base}/orders/{oid('cancel-buy')}")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")

    rows = await settled(trader.orders, statuses_are({
        oid("day-sell"): "working", oid("rest-buy"): "working", oid("stop-sell"): "working",
        oid("stop-limit-buy"): "working", oid("modify-buy"): "working",
        oid("cancel-buy"): "cancelled"}), what="the resting orders in the read model")
    shown = rows[oid("modify-buy")]
    assert (D(shown["quantity"]), D(shown["limit_price"])) == (D("0.02"),
                                                               D(price(p0 * D("0.975"))))
    assert rows[oid("cancel-buy")]["reason"] == "requested"
    assert rows[oid("day-sell")]["time_in_force"] == "DAY"
    before_up = await mark_after_fills(platform, trader)
    assert D(before_up["equity"]) == D(before_up["balance"]) + D(before_up["unrealized"])

    # Up 5 %: the DAY sell and the take-profit fill at their limits (makers), the stop-loss
    # leg is cancelled with it (OCO), and the stop-limit buy triggers and fills.
    up = await move(platform, jump=0.05, past=p0 * D("1.03"))
    rows = await settled(trader.orders, statuses_are({
        oid("day-sell"): "filled", take_profit: "filled", stop_loss: "cancelled",
        oid("stop-limit-buy"): "filled"}), what="the orders the rise fills")
    assert rows[stop_loss]["reason"] == "oco"
    assert D(rows[oid("day-sell")]["average_fill_price"]) == D(price(p0 * D("1.015")))
    assert D(rows[take_profit]["average_fill_price"]) == D(price(p0 * D("1.02")))
    # Triggered inside its limit, the stop-limit takes the touch as a taker, like a limit
    # placed then would.
    assert rows[oid("stop-limit-buy")]["triggered"] is True
    [triggered] = await fills_of(trader, oid("stop-limit-buy"))
    assert triggered["liquidity"] == "taker", triggered
    assert D(triggered["price"]) < D(price(p0 * D("1.08")))
    assert await tape.quoted("buy", D(triggered["price"]))
    trader.held += D("-0.02") - D("0.05") + D("0.01")
    for waiting in ("rest-buy", "stop-sell", "modify-buy"):
        assert rows[oid(waiting)]["status"] == "working", rows[oid(waiting)]
    await settled(trader.position, holding(trader.held), what="the position after the rise")
    after_up = await mark_after_fills(platform, trader)
    assert _ns(after_up["marked_at"]) >= up.at_ns
    assert D(after_up["equity"]) > D(before_up["equity"]), (before_up, after_up)
    assert D(after_up["unrealized"]) > D(before_up["unrealized"])

    # Down 10 %: the resting buy and the modified one fill at their limits, the sell stop
    # triggers and sells at the touch; the cancelled buy and the stop-loss leg stay as they
    # were, though the fall crosses their levels.
    down = await move(platform, jump=-0.10, past=p0 * D("0.96"))
    rows = await settled(trader.orders, statuses_are({
        oid("rest-buy"): "filled", oid("modify-buy"): "filled", oid("stop-sell"): "filled"}),
        what="the orders the fall fills")
    assert D(rows[oid("rest-buy")]["average_fill_price"]) == D(price(p0 * D("0.985")))
    assert D(rows[oid("modify-buy")]["filled_quantity"]) == D("0.02")
    assert D(rows[oid("modify-buy")]["average_fill_price"]) == D(price(p0 * D("0.975")))
    assert rows[oid("stop-sell")]["triggered"] is True
    [stopped] = await fills_of(trader, oid("stop-sell"))
    assert stopped["liquidity"] == "taker" and D(stopped["price"]) < D(price(p0 * D("0.99")))
    assert await tape.quoted("sell", D(stopped["price"]))
    trader.held += D("0.03") + D("0.02") - D("0.02")
    for untouched in (oid("cancel-buy"), stop_loss):
        assert (rows[untouched]["status"], D(rows[untouched]["filled_quantity"])) == (
            "cancelled", ZERO)
    await settled(trader.position, holding(trader.held), what="the position after the fall")
    after_down = await mark_after_fills(platform, trader)
    assert _ns(after_down["marked_at"]) >= down.at_ns
    assert D(after_down["equity"]) < D(after_up["equity"]), (after_up, after_down)
    points = (await trader.get("/equity", resolution="1m"))["items"]
    assert points and any(D(p["unrealized"]) for p in points)

    await assert_the_books_balance(platform, trader)


async def assert_the_books_balance(platform: Platform, trader: Trader) -> None:
    """On the read models once quiet: balance = start + realized - commissions, and equity =
    balance + unrealized with the position marked at the bid of the tick it was marked on."""
    fills = await trader.fills()
    account = await mark_after_fills(platform, trader)
    position = await trader.position()
    assert position is not None and position["status"] == "open"
    quantity, cost = D(position["quantity"]), D(position["cost"])
    flows = sum((D(f["quantity"]) * D(f["price"]) * (1 if f["side"] == "buy" else -1)
                 for f in fills), D(0))
    commissions = sum((D(f["commission"]) for f in fills), D(0))
    assert all(D(f["commission"]) == commission(f) for f in fills)
    assert quantity == trader.held == sum(
        (D(f["quantity"]) * (1 if f["side"] == "buy" else -1) for f in fills), D(0))
    # The position never went flat, so its realized P&L and commissions are the account's.
    realized = D(position["realized"])
    assert realized == cost - flows
    assert D(position["commissions"]) == commissions
    assert realized
    balance = D(account["balance"])
    assert balance == STARTING + realized - commissions
    marked = await platform.tape.at(_ns(account["marked_at"]))
    assert D(account["unrealized"]) == quantity * marked.bid - cost
    assert D(account["equity"]) == balance + D(account["unrealized"])
