"""The book engine on real Kafka, as `propstream run decider book`: an account's order on a
book instrument fills against a simulated market maker and the fill reaches account.events
once; SIGKILL of the book engine while orders flow, restart: the trades on the log equal a
full replay of book.commands, none lost or doubled, and every trade is booked on its account
exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.domain.book_market import BookAggregate, BookContext
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_command, encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.trading import PlaceOrder, order_id_for
from tests.integration.helpers import produce, read_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]

SYMBOL = "GAME-IT"
SPEC = InstrumentSpec(symbol=SYMBOL, venue="internal", asset_class="index",
                      tick_size=Decimal("0.5"), lot_size=Decimal("1"), quote_currency="USD",
                      execution="book")
REGISTRY = default_registry()


def _now() -> datetime:
    return datetime.now(UTC)


async def _event(settings: Settings, topic: str, key: str, payload: EventPayload) -> None:
    event_id = uuid.uuid4()
    env = make_event(payload, aggregate_id=key, sequence=1, event_id=event_id,
                     occurred_at=_now(), correlation_id=event_id, causation_id=None)
    await produce(settings, topic, [(key.encode(), encode(env))])


async def _account_commands(settings: Settings, commands: list[tuple[str, CommandPayload]]
                            ) -> None:
    await produce(settings, "account.commands", [
        (account.encode(), encode(make_command(p, aggregate_id=account,
                                               command_id=uuid.uuid4(), issued_at=_now())))
        for account, p in commands])


@contextlib.asynccontextmanager
async def ticking(settings: Settings) -> AsyncIterator[None]:
    """A fresh quote of 100.0 / 100.5 every 0.3 s (the account engine refuses stale ones)."""
    async def run() -> None:
        while True:
            ns = int(_now().timestamp() * 1e9)
            row = TickRow(venue_ts_ns=ns, received_ts_ns=ns, price=100.25, size=0.0,
                          bid=100.0, ask=100.5)
            await _event(settings, "market.ticks", SYMBOL,
                         MarketTicksPublished(instrument=SYMBOL, venue="internal", ticks=(row,)))
            await asyncio.sleep(0.3)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _accounts(n: int) -> dict[str, uuid.UUID]:
    """Account ids by the assessment they belong to (an open checks the pair)."""
    assessments = [uuid.uuid4() for _ in range(n)]
    return {account_id_for(str(a)): a for a in assessments}


async def _start(settings: Settings, spawn: type, accounts: dict[str, uuid.UUID]) -> Any:
    await _event(settings, "instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC))
    book = spawn("decider", "book", with_settings=settings)
    await book.start().ready()
    await spawn("decider", "account").start().ready()
    await _account_commands(settings, [(a, OpenAccount(
        assessment_id=assessment, user_id=uuid.uuid4(), starting_balance=Decimal(100_000),
        currency="USD")) for a, assessment in accounts.items()])
    return book


async def _book_events(settings: Settings) -> list[Any]:
    return [e for e in await read_topic(settings, "book.events") if e.aggregate_id == SYMBOL]


async def _maker_quoting(settings: Settings) -> bool:
    return any(e.type == "book.order-rested" and e.payload["account_id"] == "mm-1"
               for e in await _book_events(settings))


async def test_an_account_order_fills_against_the_market_maker_once(
        settings: Settings, spawn: type) -> None:
    opened = _accounts(1)
    account, = opened
    await _start(settings, spawn, opened)
    async with ticking(settings):
        await wait_until(lambda: _maker_quoting(settings), timeout=60, what="the maker's quote")
        await _account_commands(settings, [(account, PlaceOrder(
            client_order_id="buy-1", instrument=SYMBOL, side="buy", type="market",
            quantity=Decimal(3)))])
        order_id = str(order_id_for(account, "buy-1"))

        async def filled() -> bool:
            return any(e.type == "trading.order-filled"
                       for e in await read_topic(settings, "account.events"))

        await wait_until(filled, timeout=60, what="the fill on account.events")
        await asyncio.sleep(2)  # a second booking would be on the log by now
    fills = [e for e in await read_topic(settings, "account.events")
             if e.type == "trading.order-filled"]
    assert [(f.payload["order_id"], f.payload["liquidity"], Decimal(str(f.payload["price"])),
             Decimal(str(f.payload["quantity"]))) for f in fills] == [
        (order_id, "taker", Decimal("100.5"), Decimal(3))]
    trades = [e for e in await _book_events(settings) if e.type == "book.trade"]
    assert [(t.payload["maker_account_id"], t.payload["taker_order_id"])
            for t in trades] == [("mm-1", order_id)]


def _orders(accounts: list[str], n: int) -> list[tuple[str, CommandPayload]]:
    """Two accounts meeting each other inside the maker's spread and taking its quotes."""
    out: list[tuple[str, CommandPayload]] = []
    for i in range(n):
        account = accounts[i % 2]
        side = "buy" if i % 2 == 0 else "sell"
        kind = i % 6
        common: dict[str, Any] = {"client_order_id": f"o{i}", "instrument": SYMBOL,
                                  "side": side, "quantity": Decimal(1 + i % 3)}
        if kind in (0, 1, 3):  # inside the spread: the two accounts meet
            order = PlaceOrder(type="limit", limit_price=Decimal("100.0"), **common)
        elif kind == 2:  # takes the maker's quote
            order = PlaceOrder(type="market", **common)
        elif kind == 4:
            order = PlaceOrder(type="limit", limit_price=Decimal("100.5") if side == "buy"
                               else Decimal("99.5"), time_in_force="IOC", **common)
        else:
            order = PlaceOrder(type="limit", limit_price=Decimal("99.0") if side == "buy"
                               else Decimal("101.5"), **common)  # rests outside the spread
        out.append((account, order))
    return out


def _replayed_trades(commands: list[Any]) -> list[tuple[Any, ...]]:
    """Every trade a fresh book makes deciding `commands` (book.commands, in log order)."""
    aggregate = BookAggregate()
    state = aggregate.initial(SYMBOL)
    trades = []
    for env in commands:
        ctx = BookContext(now=_now(), command_id=env.command_id, actor=None,
                          grid=(SPEC.tick_size, SPEC.lot_size))
        for event in aggregate.decide(REGISTRY.command_payload(env), state, ctx):
            aggregate.evolve(state, event)
            if event.TYPE == "book.trade":
                trades.append(_trade(event.model_dump(mode="json")))
    return trades


def _trade(p: dict[str, Any]) -> tuple[Any, ...]:
    return (p["maker_order_id"], p["taker_order_id"], p["price_ticks"], p["quantity_lots"],
            p["book_sequence"])


async def test_the_book_engine_killed_while_orders_flow_loses_and_doubles_no_trade(
        settings: Settings, spawn: type) -> None:
    settings = settings.model_copy(update={"decider_snapshot_every": 60})
    opened = _accounts(2)
    first = await _start(settings, spawn, opened)
    orders = _orders(list(opened), 90)
    async with ticking(settings):
        await wait_until(lambda: _maker_quoting(settings), timeout=60, what="the maker's quote")
        sent = 0
        for i in range(0, len(orders), 5):
            await _account_commands(settings, orders[i:i + 5])
            sent += 5
            await asyncio.sleep(0.1)
            if sent == 35:
                # Kill once a snapshot exists, so the heir recovers from snapshot + tail.
                async def snapshotted() -> bool:
                    return bool(first.logged("snapshot written"))

                await wait_until(snapshotted, timeout=60, what="the first book snapshot")
                first.kill9()
        assert sent == len(orders)
        second = spawn("decider", "book", with_settings=settings)
        await second.start().ready()

        async def all_decided() -> bool:
            decided = {e.payload["order_id"] for e in await _book_events(settings)
                       if e.type in ("book.order-accepted", "book.order-rejected")}
            return len(decided - {o for o in decided if o.startswith("mm-")}) == len(orders)

        await wait_until(all_decided, timeout=120, what="every order decided by the book")
    assert any(line.get("snapshot_offset") is not None
               for line in second.logged("partition loaded")), "recovery used a snapshot"

    # Drained: no tick, so no quote, is coming; the log no longer moves.
    async def settled() -> bool:
        before = len(await read_topic(settings, "book.events", raw=True))
        await asyncio.sleep(1.5)
        return len(await read_topic(settings, "book.events", raw=True)) == before

    await wait_until(settled, timeout=60, what="the book to drain")
    commands = [decode_command(r.value) for r in await read_topic(
        settings, "book.commands", raw=True) if r.key == SYMBOL.encode()]
    logged = [_trade(e.payload) for e in await _book_events(settings) if e.type == "book.trade"]
    assert logged and logged == _replayed_trades(commands)

    # Every trade is booked on its account's order once: per order, the fills on
    # account.events add up to the book's trades, and no fill id appears twice.
    traded: dict[str, Decimal] = {}
    for maker, taker, _, lots, _ in logged:
        for order in (maker, taker):
            if not order.startswith("mm-"):
                traded[order] = traded.get(order, Decimal(0)) + Decimal(lots)

    async def booked() -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for e in await read_topic(settings, "account.events"):
            if e.type == "trading.order-filled":
                out[e.payload["order_id"]] = out.get(e.payload["order_id"], Decimal(0)) + \
                    Decimal(str(e.payload["quantity"]))
        return out

    async def all_booked() -> bool:
        return await booked() == traded

    await wait_until(all_booked, timeout=60, what="every trade booked on its account")
    fill_ids = [e.payload["fill_id"] for e in await read_topic(settings, "account.events")
                if e.type == "trading.order-filled"]
    assert len(fill_ids) == len(set(fill_ids))
