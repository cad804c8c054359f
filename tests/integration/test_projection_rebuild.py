"""A rebuild on the fast path (msgspec Structs folded directly, rows held across batches,
each batch decoded while the previous one is written) against the plain pydantic rebuild,
on real Kafka and PostgreSQL, with poison in the log: the same table, the same dead letters.

One event is refused by PostgreSQL itself (a NUL character in a text column): its batch is
rolled back and applied one by one, which also throws away the rows held in memory; the
rebuild must come out right all the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from core.adapters.instruments_projection import InstrumentsProjection
from kernel.dlq import read_dead_letters
from kernel.pg import connect
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from schemas import default_registry
from schemas.codec import encode
from schemas.envelope import make_event
from schemas.instrument import InstrumentRegistered
from tests.integration.helpers import produce, spec
from tests.integration.tapes import event_tape

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def registered(symbol: str, **overrides: object) -> bytes:
    cause = uuid.uuid4()
    return encode(make_event(InstrumentRegistered(spec=spec(symbol, **overrides)),
                             aggregate_id=symbol, sequence=1, occurred_at=datetime.now(UTC),
                             correlation_id=cause, causation_id=cause, event_id=uuid.uuid4()))


def changed(data: bytes, **changes: object) -> bytes:
    doc = orjson.loads(data)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = doc
        for name in parents:
            target = target[name]
        target[last] = value
    return orjson.dumps(doc)


async def table(settings: Settings) -> list[tuple[object, ...]]:
    conn = await connect(settings)
    try:
        cur = await conn.execute(
            "SELECT symbol, venue, asset_class, tick_size::text, lot_size::text, "
            "quote_currency, trading_hours::text, description, status, halt_reason, version, "
            "registered_at, updated_at FROM instruments ORDER BY symbol")
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def rebuild(settings: Settings, *, fast: bool) -> int:
    projection = InstrumentsProjection()
    if not fast:  # the pydantic path, every key selected, one batch after the other
        projection.fast = None  # type: ignore[assignment]
        projection.cache = None  # type: ignore[assignment]
    runner = ProjectionRunner(settings, projection, default_registry(), max_batch=40)
    runner.overlap = fast
    await runner.drop()
    await runner.start()
    try:
        return await runner.run(until_caught_up=True, timeout=120)
    finally:
        await runner.stop()


async def test_the_fast_rebuild_equals_the_pydantic_one_poison_and_refusals_included(
        settings: Settings) -> None:
    tape = event_tape(40, 6, seed=3)
    good = registered("LAX")
    poison: list[tuple[bytes | None, bytes]] = [
        (b"BAD", b"{not json"),
        (b"BAD", changed(good, type="instrument.exploded")),
        (b"BAD", changed(good, version=99)),
        (b"BAD", changed(good, payload__spec__tick_size="0")),
        # Refused by PostgreSQL, not by the decoder: text cannot hold NUL.
        (b"NUL", registered("NUL", description="a\x00b")),
        # Taken by pydantic's lax mode only (a number for a decimal): the fallback path.
        (b"LAX", changed(good, payload__spec__tick_size=0.5)),
    ]
    records = list(tape.records)
    for i, record in enumerate(poison):
        records.insert(len(records) * (i + 1) // (len(poison) + 1), record)
    await produce(settings, "instrument.events", records)

    applied = await rebuild(settings, fast=True)
    fast_rows = await table(settings)
    letters = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    fast_letters = sorted((d.reason, d.value) for d in letters)
    assert len(fast_letters) == 5, fast_letters
    assert {r[0] for r in fast_rows} == set(tape.expected) | {"LAX"}
    for row in fast_rows:
        exp = tape.expected.get(str(row[0]))
        if exp is not None:
            assert (row[8], row[10], row[9]) == (exp.status, exp.version, exp.halt_reason)
            assert row[3] == str(exp.tick_size)
    assert next(r for r in fast_rows if r[0] == "LAX")[3] == "0.5"

    await rebuild(settings, fast=False)
    assert await table(settings) == fast_rows
    letters = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    assert sorted((d.reason, d.value) for d in letters[len(fast_letters):]) == fast_letters
    assert applied >= len(records) - 5
