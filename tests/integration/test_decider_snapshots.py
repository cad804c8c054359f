"""A decider restarted from a snapshot knows every aggregate and every decided command."""

from __future__ import annotations

import pytest

from kernel.settings import Settings
from tests.integration.helpers import (
    by_causation,
    command_record,
    produce,
    read_topic,
    record_counts,
    wait_until,
)
from tests.integration.tapes import command_tape

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_restart_from_snapshot_dedupes_old_commands_and_continues_sequences(
    settings: Settings, spawn: type
) -> None:
    snapshotting = settings.model_copy(update={"decider_snapshot_every": 50})
    first_half = command_tape(symbols=100, seed=1)
    await produce(settings, "instrument.commands",
                  [command_record(c) for c in first_half.commands])
    first = spawn("decider", "instrument")
    first.settings = snapshotting
    first.start()

    async def events() -> int:
        return sum((await record_counts(settings, "instrument.events")).values())

    expected = len(first_half.accepted_events)

    async def first_done() -> bool:
        return await events() == expected

    await wait_until(first_done, timeout=60, what="the first half decided")

    async def snapshotted() -> bool:
        return bool(first.logged("snapshot written"))

    # Every 50 events a partition snapshots right after the batch that crossed the mark.
    await wait_until(snapshotted, timeout=30, what="a snapshot written")
    first.stop()

    # Every old command again (a redelivery storm), then halts of the same symbols.
    from datetime import UTC, datetime
    from uuid import uuid4

    from schemas.envelope import make_command
    from schemas.instrument import HaltInstrument

    halts = [make_command(HaltInstrument(reason="after restart"), aggregate_id=f"C{s:05d}",
                          command_id=uuid4(), issued_at=datetime.now(UTC)) for s in range(100)]
    await produce(settings, "instrument.commands",
                  [command_record(c) for c in first_half.commands + halts])
    second = spawn("decider", "instrument")
    second.settings = snapshotting
    second.start()

    async def second_done() -> bool:
        return await events() == expected + len(halts)

    await wait_until(second_done, timeout=60, what="the halts decided")
    loads = second.logged("partition loaded")
    assert len(loads) == 3
    assert all(load["snapshot_offset"] is not None for load in loads), loads
    assert sum(load["events_replayed"] for load in loads) < expected  # only the tail

    log = await read_topic(settings, "instrument.events")
    caused = by_causation(log)
    assert all(len(v) == 1 for v in caused.values())
    halted = [e for e in log if e.causation_id in {h.command_id for h in halts}]
    # register, update, halt, resume (4 events) happened first: the new halt is the 5th.
    assert {e.type for e in halted} == {"instrument.halted"}
    assert {e.sequence for e in halted} == {5}
