"""The decider on the in-memory log: transactional, fenced, snapshots only after commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from core.domain.instruments import InstrumentAggregate
from kernel.decider import DeciderRunner
from kernel.log import OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import CommandEnvelope
from schemas.topics import CATALOGUE
from tests.integration.tapes import command_tape

pytestmark = pytest.mark.asyncio(loop_scope="session")

COMMANDS, EVENTS, REPLIES = "instrument.commands", "instrument.events", "propstream.replies"
DLQ = "instrument.commands.dlq"


class Crash(BaseException):
    """The process dies here."""


def _log() -> MemoryLog:
    return MemoryLog({s.name: s.partitions for s in CATALOGUE})


def _decider(log: MemoryLog, *, snapshot_every: int = 10_000,
             max_batch: int = 500) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(Settings(env="test"), InstrumentAggregate(), default_registry(),
                         log=log, snapshot_every=snapshot_every, max_batch=max_batch)


async def _send(log: MemoryLog, commands: list[CommandEnvelope]) -> None:
    await log.producer(client_id="api").send_many(
        COMMANDS, [OutRecord(c.aggregate_id.encode(), encode(c)) for c in commands])


def _events_by_cause(log: MemoryLog) -> dict[uuid.UUID | None, int]:
    out: dict[uuid.UUID | None, int] = {}
    for r in log.records(EVENTS):
        cause = decode_event(r.value or b"").causation_id
        out[cause] = out.get(cause, 0) + 1
    return out


async def _started(log: MemoryLog, **kw: int) -> DeciderRunner:  # type: ignore[type-arg]
    d = _decider(log, **kw)
    await d.start()
    return d


def _assert_each_decided_once(log: MemoryLog, tape_ids: set[uuid.UUID]) -> None:
    caused = _events_by_cause(log)
    assert set(caused) == tape_ids
    assert all(n == 1 for n in caused.values()), caused


async def test_commands_are_decided_once_with_events_replies_and_offsets_in_one_txn() -> None:
    log = _log()
    tape = command_tape(symbols=20)
    await _send(log, tape.commands)
    d = await _started(log)
    assert await d.run(until_idle=True) == len(tape.commands)
    _assert_each_decided_once(log, set(tape.accepted_events))
    # Every command answered, the re-sent ones as duplicates.
    assert len(log.records(REPLIES)) == len(tape.commands)
    committed = log.committed(d.group_id)
    assert committed == {TopicPartition(COMMANDS, p): len(log.records(COMMANDS, p))
                         for p in range(3)}
    await d.stop()


async def test_a_crash_mid_batch_redelivers_and_nothing_is_decided_twice() -> None:
    log = _log()
    tape = command_tape(symbols=20)
    await _send(log, tape.commands)
    doomed = await _started(log, max_batch=13)
    await doomed.run(count=13)

    async def crash(offsets: Mapping[TopicPartition, int]) -> None:
        raise Crash

    doomed.flush = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await doomed.run(count=13)
    log.crash(doomed.runner.consumer, *doomed.runner.txn.values())  # type: ignore[arg-type]
    heir = await _started(log)
    await heir.run(until_idle=True)
    _assert_each_decided_once(log, set(tape.accepted_events))
    assert log.open_transactions() == []
    await heir.stop()


async def test_snapshots_follow_committed_batches_only_and_a_restart_knows_every_id() -> None:
    log = _log()
    tape = command_tape(symbols=30)
    await _send(log, tape.commands)
    d = await _started(log, snapshot_every=10, max_batch=20)
    await d.run(until_idle=True)
    assert log.records("instrument.snapshots")
    await d.stop()
    snapshots_before = len(log.records("instrument.snapshots"))
    # A batch cut short: decided in memory, never committed; stop() writes no snapshot.
    more = command_tape(symbols=5, seed=3)
    await _send(log, more.commands)
    cut = await _started(log, snapshot_every=1)

    async def crash(offsets: Mapping[TopicPartition, int]) -> None:
        raise Crash

    cut.flush = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await cut.run(until_idle=True)
    await cut.stop()
    assert len(log.records("instrument.snapshots")) == snapshots_before
    # Everything again, a redelivery storm: a restart from the snapshots decides nothing twice.
    await _send(log, tape.commands + more.commands)
    heir = await _started(log, snapshot_every=10)
    await heir.run(until_idle=True)
    _assert_each_decided_once(log, set(tape.accepted_events) | set(more.accepted_events))
    decided = set().union(*(s.decided for s in heir.partitions.values()))
    assert decided >= set(tape.accepted_events) | set(more.accepted_events)
    await heir.stop()


async def test_a_poison_command_is_dead_lettered_in_the_transaction_and_the_rest_decided(
) -> None:
    log = _log()
    tape = command_tape(symbols=3)
    await _send(log, tape.commands[:3])
    await log.producer(client_id="x").send_many(COMMANDS, [OutRecord(b"C00000", b"{oops")])
    await _send(log, tape.commands[3:])
    d = await _started(log)
    await d.run(until_idle=True)
    [letter] = log.records(DLQ)
    assert letter.value == b"{oops"
    assert dict(letter.headers)["x-origin-topic"] == COMMANDS.encode()
    _assert_each_decided_once(log, set(tape.accepted_events))
    await d.stop()


async def test_a_rebalance_reloads_state_and_nothing_is_decided_twice() -> None:
    log = _log()
    tape = command_tape(symbols=40)
    await _send(log, tape.commands[:100])
    first = await _started(log, max_batch=30)
    await first.run(count=30)
    second = await _started(log, max_batch=30)
    await _send(log, tape.commands[100:])
    for _ in range(3):
        await second.run(until_idle=True)
        await first.run(until_idle=True)
    _assert_each_decided_once(log, set(tape.accepted_events))
    assert set(first.partitions).isdisjoint(second.partitions)
    await first.stop()
    await second.stop()


async def test_a_paused_decider_is_fenced_drops_its_state_and_writes_no_snapshot() -> None:
    log = _log()
    tape = command_tape(symbols=30)
    await _send(log, tape.commands[:60])
    zombie = await _started(log, snapshot_every=1)
    await zombie.run(until_idle=True)
    await _send(log, tape.commands[60:])
    assert zombie.runner.consumer is not None
    batch = await zombie.runner.consumer.poll(max_records=500, timeout=0)
    log.crash(zombie.runner.consumer)  # paused past the session timeout
    heir = await _started(log)
    await heir.run(until_idle=True)
    snapshots = len(log.records("instrument.snapshots"))
    assert await zombie.runner.handle_batch(batch) == 0
    assert zombie.partitions == {}
    assert len(log.records("instrument.snapshots")) == snapshots
    _assert_each_decided_once(log, set(tape.accepted_events))
    await heir.stop()
