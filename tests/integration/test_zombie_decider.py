"""Two deciders of one family; one is SIGSTOPped inside a transaction, past its session
timeout, while the other takes over, then SIGCONTed: the heir's transactional producers abort
the zombie's open transaction and the broker refuses the zombie when it resumes (fenced). No
event is lost or doubled, and a restart from the latest snapshots knows every decided id.

A pause counts only when it lands inside a transaction with records on the broker: the last
stable offset of the events or replies stops behind the high watermark. One that lands
between transactions is let go and tried again.
"""

from __future__ import annotations

import asyncio
import signal
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer

from kernel.kafka import make_consumer, make_producer, partitions_of
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
    first_wave = command_tape(symbols=600, seed=21)   # 3,000 commands
    second_wave = command_tape(symbols=60, seed=22)
    third_wave = command_tape(symbols=60, seed=23)
    accepted = (set(first_wave.accepted_events) | set(second_wave.accepted_events)
                | set(third_wave.accepted_events))

    async def decided() -> int:
        return sum((await record_counts(settings, "instrument.events")).values())

    zombie = spawn("decider", "instrument", with_settings=fast).start()
    await zombie.ready()
    records = [command_record(c) for c in first_wave.commands]
    producer = make_producer(settings, client_id="test-feeder")
    await producer.start()

    paused_inside = asyncio.Event()

    async def feed() -> None:
        # ~1,000 commands/s in small batches, about what one decider decides: it is busy
        # in one short transaction after another, so most pauses land inside one. Once the
        # wave is sent, it is sent again (a redelivery: replies only) until a pause landed.
        sent = 0
        while sent < len(records) or not paused_inside.is_set():
            chunk = [records[(sent + j) % len(records)] for j in range(10)]
            await asyncio.gather(*[await producer.send(settings.topic("instrument.commands"),
                                                       value=v, key=k) for k, v in chunk])
            sent += 10
            await asyncio.sleep(0.01)

    feeder = asyncio.create_task(feed())

    async def partly() -> bool:
        return await decided() > 0

    await wait_until(partly, timeout=60, what="the first decider deciding")
    assert zombie.proc is not None
    # Pause it inside a transaction: a read-committed reader's end (the last stable offset)
    # stops behind the high watermark while a transaction with records in it is open. A
    # pause that lands elsewhere is let go and tried again.
    stable_reader = make_consumer(settings, client_id="test-stable")
    high_reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                   client_id="test-high", isolation_level="read_uncommitted")
    await stable_reader.start()
    await high_reader.start()
    parts = [tp for name in ("instrument.events", "propstream.replies")
             for tp in await partitions_of(stable_reader, settings.topic(name))]
    try:
        for attempt in range(1, 201):
            zombie.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.1)  # what it had in flight lands
            stable = await stable_reader.end_offsets(parts)
            high = await high_reader.end_offsets(parts)
            open_records = sum(high.values()) - sum(stable.values())
            if open_records > 0:
                paused_inside.set()
                break
            zombie.proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.01 * (attempt % 7))
        else:
            raise AssertionError("200 pauses, none inside a transaction")
    finally:
        await stable_reader.stop()
        await high_reader.stop()
    try:
        paused_at = await decided()
        await feeder  # the rest of the first wave: the heir's to decide
        await producer.stop()
        heir = spawn("decider", "instrument", with_settings=fast).start()
        await produce(settings, "instrument.commands",
                      [command_record(c) for c in second_wave.commands])

        async def heir_done() -> bool:
            return await decided() == len(first_wave.accepted_events) + len(
                second_wave.accepted_events)

        # The paused member leaves the group after its session timeout; the heir's
        # transactional producers fence it and abort its open transaction.
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
    # Its open transaction was aborted by the heir, and the broker refused it on resuming.
    fenced = zombie.logged("fenced: partition lost")
    assert fenced, zombie.output()[-3000:]
    print(f"zombie paused (attempt {attempt}) with {paused_at} of "
          f"{len(first_wave.accepted_events)} first-wave events decided and {open_records} "
          f"records in its open transaction; fenced {len(fenced)} time(s), failed "
          f"{len(zombie.logged('transaction failed: partition reloads'))}; "
          f"{len(events)} events, each once")
    zombie.stop()
    heir.stop()

    # A restart from the latest snapshots: every command again (a redelivery storm) is
    # recognised, nothing new is decided.
    restarted = spawn("decider", "instrument", with_settings=fast).start()
    storm = [command_record(c) for c in first_wave.commands + second_wave.commands
             + third_wave.commands]
    replied = sum((await record_counts(settings, "propstream.replies")).values())
    await produce(settings, "instrument.commands", storm)
    await restarted.ready()

    async def storm_answered() -> bool:
        replies = await record_counts(settings, "propstream.replies")
        return sum(replies.values()) >= replied + len(storm)

    await wait_until(storm_answered, timeout=60, what="the redelivery storm answered")
    loads = restarted.logged("partition loaded")
    assert loads and all(load["snapshot_offset"] is not None for load in loads), loads
    assert sum(load["decided"] for load in loads) == len(accepted)
    _assert_once_each(await read_topic(settings, "instrument.events"), accepted)
    restarted.stop()
