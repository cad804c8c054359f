"""Shared fixtures: the real infrastructure, started by the project's own code."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from kernel.settings import Settings


@pytest.fixture(scope="session")
def base_settings() -> Iterator[Settings]:
    """Kafka, PostgreSQL and Redis as native processes (`propstream infra up`, idempotent)."""
    from kernel import infra

    settings = Settings(env="test")
    infra.up(settings, lambda line: print(line))
    yield settings


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest_asyncio.fixture(loop_scope="session")
async def settings(base_settings: Settings, namespace: str) -> AsyncIterator[Settings]:
    """Settings in a fresh namespace: own topics and own PostgreSQL schema per test."""
    from kernel.kafka import apply_topics
    from schemas.topics import CATALOGUE

    # A cold decider takes seconds to join its group; tests wait for it rather than poll.
    ns = base_settings.model_copy(update={"namespace": namespace, "command_timeout_ms": 30000})
    await apply_topics(ns, CATALOGUE)
    yield ns


def process_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PROPSTREAM_ENV": "test",
        "PROPSTREAM_NAMESPACE": settings.namespace,
        "PROPSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "PROPSTREAM_PG_PORT": str(settings.pg_port),
        "PROPSTREAM_REDIS_PORT": str(settings.redis_port),
        "PROPSTREAM_LOG_LEVEL": "INFO",
        "PROPSTREAM_PROJECTION_BATCH": str(settings.projection_batch),
        "PROPSTREAM_DECIDER_SNAPSHOT_EVERY": str(settings.decider_snapshot_every),
        "PROPSTREAM_COMMAND_TIMEOUT_MS": str(settings.command_timeout_ms),
    })
    return env
