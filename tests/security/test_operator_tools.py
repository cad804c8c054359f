"""Operator tools refuse to corrupt: `topics apply` never re-partitions keyed topics, and
`replay` never rebuilds a projection under its live runner."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from kernel.kafka import apply_topics
from kernel.settings import Settings
from schemas.topics import CATALOGUE, TopicSpec
from tests.conftest import _namespaces, process_env

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
