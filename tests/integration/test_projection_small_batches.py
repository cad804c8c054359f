"""Small batches (the live path) written as one statement in autocommit
(kernel.projection_small), on real Kafka and PostgreSQL: the same table and the same dead
letters as a rebuild through the COPY transaction, PostgreSQL's refusals included; a refused
statement writes nothing, neither rows nor offsets, and the row cache forgets the batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from core.adapters.instruments_projection import InstrumentsProjection
from kernel.dlq import read_dead_letters
from kernel.log import TopicPartition
from kernel.pg import apply_ddl, connect
from kernel.projection import OFFSETS_DDL, PgProjectionStore, ProjectionRunner
from kernel.projection_stage import BatchRejected
from kernel.settings import Settings
from market_data.adapters.instruments_projection import MarketInstrumentsProjection
from schemas import default_registry
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.fastcodec import FastEvent
from schemas.instrument import InstrumentHalted, InstrumentRegistered
from tests.integration.helpers import produce, spec
from tests.integration.tapes import event_tape
from tests.integration.test_projection_rebuild import changed, registered, table

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def event(symbol: str, payload: EventPayload, sequence: int) -> bytes:
    cause = uuid.uuid4()
    return encode(make_event(payload, aggregate_id=symbol, sequence=sequence,
                             occurred_at=datetime.now(UTC), correlation_id=cause,
                             causation_id=cause, event_id=uuid.uuid4()))


async def test_live_small_batches_store_what_a_rebuild_stores_refusals_included(
        settings: Settings) -> None:
    tape = event_tape(12, 5, seed=5)
    good = registered("LAX")
    poison: list[tuple[bytes | None, bytes]] = [
        (b"BAD", b"{not json"),
        # Refused by PostgreSQL (well, by its driver: text cannot hold NUL), in a small batch.
        (b"NUL", registered("NUL", description="a\x00b")),
        (b"LAX", changed(good, payload__spec__tick_size=0.5)),
        (b"NUL2", registered("NUL2", description="x\x00")),
    ]
    records = list(tape.records)
    for i, record in enumerate(poison):
        records.insert(len(records) * (i + 1) // (len(poison) + 1), record)
    await produce(settings, "instrument.events", records)

    # Live: batches of at most two events, every one through the one-statement path.
    runner = ProjectionRunner(settings, InstrumentsProjection(), default_registry(), max_batch=2)
    writes: list[int] = []
    small = runner.store._write_small

    async def counted(events: object, offsets: object) -> None:
        writes.append(1)
        await small(events, offsets)  # type: ignore[arg-type]

    runner.store._write_small = counted  # type: ignore[assignment,method-assign]
    await runner.drop()
    await runner.start()
    try:
        handled = await runner.run(count=len(records), timeout=120)
    finally:
        await runner.stop()
    assert handled == len(records)
    assert len(writes) >= len(records) // 2
    live_rows = await table(settings)
    letters = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    live_letters = sorted((d.reason, d.value) for d in letters)
    assert [r for r, _ in live_letters] == ["BatchRejected", "BatchRejected", "malformed-json"]
    assert {r[0] for r in live_rows} == set(tape.expected) | {"LAX"}
    for row in live_rows:
        exp = tape.expected.get(str(row[0]))
        if exp is not None:
            assert (row[8], row[10], row[9], row[3]) == (
                exp.status, exp.version, exp.halt_reason, str(exp.tick_size))

    # The same log rebuilt through the COPY transaction: the same rows, the same letters.
    rebuild = ProjectionRunner(settings, InstrumentsProjection(), default_registry(),
                               max_batch=5000)
    await rebuild.drop()
    await rebuild.start()
    try:
        await rebuild.run(until_caught_up=True, timeout=120)
    finally:
        await rebuild.stop()
    assert await table(settings) == live_rows
    letters = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    assert sorted((d.reason, d.value) for d in letters[len(live_letters):]) == live_letters


async def test_a_projection_folded_event_by_event_stores_alike_in_small_batches(
        settings: Settings) -> None:
    """`RowTable.step_changes` (market data's read model of instruments) against its
    transaction path (`RowTable.fold` and the COPY-upsert), on the same log."""
    tape = event_tape(10, 6, seed=9)
    await produce(settings, "instrument.events", tape.records)

    async def market_table() -> list[tuple[object, ...]]:
        conn = await connect(settings)
        try:
            cur = await conn.execute("SELECT * FROM market_instruments ORDER BY symbol")
            return list(await cur.fetchall())
        finally:
            await conn.close()

    live = ProjectionRunner(settings, MarketInstrumentsProjection(), default_registry(),
                            max_batch=3)
    await live.drop()
    await live.start()
    try:
        assert await live.run(count=len(tape.records), timeout=120) == len(tape.records)
    finally:
        await live.stop()
    rows = await market_table()
    assert len(rows) == len(tape.expected)

    rebuild = ProjectionRunner(settings, MarketInstrumentsProjection(), default_registry())
    await rebuild.drop()
    await rebuild.start()
    try:
        await rebuild.run(until_caught_up=True, timeout=120)
    finally:
        await rebuild.stop()
    assert await market_table() == rows


async def test_a_refused_small_batch_writes_neither_rows_nor_offsets(settings: Settings) -> None:
    projection = InstrumentsProjection()
    store = PgProjectionStore(projection)
    conn = await connect(settings)
    store.conn = conn
    tp = TopicPartition(settings.topic("instrument.events"), 0)
    decode = ProjectionRunner(settings, projection, default_registry()).decode
    try:
        await apply_ddl(conn, [OFFSETS_DDL, *projection.ddl()])
        await projection.cache.start(conn)  # empty table: the cache is complete
        one = decode(_record(tp, 0, event("ONE", InstrumentRegistered(spec=spec("ONE")), 1)))
        assert isinstance(one, FastEvent)
        await store.write([one], {tp: 1})
        assert await store.offsets() == {tp: 1}
        assert set(projection.cache.rows) == {"ONE"}

        halt = decode(_record(tp, 1, event("ONE", InstrumentHalted(reason="why"), 2)))
        bad = decode(_record(tp, 2, registered("TWO", description="\x00")))
        with pytest.raises(BatchRejected):
            await store.write([halt, bad], {tp: 3})
        assert projection.cache.rows == {} and not projection.cache.complete
        assert await store.offsets() == {tp: 1}
        cur = await conn.execute("SELECT symbol, status, version FROM instruments")
        assert await cur.fetchall() == [("ONE", "active", 1)]

        # A key the writer believes new but that has a row is refused, never overwritten.
        projection.cache.complete = True
        again = decode(_record(tp, 3, event("ONE", InstrumentRegistered(
            spec=spec("ONE", venue="elsewhere")), 1)))
        with pytest.raises(BatchRejected, match="duplicate key"):
            await store.write([again], {tp: 4})
        cur = await conn.execute("SELECT venue FROM instruments")
        assert await cur.fetchall() == [("simulator",)]

        # The cache reloads what is committed, and the halt goes through.
        await store.write([halt], {tp: 2})
        cur = await conn.execute("SELECT status, halt_reason, version FROM instruments")
        assert await cur.fetchall() == [("halted", "why", 2)]
        assert await store.offsets() == {tp: 2}
    finally:
        await conn.close()


async def test_a_lost_connection_in_a_small_batch_is_not_a_refusal(settings: Settings) -> None:
    projection = InstrumentsProjection()
    store = PgProjectionStore(projection)
    conn = await connect(settings)
    store.conn = conn
    tp = TopicPartition(settings.topic("instrument.events"), 0)
    decode = ProjectionRunner(settings, projection, default_registry()).decode
    try:
        await apply_ddl(conn, [OFFSETS_DDL, *projection.ddl()])
        one = decode(_record(tp, 0, event("ONE", InstrumentRegistered(spec=spec("ONE")), 1)))
        killer = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
        try:
            await killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        finally:
            await killer.close()
        with pytest.raises(psycopg.OperationalError):
            await store.write([one], {tp: 1})
        assert projection.cache.rows == {}
    finally:
        await conn.close()


def _record(tp: TopicPartition, offset: int, value: bytes):  # type: ignore[no-untyped-def]
    from kernel.log import LogRecord

    return LogRecord(tp.topic, tp.partition, offset, None, value, (), 0)
