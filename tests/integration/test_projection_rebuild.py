"""A rebuild on the fast path (msgspec Structs folded directly, rows held across batches,
each batch decoded while the previous one is written) against the plain pydantic rebuild,
on real Kafka and PostgreSQL, with poison in the log: the same table, the same dead letters.

One event is refused by PostgreSQL itself (a NUL character in a text column): its batch is
rolled back and applied one by one, which also throws away the rows held in memory; the
rebuild must come out right all the same."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from core.adapters.instruments_projection import InstrumentsProjection, _key
from kernel.dlq import read_dead_letters
from kernel.pg import connect
from kernel.projection import Event, ProjectionRunner
from kernel.rebuild import RebuildFailed
from kernel.rebuild import rebuild as parallel_rebuild
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


def poisoned(records: list[tuple[bytes | None, bytes]]) -> list[tuple[bytes | None, bytes]]:
    """`records` with five poison records spread among them, and one only pydantic takes."""
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
    records = list(records)
    for i, record in enumerate(poison):
        records.insert(len(records) * (i + 1) // (len(poison) + 1), record)
    return records


async def test_the_fast_rebuild_equals_the_pydantic_one_poison_and_refusals_included(
        settings: Settings) -> None:
    tape = event_tape(40, 6, seed=3)
    records = poisoned(list(tape.records))
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


def instruments_runner(settings: Settings) -> ProjectionRunner:
    """Each worker's runner (pickled to it by reference, so at module level)."""
    return ProjectionRunner(settings, InstrumentsProjection(), default_registry(), max_batch=40)


async def stored_offsets(settings: Settings) -> list[tuple[object, ...]]:
    conn = await connect(settings)
    try:
        cur = await conn.execute(
            "SELECT topic, partition, next_offset FROM projection_offsets "
            "WHERE projection = 'instruments' ORDER BY topic, partition")
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def test_a_two_worker_rebuild_equals_a_one_worker_one_poison_included(
        settings: Settings) -> None:
    tape = event_tape(60, 5, seed=11)
    records = poisoned(list(tape.records))
    await produce(settings, "instrument.events", records)
    factory = functools.partial(instruments_runner, settings)

    one = await parallel_rebuild(factory, workers=1)
    rows, offsets = await table(settings), await stored_offsets(settings)
    letters = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    assert len(letters) == 5 and len(one.workers) == 1
    assert len(offsets) == 3  # every partition of instrument.events has records

    two = await parallel_rebuild(factory, workers=2)
    assert len(two.workers) == 2
    assert sorted(tp for w in two.workers for tp in w.partitions) == sorted(
        tp for w in one.workers for tp in w.partitions)
    assert await table(settings) == rows
    assert await stored_offsets(settings) == offsets
    again = await read_dead_letters(settings, "instrument.events.dlq", limit=1000)
    assert sorted((d.reason, d.value) for d in again[len(letters):]) == sorted(
        (d.reason, d.value) for d in letters)
    assert two.events == one.events


class Exploding(InstrumentsProjection):
    """Breaks (as a bug would: not a refusal of the data) on the events of BOOM."""

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Event]) -> None:
        if any(_key(e) == "BOOM" for e in events):
            raise RuntimeError("boom")
        await super().apply(conn, events)


def exploding_runner(settings: Settings) -> ProjectionRunner:
    return ProjectionRunner(settings, Exploding(), default_registry(), max_batch=40)


async def test_a_failed_worker_fails_the_rebuild_and_a_resume_completes_it(
        settings: Settings) -> None:
    tape = event_tape(60, 5, seed=5)
    records = list(tape.records)
    records.insert(len(records) * 2 // 3, (b"BOOM", registered("BOOM")))
    await produce(settings, "instrument.events", records)

    with pytest.raises(RebuildFailed, match=r"rebuild worker \d .*failed: RuntimeError: boom"):
        await parallel_rebuild(functools.partial(exploding_runner, settings), workers=2)
    partial = await stored_offsets(settings)
    assert partial  # the batches before BOOM's stayed, with their offsets

    report = await parallel_rebuild(functools.partial(instruments_runner, settings), workers=2,
                                    resume=True)
    assert report.events < len(records)  # went on from the stored offsets
    rows = await table(settings)
    assert {r[0] for r in rows} == set(tape.expected) | {"BOOM"}
    for row in rows:
        exp = tape.expected.get(str(row[0]))
        if exp is not None:
            assert (row[8], row[10], row[9]) == (exp.status, exp.version, exp.halt_reason)
    ends = {(t, p): o for t, p, o in await stored_offsets(settings)}
    assert sum(ends.values()) == len(records)


def rebuild_workers() -> list[int]:
    """Pids of this process's rebuild workers."""
    pids = []
    for task in os.listdir("/proc"):
        if not task.isdigit():
            continue
        try:
            with open(f"/proc/{task}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{task}/cmdline", "rb") as cmdline:
                args = cmdline.read()
        except OSError:
            continue
        if ppid == os.getpid() and b"kernel.rebuild_worker" in args:
            pids.append(int(task))
    return pids


async def test_a_killed_worker_fails_the_rebuild_and_a_resume_completes_it(
        settings: Settings) -> None:
    tape = event_tape(60, 5, seed=7)
    await produce(settings, "instrument.events", tape.records)
    factory = functools.partial(instruments_runner, settings)
    rebuilding = asyncio.create_task(parallel_rebuild(factory, workers=2))
    for _ in range(200):
        pids = rebuild_workers()
        if len(pids) == 2:
            break
        await asyncio.sleep(0.05)
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(RebuildFailed, match=r"died \(exit code -9\)"):
        await rebuilding
    for _ in range(100):  # the other worker is stopped too
        if not rebuild_workers():
            break
        await asyncio.sleep(0.05)
    assert rebuild_workers() == []

    await parallel_rebuild(factory, workers=2, resume=True)
    rows = await table(settings)
    assert {r[0] for r in rows} == set(tape.expected)
    ends = {(t, p): o for t, p, o in await stored_offsets(settings)}
    assert sum(ends.values()) == len(tape.records)
