"""Ticks the account engine absorbs with many accounts holding resting orders.

The engine (core.processors.account_engine.AccountEngine, the account family's single
writer) runs in-process on the in-memory log (kernel.memlog), so the figure is the engine's
own CPU per tick: the log's transport is measured by the Kafka benches, not here.

Set-up: one instrument, --accounts accounts opened across the account partitions, each
holding a long position of 1 lot (so every tick marks it, at most once a second of tick
time) and a resting buy limit --away ticks under the market (so every tick re-checks it and
none fills). Then --ticks tick rows arrive in records of --rows rows, --spacing-ms apart in
venue time, random-walking one tick at a time; the engine works them to idle.

Printed: rows/s absorbed, µs per row, µs per (row x watching account), events written
(equity marks), and the load average. Best of --repeat and the spread.

Run: flock /tmp/bench.lock python -m bench.account_engine [--accounts 1000] [--ticks 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from bench.common import table
from core.processors.account_engine import AccountEngine
from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventPayload, make_command, make_event
from schemas.instrument import InstrumentRegistered, InstrumentSpec
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder

T0 = 1_796_000_000_000_000_000
SYMBOL = "BTC-USD"
SPEC = InstrumentSpec(symbol=SYMBOL, venue="simulator", asset_class="crypto",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                      quote_currency="USD")
REGISTRY = default_registry()


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class Feed:
    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.n = 0
        self.producer = log.producer(client_id="bench")

    async def event(self, topic: str, key: str, payload: EventPayload, at_ns: int) -> None:
        self.n += 1
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{topic}/{key}/{self.n}")
        env = make_event(payload, aggregate_id=key, sequence=self.n, event_id=event_id,
                         occurred_at=datetime.fromtimestamp(at_ns / 1e9, UTC),
                         correlation_id=event_id, causation_id=None)
        await self.producer.send_many(topic, [OutRecord(key.encode(), encode(env))])

    async def command(self, account: str, payload: CommandPayload, at_ns: int) -> None:
        env = make_command(payload, aggregate_id=account, command_id=uuid.uuid4(),
                           issued_at=datetime.fromtimestamp(at_ns / 1e9, UTC))
        await self.producer.send_many("account.commands",
                                      [OutRecord(account.encode(), encode(env))])

    async def ticks(self, prices: list[int], at_ns: list[int]) -> None:
        rows = tuple(TickRow(venue_ts_ns=t, received_ts_ns=t, price=p / 100, size=5.0,
                             bid=p / 100, ask=(p + 2) / 100)
                     for p, t in zip(prices, at_ns, strict=True))
        await self.event("market.ticks", SYMBOL,
                         MarketTicksPublished(instrument=SYMBOL, venue="simulator", ticks=rows),
                         at_ns[-1])


async def one_run(args: argparse.Namespace) -> dict[str, float]:
    log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
    clock = [T0]
    engine = AccountEngine(Settings(env="test"), REGISTRY, log=log,
                           clock=lambda: datetime.fromtimestamp(clock[0] / 1e9, UTC),
                           snapshot_every=10**9)
    feed = Feed(log)
    await feed.event("instrument.events", SYMBOL, InstrumentRegistered(spec=SPEC), T0)
    await feed.ticks([10_000_00], [T0])
    await engine.start()
    accounts = [account_id_for(str(uuid.UUID(int=i + 1))) for i in range(args.accounts)]
    for i, account in enumerate(accounts):
        await feed.command(account, OpenAccount(assessment_id=uuid.UUID(int=i + 1),
                                                user_id=uuid.uuid4(),
                                                starting_balance=Decimal(100_000),
                                                currency="USD"), T0)
    await engine.run(until_idle=True)
    for account in accounts:
        await feed.command(account, PlaceOrder(client_order_id="pos", instrument=SYMBOL,
                                               side="buy", type="market",
                                               quantity=Decimal("0.001")), T0)
        await feed.command(account, PlaceOrder(
            client_order_id="rest", instrument=SYMBOL, side="buy", type="limit",
            quantity=Decimal("0.001"),
            limit_price=Decimal(10_000_00 - args.away) / 100), T0)
    await engine.run(until_idle=True)
    watching = sum(len(w.get(SYMBOL, ())) for w in engine.watching.values())
    assert watching == args.accounts, f"{watching} accounts watch {SYMBOL}"
    before = sum(1 for _ in log.records("account.events"))

    rng = random.Random(args.seed)
    price, at = 10_000_00, T0
    spacing = args.spacing_ms * 1_000_000
    for _ in range(0, args.ticks, args.rows):
        prices, times = [], []
        for _ in range(args.rows):
            price += rng.choice((-1, 0, 1))
            at += spacing
            prices.append(price)
            times.append(at)
        await feed.ticks(prices, times)
    clock[0] = at
    gc.collect()
    started_cpu, started = time.process_time(), time.perf_counter()
    await engine.run(until_idle=True)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    events = sum(1 for _ in log.records("account.events")) - before
    await engine.stop()
    rows = args.ticks - args.ticks % args.rows
    return {"rows_s": rows / wall, "us_row": wall / rows * 1e6,
            "us_row_account": wall / rows / args.accounts * 1e6, "cpu_share": cpu / wall,
            "events": events, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=5_000)
    parser.add_argument("--rows", type=int, default=10, help="tick rows per record")
    parser.add_argument("--spacing-ms", type=int, default=10, help="venue time between rows")
    parser.add_argument("--away", type=int, default=5_000, help="limit distance in ticks")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"account engine: {args.accounts} accounts with a position and a resting limit, "
          f"{args.ticks} tick rows ({args.rows}/record, {args.spacing_ms} ms apart); {load()}")
    runs = [asyncio.run(one_run(args)) for _ in range(args.repeat)]
    best = max(runs, key=lambda r: r["rows_s"])
    spread = max(r["rows_s"] for r in runs) - min(r["rows_s"] for r in runs)
    print(table(("measure", "best", "spread"), [
        ("tick rows/s absorbed", f"{best['rows_s']:,.0f}", f"{spread:,.0f}"),
        ("µs per tick row", f"{best['us_row']:,.1f}", ""),
        ("µs per row x watching account", f"{best['us_row_account']:.2f}", ""),
        ("equity marks written", f"{best['events']:,.0f}", ""),
        ("process CPU / wall", f"{best['cpu_share']:.2f}", ""),
    ]))
    print(load())


if __name__ == "__main__":
    main()
