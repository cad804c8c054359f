"""Time travel: the latency of `GET /accounts/{id}?as_of=`'s work (history lookup in
PostgreSQL + the log's tail from Kafka + the fold), on one partition of `account.events`
holding `--events` events of `--accounts` accounts, with the account history's snapshots and
without them (the fold from the partition's start, which is what the log alone offers).

    python -m bench.time_travel --events 100000 --accounts 200 --reads 300

The events are real trading events: each account opens, then places market orders against a
moving quote (the pure domain decides them: accepted, filled, position, balance) and is marked
to market now and then; the accounts' decisions interleave on the partition at random. The
history projection is then run over the partition (its rate is printed too), and each read
asks for one account at a random instant of its life. Every answer is checked against the
full fold of the partition.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    percentile,
    table,
)
from core.adapters.account_history_projection import AccountHistoryProjection
from core.adapters.account_log import AccountLogReader, kafka_readers
from core.adapters.accounts_projection import AccountsProjection
from core.bootstrap import api
from core.domain import trading
from core.domain.trading.history import Rewind, Rewound
from core.handlers.time_travel import Travelled, travel
from core.views.account_history import account_as_of
from kernel.kafkalog import KafkaLog
from kernel.log import OutRecord
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from schemas import default_registry
from schemas.account import AccountOpened, account_id_for
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.instrument import InstrumentSpec
from schemas.market import TickRow
from schemas.topics import CATALOGUE
from schemas.trading import PlaceOrder
from tests.integration.helpers import asgi_client, bearer

REGISTRY = default_registry()
SPEC = InstrumentSpec(symbol="BTC-USD", venue="simulator", asset_class="crypto",
                      tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                      quote_currency="USD")
PARTITION = 0


def generate(events: int, accounts: int, seed: int
             ) -> tuple[list[tuple[str, bytes]], dict[str, list[datetime]], dict[str, str]]:
    """`events` encoded events of `accounts` accounts, interleaved by decision; the times of
    each account's events; each account's owner."""
    rng = random.Random(seed)
    market = trading.market_from_spec(SPEC, max_quote_age_ns=10**18)
    terms = trading.Terms(max_leverage=Decimal(100))
    assessments = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(accounts)]
    ids = [account_id_for(str(a)) for a in assessments]
    of = dict(zip(ids, assessments, strict=True))
    owners = {a: str(uuid.UUID(int=rng.getrandbits(128))) for a in ids}
    states = {a: trading.initial(a) for a in ids}
    versions = dict.fromkeys(ids, 0)
    times: dict[str, list[datetime]] = {a: [] for a in ids}
    out: list[tuple[str, bytes]] = []
    now_ns = int((time.time() - 86_400) * 1e9)
    price = 100.0
    orders = 0
    while len(out) < events:
        now_ns += 10_000_000  # a decision every 10 ms of event time
        price = max(1.0, price + rng.gauss(0, 0.05))
        account = rng.choice(ids)
        state = states[account]
        payloads: list[EventPayload]
        if state.status == "none":
            payloads = [AccountOpened(assessment_id=of[account],
                                      user_id=uuid.UUID(owners[account]),
                                      starting_balance=Decimal(100_000), currency="USD")]
        else:
            quote = trading.quote_from_tick(
                TickRow(venue_ts_ns=now_ns, received_ts_ns=now_ns, price=price, size=100.0,
                        bid=price, ask=price + 0.02), market, instrument="BTC-USD")
            assert quote is not None
            if rng.random() < 0.3 and state.positions:
                marked = trading.mark(state, {"BTC-USD": quote}, markets={"BTC-USD": market},
                                      terms=terms, now_ns=now_ns)
                payloads = [] if marked is None else [marked]
            else:
                orders += 1
                held = state.positions.get("BTC-USD")
                side = "sell" if held is not None and held.quantity > 0 and rng.random() < 0.5 \
                    else "buy"
                payloads = trading.place(state, PlaceOrder(
                    client_order_id=f"o{orders}", instrument="BTC-USD", side=side,
                    type="market", quantity=Decimal("0.5")), quote=quote, market=market,
                    terms=terms, now_ns=now_ns, markets={"BTC-USD": market})
        at = datetime.fromtimestamp(now_ns / 1e9, UTC)
        cause = uuid.uuid4()
        for i, payload in enumerate(payloads):
            versions[account] += 1
            trading.evolve(state, payload)
            env = make_event(payload, aggregate_id=account, sequence=versions[account],
                             occurred_at=at, correlation_id=cause, causation_id=cause,
                             event_id=uuid.uuid5(cause, str(i)))
            out.append((account, encode(env)))
            times[account].append(at)
    return out, times, owners


async def produce(log: KafkaLog, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = log.producer(client_id="bench-time-travel")
    await producer.start()
    try:
        for i in range(0, len(records), 5_000):
            await producer.send_many(topic, [OutRecord(k.encode(), v, partition=PARTITION)
                                             for k, v in records[i:i + 5_000]])
    finally:
        await producer.stop()


def summary(name: str, millis: list[float], reads: list[int]) -> list[object]:
    millis.sort()
    reads.sort()
    return [name, len(millis), f"{percentile(millis, 50):.2f}", f"{percentile(millis, 99):.2f}",
            f"{millis[-1]:.2f}", f"{percentile(reads, 50):,}", f"{reads[-1]:,}"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--reads", type=int, default=300, help="reads with the snapshots")
    parser.add_argument("--full-reads", type=int, default=30,
                        help="reads without them (each folds from the partition's start)")
    parser.add_argument("--http-reads", type=int, default=200,
                        help="the same reads through the API in-process, as their trader")
    parser.add_argument("--every-events", type=int, default=None)
    parser.add_argument("--every-records", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    args = parser.parse_args()

    settings = fresh_namespace(base_settings(), "btt")
    load = os.getloadavg()
    print(f"# bench.time_travel {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, load {load[0]:.2f}; namespace {settings.namespace}")
    await create_topics(settings, CATALOGUE)
    log = KafkaLog(settings)
    topic = settings.topic("account.events")
    try:
        started = time.perf_counter()
        records, times, owners = generate(args.events, args.accounts, args.seed)
        print(f"generated {len(records):,} events of {args.accounts} accounts in "
              f"{time.perf_counter() - started:.1f} s "
              f"({sum(len(v) for _, v in records) / len(records):.0f} bytes each)")
        await produce(log, topic, records)

        accounts_runner = ProjectionRunner(settings, AccountsProjection(), REGISTRY)
        await accounts_runner.start()
        try:
            await accounts_runner.run(count=len(records), timeout=600)
        finally:
            await accounts_runner.stop()
        kw = {k: v for k, v in (("every_events", args.every_events),
                                ("every_records", args.every_records)) if v is not None}
        projection = AccountHistoryProjection(**kw)
        runner = ProjectionRunner(settings, projection, REGISTRY)
        await runner.start()
        started = time.perf_counter()
        try:
            handled = await runner.run(count=len(records), timeout=600)
        finally:
            await runner.stop()
        took = time.perf_counter() - started
        async with await connect(settings, autocommit=True) as conn:
            cur = await conn.execute("SELECT count(*), coalesce(sum(pg_column_size(state)), 0) "
                                     "FROM account_snapshots")
            snaps, snap_bytes = (await cur.fetchone()) or (0, 0)
            print(f"history projection: {handled:,} events in {took:.1f} s "
                  f"({handled / took:,.0f} events/s), {snaps:,} snapshots "
                  f"({snap_bytes / max(snaps, 1):,.0f} bytes each, stored); every "
                  f"{projection.every_events} events or {projection.every_records:,} records")

            rng = random.Random(args.seed + 1)
            reader = AccountLogReader(kafka_readers(settings), topic=topic, registry=REGISTRY,
                                      readers=1, max_records=10 * len(records),
                                      deadline_s=120)
            accounts = [a for a, t in times.items() if t]

            def instant() -> tuple[str, datetime]:
                account = rng.choice(accounts)
                ts = times[account]
                lo, hi = ts[0].timestamp(), ts[-1].timestamp()
                return account, datetime.fromtimestamp(rng.uniform(lo, hi), UTC)

            # Warm the reader (its consumer's start and first metadata are not a read).
            await travel(conn, reader, uuid.UUID(accounts[0]), times[accounts[0]][0])
            with_ms: list[float] = []
            with_read: list[int] = []
            checks: list[tuple[str, datetime, dict[str, object]]] = []
            for _ in range(args.reads):
                account, at = instant()
                t0 = time.perf_counter()
                got = await travel(conn, reader, uuid.UUID(account), at)
                with_ms.append((time.perf_counter() - t0) * 1000)
                assert isinstance(got, Travelled), got
                with_read.append(got.records_read)
                checks.append((account, at, got.account.model_dump()))

            full_ms: list[float] = []
            full_read: list[int] = []
            for account, at, answer in checks[:args.full_reads]:
                t0 = time.perf_counter()
                rewind = Rewind(Rewound.start(account), at)
                read = await reader.fold(rewind, account_id=account, partition=PARTITION,
                                         ranges=[(0, None)])
                full = account_as_of(rewind.now.state, version=rewind.now.version,
                                     last_event_at=rewind.now.at, as_of=at)
                full_ms.append((time.perf_counter() - t0) * 1000)
                full_read.append(read)
                assert full.model_dump() == answer, (account, at)
            await reader.stop()
        http_ms: list[float] = []
        http_read = with_read[:args.http_reads]  # the same reads, in the same order
        async with asgi_client(api(settings)) as client:
            first, when, _ = checks[0]  # warms the app's reader
            await client.get(f"/accounts/{first}", params={"as_of": when.isoformat()},
                             headers=bearer(settings, role="trader", user_id=owners[first]))
            for account, at, answer in checks[:args.http_reads]:
                headers = bearer(settings, role="trader", user_id=owners[account])
                t0 = time.perf_counter()
                resp = await client.get(f"/accounts/{account}",
                                        params={"as_of": at.isoformat()}, headers=headers)
                http_ms.append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, resp.text
                assert resp.json()["version"] == answer["version"]
        print(table(["read", "n", "p50 ms", "p99 ms", "max ms", "records p50", "records max"],
                    [summary("with snapshots (SQL + tail)", with_ms, with_read),
                     summary("without (fold from offset 0)", full_ms, full_read),
                     summary("HTTP GET ?as_of= (in-process)", http_ms, http_read)]))
        print(f"{len(full_ms)} answers equal to the full fold")
    finally:
        if not args.keep:
            await delete_namespace(settings)
            await drop_pg_schema(settings)


if __name__ == "__main__":
    asyncio.run(main())
