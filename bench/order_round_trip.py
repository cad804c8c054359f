"""Order round trip: HTTP order -> account engine -> fill -> position in the read model.

Issue 11's bound: "order -> accepted -> filled -> position visible, HTTP included, at a
steady 200 orders/s with 1,000 open accounts: p99 <= 50 ms".

Starts, in a fresh namespace, the platform's own processes as children (`python -m propstream
run ...`): the instrument decider, the account engine (`decider account`), the projections
every account event feeds (accounts, the group of the accounts, orders, fills, positions and
equity tables, and account-history: what `make run` runs) and the API. Registers one
instrument, opens --accounts accounts (account.open on account.commands, as the assessment
policy sends it), each for a trader of its own with a trader token, and publishes the
instrument's touch every --tick-ms (a small random walk, stamped now, so the engine's quote
is fresh and the accounts holding a position are marked to market, at most once a second
each, as in production).

Then an open-loop schedule at each --rates value for --seconds: order i goes to account
i mod N, a market order of --quantity, buy and sell alternating per account, so each order
opens or closes that account's position. Two latencies per order, both from the moment the
request is issued:
  answer   = the 201 answer (the engine's decision, with the fill) is received;
  position = the `trading_positions` row that GET /accounts/{id}/positions reads shows the
             position this order made (open after a buy, closed after a sell): a poller in
             this process reads the pending rows from PostgreSQL every --poll-ms (one query
             for all of them), so this figure carries up to --poll-ms of resolution.
The issue's bound applies to `position`: the order is accepted, filled and its position is
visible to the trader.

Each child's CPU per order (from /proc) and run-queue wait are printed, with the machine's
busy share and load average, as in `bench.command_round_trip`.

Run: python -m bench.order_round_trip [--rates 100 200] [--seconds 20] [--accounts 1000]
     [--runs 1] [--tick-ms 100] [--poll-ms 2] [--no-tap] [--projections NAME ...]
     [--code DIR]   the services of another tree, to alternate before/after runs
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from bench.command_round_trip import (
    Child,
    Tap,
    cpu_now,
    load_average,
    machine_busy,
    open_loop,
    until,
)
from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    median,
    percentile,
    table,
)
from bench.leanhttp import LeanClient
from kernel.kafka import make_producer
from kernel.tokens import AccessTokens
from propstream.settings import PlatformSettings as Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import make_command, make_event
from schemas.market import MarketTicksPublished, TickRow
from schemas.topics import CATALOGUE

SYMBOL = "BENCH-USD"
PROJECTIONS = ("instruments", "accounts", "account-history")


class Ticker:
    """Publishes SYMBOL's touch every `every` seconds: a random walk of one tick either way
    (seeded), a 0.02 spread, plenty of size (no partial fills), stamped now."""

    def __init__(self, settings: Settings, every: float, seed: int = 7) -> None:
        self.settings, self.every = settings, every
        self.rng = random.Random(seed)
        self.mid = Decimal("100.00")
        self.sent = 0

    async def run(self) -> None:
        producer = make_producer(self.settings, client_id="bench-ticker")
        await producer.start()
        topic = self.settings.topic("market.ticks")
        try:
            while True:
                self.sent += 1
                step = Decimal(self.rng.choice((-1, 0, 1))) * Decimal("0.01")
                self.mid = min(max(self.mid + step, Decimal("95")), Decimal("105"))
                now = datetime.now(UTC)
                at = int(now.timestamp() * 1e9)
                bid, ask = self.mid - Decimal("0.01"), self.mid + Decimal("0.01")
                row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(self.mid),
                              size=1_000_000.0, bid=float(bid), ask=float(ask))
                env = make_event(MarketTicksPublished(instrument=SYMBOL, venue="simulator",
                                                      ticks=(row,)),
                                 aggregate_id=SYMBOL, sequence=self.sent, occurred_at=now,
                                 event_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
                                 causation_id=None)
                await producer.send_and_wait(topic, value=encode(env), key=SYMBOL.encode())
                await asyncio.sleep(self.every)
        finally:
            await producer.stop()


def _order_key(data: dict[str, Any]) -> str | None:
    """A place-order command's client order id: the bench's samples are named by it."""
    return data["payload"]["client_order_id"] if data["type"] == "trading.place-order" else None


class Trader:
    __slots__ = ("account_id", "auth", "n")

    def __init__(self, account_id: str, auth: str) -> None:
        self.account_id, self.auth, self.n = account_id, auth, 0


class PositionWatch:
    """Polls `trading_positions` for the rows pending orders must change; records when each
    shows the status its order leads to."""

    def __init__(self, settings: Settings, poll_ms: float) -> None:
        self.settings, self.poll = settings, poll_ms / 1000
        self.pending: dict[str, tuple[str, float, int]] = {}  # key -> (status, issued, seq)
        self.seen: dict[int, float] = {}  # order seq -> ms from issue to visible
        self.queries = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.conn = await psycopg.AsyncConnection.connect(self.settings.database_url,
                                                          autocommit=True)
        await self.conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(self.settings.pg_schema)))
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.conn.close()

    def expect(self, key: str, status: str, issued: float, seq: int) -> None:
        self.pending[key] = (status, issued, seq)

    async def _run(self) -> None:
        while True:
            if self.pending:
                keys = list(self.pending)
                cur = await self.conn.execute(
                    "SELECT position_key, status FROM trading_positions "
                    "WHERE position_key = ANY(%s)", (keys,))
                rows = await cur.fetchall()
                self.queries += 1
                now = time.perf_counter()
                for key, status in rows:
                    want = self.pending.get(key)
                    if want is not None and want[0] == status:
                        del self.pending[key]
                        self.seen[want[2]] = (now - want[1]) * 1000
            await asyncio.sleep(self.poll)


async def open_accounts(settings: Settings, n: int) -> list[Trader]:
    """Open n accounts, one trader each; return them once the accounts read model has all."""
    tokens = AccessTokens(secret=settings.secret_key)
    producer = make_producer(settings, client_id="bench-open")
    await producer.start()
    traders: list[Trader] = []
    try:
        futures = []
        for _ in range(n):
            user, assessment = uuid.uuid4(), uuid.uuid4()
            account_id = account_id_for(str(assessment))
            env = make_command(OpenAccount(assessment_id=assessment, user_id=user,
                                           starting_balance=Decimal(100_000), currency="USD"),
                               aggregate_id=account_id, command_id=uuid.uuid4(),
                               issued_at=datetime.now(UTC), actor="policy:assessment")
            futures.append(await producer.send(settings.topic("account.commands"),
                                               value=encode(env), key=account_id.encode()))
            token = tokens.issue(subject=str(user), role="trader", now=datetime.now(UTC),
                                 jti=uuid.uuid4())
            traders.append(Trader(account_id, f"Bearer {token}"))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    async with await psycopg.AsyncConnection.connect(settings.database_url,
                                                     autocommit=True) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.accounts WHERE status = 'open'").format(
            sql.Identifier(settings.pg_schema))

        async def all_open() -> bool:
            try:
                row = await (await conn.execute(query)).fetchone()
            except psycopg.errors.UndefinedTable:
                return False
            return row is not None and row[0] >= n
        await until(all_open, 120, f"{n} open accounts in the read model")
    return traders


async def steady(rate: float, seconds: float, client: LeanClient, traders: list[Trader],
                 watch: PositionWatch, quantity: str, label: str,
                 cpu: Any) -> dict[str, Any]:
    """Issue market orders at `rate` per second (open loop) for `seconds`."""
    cpu_before = cpu()
    busy_before = machine_busy()
    answers: list[float] = []
    statuses: collections.Counter[str] = collections.Counter()
    watch.seen.clear()
    walls: dict[str, tuple[float, float]] = {}

    async def one(seq: int) -> None:
        trader = traders[seq % len(traders)]
        trader.n += 1
        side = "buy" if trader.n % 2 else "sell"
        body = {"client_order_id": f"{label}-{seq}", "instrument": SYMBOL, "side": side,
                "type": "market", "quantity": quantity}
        issued, wall = time.perf_counter(), time.time()
        try:
            resp = await client.post(f"/accounts/{trader.account_id}/orders", json=body,
                                     headers={"Authorization": trader.auth,
                                              "X-Request-ID": f"{label}-{seq}"})
        except Exception as exc:  # counted, not raised: the run goes on
            statuses[f"error {type(exc).__name__}"] += 1
            return
        got = (time.perf_counter() - issued) * 1000
        walls[body["client_order_id"]] = (wall, time.time())
        ok = resp.status == 201 and isinstance(data := resp.json(), dict) \
            and data.get("status") == "filled"
        statuses["201 filled" if ok else f"{resp.status} {resp.body[:80]!r}"] += 1
        if ok:
            answers.append(got)
            watch.expect(f"{trader.account_id}:{SYMBOL}",
                         "open" if side == "buy" else "closed", issued, seq)

    total = int(rate * seconds)
    lag, took = await open_loop(rate, total, one)
    for _ in range(200):  # up to 10 s for the read model to show the last orders
        if not watch.pending:
            break
        await asyncio.sleep(0.05)
    unseen = len(watch.pending)
    watch.pending.clear()
    after = cpu()
    cpu_ms = {k: (after[k] - cpu_before[k]) * 1000 / max(1, len(answers)) for k in after}
    busy_after = machine_busy()
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    answers.sort()
    visible = sorted(watch.seen.values())
    return {"rate": rate, "sent": total, "filled": len(answers), "achieved": len(answers) / took,
            "answer": answers, "position": visible, "unseen": unseen,
            "statuses": dict(statuses), "lag_ms": lag * 1000, "cpu_ms": cpu_ms, "busy": busy,
            "load": load_average(), "walls": walls}


def pcts(values: list[float]) -> str:
    return (f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} / "
            f"{percentile(values, 99):.1f} / {values[-1] if values else float('nan'):.1f}")


async def run(args: argparse.Namespace) -> None:
    settings = fresh_namespace(base_settings(), "bo").model_copy(
        update={"command_timeout_ms": 5000})
    await create_topics(settings, CATALOGUE)
    log_dir = settings.cache_dir / "bench" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    code = args.code
    if code is not None:
        print(f"services run the code in {code}", flush=True)
    children = {"instrument": Child(settings, log_dir, "decider", "instrument", code=code),
                "engine": Child(settings, log_dir, "decider", "account", code=code),
                **{p: Child(settings, log_dir, "projection", p, code=code)
                   for p in args.projections},
                "api": Child(settings, log_dir, "api", code=code)}
    ticker = Ticker(settings, args.tick_ms / 1000)
    tick_task: asyncio.Task[None] | None = None
    watch = PositionWatch(settings, args.poll_ms)
    tap = None if args.no_tap else Tap(settings, "account.commands", _order_key, "engine")
    admin = AccessTokens(secret=settings.secret_key).issue(
        subject="00000000-0000-4000-8000-0000000be7c4", role="admin", now=datetime.now(UTC),
        jti=uuid.uuid4())
    client = LeanClient(settings.host, settings.api_port)
    results: dict[float, list[dict[str, Any]]] = {r: [] for r in args.rates}
    try:
        for name in ("instrument", "engine"):
            child = children[name]

            async def assigned(child: Child = child, name: str = name) -> bool:
                if child.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {child.output()[-1500:]}")
                return "partitions assigned" in child.output()
            await until(assigned, 90, f"the {name} decider's partitions")

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status == 200
            except OSError:
                return False
        await until(ready, 60, "the API's /readyz")
        resp = await client.post("/instruments", json={
            "symbol": SYMBOL, "venue": "simulator", "asset_class": "crypto",
            "tick_size": "0.01", "lot_size": "0.001", "quote_currency": "USD"},
            headers={"Authorization": f"Bearer {admin}"})
        assert resp.status == 201, resp.body
        tick_task = asyncio.create_task(ticker.run())
        t0 = time.perf_counter()
        traders = await open_accounts(settings, args.accounts)
        print(f"{len(traders)} accounts open in the read model in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        await watch.start()
        if tap is not None:
            await tap.start()

        def cpu() -> dict[str, float]:
            return cpu_now(children, settings)
        if args.warmup:
            await steady(min(50.0, args.rates[0]), args.warmup / min(50.0, args.rates[0]),
                         client, traders, watch, args.quantity, "warm", cpu)
        for run_no in range(args.runs):
            for rate in args.rates:
                res = await steady(rate, args.seconds, client, traders, watch, args.quantity,
                                   f"r{run_no}-{int(rate)}", cpu)
                results[rate].append(res)
                if tap is not None:
                    await asyncio.sleep(0.6)  # the tap's last fetch
                    res["hops"] = tap.hops((k, issued, answered)
                                           for k, (issued, answered) in res["walls"].items())
                print(f"run {run_no + 1}/{args.runs} {rate:.0f} orders/s: achieved "
                      f"{res['achieved']:.1f}/s; answer p50/p95/p99/max "
                      f"{pcts(res['answer'])} ms; position visible {pcts(res['position'])} ms "
                      f"({len(res['position'])} seen, {res['unseen']} not within 10 s); "
                      f"client lag max {res['lag_ms']:.0f} ms; {res['statuses']}; "
                      f"machine busy {100 * res['busy']:.0f} %; load {res['load']}", flush=True)
                if "hops" in res:
                    print("    hops p50 / p99 ms: " + "; ".join(
                        f"{k} {percentile(v, 50):.1f} / {percentile(v, 99):.1f}"
                        for k, v in res["hops"].items()) + f" (n={len(res['hops']['in'])})",
                          flush=True)
    finally:
        if tick_task is not None:
            tick_task.cancel()
            await asyncio.gather(tick_task, return_exceptions=True)
        if watch.task is not None:
            await watch.stop()
        if tap is not None:
            await tap.stop()
        await client.close()
        for child in children.values():
            child.stop()
        await delete_namespace(settings)
        await drop_pg_schema(settings)
    print()
    print(f"order -> accepted -> filled -> position visible, {args.accounts} accounts, "
          f"ticks every {args.tick_ms:.0f} ms; median of {args.runs} run(s); ms")
    rows = []
    for rate, rs in results.items():
        def m(key: str, q: float, rs: list[dict[str, Any]] = rs) -> float:
            return median([percentile(r[key], q) for r in rs])
        rows.append([f"{rate:.0f}", f"{median([r['achieved'] for r in rs]):.1f}",
                     f"{m('answer', 50):.1f}", f"{m('answer', 99):.1f}",
                     f"{m('position', 50):.1f}", f"{m('position', 99):.1f}",
                     "met" if m("position", 99) <= 50 else "MISSED",
                     str(sum(r["sent"] - r["filled"] for r in rs)),
                     str(sum(r["unseen"] for r in rs))])
    print(table(["rate/s", "achieved/s", "answer p50", "answer p99", "position p50",
                 "position p99", "p99 <= 50 ms", "not filled", "not seen"], rows))
    print()
    print("CPU ms per filled order, by process (median of runs); 'busy %' = the whole machine "
          f"({os.cpu_count()} CPUs); '<process> runq-wait' = ms its threads waited for a CPU")
    crow = []
    keys: list[str] = []
    for rate, rs in results.items():
        keys = [k for k in rs[0]["cpu_ms"] if "runq" not in k]
        crow.append([f"{rate:.0f}"] + [f"{median([r['cpu_ms'][k] for r in rs]):.2f}"
                                       for k in keys]
                    + [f"{median([sum(r['cpu_ms'][k] for k in keys) for r in rs]):.2f}",
                       f"{100 * median([r['busy'] for r in rs]):.0f}",
                       f"{median([r['cpu_ms']['engine runq-wait'] for r in rs]):.2f}",
                       f"{median([r['cpu_ms']['api runq-wait'] for r in rs]):.2f}"])
    print(table(["rate/s", *keys, "all", "busy %", "engine runq", "api runq"], crow))
    print(f"ticks published: {ticker.sent}; position polls: {watch.queries}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 200])
    parser.add_argument("--seconds", type=float, default=20, help="per rate")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1, help="repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=500, help="orders before the runs")
    parser.add_argument("--tick-ms", type=float, default=100, help="touch published every")
    parser.add_argument("--poll-ms", type=float, default=2, help="read-model poll interval")
    parser.add_argument("--quantity", default="0.01")
    parser.add_argument("--projections", nargs="+", default=list(PROJECTIONS),
                        help="read models to run (all that account.events feeds by default; "
                             "instruments and accounts are needed)")
    parser.add_argument("--code", metavar="DIR",
                        help="run the services from this tree (`git archive REV | tar -x -C "
                             "DIR`), for before/after runs; name its projections with "
                             "--projections")
    parser.add_argument("--no-tap", action="store_true",
                        help="no tap consumer (no hop split; it is one more reader)")
    args = parser.parse_args(argv)
    print(f"load average at start: {load_average()}", flush=True)
    asyncio.run(run(args))
    print(f"load average at end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
