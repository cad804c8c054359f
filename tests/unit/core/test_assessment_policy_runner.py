"""The assessment policy on the in-memory log: its commands and input offsets commit in one
transaction; a crash re-emits nothing, a paused instance is fenced, poison is parked."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from core.config import CoreSettings
from core.processors.assessment_policy import CAUSATION_HEADER, AssessmentPolicy
from kernel.log import OutRecord, TopicPartition
from kernel.memlog import MemoryLog
from schemas import default_registry
from schemas.codec import decode_command, encode
from schemas.topics import CATALOGUE
from tests.support.purchases import completed, payment_event, refunded

pytestmark = pytest.mark.asyncio(loop_scope="session")

USER = uuid.UUID("0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02")


class Crash(BaseException):
    """The process dies here."""


def _log() -> MemoryLog:
    return MemoryLog({s.name: s.partitions for s in CATALOGUE})


async def _policy(log: MemoryLog, *, max_batch: int = 500) -> AssessmentPolicy:
    policy = AssessmentPolicy(CoreSettings(env="test"), default_registry(), log=log,
                              max_batch=max_batch)
    await policy.start()
    return policy


async def _purchases(log: MemoryLog, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    events = [payment_event(p, completed(USER)) for p in ids]
    await log.producer(client_id="payments").send_many(
        "payment.events", [OutRecord(e.aggregate_id.encode(), encode(e)) for e in events])
    return [e.event_id for e in events]


def _commands(log: MemoryLog) -> list[uuid.UUID]:
    return [decode_command(r.value or b"").command_id
            for r in log.records("assessment.commands")]


async def test_each_event_makes_its_command_once_with_its_cause_and_offsets_in_the_txn(
) -> None:
    log = _log()
    causes = await _purchases(log, 12)
    policy = await _policy(log)
    assert await policy.run(until_idle=True) == 12
    records = log.records("assessment.commands")
    assert len(records) == 12 == len(set(_commands(log)))
    assert {uuid.UUID(dict(r.headers)[CAUSATION_HEADER].decode()) for r in records} == set(
        causes)
    committed = log.committed(policy.group_id)
    assert sum(committed.values()) == 12
    await policy.stop()


async def test_a_crash_mid_batch_emits_nothing_twice() -> None:
    log = _log()
    await _purchases(log, 30)
    doomed = await _policy(log, max_batch=7)
    await doomed.run(count=7)

    async def crash(offsets: Mapping[TopicPartition, int]) -> None:
        raise Crash

    doomed.flush = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await doomed.run(count=7)
    log.crash(doomed.runner.consumer, *doomed.runner.txn.values())  # type: ignore[arg-type]
    heir = await _policy(log)
    await heir.run(until_idle=True)
    assert len(_commands(log)) == 30 == len(set(_commands(log)))
    await heir.stop()


async def test_a_paused_policy_is_fenced_and_emits_nothing() -> None:
    log = _log()
    await _purchases(log, 10)
    zombie = await _policy(log)
    await zombie.run(until_idle=True)
    await _purchases(log, 10)
    assert zombie.runner.consumer is not None
    batch = await zombie.runner.consumer.poll(max_records=500, timeout=0)
    log.crash(zombie.runner.consumer)
    heir = await _policy(log)
    await heir.run(until_idle=True)
    assert await zombie.runner.handle_batch(batch) == 0
    assert len(_commands(log)) == 20 == len(set(_commands(log)))
    await heir.stop()


async def test_an_unreadable_or_untranslatable_event_is_dead_lettered_and_the_rest_go_on(
) -> None:
    log = _log()
    bad_id = payment_event(uuid.uuid4(), refunded(USER)).model_copy(update={"aggregate_id": "x"})
    await log.producer(client_id="p").send_many("payment.events", [
        OutRecord(b"x", b"not json", partition=0), OutRecord(b"x", encode(bad_id), partition=0)])
    await _purchases(log, 3)
    policy = await _policy(log)
    await policy.run(until_idle=True)
    letters = log.records("payment.events.dlq")
    assert [dict(r.headers)["x-origin-topic"] for r in letters] == [b"payment.events"] * 2
    assert len(_commands(log)) == 3
    await policy.stop()
