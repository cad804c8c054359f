"""The seed's public dev passwords never make an admin reachable beyond loopback."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from core.bootstrap import seed_users
from propstream.settings import PlatformSettings as Settings

OWN = {"secret_key": SecretStr("s3cret"), "stripe_webhook_secret": SecretStr("whsec_own"),
       "stripe_api_key": SecretStr("sk_live_own"), "data_key_secret": SecretStr("kek_own")}


@pytest.mark.parametrize(("env", "host"), [("dev", "0.0.0.0"), ("dev", "10.1.2.3"),
                                           ("prod", "127.0.0.1"), ("test", "127.0.0.1")])
def test_without_seed_passwords_no_user_is_seeded_outside_a_developers_loopback(
        env: str, host: str) -> None:
    said: list[str] = []
    outcome = asyncio.run(seed_users(Settings(env=env, host=host, **OWN), said.append))
    assert outcome == {
        "admin@propstream.dev": "skipped: set PROPSTREAM_SEED_ADMIN_PASSWORD",
        "trader@propstream.dev": "skipped: set PROPSTREAM_SEED_TRADER_PASSWORD"}
    assert said == []  # no dev password printed either
