"""Two deciders of one family; one is SIGSTOPped mid-stream past its session timeout while
the other takes over, then SIGCONTed: the zombie is fenced by Kafka transactions. No event is
lost or doubled, and a restart from the latest snapshots knows every decided command id."""

from __future__ import annotations

import asyncio
import signal
from uuid import UUID

import pytest

from kernel.settings import Settings
from schemas.envelope import EventEnvelope
from tests.integration.helpers import (
    by_causation,
    command_record,
    produce,
    read_topic,
    record_counts,
    wait_until,
)
from tests.integration.tapes import command_tape

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]


def _assert_once_each(events: list[EventEnvelope], accepted: set[UUID]) -> None:
    caused = by_causation(events)
    assert set(caused) == accepted  # none lost
    assert all(len(v) == 1 for v in caused.values())  # none doubled
    sequences: dict[str, list[int]] = {}
    for e in events:
        sequences.setdefault(e.aggregate_id, []).append(e.sequence)
    assert all(seq == list(range(1, len(seq) + 1)) for seq in sequences.values())


async def test_a_resumed_zombie_decider_is_fenced_and_nothing_is_lost_or_doubled(
        settings: Settings, spawn: type) -> None:
    fast = settings.model_copy(update={"stream_session_timeout_ms": 6000,  # broker minimum
                                       "decider_snapshot_every": 50})
    first_wave = command_tape(symbols=400, seed=21)   # 2,000 commands
    second_wave = command_tape(symbols=60, seed=22)
    third_wave = command_tape(symbols=60, seed=23)
    accepted = (set(first_wave.accepted_events) | set(second_wave.accepted_events)
                | set(third_wave.accepted_events))

    async def decided() -> int:
        return sum((await record_counts(settings, "instrument.events")).values())

    zombie = spawn("decider", "instrument", with_settings=fast).start()
    await zombie.ready()
    records = [command_record(c) for c in first_wave.commands]
    head, tail = records[:600], records[600:]
    for i in range(0, len(head), 100):  # a stream, not one burst
        await produce(settings, "instrument.commands", head[i:i + 100])
        await asyncio.sleep(0.02)

    async def partly() -> bool:
        return await decided() > 0

    await wait_until(partly, timeout=60, what="the first decider deciding")
    assert zombie.proc is not None
    zombie.proc.send_signal(signal.SIGSTOP)
    try:
        paused_at = await decided()
        await produce(settings, "instrument.commands", tail)
        heir = spawn("decider", "instrument", with_settings=fast).start()
        await produce(settings, "instrument.commands",
                      [command_record(c) for c in second_wave.commands])

        async def heir_done() -> bool:
            return await decided() == len(first_wave.accepted_events) + len(
                second_wave.accepted_events)

        # The paused member leaves the group after its session timeout; the heir fences it.
        await wait_until(heir_done, timeout=60, what="the heir deciding both waves")
    finally:
        zombie.proc.send_signal(signal.SIGCONT)
    # The zombie resumes its batch: its transaction is fenced, and it rejoins the group.
    await zombie.ready("partitions assigned", timeout=30)
    await produce(settings, "instrument.commands",
                  [command_record(c) for c in third_wave.commands])

    async def all_done() -> bool:
        return await decided() >= len(accepted)

    await wait_until(all_done, timeout=60, what="every wave decided")
    await asyncio.sleep(2)  # anything doubled late would land by now
    events = await read_topic(settings, "instrument.events")
    _assert_once_each(events, accepted)
    assert paused_at < len(first_wave.accepted_events), "the pause must land mid-stream"
    # Back in the group after the pause: it lost its partitions and was given some again.
    assert len(zombie.logged("partitions assigned")) >= 2
    print(f"zombie paused with {paused_at} of {len(first_wave.accepted_events)} first-wave "
          f"events decided; fenced {len(zombie.logged('fenced: partition lost'))} time(s), "
          f"failed {len(zombie.logged('transaction failed: partition reloads'))}; "
          f"{len(events)} events, each once")
    zombie.stop()
    heir.stop()

    # A restart from the latest snapshots: every command again (a redelivery storm) is
    # recognised, nothing new is decided.
    restarted = spawn("decider", "instrument", with_settings=fast).start()
    await produce(settings, "instrument.commands",
                  [command_record(c) for c in first_wave.commands + second_wave.commands
                   + third_wave.commands])
    await restarted.ready()

    async def storm_answered() -> bool:
        replies = await record_counts(settings, "propstream.replies")
        sent = 2 * (len(first_wave.commands) + len(second_wave.commands)
                    + len(third_wave.commands))
        return sum(replies.values()) >= sent

    await wait_until(storm_answered, timeout=60, what="the redelivery storm answered")
    loads = restarted.logged("partition loaded")
    assert loads and all(load["snapshot_offset"] is not None for load in loads), loads
    assert sum(load["decided"] for load in loads) == len(accepted)
    _assert_once_each(await read_topic(settings, "instrument.events"), accepted)
    restarted.stop()
