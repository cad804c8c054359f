"""SIGKILL the account engine while orders and ticks flow, on the real broker.

Two dozen accounts trade one instrument: market orders fill at the touch, limits and stops
rest and fill when later ticks trade through them, some are cancelled. The engine process is
killed with SIGKILL mid-stream and restarted while the feed goes on; later it is killed again
on a quiet log and an heir takes over. Then, from the log alone:

- every command was decided exactly once, every event id and fill id is unique, and each
  account's events are numbered 1..n without a gap or a repeat (nothing lost, nothing twice);
- no order filled beyond its quantity, and each account's money adds up: balance = start +
  realized - commissions = start + the sum of its balance changes;
- resting orders were filled by ticks both before the kill and after the restart (the
  broadcast position resumed);
- the heir's state equals a replay of the log: one more market order per account moves each
  position and balance from exactly what the replay says they were.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.domain import trading
from kernel.kafka import make_producer
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventEnvelope, make_command, make_event
from schemas.instrument import InstrumentRegistered
from schemas.market import MarketTicksPublished, TickRow
from schemas.trading import (
    AccountBalanceChanged,
    CancelOrder,
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
    order_id_for,
)
from tests.integration.helpers import read_topic, spec, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]

SYMBOL = "CRASH-USD"
ACCOUNTS = 24
COMMANDS = 240
KILL_AFTER = 90  # commands sent before the first SIGKILL
WHILE_DOWN = 40  # commands sent while the engine is down
START = Decimal(100_000)
TICK = Decimal("0.01")
REGISTRY = default_registry()


class Feed:
    """One producer for the whole test: ticks of a random walk and the traders' commands."""

    def __init__(self, settings: Settings, seed: int = 11) -> None:
        self.settings = settings
        self.producer = make_producer(settings, client_id="crash-feed")
        self.rng = random.Random(seed)
        self.cents = 10_000  # 100.00
        self.ticks_sent = 0
        self.commands: list[uuid.UUID] = []
        self.placed: dict[uuid.UUID, str] = {}  # order id -> account

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await (await self.producer.send(self.settings.topic(topic), value=value,
                                        key=key.encode()))

    async def event(self, topic: str, key: str, payload: Any, n: int) -> None:
        event_id = uuid.uuid4()
        env = make_event(payload, aggregate_id=key, sequence=n, event_id=event_id,
                         occurred_at=datetime.now(UTC), correlation_id=event_id,
                         causation_id=None)
        await self.send(topic, key, encode(env))

    async def tick(self) -> None:
        self.cents += self.rng.choice((-2, -1, 0, 1, 2))
        now = time.time_ns()
        bid = self.cents / 100
        row = TickRow(venue_ts_ns=now, received_ts_ns=now, price=bid, size=1_000.0, bid=bid,
                      ask=(self.cents + 2) / 100)
        self.ticks_sent += 1
        await self.event("market.ticks", SYMBOL, MarketTicksPublished(
            instrument=SYMBOL, venue="simulator", ticks=(row,)), self.ticks_sent)

    async def command(self, account: str, payload: CommandPayload) -> None:
        command_id = uuid.uuid4()
        env = make_command(payload, aggregate_id=account, command_id=command_id,
                           issued_at=datetime.now(UTC))
        self.commands.append(command_id)
        await self.send("account.commands", account, encode(env))

    def order(self, n: int, account: str) -> CommandPayload:
        rng = self.rng
        if self.placed and rng.random() < 0.12:
            order_id = rng.choice(sorted(self.placed))
            return CancelOrder(order_id=order_id)
        side = rng.choice(("buy", "sell"))
        kind = rng.choice(("market", "limit", "limit", "stop"))
        touch = Decimal(self.cents + (2 if side == "buy" else 0)) / 100
        away = Decimal(rng.randint(-3, 3)) * TICK
        fields: dict[str, Any] = {"client_order_id": f"o{n}", "instrument": SYMBOL,
                                  "side": side, "type": kind,
                                  "quantity": Decimal(rng.randint(1, 20)) / 10}
        if kind == "limit":
            fields["limit_price"] = touch - away if side == "buy" else touch + away
        if kind == "stop":
            fields["stop_price"] = touch + abs(away) + TICK if side == "buy" else \
                touch - abs(away) - TICK
        self.placed[order_id_for(account, f"o{n}")] = account
        return PlaceOrder(**fields)


async def keep_ticking(feed: Feed, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await feed.tick()
        await asyncio.sleep(0.04)


def payload_of(env: EventEnvelope) -> Any:
    return REGISTRY.event_payload(env)


async def account_events(settings: Settings) -> list[EventEnvelope]:
    return [e for e in await read_topic(settings, "account.events")
            if e.aggregate_id != ""]


def replay(events: list[EventEnvelope]) -> dict[str, trading.TradingAccount]:
    states: dict[str, trading.TradingAccount] = {}
    for env in sorted(events, key=lambda e: (e.aggregate_id, e.sequence)):
        state = states.setdefault(env.aggregate_id, trading.initial(env.aggregate_id))
        trading.evolve(state, payload_of(env))
    return states


async def test_engine_killed_under_orders_and_ticks_loses_nothing_and_repeats_nothing(
        settings: Settings, spawn: type) -> None:
    feed = Feed(settings)
    await feed.producer.start()
    try:
        await feed.event("instrument.events", SYMBOL, InstrumentRegistered(spec=spec(SYMBOL)), 1)
        accounts = [account_id_for(str(uuid.UUID(int=i + 1))) for i in range(ACCOUNTS)]
        for i, account in enumerate(accounts):
            await feed.command(account, OpenAccount(
                assessment_id=uuid.UUID(int=i + 1), user_id=uuid.uuid4(),
                starting_balance=START, currency="USD"))
        await feed.tick()
        first = await spawn("decider", "account").start().ready()

        stop_ticks = asyncio.Event()
        ticking = asyncio.create_task(keep_ticking(feed, stop_ticks))
        restarted_at = 0.0
        for n in range(COMMANDS):
            account = feed.rng.choice(accounts)
            await feed.command(account, feed.order(n, account))
            await asyncio.sleep(0.03)
            if n == KILL_AFTER:
                first.kill9()
                killed_at = time.time()
            if n == KILL_AFTER + WHILE_DOWN:
                second = await spawn("decider", "account").start().ready()
                restarted_at = time.time()
        await asyncio.sleep(2)  # resting orders keep meeting ticks after the last command
        stop_ticks.set()
        await ticking

        sent = set(feed.commands)

        async def all_decided() -> bool:
            got = {e.causation_id for e in await account_events(settings)}
            return sent <= got

        await wait_until(all_decided, timeout=120, what="every command decided")
        events = await account_events(settings)
        check_exactly_once(events, sent)
        check_money(events)

        # Resting orders filled by ticks on both sides of the crash.
        by_tick = [e for e in events if e.causation_id is None and e.type == OrderFilled.TYPE]
        assert any(e.occurred_at.timestamp() < killed_at for e in by_tick), "no tick fill before"
        assert any(e.occurred_at.timestamp() > restarted_at for e in by_tick), \
            "no tick fill after the restart: the broadcast did not resume"

        # An heir on a quiet log: its state must be the replay's.
        second.kill9()
        await heir_continues_from_the_replay(settings, spawn, feed, accounts)
    finally:
        await feed.producer.stop()


def check_exactly_once(events: list[EventEnvelope], sent: set[uuid.UUID]) -> None:
    ids = Counter(e.event_id for e in events)
    assert not [i for i, n in ids.items() if n > 1], "an event was written twice"
    per_account: dict[str, list[int]] = {}
    for e in events:
        per_account.setdefault(e.aggregate_id, []).append(e.sequence)
    for account, sequences in per_account.items():
        assert sorted(sequences) == list(range(1, len(sequences) + 1)), account
    # A command's events are one run: decided once (a duplicate decision would add a run).
    runs: Counter[uuid.UUID] = Counter()
    previous: dict[str, uuid.UUID | None] = {}
    for e in sorted(events, key=lambda e: (e.aggregate_id, e.sequence)):
        if e.causation_id is not None and previous.get(e.aggregate_id) != e.causation_id:
            runs[e.causation_id] += 1
        previous[e.aggregate_id] = e.causation_id
    assert {c for c in runs if c in sent} == sent
    assert [c for c, n in runs.items() if n > 1] == [], "a command was decided twice"
    fills = Counter(payload_of(e).fill_id for e in events if e.type == OrderFilled.TYPE)
    assert fills and not [f for f, n in fills.items() if n > 1], "a fill was applied twice"


def check_money(events: list[EventEnvelope]) -> None:
    quantity: dict[uuid.UUID, Decimal] = {}
    filled: dict[uuid.UUID, Decimal] = {}
    deltas: dict[str, Decimal] = {}
    for e in events:
        p = payload_of(e)
        if isinstance(p, OrderAccepted):
            quantity[p.order_id] = p.order.quantity
        elif isinstance(p, OrderFilled):
            filled[p.order_id] = filled.get(p.order_id, Decimal(0)) + p.quantity
        elif isinstance(p, AccountBalanceChanged):
            deltas[e.aggregate_id] = deltas.get(e.aggregate_id, Decimal(0)) + p.delta
    for order_id, qty in filled.items():
        assert qty <= quantity[order_id], f"order {order_id} overfilled"
    for account, state in replay(events).items():
        assert state.balance == START + state.realized - state.commissions, account
        assert state.balance == START + deltas.get(account, Decimal(0)), account


async def heir_continues_from_the_replay(settings: Settings, spawn: type, feed: Feed,
                                         accounts: list[str]) -> None:
    heir = await spawn("decider", "account").start().ready()
    stop = asyncio.Event()
    ticking = asyncio.create_task(keep_ticking(feed, stop))  # it refuses orders on stale quotes
    await asyncio.sleep(0.5)
    final: dict[str, uuid.UUID] = {}
    for account in accounts:
        await feed.command(account, PlaceOrder(client_order_id="last", instrument=SYMBOL,
                                               side="buy", type="market",
                                               quantity=Decimal(1)))
        final[account] = feed.commands[-1]

    async def decided() -> bool:
        got = {e.causation_id for e in await account_events(settings)}
        return set(final.values()) <= got

    await wait_until(decided, timeout=60, what="the heir's decisions")
    stop.set()
    await ticking
    heir.kill9()
    events = await account_events(settings)
    check_exactly_once(events, set(feed.commands))
    check_money(events)
    for account, command_id in final.items():
        mine = [e for e in events if e.causation_id == command_id]
        # What the log says the account was when the heir decided its order.
        state = replay([e for e in events if e.aggregate_id == account
                        and e.sequence < mine[0].sequence])[account]
        fills = [payload_of(e) for e in mine if e.type == OrderFilled.TYPE]
        assert fills, [(e.type, e.payload.get("detail")) for e in mine]
        bought = sum((f.quantity for f in fills), Decimal(0))
        position = [payload_of(e) for e in mine if e.type.startswith("position.")][-1]
        held = state.positions.get(SYMBOL)
        assert position.quantity == (held.quantity if held else 0) + bought, account
        change = [payload_of(e) for e in mine if e.type == AccountBalanceChanged.TYPE]
        if change:
            assert change[0].balance == state.balance + change[0].delta, account
