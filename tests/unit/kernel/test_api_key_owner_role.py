"""An API key acts with its owner's role of now, even before the read model shows a change."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from kernel.auth import Authenticator, Principal, StoredApiKey, role_decided_key, role_pending_key
from kernel.settings import Settings
from kernel.tokens import generate_api_key, new_secret

SETTINGS = Settings(secret_key=SecretStr("unit-test-secret"), namespace="t")
OWNER = "7f9c1d3e-0000-4000-8000-000000000001"


class FakeRedis:
    """Only what the authenticator reads: MGET over a dict (a fake, not a mock)."""

    def __init__(self, values: dict[str, bytes] | None = None, *, down: bool = False) -> None:
        self.values = values or {}
        self.down = down

    async def mget(self, *keys: str) -> list[bytes | None]:
        if self.down:
            raise RedisConnectionError("connection refused")
        return [self.values.get(k) for k in keys]


class OneKey:
    """The read model still says the owner is an admin."""

    def __init__(self) -> None:
        self.key, record = generate_api_key(key_id="0123456789ab", secret=new_secret(),
                                            owner=OWNER, scopes=frozenset({"admin",
                                                                           "reports:read"}))
        self.stored = StoredApiKey(key=record, owner_role="admin")

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        return self.stored if key_id == "0123456789ab" else None


async def _auth(redis: Any) -> Principal | str:
    keys = OneKey()
    return await Authenticator(SETTINGS, redis=redis, api_keys=keys).authenticate(
        keys.key, ip="192.0.2.1")


@pytest.mark.asyncio
async def test_a_decided_demotion_the_read_model_lags_behind_applies_to_the_key() -> None:
    principal = await _auth(FakeRedis({role_decided_key("t", OWNER): b"4 analyst"}))
    assert isinstance(principal, Principal)
    assert principal.role == "analyst" and principal.scopes == frozenset({"reports:read"})


@pytest.mark.asyncio
async def test_a_key_waits_while_a_role_change_of_its_owner_is_undecided() -> None:
    assert await _auth(FakeRedis({role_pending_key("t", OWNER): b"3"})) == "unavailable"


@pytest.mark.asyncio
async def test_with_no_change_recorded_the_read_model_role_applies() -> None:
    principal = await _auth(FakeRedis())
    assert isinstance(principal, Principal) and principal.role == "admin"


@pytest.mark.asyncio
async def test_a_key_fails_closed_when_the_role_check_is_unavailable() -> None:
    assert await _auth(FakeRedis(down=True)) == "unavailable"
