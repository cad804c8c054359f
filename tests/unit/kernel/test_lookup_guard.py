"""Unknown API keys cost no query past a small per-IP budget (kernel.lookup_guard, kernel.auth)."""

from __future__ import annotations

import secrets
import timeit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from kernel.auth import Authenticator, AuthMiddleware, CurrentPrincipal, Principal, StoredApiKey
from kernel.lookup_guard import LookupGuard
from kernel.problems import Problem, problem_response
from kernel.settings import Settings
from kernel.tokens import generate_api_key, new_secret

SETTINGS = Settings(secret_key=SecretStr("unit-test-secret"), api_key_miss_burst=5,
                    api_key_miss_rate_per_s=1.0)
OWNER = "7f9c1d3e-0000-4000-8000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingKeys:
    """An ApiKeyStore fake that counts the lookups that would each be a database query."""

    def __init__(self) -> None:
        self.records: dict[str, StoredApiKey] = {}
        self.lookups = 0

    def add(self, key_id: str = "0123456789ab") -> str:
        key, record = generate_api_key(key_id=key_id, secret=new_secret(), owner=OWNER,
                                       scopes=frozenset({"reports:read"}))
        self.records[key_id] = StoredApiKey(key=record, owner_role="analyst")
        return key

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        self.lookups += 1
        return self.records.get(key_id)


def unknown_key() -> str:
    return f"psk_{secrets.token_hex(6)}_{new_secret()}"


def test_an_ip_past_its_burst_of_failures_may_not_look_up_until_it_refills() -> None:
    clock = Clock()
    guard = LookupGuard(rate=0.5, burst=3, clock=clock)
    for i in range(3):
        assert guard.may_look_up("10.0.0.1", f"{i:012x}")
        guard.failed("10.0.0.1", f"{i:012x}", unknown=True)
    assert not guard.may_look_up("10.0.0.1", "aaaaaaaaaaaa")
    assert guard.may_look_up("10.0.0.2", "aaaaaaaaaaaa")  # another address is not affected
    clock.now += 2.0  # one token back at 0.5/s
    assert guard.may_look_up("10.0.0.1", "aaaaaaaaaaaa")


def test_an_unknown_key_id_is_refused_without_a_lookup_until_it_is_forgotten() -> None:
    clock = Clock()
    guard = LookupGuard(rate=100, burst=100, unknown_ttl_s=30, clock=clock)
    guard.failed("10.0.0.1", "0123456789ab", unknown=True)
    assert not guard.may_look_up("10.0.0.9", "0123456789ab")
    clock.now += 31
    assert guard.may_look_up("10.0.0.9", "0123456789ab")


def test_a_wrong_secret_for_a_real_key_id_never_locks_the_key_out() -> None:
    guard = LookupGuard(rate=100, burst=100, clock=Clock())
    guard.failed("10.0.0.1", "0123456789ab", unknown=False)
    assert guard.may_look_up("10.0.0.9", "0123456789ab")


def test_the_guard_stays_bounded_however_many_addresses_and_ids_fail() -> None:
    guard = LookupGuard(rate=1, burst=1, max_ips=100, max_unknown=50, clock=Clock())
    for i in range(10_000):
        guard.failed(f"10.0.{i // 256}.{i % 256}", f"{i:012x}", unknown=True)
    assert len(guard._buckets) == 100
    assert len(guard._unknown) == 50


@pytest.mark.asyncio
async def test_unknown_keys_from_one_address_cost_at_most_the_burst_in_lookups() -> None:
    keys = CountingKeys()
    auth = Authenticator(SETTINGS, redis=None, api_keys=keys)
    outcomes = [await auth.authenticate(unknown_key(), ip="203.0.113.7") for _ in range(200)]
    assert keys.lookups == SETTINGS.api_key_miss_burst
    assert outcomes.count("unknown-key") == SETTINGS.api_key_miss_burst
    assert set(outcomes[SETTINGS.api_key_miss_burst:]) == {"throttled"}
    # The same unknown key again, from anywhere, costs nothing either.
    again = unknown_key()
    await auth.authenticate(again, ip="198.51.100.1")
    before = keys.lookups
    assert await auth.authenticate(again, ip="198.51.100.2") == "throttled"
    assert keys.lookups == before


@pytest.mark.asyncio
async def test_a_valid_key_works_from_an_address_whose_failures_are_throttled_elsewhere() -> None:
    keys = CountingKeys()
    key = keys.add()
    auth = Authenticator(SETTINGS, redis=None, api_keys=keys)
    for _ in range(50):
        await auth.authenticate(unknown_key(), ip="203.0.113.7")
    principal = await auth.authenticate(key, ip="192.0.2.10")
    assert isinstance(principal, Principal) and principal.via == "api-key"
    # Valid keys take no token: a thousand of them leave the address's budget untouched.
    for _ in range(1000):
        assert isinstance(await auth.authenticate(key, ip="192.0.2.10"), Principal)
    assert await auth.authenticate(unknown_key(), ip="192.0.2.10") == "unknown-key"


def test_a_throttled_key_is_a_429_problem_through_the_middleware() -> None:
    keys = CountingKeys()
    app = FastAPI()
    app.add_exception_handler(Problem, problem_response)  # type: ignore[arg-type]

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"user_id": principal.user_id}

    app.add_middleware(AuthMiddleware,  # type: ignore[arg-type]
                       authenticator=Authenticator(SETTINGS, redis=None, api_keys=keys))
    with TestClient(app) as client:
        statuses = [client.get("/me", headers={"X-API-Key": unknown_key()}).status_code
                    for _ in range(20)]
        throttled = client.get("/me", headers={"X-API-Key": unknown_key()})
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    assert keys.lookups == 5
    assert throttled.headers["content-type"].startswith("application/problem+json")
    assert throttled.headers["Retry-After"] == "1"


def test_the_guard_adds_about_a_microsecond_to_a_valid_key() -> None:
    guard = LookupGuard(rate=1, burst=20)
    per_call = min(timeit.repeat(lambda: guard.may_look_up("192.0.2.10", "0123456789ab"),
                                 number=10_000, repeat=5)) / 10_000
    print(f"LookupGuard.may_look_up: {per_call * 1e9:.0f} ns per valid-key request")
    assert per_call < 20e-6
