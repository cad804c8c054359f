"""Shared fixtures: the real infrastructure, started by the project's own code."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from propstream.settings import PlatformSettings as Settings


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
    _namespaces.append(ns)
    yield ns


# Every test namespace costs the broker ~50 partitions of open files; a long-lived local
# broker ran out of file descriptors after a day of test runs. So each session deletes the
# topics and PostgreSQL schemas of the namespaces it made, once every process has stopped.
_namespaces: list[Settings] = []


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def drop_test_namespaces() -> AsyncIterator[None]:
    yield
    import psycopg
    from psycopg import sql

    from kernel.kafka import delete_namespace_topics

    if not _namespaces:
        return
    # One listing and one delete request for all of them, one connection for every schema:
    # a namespace at a time took ~30 s at the end of each worker.
    await delete_namespace_topics(_namespaces[0],
                                  namespaces=[ns.namespace for ns in _namespaces])
    conn = await psycopg.AsyncConnection.connect(_namespaces[0].database_url, autocommit=True)
    try:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(ns.pg_schema) for ns in _namespaces)))
    finally:
        await conn.close()


def process_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PROPSTREAM_ENV": "test",
        "PROPSTREAM_NAMESPACE": settings.namespace,
        "PROPSTREAM_KAFKA_PORT": str(settings.kafka_port),
        "PROPSTREAM_PG_PORT": str(settings.pg_port),
        "PROPSTREAM_REDIS_PORT": str(settings.redis_port),
        "PROPSTREAM_STRIPE_MOCK_PORT": str(settings.stripe_mock_port),
        "PROPSTREAM_LOG_LEVEL": "INFO",
        "PROPSTREAM_PROJECTION_BATCH": str(settings.projection_batch),
        "PROPSTREAM_DECIDER_SNAPSHOT_EVERY": str(settings.decider_snapshot_every),
        "PROPSTREAM_STREAM_SESSION_TIMEOUT_MS": str(settings.stream_session_timeout_ms),
        "PROPSTREAM_COMMAND_TIMEOUT_MS": str(settings.command_timeout_ms),
        "PROPSTREAM_API_PORT": str(settings.api_port),
        "PROPSTREAM_MARKET_API_PORT": str(settings.market_api_port),
        "PROPSTREAM_RATE_LIMIT_PER_S": str(settings.rate_limit_per_s),
        "PROPSTREAM_RATE_LIMIT_BURST": str(settings.rate_limit_burst),
    })
    return env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs on two pytest-xdist workers with `--dist loadgroup`: a file's tests
    stay on one worker (module fixtures are built once), and the whole security package
    shares one, since its package fixture is a dozen platform processes."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        group = "security-platform" if path.startswith("tests/security/") else path
        item.add_marker(pytest.mark.xdist_group(group))
