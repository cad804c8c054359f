from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from kernel.settings import Settings
from tests.integration.helpers import PlatformProcess, asgi_client, bearer

pytestmark = pytest.mark.integration


@pytest.fixture
def spawn(settings: Settings, tmp_path: Path) -> Iterator[type[PlatformProcess]]:
    """Start `propstream run …` processes in the test's namespace; all stopped at the end."""
    started: list[PlatformProcess] = []

    class Spawned(PlatformProcess):
        def __init__(self, *argv: str, with_settings: Settings | None = None) -> None:
            super().__init__(with_settings or settings, *argv, log_dir=tmp_path)
            started.append(self)

    yield Spawned  # type: ignore[misc]
    for proc in started:
        proc.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The core API in-process, talking to the real Kafka, PostgreSQL and Redis, as an admin."""
    from core.bootstrap import api as make_api

    async with asgi_client(make_api(settings), headers=bearer(settings)) as client:
        yield client
