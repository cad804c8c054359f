"""The security suite runs against the real platform: every core process as a child process
in one namespace of the real Kafka, PostgreSQL and Redis, started once for the package.

Tests act as the people an attacker could be: nobody, a trader, an analyst, an admin, and
holders of API keys with one narrow scope each. Users are real (registered through the user
decider), so their tokens, refresh families and keys are the platform's own.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernel.settings import Settings
from propstream.groups import groups, members
from propstream.manifests import SERVICES
from propstream.processes import PLATFORM
from schemas.identity import Role
from tests.conftest import _namespaces
from tests.integration.helpers import PlatformProcess

pytestmark = pytest.mark.integration

PASSWORD = "a long enough Passw0rd"
# Core's workers run in one group process, as under `propstream up`, but those a test stops
# and starts on its own; of market data, the API and its instruments projection.
ALONE = ("user-decider", "projection-users", "projection-accounts")
MARKET = ("market-api", "projection-market-instruments")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Who:
    """A caller: a real user (with a token) or an API key of one; `headers` authenticate it."""

    name: str
    headers: dict[str, str]
    user_id: str | None = None
    role: Role | None = None
    email: str | None = None
    password: str | None = None
    refresh_token: str | None = None
    scopes: tuple[str, ...] = ()


@dataclass
class Platform:
    settings: Settings
    core: str
    market: str
    processes: dict[str, PlatformProcess]
    log_dir: Path
    people: dict[str, Who] = field(default_factory=dict)

    def client(self, who: Who | None = None, *, base: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=base or self.core, headers=who.headers if who else {},
                            timeout=30)

    def login(self, email: str, password: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.post("/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def user(self, role: Role, *, name: str | None = None) -> Who:
        """A fresh real user of `role`, logged in."""
        email = f"{name or role}-{uuid.uuid4().hex[:8]}@example.com"
        if role == "trader":
            with self.client() as c:
                r = c.post("/auth/register", json={"email": email, "password": PASSWORD,
                                                   "display_name": f"{role} {email[:12]}"})
            assert r.status_code in (201, 202), r.text
        else:
            from core.bootstrap import register_user

            outcome = asyncio.run(register_user(self.settings, email=email, password=PASSWORD,
                                                display_name=f"{role} user", role=role))
            assert outcome == "accepted", outcome
        tokens = self._login_when_projected(email)
        from core.domain.users import user_id

        return Who(name=name or role, user_id=user_id(email), role=role, email=email,
                   password=PASSWORD, refresh_token=tokens["refresh_token"],
                   headers={"Authorization": f"Bearer {tokens['access_token']}"})

    def _login_when_projected(self, email: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            with self.client() as c:
                r = c.post("/auth/login", json={"email": email, "password": PASSWORD})
            if r.status_code == 200:
                body: dict[str, Any] = r.json()
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{email} cannot log in: {r.status_code} {r.text}")
            time.sleep(0.2)

    def api_key(self, owner: Who, *scopes: str) -> Who:
        """A new API key of `owner` limited to `scopes`, as a caller of its own."""
        with self.client(owner) as c:
            r = c.post("/me/api-keys", json={"name": f"key {'+'.join(scopes)}",
                                             "scopes": list(scopes)})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        return Who(name=f"{owner.name}-key[{','.join(scopes)}]", user_id=owner.user_id,
                   role=owner.role, scopes=scopes, headers={"X-API-Key": key})


def _wait(check: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="package")
def platform(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[Platform]:
    """The whole core platform and the market API, once for the security suite."""
    from kernel.kafka import apply_topics
    from schemas.topics import CATALOGUE

    settings = base_settings.model_copy(update={
        "namespace": "s" + uuid.uuid4().hex[:10], "command_timeout_ms": 10000,
        "api_port": free_port(), "market_api_port": free_port(),
        # One test client on one IP makes many calls: the limits a test probes it sets itself.
        "rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000})
    asyncio.run(apply_topics(settings, CATALOGUE))
    _namespaces.append(settings)
    log_dir = tmp_path_factory.mktemp("security-platform")
    processes: dict[str, PlatformProcess] = {}
    env = {"PROPSTREAM_LOGIN_RATE_PER_S": "1000", "PROPSTREAM_LOGIN_BURST": "1000",
           "PROPSTREAM_REGISTER_RATE_PER_S": "1000", "PROPSTREAM_REGISTER_BURST": "1000"}
    group = groups(SERVICES)["core-workers"]
    grouped = [w.process for w in members(group, ALONE)]
    try:
        processes["core-workers"] = PlatformProcess(
            settings, *group.argv, *(a for name in ALONE for a in ("--without", name)),
            log_dir=log_dir, extra_env=env).start()
        for name in ("api", *ALONE, *MARKET):
            processes[name] = PlatformProcess(settings, *PLATFORM[name], log_dir=log_dir,
                                              extra_env=env).start()
        core = f"http://{settings.host}:{settings.api_port}"
        market = f"http://{settings.host}:{settings.market_api_port}"
        for name, proc in processes.items():
            if name in ("api", "market-api"):
                continue
            workers = grouped if name == "core-workers" else [None]
            for worker in workers:
                want = "partitions assigned" if "decider" in (worker or name) else \
                    ("worker started" if worker else "process started")

                def started(p: PlatformProcess = proc, w: str = want,
                            who: str | None = worker) -> bool:
                    assert p.proc is not None and p.proc.poll() is None, p.output()[-2000:]
                    if who is None:
                        return w in p.output()
                    return any(line.get("process") == who for line in p.logged(w))

                _wait(started, timeout=120, what=f"{worker or name}: {want!r}")
        _wait(lambda: _ready(core), timeout=120, what="core /readyz")
        _wait(lambda: _ready(market), timeout=120, what="market /readyz")
        plat = Platform(settings=settings, core=core, market=market, processes=processes,
                        log_dir=log_dir)
        yield plat
    finally:
        for proc in processes.values():
            proc.stop()


@pytest.fixture(scope="package")
def people(platform: Platform) -> dict[str, Who]:
    """Who an attacker could be: nobody, each role, and keys of one scope each."""
    if not platform.people:
        trader = platform.user("trader")
        analyst = platform.user("analyst")
        admin = platform.user("admin")
        found: dict[str, Who] = {"anonymous": Who(name="anonymous", headers={}),
                                 "trader": trader, "analyst": analyst, "admin": admin}
        for scope in ("reports:read", "market:read"):
            found[f"analyst-key[{scope}]"] = platform.api_key(analyst, scope)
            found[f"admin-key[{scope}]"] = platform.api_key(admin, scope)
        platform.people.update(found)
    return platform.people
