"""argon2id hashing: verify, wrong password, unreadable hash, needs_rehash."""

from __future__ import annotations

from core.domain.passwords import DEFAULT_PARAMS, Argon2Params, Passwords

# Cheap parameters keep the suite fast; the production ones are checked once below.
FAST = Passwords(Argon2Params(time_cost=1, memory_cost_kib=1024, parallelism=1))
PASSWORD = "correct horse battery staple"


def test_verify_when_the_password_matches_is_true() -> None:
    assert FAST.verify(FAST.hash(PASSWORD), PASSWORD)


def test_verify_when_the_password_is_wrong_is_false() -> None:
    assert not FAST.verify(FAST.hash(PASSWORD), PASSWORD + "!")


def test_verify_when_the_hash_is_unreadable_is_false() -> None:
    assert not FAST.verify("$argon2id$garbage", PASSWORD)


def test_hash_is_argon2id_with_a_fresh_salt_each_time() -> None:
    first, second = FAST.hash(PASSWORD), FAST.hash(PASSWORD)
    assert first.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert first != second


def test_default_params_hash_carries_them_and_needs_no_rehash() -> None:
    passwords = Passwords()
    digest = passwords.hash(PASSWORD)
    assert digest.startswith(f"$argon2id$v=19$m={DEFAULT_PARAMS.memory_cost_kib},"
                             f"t={DEFAULT_PARAMS.time_cost},p={DEFAULT_PARAMS.parallelism}$")
    assert not passwords.needs_rehash(digest)


def test_needs_rehash_when_the_hash_has_older_params_is_true() -> None:
    old = FAST.hash(PASSWORD)
    assert Passwords().verify(old, PASSWORD)
    assert Passwords().needs_rehash(old)
