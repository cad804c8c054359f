"""Operator tools refuse to corrupt: `topics apply` never re-partitions keyed topics, and
`replay` never rebuilds a projection under its live runner."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from kernel.kafka import apply_topics
from kernel.pg import connect
from kernel.settings import Settings
from schemas.topics import CATALOGUE, TopicSpec
from tests.conftest import _namespaces, process_env
from tests.integration.helpers import PlatformProcess, produce, wait_until
from tests.integration.tapes import event_tape

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _namespace(base: Settings, prefix: str) -> Settings:
    settings = base.model_copy(update={"namespace": prefix + uuid.uuid4().hex[:10]})
    _namespaces.append(settings)
    return settings


async def _partition_counts(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                client_id="test-topics")
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(settings.namespace + ".")]
        return {item["topic"]: len(item["partitions"])
                for item in await admin.describe_topics(mine)}
    finally:
        await admin.close()


def _cli(settings: Settings, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = process_env(settings) | {"COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "propstream", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


async def test_topics_apply_refuses_to_grow_a_commands_events_pair_and_changes_nothing(
        base_settings: Settings) -> None:
    settings = _namespace(base_settings, "o")
    # The broker as an older catalogue left it: payment with 1 partition, and one topic the
    # new catalogue adds not there yet.
    older = [s.model_copy(update={"partitions": 1})
             if s.name in ("payment.commands", "payment.events") else s
             for s in CATALOGUE if s.name != "account.events.dlq"]
    await apply_topics(settings, older)
    before = await _partition_counts(settings)
    assert before[settings.topic("payment.commands")] == 1

    result = await asyncio.to_thread(_cli, settings, "topics", "apply")

    said = " ".join(result.stdout.split())
    assert result.returncode == 1, said
    assert f"{settings.topic('payment.commands')} has 1, the catalogue says 3" in said
    assert f"{settings.topic('payment.events')} has 1, the catalogue says 3" in said
    assert "without its history" in said and "Nothing was changed" in said
    assert await _partition_counts(settings) == before  # nothing grown, nothing created


async def test_topics_apply_still_grows_dead_letters(base_settings: Settings) -> None:
    settings = _namespace(base_settings, "o")
    letters = TopicSpec(name="ops.check.dlq", kind="dead-letters", partitions=1,
                        key="origin key", retention_ms=3600_000)
    await apply_topics(settings, [letters])
    changes = await apply_topics(settings, [letters.model_copy(update={"partitions": 2})])
    assert [c.action for c in changes] == ["partitions 1 -> 2"]
    assert (await _partition_counts(settings))[settings.topic("ops.check.dlq")] == 2


async def test_topics_apply_on_a_stale_listing_reports_no_false_create_and_still_grows(
        base_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker's metadata trails its controller: a topic created a moment ago can be missing
    from a listing. Apply must not call it created, and must still do what it came for."""
    settings = _namespace(base_settings, "o")
    letters = TopicSpec(name="ops.stale.dlq", kind="dead-letters", partitions=1,
                        key="origin key", retention_ms=3600_000)
    await apply_topics(settings, [letters])
    name = settings.topic("ops.stale.dlq")
    real = AIOKafkaAdminClient.list_topics
    listings: list[bool] = []

    async def stale_once(self: AIOKafkaAdminClient) -> list[str]:
        topics = await real(self)
        if not listings:
            topics = [t for t in topics if t != name]
        listings.append(name in topics)
        return topics

    monkeypatch.setattr(AIOKafkaAdminClient, "list_topics", stale_once)
    changes = await apply_topics(settings, [letters.model_copy(update={"partitions": 2})])
    assert listings == [False, True]  # the stale view, then a fresh pass
    assert [c.action for c in changes] == ["partitions 1 -> 2"]
    assert (await _partition_counts(settings))[name] == 2


async def _instruments_table(settings: Settings) -> tuple[int, int]:
    """(the table's OID, which a drop and rebuild changes; how many rows it has)."""
    conn = await connect(settings)
    try:
        row = await (await conn.execute(
            "SELECT 'instruments'::regclass::oid::bigint, (SELECT count(*) FROM instruments)"
        )).fetchone()
        await conn.rollback()
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_replay_is_refused_while_the_live_projection_holds_its_lease(
        settings: Settings, tmp_path: Path) -> None:
    tape = event_tape(symbols=5, events_per_symbol=2, seed=9)
    await produce(settings, "instrument.events", tape.records)
    live = PlatformProcess(settings, "projection", "instruments", log_dir=tmp_path).start()
    try:
        await live.ready()

        async def caught_up() -> bool:
            return (await _instruments_table(settings))[1] == len(tape.expected)

        await wait_until(caught_up, timeout=60, what="the live projection")
        before = await _instruments_table(settings)

        refused = await asyncio.to_thread(_cli, settings, "replay", "instruments")

        said = " ".join(refused.stdout.split())
        assert refused.returncode == 1, said + refused.stderr
        assert "is being run by another process" in said and "nothing was dropped" in said
        assert await _instruments_table(settings) == before  # same table, same rows
        assert live.proc is not None and live.proc.poll() is None
    finally:
        live.kill9()  # a dead process's session ends, and its lease with it

    rebuilt = await asyncio.to_thread(_cli, settings, "replay", "instruments")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"rebuilt instruments: {len(tape.records)} events" in " ".join(rebuilt.stdout.split())
    oid, rows = await _instruments_table(settings)
    assert oid != before[0] and rows == before[1]


async def test_dlq_replay_never_sends_a_letter_to_a_topic_its_dead_letter_topic_does_not_serve(
        settings: Settings) -> None:
    """Headers are data: a letter on instrument.commands.dlq claiming to come from
    user.commands must not be re-driven there (whoever wrote it could mint a role change)."""
    from kernel.kafka import make_producer
    from tests.integration.helpers import end_offsets

    producer = make_producer(settings, client_id="test-forger")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic("instrument.commands.dlq"), value=b'{"forged": true}', key=b"x",
            headers=[("x-origin-topic", settings.topic("user.commands").encode()),
                     ("x-origin-partition", b"0"), ("x-origin-offset", b"0")])
    finally:
        await producer.stop()

    result = await asyncio.to_thread(_cli, settings, "dlq", "replay", "instrument.commands.dlq")

    said = " ".join(result.stdout.split())
    assert result.returncode == 1, said
    assert "name no topic it serves" in said and "nothing was sent" in said
    assert sum((await end_offsets(settings, "user.commands")).values()) == 0
