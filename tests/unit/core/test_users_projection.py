"""The users read model's fold: idempotent by sequence, keys follow their owner's events,
no secret kept, and a forgotten user's personal and legacy columns cleared."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.adapters.users_projection import KeyRow, UserRow, fold
from kernel.projection import Applied
from schemas import default_registry
from schemas.envelope import EventPayload, make_event
from schemas.identity import (
    UserApiKeyCreated,
    UserApiKeyRevoked,
    UserCommandRejected,
    UserDisplayNameChanged,
    UserForgotten,
    UserPasswordChanged,
    UserRegistered,
    UserRoleChanged,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UID = "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
CRED = uuid.UUID(int=1)
CRED2 = uuid.UUID(int=2)
EMAIL = "s1:bm9uY2U:ZW1haWw"
NAME = "s1:bm9uY2U:bmFtZQ"
REGISTERED = UserRegistered(email=EMAIL, credential_id=CRED, display_name=NAME, role="trader")
KEY = UserApiKeyCreated(key_id="0123456789ab", name="s1:bm9uY2U:bmI", scopes=("reports:read",))


def at(sequence: int) -> datetime:
    return T0 + timedelta(seconds=sequence)


def applied(payload: EventPayload, sequence: int) -> Applied:
    cause = uuid.uuid4()
    env = make_event(payload, aggregate_id=UID, sequence=sequence, occurred_at=at(sequence),
                     correlation_id=cause, causation_id=cause, event_id=uuid.uuid4())
    return Applied(env, payload)


def v1(type_: str, payload: dict[str, object], sequence: int) -> Applied:
    """An event as the version 1 era wrote it, read through today's registry."""
    parsed = default_registry().parse(type_, 1, payload)
    assert isinstance(parsed, EventPayload)
    return applied(parsed, sequence)


def run(*events: Applied) -> tuple[UserRow | None, dict[str, KeyRow]]:
    user: UserRow | None = None
    keys: dict[str, KeyRow] = {}
    for event in events:
        user, changed = fold(user, keys, event)
        keys.update({k.key_id: k for k in changed})
    return user, keys


def test_registered_then_changes_fold_into_one_row_naming_the_current_credential() -> None:
    user, _ = run(applied(REGISTERED, 1),
                  applied(UserRoleChanged(role="analyst", previous_role="trader",
                                          changed_by="admin"), 2),
                  applied(UserPasswordChanged(credential_id=CRED2), 3))
    assert user == UserRow(UID, EMAIL, NAME, "analyst", CRED2, None, at(1), at(3), 3, None)


def test_display_name_changed_renames_the_row() -> None:
    user, _ = run(applied(REGISTERED, 1),
                  applied(UserDisplayNameChanged(display_name="p0:A."), 2))
    assert user is not None and (user.display_name, user.version) == ("p0:A.", 2)


def test_an_event_at_or_below_the_version_changes_nothing() -> None:
    user, _ = run(applied(REGISTERED, 1),
                  applied(UserRoleChanged(role="admin", previous_role="trader",
                                          changed_by="admin"), 2))
    assert user is not None
    again, keys = fold(user, {}, applied(UserRoleChanged(role="analyst", previous_role="trader",
                                                         changed_by="admin"), 2))
    assert (again, keys) == (user, [])
    again, keys = fold(user, {}, applied(KEY, 1))
    assert (again, keys) == (user, [])


def test_api_key_created_then_revoked_keeps_the_row_with_a_revocation_time() -> None:
    user, keys = run(applied(REGISTERED, 1), applied(KEY, 2),
                     applied(UserApiKeyRevoked(key_id=KEY.key_id), 3))
    assert user is not None and user.version == 3
    assert keys == {KEY.key_id: KeyRow(KEY.key_id, UID, KEY.name, None, ["reports:read"],
                                       at(2), at(3))}


def test_a_rejection_only_advances_the_version() -> None:
    rejected = UserCommandRejected(command_id=uuid.uuid4(), command_type="user.register",
                                   reason="email-taken")
    user, _ = run(applied(REGISTERED, 1), applied(rejected, 2))
    assert user is not None and (user.version, user.updated_at) == (2, at(1))
    assert run(applied(rejected, 1)) == (None, {})


def test_v1_events_fold_with_legacy_plaintext_and_legacy_hashes() -> None:
    user, keys = run(
        v1("user.registered", {"email": "ada@example.com", "password_hash": HASH,
                               "display_name": "Ada", "role": "trader"}, 1),
        v1("user.api-key-created", {"key_id": KEY.key_id, "key_hash": "ab" * 32,
                                    "name": "nb", "scopes": ["reports:read"]}, 2))
    assert user == UserRow(UID, "p0:ada@example.com", "p0:Ada", "trader", None, HASH,
                           at(1), at(1), 2, None)
    assert keys[KEY.key_id].legacy_key_hash == "ab" * 32
    assert keys[KEY.key_id].name == "p0:nb"


def test_a_v2_password_change_of_a_v1_user_drops_the_legacy_hash() -> None:
    user, _ = run(v1("user.registered", {"email": "ada@example.com", "password_hash": HASH,
                                         "display_name": "Ada", "role": "trader"}, 1),
                  applied(UserPasswordChanged(credential_id=CRED2), 2))
    assert user is not None and (user.credential_id, user.legacy_password_hash) == (CRED2, None)


def test_forgotten_clears_personal_and_legacy_columns_and_revokes_every_key() -> None:
    user, keys = run(
        v1("user.registered", {"email": "ada@example.com", "password_hash": HASH,
                               "display_name": "Ada", "role": "trader"}, 1),
        v1("user.api-key-created", {"key_id": KEY.key_id, "key_hash": "ab" * 32,
                                    "name": "nb", "scopes": ["reports:read"]}, 2),
        applied(UserForgotten(forgotten_by="admin"), 3))
    assert user == UserRow(UID, None, None, "trader", None, None, at(1), at(3), 3, at(3))
    assert keys[KEY.key_id].revoked_at == at(3)
    assert keys[KEY.key_id].legacy_key_hash is None
    assert keys[KEY.key_id].name is None  # a legacy key name is plain text: gone too
    assert "ada@example.com" not in repr((user, keys)) and HASH not in repr((user, keys))
