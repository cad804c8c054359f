"""Access tokens, refresh-token rotation with reuse detection, and API keys."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr

from kernel.tokens import (
    AccessClaims,
    AccessTokenRejected,
    AccessTokens,
    ApiKeyAccepted,
    ApiKeyRejected,
    RefreshRejected,
    Rotated,
    TokenReused,
    generate_api_key,
    parse_api_key_id,
    parse_refresh_token,
    revoke,
    rotate,
    signing_key,
    start_family,
    token_hash,
    verify_api_key,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = SecretStr("test-secret-key")
TOKENS = AccessTokens(secret=SECRET)
USER = "5a3f1e0c-0000-5000-8000-000000000001"
JTI = uuid.UUID(int=7)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides: object) -> dict[str, object]:
    iat = int(NOW.timestamp())
    return {"sub": USER, "role": "trader", "iat": iat, "exp": iat + 900, "jti": str(JTI),
            **overrides}


# Access tokens ------------------------------------------------------------------------------


def test_access_token_round_trip_returns_the_claims() -> None:
    token = TOKENS.issue(subject=USER, role="analyst", now=NOW, jti=JTI)
    claims = TOKENS.verify(token, now=NOW + timedelta(minutes=14))
    assert claims == AccessClaims(sub=USER, role="analyst", iat=NOW,
                                  exp=NOW + timedelta(minutes=15), jti=str(JTI))


def test_access_token_at_or_after_expiry_is_rejected_as_expired() -> None:
    token = TOKENS.issue(subject=USER, role="trader", now=NOW, jti=JTI)
    assert TOKENS.verify(token, now=NOW + timedelta(minutes=15)) == AccessTokenRejected("expired")


def test_access_token_issued_after_now_is_rejected() -> None:
    token = TOKENS.issue(subject=USER, role="trader", now=NOW + timedelta(minutes=5), jti=JTI)
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("issued-in-future")


def test_access_token_signed_with_another_key_is_rejected_as_forged() -> None:
    forged = jwt.encode(_claims(role="admin"), signing_key(SecretStr("other")), algorithm="HS256")
    assert TOKENS.verify(forged, now=NOW) == AccessTokenRejected("bad-signature")


def test_access_token_with_a_tampered_payload_is_rejected_as_forged() -> None:
    header, _, signature = TOKENS.issue(subject=USER, role="trader", now=NOW,
                                        jti=JTI).split(".")
    tampered = f"{header}.{_b64(_claims(role='admin'))}.{signature}"
    assert TOKENS.verify(tampered, now=NOW) == AccessTokenRejected("bad-signature")


@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_access_token_with_alg_none_is_rejected(signature: str) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(role='admin'))}.{signature}"
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("algorithm-not-allowed")


# Same key, other algorithm: PyJWT warns that 32 bytes is short for HS512, which is beside the
# point here.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_access_token_signed_with_another_algorithm_is_rejected() -> None:
    token = jwt.encode(_claims(), signing_key(SECRET), algorithm="HS512")
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("algorithm-not-allowed")


def test_access_token_without_a_required_claim_is_rejected() -> None:
    claims = _claims()
    del claims["jti"]
    token = jwt.encode(claims, signing_key(SECRET), algorithm="HS256")
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("claims-invalid")


def test_access_token_with_an_unknown_role_is_rejected() -> None:
    token = jwt.encode(_claims(role="root"), signing_key(SECRET), algorithm="HS256")
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("claims-invalid")


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "a.b"])
def test_access_token_that_is_not_a_jwt_is_rejected_as_malformed(token: str) -> None:
    assert TOKENS.verify(token, now=NOW) == AccessTokenRejected("malformed")


# Refresh tokens -----------------------------------------------------------------------------

FAMILY = uuid.UUID(int=42)
S1, S2, S3, S4 = ("a" * 43, "b" * 43, "c" * 43, "d" * 43)


def test_start_family_stores_only_the_hash_of_the_first_token() -> None:
    token, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    assert family.current_hash == token_hash(token)
    assert S1 not in repr(family)
    assert parse_refresh_token(token) == (FAMILY, 1)


def test_rotate_with_the_newest_token_returns_the_next_and_moves_the_family_on() -> None:
    first, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    outcome = rotate(family, first, new_secret=S2, now=NOW)
    assert isinstance(outcome, Rotated)
    assert outcome.token != first
    assert outcome.family.generation == 2
    assert outcome.family.current_hash == token_hash(outcome.token)
    again = rotate(outcome.family, outcome.token, new_secret=S3, now=NOW)
    assert isinstance(again, Rotated)
    assert again.family.generation == 3


def test_rotate_with_an_old_token_revokes_the_family_and_the_newest_then_fails() -> None:
    first, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    rotated = rotate(family, first, new_secret=S2, now=NOW)
    assert isinstance(rotated, Rotated)

    reused = rotate(rotated.family, first, new_secret=S3, now=NOW)

    assert isinstance(reused, TokenReused)
    assert reused.family.revoked
    assert rotate(reused.family, rotated.token, new_secret=S4,
                  now=NOW) == RefreshRejected("revoked")


def test_rotate_with_a_guessed_token_of_the_current_generation_is_refused_not_revoked() -> None:
    _, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    guess = f"rt1.{FAMILY.hex}.1.{S2}"
    assert rotate(family, guess, new_secret=S3, now=NOW) == RefreshRejected("unknown-token")


def test_rotate_after_the_family_expired_is_rejected() -> None:
    first, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW,
                                 ttl=timedelta(days=1))
    assert rotate(family, first, new_secret=S2,
                  now=NOW + timedelta(days=1)) == RefreshRejected("expired")


def test_rotate_after_logout_is_rejected() -> None:
    first, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    assert rotate(revoke(family), first, new_secret=S2, now=NOW) == RefreshRejected("revoked")


def test_rotate_with_a_token_of_another_family_is_rejected() -> None:
    other, _ = start_family(family_id=uuid.UUID(int=43), user_id=USER, secret=S1, now=NOW)
    _, family = start_family(family_id=FAMILY, user_id=USER, secret=S2, now=NOW)
    assert rotate(family, other, new_secret=S3, now=NOW) == RefreshRejected("wrong-family")


@pytest.mark.parametrize("token", ["", "rt1.x.1.y", f"rt2.{FAMILY.hex}.1.{S1}",
                                   f"rt1.{FAMILY.hex}.one.{S1}"])
def test_rotate_with_a_malformed_token_is_rejected(token: str) -> None:
    _, family = start_family(family_id=FAMILY, user_id=USER, secret=S1, now=NOW)
    assert rotate(family, token, new_secret=S2, now=NOW) == RefreshRejected("malformed")


def test_start_family_with_a_weak_secret_is_a_bug() -> None:
    with pytest.raises(ValueError, match="secret"):
        start_family(family_id=FAMILY, user_id=USER, secret="short", now=NOW)


# API keys -----------------------------------------------------------------------------------

KEY_ID = "0123456789ab"



def test_api_key_with_a_granted_scope_is_accepted() -> None:
    key, record = generate_api_key(key_id=KEY_ID, secret=S1, owner=USER,
                                   scopes=frozenset({"reports:read"}))
    assert key.startswith(record.display_prefix)
    assert S1 not in repr(record)
    assert parse_api_key_id(key) == KEY_ID
    assert verify_api_key(record, key, scope="reports:read") == ApiKeyAccepted(
        key_id=KEY_ID, owner=USER, scopes=frozenset({"reports:read"}))


def test_api_key_without_the_scope_is_rejected() -> None:
    key, record = generate_api_key(key_id=KEY_ID, secret=S1, owner=USER,
                                   scopes=frozenset({"reports:read"}))
    assert verify_api_key(record, key, scope="orders:write") == ApiKeyRejected("scope-missing")


def test_api_key_with_a_wrong_secret_is_rejected() -> None:
    _, record = generate_api_key(key_id=KEY_ID, secret=S1, owner=USER,
                                 scopes=frozenset({"reports:read"}))
    assert verify_api_key(record, f"psk_{KEY_ID}_{S2}",
                          scope="reports:read") == ApiKeyRejected("bad-secret")


def test_api_key_revoked_is_rejected() -> None:
    key, record = generate_api_key(key_id=KEY_ID, secret=S1, owner=USER,
                                   scopes=frozenset({"reports:read"}))
    assert verify_api_key(replace(record, revoked=True), key,
                          scope="reports:read") == ApiKeyRejected("revoked")


@pytest.mark.parametrize("presented", ["", "psk_", "psk_XYZ_secret", f"sk_{KEY_ID}_{S1}"])
def test_api_key_malformed_is_rejected(presented: str) -> None:
    _, record = generate_api_key(key_id=KEY_ID, secret=S1, owner=USER,
                                 scopes=frozenset({"reports:read"}))
    assert verify_api_key(record, presented, scope="reports:read") == ApiKeyRejected("malformed")


@pytest.mark.parametrize("scopes", [frozenset(), frozenset({"Reports read"})])
def test_generate_api_key_with_bad_scopes_is_a_bug(scopes: frozenset[str]) -> None:
    with pytest.raises(ValueError, match="scopes"):
        generate_api_key(key_id=KEY_ID, secret=S1, owner=USER, scopes=scopes)
