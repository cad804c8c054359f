"""Market data through the real broker, database and cache: simulator, prices, bars."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from aiokafka import TopicPartition as KafkaTP

from kernel.kafka import make_consumer
from kernel.pg import connect
from kernel.settings import Settings
from kernel.stream import StreamProcessor
from market_data.adapters.publisher import encode_batch
from market_data.adapters.redis_prices import PriceStore
from market_data.domain.ticks import Tick
from market_data.services.bars import PartitionBars
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import make_command, make_event
from schemas.instrument import InstrumentHalted, InstrumentRegistered
from schemas.market import InjectNews, MarketTicksPublished, OverrideRegime, StopSimulator
from tests.integration.helpers import end_offsets, produce, read_topic, spec, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NS0 = 1_795_000_000_000_000_000


def instrument_event(payload: object, symbol: str, sequence: int) -> tuple[bytes, bytes]:
    cause = uuid.uuid4()
    return symbol.encode(), encode(make_event(
        payload, aggregate_id=symbol, sequence=sequence,  # type: ignore[arg-type]
        occurred_at=datetime.now(UTC), correlation_id=cause, causation_id=cause,
        event_id=uuid.uuid4()))


async def tick_counts(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for env in await read_topic(settings, "market.ticks"):
        counts[env.aggregate_id] = counts.get(env.aggregate_id, 0) + len(env.payload["ticks"])
    return counts


async def test_simulator_ticks_registered_instruments_and_obeys_admin_commands(
    settings: Settings, spawn: type
) -> None:
    await produce(settings, "instrument.events", [
        instrument_event(InstrumentRegistered(spec=spec("BTC-USD")), "BTC-USD", 1),
        instrument_event(InstrumentRegistered(spec=spec(
            "PM-RAIN", asset_class="prediction", tick_size="0.01", lot_size="1")), "PM-RAIN", 1),
    ])
    await spawn("market", "simulator").start().ready()

    async def both_tick() -> bool:
        counts = await tick_counts(settings)
        return counts.get("BTC-USD", 0) >= 5 and counts.get("PM-RAIN", 0) >= 5

    await wait_until(both_tick, timeout=30, what="ticks for both instruments")
    probabilities = [row["price"] for env in await read_topic(settings, "market.ticks")
                     if env.aggregate_id == "PM-RAIN" for row in env.payload["ticks"]]
    assert all(0 < p < 1 for p in probabilities)

    now = datetime.now(UTC)
    commands = [
        make_command(OverrideRegime(regime="high"), aggregate_id="BTC-USD",
                     command_id=uuid.uuid4(), issued_at=now),
        make_command(InjectNews(headline="BTC ETF approved", jump=0.05), aggregate_id="BTC-USD",
                     command_id=uuid.uuid4(), issued_at=now),
    ]
    await produce(settings, "market.commands", [(c.aggregate_id.encode(), encode(c))
                                                for c in commands])

    async def obeyed() -> bool:
        types = {(e.type, e.payload.get("forced"), e.payload.get("injected"))
                 for e in await read_topic(settings, "market.events")}
        return ("market.regime-changed", True, None) in types and \
            ("market.news-published", None, True) in types

    await wait_until(obeyed, timeout=30, what="the forced regime and the injected news")

    await produce(settings, "instrument.events",
                  [instrument_event(InstrumentHalted(reason="x"), "PM-RAIN", 2)])
    await asyncio.sleep(2)
    halted_at = (await tick_counts(settings))["PM-RAIN"]
    await asyncio.sleep(1.5)
    assert (await tick_counts(settings))["PM-RAIN"] == halted_at, "a halted instrument ticked"

    stop = make_command(StopSimulator(), aggregate_id="*", command_id=uuid.uuid4(),
                        issued_at=datetime.now(UTC))
    await produce(settings, "market.commands", [(b"*", encode(stop))])
    await asyncio.sleep(2)
    stopped_at = sum((await end_offsets(settings, "market.ticks")).values())
    await asyncio.sleep(1.5)
    assert sum((await end_offsets(settings, "market.ticks")).values()) == stopped_at


def tick_tape(minutes: int, instruments: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """One tick a second per instrument, 10 ticks a batch, with received = venue time."""
    records = []
    for instrument in instruments:
        base = 100.0 + len(instrument)
        ticks = [Tick(instrument, "simulator", base + (i % 37) * 0.25, 1.0 + i % 3,
                      NS0 + i * 1_000_000_000, NS0 + i * 1_000_000_000, trade_id=str(i))
                 for i in range(minutes * 60)]
        for n, start in enumerate(range(0, len(ticks), 10)):
            records.append((instrument.encode(), encode_batch(
                instrument, "simulator", ticks[start:start + 10], sequence=n + 1,
                occurred_at=datetime.now(UTC))))
    return records


async def test_prices_reach_redis_and_a_replay_never_goes_back_in_time(
    settings: Settings, spawn: type
) -> None:
    records = tick_tape(2, ("ETH-USD", "SOL-USD"))
    await produce(settings, "market.ticks", records)
    await spawn("market", "prices").start().ready()
    client = redis.Redis.from_url(settings.cache_url)
    store = PriceStore(client, namespace=settings.namespace)
    try:
        async def latest() -> bool:
            got = await store.latest("SOL-USD")
            return got is not None and got.ts_ns == NS0 + 119 * 1_000_000_000

        await wait_until(latest, timeout=30, what="the last SOL-USD tick in Redis")
        before = await store.latest("SOL-USD")
        first = decode_event(records[len(records) // 2 + 1][1])
        payload = MarketTicksPublished.model_validate(first.payload)
        await store.apply([payload])  # an old batch again
        assert await store.latest("SOL-USD") == before
        assert len(await store.recent("SOL-USD", 200)) == 120
        assert {p.instrument for p in await store.all_latest()} == {"ETH-USD", "SOL-USD"}
    finally:
        await client.aclose()


async def bar_rows(settings: Settings) -> list[tuple[object, ...]]:
    conn = await connect(settings)
    try:
        cur = await conn.execute(
            "SELECT instrument, resolution, open_time_ns, open, high, low, close, volume, "
            "trades FROM market_bars ORDER BY 1, 2, 3")
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def test_bar_processor_killed_mid_stream_gives_the_bars_of_a_clean_run(
    settings: Settings, spawn: type
) -> None:
    instruments = ("AAA", "BBB", "CCC")
    records = tick_tape(90, instruments)  # 16,200 ticks in 1,620 batches
    # A third held back until after the kill keeps it mid-stream however fast the first run.
    held_back = len(records) // 3
    await produce(settings, "market.ticks", records[:-held_back])
    small = settings.model_copy(update={"projection_batch": 20})

    async def saved_offsets() -> int:
        conn = await connect(settings)
        try:
            cur = await conn.execute("SELECT coalesce(sum(next_offset), 0) FROM "
                                     "market_bar_state")
            row = await cur.fetchone()
            return int(row[0]) if row else 0
        except Exception:
            return 0
        finally:
            await conn.close()

    first = spawn("market", "bars")
    first.settings = small
    first.start()

    async def partly() -> bool:
        return await saved_offsets() > 0

    await wait_until(partly, timeout=60, what="part of the tape folded", every=0.02)
    first.kill9()
    assert 0 < await saved_offsets() < len(records), "the kill must land mid-stream"
    await produce(settings, "market.ticks", records[-held_back:])
    second = spawn("market", "bars")
    second.settings = small
    second.start()

    async def done() -> bool:
        return await saved_offsets() == len(records)

    await wait_until(done, timeout=120, what="the whole tape folded after the restart")
    await spawn("projection", "bars").start().ready()

    # The same tape folded in one uninterrupted pass, partition by partition, as the
    # processor does: the bars it closes are the ones the read model must hold.
    expected: set[tuple[object, ...]] = set()
    by_partition: dict[int, PartitionBars] = {}
    for msg in await read_topic(settings, "market.ticks", raw=True):
        state = by_partition.setdefault(msg.partition, PartitionBars())
        batch = MarketTicksPublished.model_validate(decode_event(msg.value).payload)
        closed, _ = state.fold(batch)
        closed += state.close_by_watermark()
        expected |= {(b.instrument, b.resolution, b.open_time_ns, b.open, b.high, b.low,
                      b.close, b.volume, b.trades) for b in closed}

    async def projected() -> bool:
        return len(await bar_rows(settings)) == len(expected)

    await wait_until(projected, timeout=60, what="every bar in the read model")
    rows = await bar_rows(settings)
    assert set(rows) == expected
    assert len(rows) == len(set(rows))
    one_minute = [r for r in rows if r[1] == "1m"]
    # 90 minutes of ticks from 40 s into a minute touch 91 one-minute periods; the last is
    # still open, so 90 closed 1m bars per instrument.
    assert NS0 % 60_000_000_000 == 40_000_000_000
    assert len(one_minute) == 3 * 90


async def test_prices_offsets_committed_in_the_background_are_all_committed_at_stop(
    settings: Settings,
) -> None:
    # On Kafka, aiokafka's stop() calls no rebalance listener: the runner commits what it
    # handled itself. A crash instead leaves the last interval to be redelivered.
    records = tick_tape(1, ("ETH-USD", "SOL-USD", "BTC-USD"))
    half = len(records) // 2
    await produce(settings, "market.ticks", records[:half])
    handled: list[object] = []

    async def handle(events: object) -> None:
        handled.extend(events)  # type: ignore[call-overload]

    processor = StreamProcessor(settings, name="prices-commit-test", topics=("market.ticks",),
                                registry=default_registry(), handle=handle,
                                commit_interval_ms=60_000)
    await processor.start()
    try:
        await processor.run(count=half, timeout=60)  # the first commit starts at once
        await produce(settings, "market.ticks", records[half:])
        await processor.run(count=len(records) - half, timeout=60)  # waits 60 s to commit
    finally:
        await processor.stop()
    assert len(handled) == len(records)
    ends = await end_offsets(settings, "market.ticks")
    reader = make_consumer(settings, client_id="test-committed", group_id=processor.group_id)
    await reader.start()
    try:
        committed = {p: await reader.committed(KafkaTP(settings.topic("market.ticks"), p))
                     for p, end in ends.items() if end}
    finally:
        await reader.stop()
    assert committed == {p: end for p, end in ends.items() if end}
