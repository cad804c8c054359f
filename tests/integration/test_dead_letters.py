"""Poison messages go to the dead-letter topic with their error; the consumer keeps going."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from kernel.dlq import read_dead_letters
from kernel.settings import Settings
from schemas.codec import encode
from schemas.envelope import make_event
from schemas.instrument import InstrumentRegistered
from tests.conftest import process_env
from tests.integration.helpers import (
    command_record,
    produce,
    read_topic,
    register_command,
    spec,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def good_event(symbol: str) -> bytes:
    cause = uuid.uuid4()
    return encode(make_event(InstrumentRegistered(spec=spec(symbol)), aggregate_id=symbol,
                             sequence=1, occurred_at=datetime.now(UTC), correlation_id=cause,
                             causation_id=cause, event_id=uuid.uuid4()))


def envelope_with(**changes: object) -> bytes:
    data = orjson.loads(good_event("ODD"))
    data.update(changes)
    return orjson.dumps({k: v for k, v in data.items() if v is not None})


POISON: list[tuple[str, bytes | None]] = [
    ("malformed-json", b"\x00\xffnot json at all"),
    ("malformed-json", good_event("CUT")[:40]),
    ("unknown-type", envelope_with(type="instrument.exploded")),
    ("unsupported-version", envelope_with(version=99)),
    ("invalid-envelope", envelope_with(aggregate_id=None)),
    ("invalid-payload", envelope_with(payload={"spec": {"symbol": "X"}})),
    ("too-large", b"{" + b" " * (600 * 1024) + b"}"),
    ("empty", None),
]


async def test_poison_events_are_dead_lettered_and_the_next_good_event_is_applied(
    settings: Settings, spawn: type
) -> None:
    records = [(b"POISON", value) for _, value in POISON] + [(b"GOOD", good_event("GOOD"))]
    await produce(settings, "instrument.events", records, partition=0)  # type: ignore[arg-type]
    await spawn("projection", "instruments").start().ready()

    letters = []

    async def all_parked() -> bool:
        letters[:] = await read_dead_letters(settings, "instrument.events.dlq")
        return len(letters) >= len(POISON)

    await wait_until(all_parked, timeout=30, what="every poison event dead-lettered")
    assert [d.reason for d in letters] == [reason for reason, _ in POISON]
    assert all(d.origin_topic == settings.topic("instrument.events") for d in letters)
    assert [d.origin_offset for d in letters] == list(range(len(POISON)))
    assert letters[0].value == POISON[0][1]  # the raw bytes are kept
    assert all(d.consumer == "projection-instruments" and d.error for d in letters)

    from kernel.pg import connect

    conn = await connect(settings)
    try:
        async def good_applied() -> bool:
            cur = await conn.execute("SELECT symbol FROM instruments")
            rows = await cur.fetchall()
            await conn.rollback()
            return [r[0] for r in rows] == ["GOOD"]

        await wait_until(good_applied, timeout=30, what="the good event after the poison")
    finally:
        await conn.close()


async def test_poison_commands_are_dead_lettered_and_the_decider_goes_on(
    settings: Settings, spawn: type
) -> None:
    good = register_command("GOOD")
    mismatched = register_command("OTHER")
    await produce(settings, "instrument.commands", [
        (b"GOOD", b"garbage"),
        (b"GOOD", encode(register_command("GOOD"))[:-5]),
        (b"NOT-OTHER", command_record(mismatched)[1]),
        command_record(good),
    ], partition=0)
    spawn("decider", "instrument").start()

    async def decided() -> bool:
        return len(await read_topic(settings, "instrument.events")) == 1

    await wait_until(decided, timeout=60, what="the good command decided")
    letters = await read_dead_letters(settings, "instrument.commands.dlq")
    assert [d.reason for d in letters] == ["malformed-json", "malformed-json", "key-mismatch"]
    events = await read_topic(settings, "instrument.events")
    assert events[0].causation_id == good.command_id

    # An operator can list and re-drive dead letters from the command line.
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "propstream", "dlq", "list",
                         "instrument.commands.dlq"],
        env=process_env(settings), capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "3 dead letter(s)" in listed.stdout and "key-mismatch" in listed.stdout
    redriven = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "propstream", "dlq", "replay",
                         "instrument.commands.dlq", "--offset", "2"],
        env=process_env(settings), capture_output=True, text=True, timeout=60)
    assert "re-drove 1 dead letter(s)" in redriven.stdout, redriven.stdout + redriven.stderr

    async def parked_again() -> bool:
        return len(await read_dead_letters(settings, "instrument.commands.dlq")) == 4

    await wait_until(parked_again, timeout=30, what="the re-driven (still bad) command parked")
