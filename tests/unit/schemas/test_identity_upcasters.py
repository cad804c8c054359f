"""Version 1 user payloads (plaintext email and name, hashes inline) read as version 2."""

from __future__ import annotations

import pytest

from schemas import default_registry
from schemas.identity import (
    ChangeUserPassword,
    CreateApiKey,
    RegisterUser,
    UserApiKeyCreated,
    UserDisplayNameChanged,
    UserPasswordChanged,
    UserRegistered,
)

HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
REGISTRY = default_registry()


def test_v1_registered_upcasts_to_legacy_plaintext_and_a_legacy_hash() -> None:
    parsed = REGISTRY.parse("user.registered", 1, {
        "email": "ada@example.com", "password_hash": HASH, "display_name": "Ada",
        "role": "trader"})
    assert parsed == UserRegistered(email="p0:ada@example.com", display_name="p0:Ada",
                                    role="trader", credential_id=None,
                                    legacy_password_hash=HASH)


def test_v1_password_changed_upcasts_to_a_legacy_hash_and_no_credential() -> None:
    parsed = REGISTRY.parse("user.password-changed", 1, {"password_hash": HASH})
    assert parsed == UserPasswordChanged(credential_id=None, legacy_password_hash=HASH)


def test_v1_display_name_changed_upcasts_to_legacy_plaintext() -> None:
    parsed = REGISTRY.parse("user.display-name-changed", 1, {"display_name": "A."})
    assert parsed == UserDisplayNameChanged(display_name="p0:A.")


def test_v1_api_key_created_upcasts_to_a_legacy_key_hash_and_a_plain_legacy_name() -> None:
    parsed = REGISTRY.parse("user.api-key-created", 1, {
        "key_id": "0123456789ab", "key_hash": "ab" * 32, "name": "nb",
        "scopes": ["reports:read"]})
    assert parsed == UserApiKeyCreated(key_id="0123456789ab", name="p0:nb",
                                       scopes=("reports:read",), legacy_key_hash="ab" * 32)


@pytest.mark.parametrize(("type_", "payload", "expected"), [
    ("user.register", {"email": "ada@example.com", "password_hash": HASH,
                       "display_name": "Ada", "role": "admin"},
     RegisterUser(email="p0:ada@example.com", display_name="p0:Ada", role="admin",
                  legacy_password_hash=HASH)),
    ("user.change-password", {"password_hash": HASH},
     ChangeUserPassword(legacy_password_hash=HASH)),
    ("user.create-api-key", {"key_id": "0123456789ab", "key_hash": "ab" * 32, "name": "nb",
                             "scopes": ["reports:read"]},
     CreateApiKey(key_id="0123456789ab", name="p0:nb", scopes=("reports:read",),
                  legacy_key_hash="ab" * 32)),
])
def test_v1_commands_still_on_the_topic_upcast_too(type_: str, payload: dict[str, object],
                                                   expected: object) -> None:
    assert REGISTRY.parse(type_, 1, payload) == expected


def test_current_user_events_carry_no_secret_field() -> None:
    for model in (UserRegistered, UserPasswordChanged, UserApiKeyCreated):
        fields = set(model.model_fields)
        assert not {"password_hash", "key_hash"} & fields, model.TYPE
