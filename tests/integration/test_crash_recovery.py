"""SIGKILL a projection or a decider mid-stream, restart it: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal

import psycopg
import pytest

from kernel.pg import connect
from kernel.settings import Settings
from tests.conftest import process_env
from tests.integration.helpers import (
    EndOffsetWatcher,
    by_causation,
    command_record,
    produce,
    read_topic,
    record_counts,
    wait_until,
)
from tests.integration.tapes import command_tape, event_tape

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]

CHECKSUM = (
    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY symbol), '')) "
    "FROM instruments t"
)


async def applied_offsets(conn: psycopg.AsyncConnection) -> int:
    try:
        cur = await conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets "
            "WHERE projection = 'instruments'")
        row = await cur.fetchone()
        return int(row[0]) if row else 0
    except psycopg.errors.UndefinedTable:
        return 0
    finally:
        await conn.rollback()


async def test_projection_killed_mid_stream_resumes_without_loss_or_duplicates(
    settings: Settings, spawn: type
) -> None:
    tape = event_tape(symbols=400, events_per_symbol=25)  # 10,000 events
    # A third held back until after the kill keeps it mid-stream however fast the first run.
    held_back = len(tape.records) // 3
    await produce(settings, "instrument.events", tape.records[:-held_back])
    total = len(tape.records)
    small_batches = settings.model_copy(update={"projection_batch": 200})
    conn = await connect(settings)
    try:
        first = spawn("projection", "instruments")
        first.settings = small_batches
        first.start()

        async def partly() -> bool:
            return await applied_offsets(conn) > 0

        await wait_until(partly, timeout=60, what="a partly applied stream", every=0.01)
        first.kill9()
        killed_at = await applied_offsets(conn)
        assert 0 < killed_at < total, "the kill must land mid-stream"
        await produce(settings, "instrument.events", tape.records[-held_back:])

        second = spawn("projection", "instruments")
        second.settings = small_batches
        second.start()

        async def caught_up() -> bool:
            return await applied_offsets(conn) == total

        await wait_until(caught_up, timeout=120, what="the restarted projection to catch up")
        cur = await conn.execute(
            "SELECT symbol, tick_size, status, halt_reason, version FROM instruments")
        rows = {r[0]: r[1:] for r in await cur.fetchall()}
        await conn.rollback()
    finally:
        await conn.close()

    assert len(rows) == len(tape.expected)
    mismatched = [
        symbol for symbol, exp in tape.expected.items()
        if rows.get(symbol) != (Decimal(exp.tick_size), exp.status, exp.halt_reason,
                                exp.version)
    ]
    assert mismatched == [], f"{len(mismatched)} rows differ from the log, e.g. {mismatched[:3]}"
    print(f"projection killed at offset sum {killed_at} of {total}; all {len(rows)} rows match")


async def test_replayed_projection_equals_the_live_one(settings: Settings, spawn: type) -> None:
    tape = event_tape(symbols=200, events_per_symbol=10, seed=3)
    await produce(settings, "instrument.events", tape.records)
    live_projection = await spawn("projection", "instruments").start().ready()
    conn = await connect(settings)
    try:
        async def caught_up() -> bool:
            return await applied_offsets(conn) == len(tape.records)

        await wait_until(caught_up, timeout=60, what="the live projection")
        live = await (await conn.execute(CHECKSUM)).fetchone()
        await conn.rollback()
    finally:
        await conn.close()

    live_projection.stop()  # a rebuild beside a running projection would race it
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "propstream", "replay", "instruments"],
        env=process_env(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(tape.records)} events" in result.stdout

    conn = await connect(settings)
    try:
        rebuilt = await (await conn.execute(CHECKSUM)).fetchone()
    finally:
        await conn.close()
    assert live is not None and rebuilt is not None
    assert live[0] == len(tape.expected)
    assert rebuilt == live


async def test_decider_killed_with_commands_in_flight_decides_each_command_once(
    settings: Settings, spawn: type
) -> None:
    tape = command_tape(symbols=600)  # 3,000 commands, 600 of them redelivered duplicates
    # Two thirds before the first decider, the rest after its kill: the decider can decide a
    # few thousand commands in well under a second, so a kill timed by polling alone could
    # land after the last one (CI saw that); the held-back third keeps the kill mid-stream
    # whatever the timing, and the fast watcher still aims it into the deciding.
    records = [command_record(c) for c in tape.commands]
    held_back = len(records) // 3
    await produce(settings, "instrument.commands", records[:-held_back])
    expected_events = sum(tape.accepted_events.values())

    async def events_on_log() -> int:
        return sum((await record_counts(settings, "instrument.events")).values())

    # Snapshots every 100 events, so the restart loads a snapshot and folds only the tail.
    snapshotting = settings.model_copy(update={"decider_snapshot_every": 100})
    first = spawn("decider", "instrument")
    first.settings = snapshotting
    async with EndOffsetWatcher(settings, "instrument.events") as watcher:
        first.start()

        async def some() -> bool:
            return sum((await watcher.ends()).values()) > 0

        await wait_until(some, timeout=90, what="some commands decided", every=0.01)
        first.kill9()
    at_kill = await record_counts(settings, "instrument.events")
    killed_at = sum(at_kill.values())
    assert 0 < killed_at < expected_events, "the kill must land mid-stream"
    await produce(settings, "instrument.commands", records[-held_back:])

    second = spawn("decider", "instrument")
    second.settings = snapshotting
    second.start()

    async def all_decided() -> bool:
        return await events_on_log() >= expected_events

    await wait_until(all_decided, timeout=120, what="every command decided")
    await asyncio.sleep(3)  # anything doubled after the restart would land by now

    events = await read_topic(settings, "instrument.events")
    assert len(events) == expected_events
    assert len({e.event_id for e in events}) == len(events)
    caused = by_causation(events)
    assert set(caused) == set(tape.accepted_events)
    assert all(len(v) == 1 for v in caused.values())
    assert all(e.type != "instrument.command-rejected" for e in events)
    sequences: dict[str, list[int]] = {}
    for e in events:
        sequences.setdefault(e.aggregate_id, []).append(e.sequence)
    assert all(seq == list(range(1, len(seq) + 1)) for seq in sequences.values())
    loads = second.logged("partition loaded")
    assert len(loads) == 3
    # A partition with more events than one batch (500 commands) at the kill had a committed
    # batch of >= 100 events behind it, so a snapshot: the restart must have started there.
    for load in loads:
        if at_kill.get(load["partition"], 0) > 500:
            assert load["snapshot_offset"] is not None, load
            assert load["events_replayed"] < at_kill[load["partition"]], load
    print(f"decider killed with {killed_at} of {expected_events} events on the log; "
          "every command decided once")
