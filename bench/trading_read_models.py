"""The trading read models' rebuild (`propstream replay <name>`, one process) on a log made by
the real trading domain: A accounts trading BTC-USD on a random walk, a quote every second
re-checking resting orders, an equity mark every second (the engine's throttle), a market or
limit order every few seconds. Prints each projection's events/s over the whole log (every
record of `account.events` is read by each; only its own types are folded) and rows made.

Run: python -m bench.trading_read_models [--accounts 20] [--seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import time
import uuid

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    spec_of,
    table,
)
from kernel.kafka import make_producer, send_many
from kernel.pg import connect
from kernel.rebuild import rebuild
from propstream.processes import projection_runner
from schemas.account import account_id_for
from tests.support.trading_log import NS, AccountLog, D

# Projection -> its tables (a group of five: kernel.projection_group).
PROJECTIONS = {"accounts": ("accounts", "trading_orders", "trading_fills", "trading_positions",
                            "account_equity")}
SECOND = 1_000_000_000


def account_log(seed: int, seconds: int) -> AccountLog:
    rng = random.Random(seed)
    log = AccountLog(account_id_for(str(uuid.UUID(int=seed))), start=D("1000000"))
    price = 60000.0
    for s in range(seconds):
        now = NS + s * SECOND
        price = max(1000.0, price + rng.gauss(0, 20))
        bid = D(int(price * 2)) / 2
        log.quote(str(bid), str(bid + D("0.5")), now_ns=now)
        if s % 5 == 0:
            kind = rng.random()
            side = rng.choice(("buy", "sell"))
            fields: dict[str, object] = {"client_order_id": f"o-{s}", "side": side,
                                         "quantity": D(rng.randint(1, 20)) / 100}
            if kind < 0.5:
                offset = D(rng.randint(1, 40)) / 2
                fields.update(type="limit", limit_price=bid - offset if side == "buy"
                              else bid + D("0.5") + offset)
            log.place(now_ns=now, bid=str(bid), ask=str(bid + D("0.5")), **fields)
        if log.state.positions:
            log.mark(str(bid), str(bid + D("0.5")), now_ns=now)
    return log


async def main(accounts: int, seconds: int) -> None:
    settings = fresh_namespace(base_settings(), "bench_trm")
    logs = [account_log(i + 1, seconds) for i in range(accounts)]
    records = [r for log in logs for r in log.records()]
    counts: dict[str, int] = {}
    for log in logs:
        for applied in log.events:
            counts[applied.payload.TYPE] = counts.get(applied.payload.TYPE, 0) + 1
    print(f"{len(records)} events over {accounts} accounts: "
          + ", ".join(f"{t} {n}" for t, n in sorted(counts.items(), key=lambda x: -x[1])))
    await create_topics(settings, [spec_of("account.events"), spec_of("account.events.dlq")])
    producer = make_producer(settings, client_id="bench")
    await producer.start()
    try:
        await send_many(producer, settings.topic("account.events"), records)
    finally:
        await producer.stop()
    rows = []
    try:
        for name, tabs in PROJECTIONS.items():
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            report = await rebuild(functools.partial(projection_runner, settings, name),
                                   workers=1)
            took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            conn = await connect(settings)
            try:
                made = 0
                for tab in tabs:
                    cur = await conn.execute(f"SELECT count(*) FROM {tab}")  # a fixed name
                    made += (await cur.fetchone() or (0,))[0]
            finally:
                await conn.close()
            rows.append((name, report.events, f"{report.events / took:,.0f}",
                         f"{cpu / report.events * 1e6:.1f}", made))
        print(table(("projection", "events", "events/s", "CPU µs/event", "rows"), rows))
    finally:
        await delete_namespace(settings)
        await drop_pg_schema(settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=600)
    args = parser.parse_args()
    asyncio.run(main(args.accounts, args.seconds))
