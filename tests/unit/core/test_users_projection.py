"""The users read model's fold: idempotent by sequence, keys follow their owner's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.adapters.users_projection import KeyRow, UserRow, fold
from kernel.projection import Applied
from schemas.envelope import EventPayload, make_event
from schemas.identity import (
    UserApiKeyCreated,
    UserApiKeyRevoked,
    UserCommandRejected,
    UserPasswordChanged,
    UserRegistered,
    UserRoleChanged,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UID = "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
HASH2 = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0c2FsdA$b3RoZXJoYXNob3RoZXJoYQ"
REGISTERED = UserRegistered(email="ada@example.com", password_hash=HASH, display_name="Ada",
                            role="trader")
KEY = UserApiKeyCreated(key_id="0123456789ab", key_hash="ab" * 32, name="nb",
                        scopes=("reports:read",))


def applied(payload: EventPayload, sequence: int) -> Applied:
    cause = uuid.uuid4()
    env = make_event(payload, aggregate_id=UID, sequence=sequence,
                     occurred_at=T0 + timedelta(seconds=sequence), correlation_id=cause,
                     causation_id=cause, event_id=uuid.uuid4())
    return Applied(env, payload)


def run(*events: Applied) -> tuple[UserRow | None, dict[str, KeyRow]]:
    user: UserRow | None = None
    keys: dict[str, KeyRow] = {}
    for event in events:
        user, key = fold(user, keys, event)
        if key is not None:
            keys[key.key_id] = key
    return user, keys


def test_registered_then_changes_fold_into_one_row() -> None:
    user, _ = run(applied(REGISTERED, 1),
                  applied(UserRoleChanged(role="analyst", previous_role="trader",
                                          changed_by="admin"), 2),
                  applied(UserPasswordChanged(password_hash=HASH2), 3))
    assert user == UserRow(UID, "ada@example.com", "Ada", "analyst", HASH2,
                           T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), 3)


def test_display_name_changed_renames_the_row() -> None:
    from schemas.identity import UserDisplayNameChanged

    user, _ = run(applied(REGISTERED, 1), applied(UserDisplayNameChanged(display_name="A."), 2))
    assert user is not None and (user.display_name, user.version) == ("A.", 2)


def test_an_event_at_or_below_the_version_changes_nothing() -> None:
    user, _ = run(applied(REGISTERED, 1),
                  applied(UserRoleChanged(role="admin", previous_role="trader",
                                          changed_by="admin"), 2))
    assert user is not None
    again, key = fold(user, {}, applied(UserRoleChanged(role="analyst", previous_role="trader",
                                                        changed_by="admin"), 2))
    assert (again, key) == (user, None)
    again, key = fold(user, {}, applied(KEY, 1))
    assert (again, key) == (user, None)


def test_api_key_created_then_revoked_keeps_the_row_with_a_revocation_time() -> None:
    user, keys = run(applied(REGISTERED, 1), applied(KEY, 2),
                     applied(UserApiKeyRevoked(key_id=KEY.key_id), 3))
    assert user is not None and user.version == 3
    assert keys == {KEY.key_id: KeyRow(KEY.key_id, UID, "nb", "ab" * 32, ["reports:read"],
                                       T0 + timedelta(seconds=2), T0 + timedelta(seconds=3))}


def test_a_rejection_only_advances_the_version() -> None:
    rejected = UserCommandRejected(command_id=uuid.uuid4(), command_type="user.register",
                                   reason="email-taken")
    user, _ = run(applied(REGISTERED, 1), applied(rejected, 2))
    assert user is not None and (user.version, user.updated_at) == (2, T0 + timedelta(seconds=1))
    assert run(applied(rejected, 1)) == (None, {})
