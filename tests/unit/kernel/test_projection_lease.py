"""The projection lease key: one advisory lock per projection and namespace."""

from __future__ import annotations

from kernel.projection import lease_key


def test_each_projection_of_each_namespace_has_its_own_lease() -> None:
    keys = {lease_key(ns, name) for ns in ("", "t1", "t2") for name in ("tiers", "users")}
    assert len(keys) == 6


def test_the_lease_key_is_a_postgres_bigint_and_stable() -> None:
    key = lease_key("t1", "tiers")
    assert -(2**63) <= key < 2**63
    assert key == lease_key("t1", "tiers")
