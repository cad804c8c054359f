"""The admin's platform-wide trading switch: decided once (halting twice changes nothing),
routed for admins with the `admin` scope only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import get_args

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from core.domain.platform import PlatformAggregate
from core.entrypoints.http import platform
from core.entrypoints.http.deps import get_bus, get_registry
from kernel.auth import ROLE_SCOPES, Principal
from kernel.http import install_conventions
from kernel.problems import Problem
from schemas.identity import Role
from tests.support.deciding_bus import DecidingBus

pytestmark = pytest.mark.asyncio(loop_scope="session")
ADMIN = str(uuid.UUID(int=1))
gate = get_args(platform.Admin)[1].dependency


@pytest_asyncio.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, DecidingBus]]:
    bus = DecidingBus({"platform.commands": PlatformAggregate()})
    app = FastAPI()
    install_conventions(app, cors_origins=(), max_body=65536)
    app.include_router(platform.router)
    admin = Principal(user_id=ADMIN, role="admin", via="token", scopes=ROLE_SCOPES["admin"])
    app.dependency_overrides.update({get_bus: lambda: bus, get_registry: lambda: bus.registry,
                                     platform.LIMIT[0].dependency: lambda: None,
                                     gate: lambda: admin})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as c:
        yield c, bus


async def test_an_admin_halts_and_resumes_trading_once_each(
        client: tuple[httpx.AsyncClient, DecidingBus]) -> None:
    c, bus = client
    first = await c.post("/trading/halt", json={"reason": "venue outage"})
    assert first.status_code == 200, first.text
    assert (first.json()["halted"], first.json()["changed"]) == (True, True)
    again = await c.post("/trading/halt", json={"reason": "still"})
    assert (again.json()["halted"], again.json()["changed"]) == (True, False)
    resumed = await c.post("/trading/resume", json={"reason": "back"})
    assert (resumed.json()["halted"], resumed.json()["changed"]) == (False, True)
    events = bus.events_of("trading")
    assert [e.type for e in events] == ["platform.trading-halted", "platform.trading-resumed"]
    assert events[0].payload == {"reason": "venue outage", "by": ADMIN}
    bad = await c.post("/trading/halt", json={})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def _who(role: Role, scopes: frozenset[str] | None = None) -> Principal:
    return Principal(user_id=ADMIN, role=role, via="token" if scopes is None else "api-key",
                     scopes=ROLE_SCOPES[role] if scopes is None else scopes)


@pytest.mark.parametrize(("who", "slug"), [
    (_who("trader"), "forbidden"), (_who("analyst"), "forbidden"),
    (_who("admin", frozenset({"reports:read"})), "scope-missing"),
])
async def test_only_an_admin_with_the_admin_scope_may_switch_trading(
        who: Principal, slug: str) -> None:
    with pytest.raises(Problem) as refused:
        await gate(who)
    assert (refused.value.status, refused.value.slug) == (403, slug)
