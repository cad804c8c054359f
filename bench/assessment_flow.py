"""Purchase -> assessment -> funded account, through Kafka and both deciders, the policy and
the accounts projection, all as child processes in a fresh namespace.

Two figures: throughput (a burst of --burst `payment.purchase-completed` events; time from
the first produce until every account row is in PostgreSQL) and latency (--samples single
purchases one after another; time from produce until the account row is visible, polled
every 2 ms).

Run: python -m bench.assessment_flow [--burst 2000] [--samples 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from bench.command_round_trip import Child, until
from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    median,
    percentile,
)
from kernel.kafka import make_producer, send_many
from kernel.pg import connect
from kernel.settings import Settings
from schemas.account import account_id_for
from schemas.assessment import assessment_id_for
from schemas.codec import encode
from schemas.envelope import make_event
from schemas.payment import PurchaseCompleted
from schemas.tier import RuleSet, TierPhase, TierTerms
from schemas.topics import CATALOGUE

TERMS = TierTerms(name="Bench 25k", account_size=25_000, price_minor=14_900, currency="USD",
                  phases=(TierPhase(name="challenge", rules=RuleSet(
                      daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
                      profit_target_pct=Decimal(8))),))
PROCESSES = (("decider", "assessment"), ("decider", "account"), ("policy", "assessment"),
             ("projection", "accounts"))


def purchase_record(purchase: uuid.UUID) -> tuple[bytes, bytes]:
    event = PurchaseCompleted(
        user_id=str(uuid.uuid4()), tier_id="bench-25k", tier_revision=1, terms=TERMS,
        amount_minor=TERMS.price_minor, currency="USD",
        stripe_event_id=f"evt_{purchase.hex}", checkout_session_id=f"cs_{purchase.hex}")
    env = make_event(event, aggregate_id=str(purchase), sequence=1,
                     occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
                     causation_id=uuid.uuid4(), event_id=uuid.uuid4())
    return str(purchase).encode(), encode(env)


async def accounts(conn: psycopg.AsyncConnection, ids: list[str] | None = None) -> int:
    """Account rows (of `ids`, or all); 0 while the projection has not created its table."""
    try:
        if ids is None:
            cur = await conn.execute("SELECT count(*) FROM accounts")
        else:
            cur = await conn.execute(
                "SELECT count(*) FROM accounts WHERE account_id = ANY(%s::uuid[])", (ids,))
        row = await cur.fetchone()
        return int(row[0]) if row else 0
    except psycopg.errors.UndefinedTable:
        return 0
    finally:
        await conn.rollback()


async def run(settings: Settings, *, burst: int, samples: int) -> None:
    await create_topics(settings, CATALOGUE)
    logs = Path(tempfile.mkdtemp(prefix="bench-assess-"))
    children = [Child(settings, logs, *argv) for argv in PROCESSES]
    producer = make_producer(settings, client_id="bench")
    await producer.start()
    conn = await connect(settings)
    try:
        # Warm up: one purchase all the way through (processes joined, tables created).
        warm = uuid.uuid4()
        await send_many(producer, settings.topic("payment.events"), [purchase_record(warm)])
        await until(lambda: _has(conn, warm), 120, "the warm-up account")

        records = [purchase_record(uuid.uuid4()) for _ in range(burst)]
        started = time.perf_counter()
        await send_many(producer, settings.topic("payment.events"), records)
        await until(lambda: _count_at_least(conn, burst + 1), 600, f"{burst} accounts")
        took = time.perf_counter() - started
        print(f"burst: {burst} purchases -> {burst} accounts in {took:.2f} s "
              f"({burst / took:,.0f} purchases/s end to end)")

        latencies = []
        for _ in range(samples):
            purchase = uuid.uuid4()
            t0 = time.perf_counter()
            await send_many(producer, settings.topic("payment.events"),
                            [purchase_record(purchase)])
            for _poll in range(30_000):  # 60 s at most
                if await _has(conn, purchase):
                    break
                await asyncio.sleep(0.002)
            latencies.append((time.perf_counter() - t0) * 1000)
        latencies.sort()
        print(f"latency over {samples} single purchases: p50 {median(latencies):.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms, max {latencies[-1]:.1f} ms")
        for child in children:
            print(f"  {' '.join(child.argv[4:]):<24} CPU {child.cpu_seconds():.1f} s")
    finally:
        await conn.close()
        await producer.stop()
        for child in children:
            child.stop()
        await delete_namespace(settings)
        await drop_pg_schema(settings)


async def _has(conn: psycopg.AsyncConnection, purchase: uuid.UUID) -> bool:
    return await accounts(conn, [account_id_for(assessment_id_for(str(purchase)))]) == 1


async def _count_at_least(conn: psycopg.AsyncConnection, n: int) -> bool:
    return await accounts(conn) >= n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    settings = fresh_namespace(base_settings(), "bassess")
    asyncio.run(run(settings, burst=args.burst, samples=args.samples))


if __name__ == "__main__":
    main()
