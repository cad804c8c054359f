"""Recovery of a book of --orders resting orders through the book engine's recovery path.

Not `Book.restore` alone (bench.order_book times that): `BookEngine.load_partitions`, what a
restart or a new owner of a `book.commands` partition runs: read the newest snapshot from
`book.snapshots` (chunks of bounded size, then the manifest), assemble the items into the book
(`core.domain.book_market.restore_items`, `Book.restore`), then decode and fold the events
after the snapshot from `book.events` (`Book.follow`).

Set-up (untimed): a book of --orders resting GTC limits from 1,000 accounts around 100.00 is
built on the engine's aggregate, its snapshot written by the engine's own `save_snapshot`, then
--tail submits (a third marketable, so trades too) decided on it and their events appended
after the snapshot. The log is `kernel.memlog` (Kafka's semantics, in memory): the figure is
the engine's work, not the broker's transfer of a ~60 MB snapshot.

Run: flock /tmp/bench.lock python -m bench.book_recovery [--orders 1000000] [--tail 20000]
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

from core.domain.book_market import BookContext, BookState
from core.processors.book_engine import BookEngine
from kernel.decider_state import PartitionState, Versioned
from kernel.log import OutRecord, partition_for
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.book import SubmitOrder
from schemas.codec import encode
from schemas.envelope import derive_event_id, make_event
from schemas.topics import CATALOGUE

SYMBOL = "GAME-1"
TICK, LOT = Decimal("0.01"), Decimal("1")
NOW = datetime(2026, 12, 6, tzinfo=UTC)


async def main(orders: int, tail: int, seed: int) -> None:
    rng = random.Random(seed)
    log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
    settings = Settings(env="test")
    registry = default_registry()
    engine = BookEngine(settings, registry, log=log, makers=())
    aggregate = engine.aggregate
    p = partition_for(SYMBOL.encode(), 3)
    state = aggregate.initial(SYMBOL)
    ctx = BookContext(now=NOW, command_id=uuid.uuid4(), actor=None, grid=(TICK, LOT))
    t0 = time.perf_counter()
    first = SubmitOrder(order_id="o0", account_id="acct-0", side="buy", price=Decimal("99.99"),
                        quantity=Decimal(1))
    events = aggregate.decide(first, state, ctx)  # opens the book
    book = state.book
    assert book is not None
    for i in range(1, orders):
        buy = i % 2 == 0
        ticks = 10_000 - rng.randint(1, 500) if buy else 10_000 + rng.randint(0, 499)
        book.place(f"o{i}", f"acct-{i % 1000}", "buy" if buy else "sell", rng.randint(1, 20),
                   ticks)
    built = time.perf_counter() - t0
    version = len(events) + 2 * (orders - 1)
    pstate: PartitionState[BookState] = PartitionState(
        aggregates={SYMBOL: Versioned(version, state)}, next_event_offset=0)
    engine.partitions[p] = pstate
    engine.snapshot_producer = log.producer(client_id="bench-snapshots")
    await engine.snapshot_producer.start()
    t0 = time.perf_counter()
    await engine.save_snapshot(p)
    saved = time.perf_counter() - t0
    snapshot_bytes = sum(len(r.value or b"") for r in log.records("book.snapshots"))

    producer = log.producer(client_id="bench-tail")
    records = []
    trades = 0
    for i in range(tail):
        buy = i % 2 == 0
        marketable = i % 3 == 0
        ticks = (10_001 if buy else 9_999) if marketable else \
            (10_000 - rng.randint(1, 300) if buy else 10_000 + rng.randint(0, 299))
        command = SubmitOrder(order_id=f"t{i}", account_id=f"acct-{i % 1000}",
                              side="buy" if buy else "sell", price=TICK * ticks,
                              quantity=Decimal(rng.randint(1, 20)))
        command_id = uuid.uuid5(uuid.NAMESPACE_URL, f"tail/{i}")
        payloads = aggregate.decide(command, state, ctx)
        for j, payload in enumerate(payloads):
            version += 1
            trades += payload.TYPE == "book.trade"
            env = make_event(payload, aggregate_id=SYMBOL, sequence=version, occurred_at=NOW,
                             correlation_id=command_id, causation_id=command_id,
                             event_id=derive_event_id(command_id, j))
            records.append(env)
    await producer.send_many("book.events", [OutRecord(SYMBOL.encode(), encode(e))
                                             for e in records])  # (the key's partition: p)
    expected = book.snapshot()
    del state, pstate, book
    engine.partitions.clear()
    gc.collect()

    heir = BookEngine(settings, registry, log=log, makers=())
    t0 = time.perf_counter()
    await heir.load_partitions([p])
    recovered = time.perf_counter() - t0
    got = heir.book(SYMBOL)
    assert got is not None and got.book is not None
    assert got.book.snapshot() == expected, "the recovered book differs from the live one"
    print(f"load {os.getloadavg()[0]:.2f}; book of {orders:,} resting orders built in "
          f"{built:.2f} s; snapshot {snapshot_bytes / 1e6:.1f} MB in "
          f"{len(log.records('book.snapshots')):,} records, written in {saved:.2f} s")
    print(f"tail: {tail:,} submits -> {len(records):,} events ({trades:,} trades)")
    print(f"recovery through BookEngine.load_partitions: {recovered:.2f} s "
          f"({orders / recovered:,.0f} resting orders/s, snapshot + {len(records):,} "
          f"tail events); the recovered book equals the live one")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.tail, args.seed))
