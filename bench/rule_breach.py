"""Tick that breaches a rule -> `rules.violation-detected` on the log (issue 12's bound:
p99 <= 25 ms with 1,000 active accounts).

Starts, in a fresh namespace, the account engine as a child process (`python -m propstream
run decider account`) on the real broker. Opens --accounts accounts under a 5 % daily loss
limit; --victims of them each hold a position on an instrument of their own (V-000, ...),
the rest a position on one busy instrument (BUSY-USD) that ticks every --tick-ms (a small
random walk, stamped now): every account is active, marked at most once a second of tick
time, as in production. Then, every --every-ms, one victim's instrument gets a tick whose
bid makes that account's floating loss pass the limit.

Latency per breach: from just before the breaching tick is produced to the moment a
read_committed consumer of account.events (in this process) receives the account's
`rules.violation-detected`, which the engine wrote in the transaction of that tick, with
the halt, the closing fill and the assessment command. Printed: p50/p90/p99/max, the
engine's CPU per breach and the load average.

Run: flock /tmp/bench.lock python -m bench.rule_breach [--accounts 1000] [--victims 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from bench.command_round_trip import Child, until
from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    fresh_namespace,
    percentile,
    table,
)
from kernel.kafka import make_consumer, make_producer
from kernel.settings import Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.tier import RuleSet
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder

BUSY = "BUSY-USD"
RULES = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))


def spec(symbol: str) -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol, venue="simulator", asset_class="crypto",
                          tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                          quote_currency="USD")


class Feed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = make_producer(settings, client_id="breach-feed")
        self.n = 0

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await (await self.producer.send(self.settings.topic(topic), value=value,
                                        key=key.encode()))

    async def event(self, topic: str, key: str, payload: EventPayload) -> None:
        self.n += 1
        event_id = uuid.uuid4()
        env = make_event(payload, aggregate_id=key, sequence=self.n, event_id=event_id,
                         occurred_at=datetime.now(UTC), correlation_id=event_id,
                         causation_id=None)
        await self.send(topic, key, encode(env))

    async def tick(self, symbol: str, bid: float) -> None:
        now = time.time_ns()
        row = TickRow(venue_ts_ns=now, received_ts_ns=now, price=bid, size=1_000_000.0,
                      bid=bid, ask=round(bid + 0.02, 2))
        await self.event("market.ticks", symbol, MarketTicksPublished(
            instrument=symbol, venue="simulator", ticks=(row,)))

    async def command(self, account: str, payload: CommandPayload) -> None:
        env = make_command(payload, aggregate_id=account, command_id=uuid.uuid4(),
                           issued_at=datetime.now(UTC))
        await self.send("account.commands", account, encode(env))


class Watch:
    """Every account event type per account, as a read_committed consumer receives it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: dict[str, dict[str, float]] = {}
        self.consumer = make_consumer(settings, client_id="breach-watch")
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic("account.events")])
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    env: dict[str, Any] = orjson.loads(r.value)
                    self.seen.setdefault(env["aggregate_id"], {}).setdefault(env["type"], now)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


async def keep_ticking(feed: Feed, every: float, stop: asyncio.Event) -> None:
    rng = random.Random(3)
    cents = 10_000
    while not stop.is_set():
        cents += rng.choice((-1, 0, 1))
        await feed.tick(BUSY, cents / 100)
        await asyncio.sleep(every)


async def run(args: argparse.Namespace) -> dict[str, float]:
    settings = fresh_namespace(base_settings(), "rb")
    await create_topics(settings, CATALOGUE)
    log_dir = settings.cache_dir / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    feed = Feed(settings)
    await feed.producer.start()
    watch = Watch(settings)
    engine = Child(settings, log_dir, "decider", "account")
    stop = asyncio.Event()
    ticking: asyncio.Task[None] | None = None
    try:
        victims = [f"V-{i:03d}" for i in range(args.victims)]
        for symbol in [BUSY, *victims]:
            await feed.event("instrument.events", symbol, InstrumentRegistered(spec=spec(symbol)))

        async def assigned() -> bool:
            if engine.proc.poll() is not None:
                raise RuntimeError(f"the engine exited: {engine.output()[-1500:]}")
            return "partitions assigned" in engine.output()

        await until(assigned, 90, "the engine's partitions")
        await watch.start()
        accounts = [account_id_for(str(uuid.UUID(int=i + 1))) for i in range(args.accounts)]
        for i, account in enumerate(accounts):
            await feed.command(account, OpenAccount(
                assessment_id=uuid.UUID(int=i + 1), user_id=uuid.uuid4(),
                starting_balance=Decimal(10_000), currency="USD", rules=RULES))
        for symbol in [BUSY, *victims]:
            await feed.tick(symbol, 100.0)
        ticking = asyncio.create_task(keep_ticking(feed, args.tick_ms / 1000, stop))
        holding = {a: (victims[i] if i < len(victims) else BUSY)
                   for i, a in enumerate(accounts)}
        for account, symbol in holding.items():
            await feed.command(account, PlaceOrder(client_order_id="pos", instrument=symbol,
                                                   side="buy", type="market",
                                                   quantity=Decimal(10)))

        async def all_hold() -> bool:
            return sum("position.opened" in watch.seen.get(a, {}) for a in accounts) \
                == len(accounts)

        await until(all_hold, 120, "every account's position")
        await asyncio.sleep(2)  # marks settle into their once-a-second rhythm
        cpu0 = engine.cpu_seconds()
        latencies = []
        for account, symbol in list(holding.items())[:len(victims)]:
            started = time.perf_counter()
            await feed.tick(symbol, 40.0)  # ten bought near 100: -600 against a 500 limit

            async def seen(account: str = account) -> bool:
                return "rules.violation-detected" in watch.seen.get(account, {})

            await until(seen, 10, f"{account}'s violation")
            latencies.append((watch.seen[account]["rules.violation-detected"] - started) * 1e3)
            await asyncio.sleep(args.every_ms / 1000)
        cpu = engine.cpu_seconds() - cpu0
        latencies.sort()
        return {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                "p99": percentile(latencies, 99), "max": latencies[-1], "n": len(latencies),
                "cpu_s": cpu}
    finally:
        stop.set()
        if ticking is not None:
            await ticking
        await watch.stop()
        await feed.producer.stop()
        engine.proc.terminate()
        engine.proc.wait(timeout=15)
        await delete_namespace(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--victims", type=int, default=200)
    parser.add_argument("--tick-ms", type=int, default=100)
    parser.add_argument("--every-ms", type=int, default=50)
    args = parser.parse_args()
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    r = asyncio.run(run(args))
    print(f"rule breach: {args.accounts} active accounts ({args.victims} breached one by one, "
          f"the rest on {BUSY} ticking every {args.tick_ms} ms); load {before}")
    print(table(("breaches", "p50 ms", "p90 ms", "p99 ms", "max ms", "engine CPU s"), [
        (f"{r['n']:.0f}", f"{r['p50']:.1f}", f"{r['p90']:.1f}", f"{r['p99']:.1f}",
         f"{r['max']:.1f}", f"{r['cpu_s']:.2f}")]))
    print("load " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
