"""Given events, when an API-key (or display-name) command, then events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from core.domain.users import User, UserAggregate, user_id
from kernel.aggregate import DecideContext
from kernel.auth import ROLE_SCOPES
from schemas.envelope import CommandPayload, EventPayload
from schemas.identity import (
    CreateApiKey,
    RevokeApiKey,
    UserApiKeyCreated,
    UserApiKeyRevoked,
    UserCommandRejected,
    UserRegistered,
    UserRoleChanged,
)

AGG = UserAggregate(ROLE_SCOPES)
EMAIL = "ana@example.com"
ANALYST = UserRegistered(email="s1:bm9uY2U:Y2lwaGVy", credential_id=uuid.UUID(int=3),
                         display_name="s1:bm9uY2U:bmFtZQ", role="analyst")
NAME = "s1:bm9uY2U:bm90ZWJvb2s"  # a sealed name: the aggregate never opens it
CREATE = CreateApiKey(key_id="0123456789ab", name=NAME, scopes=("reports:read",))
CREATED = UserApiKeyCreated(key_id="0123456789ab", name=NAME, scopes=("reports:read",))


def given(*events: EventPayload, aggregate: UserAggregate = AGG) -> User:
    state = aggregate.initial(user_id(EMAIL))
    for event in events:
        state = aggregate.evolve(state, event)
    return state


def when(state: User, command: CommandPayload,
         aggregate: UserAggregate = AGG, actor: str | None = None) -> list[EventPayload]:
    ctx = DecideContext(now=datetime(2026, 1, 1, tzinfo=UTC), command_id=uuid.UUID(int=7),
                        actor=actor)
    return aggregate.decide(command, state, ctx)


def reasons(events: list[EventPayload]) -> list[str]:
    return [e.reason for e in events if isinstance(e, UserCommandRejected)]


def test_create_api_key_within_the_role_scopes_is_recorded_without_its_hash() -> None:
    assert when(given(ANALYST), CREATE) == [CREATED]
    assert set(CREATED.model_dump()) == {"key_id", "name", "scopes", "legacy_key_hash"}
    assert CREATED.legacy_key_hash is None


def test_create_api_key_with_a_scope_beyond_the_role_is_rejected() -> None:
    command = CREATE.model_copy(update={"scopes": ("reports:read", "admin")})
    events = when(given(ANALYST), command)
    assert reasons(events) == ["api-key-scope-not-allowed"]
    assert "admin" in events[0].detail  # type: ignore[attr-defined]


def test_create_api_key_checks_the_role_the_user_has_now() -> None:
    demoted = given(ANALYST, UserRoleChanged(role="trader", previous_role="analyst",
                                            changed_by="admin-1"))
    assert reasons(when(demoted, CREATE)) == ["api-key-scope-not-allowed"]


def test_create_api_key_with_an_existing_id_is_rejected_even_when_revoked() -> None:
    assert reasons(when(given(ANALYST, CREATED), CREATE)) == ["api-key-duplicate"]
    revoked = given(ANALYST, CREATED, UserApiKeyRevoked(key_id=CREATE.key_id))
    assert reasons(when(revoked, CREATE)) == ["api-key-duplicate"]


def test_create_api_key_without_role_scopes_configured_is_rejected() -> None:
    bare = UserAggregate()
    assert reasons(when(given(ANALYST, aggregate=bare), CREATE, bare)) == [
        "api-key-scope-not-allowed"]


@pytest.mark.parametrize("command", [CREATE, RevokeApiKey(key_id="0123456789ab")])
def test_api_key_command_when_unregistered_is_rejected(command: CommandPayload) -> None:
    assert reasons(when(given(), command)) == ["user-not-registered"]


def test_revoke_api_key_then_again_is_rejected_as_already_revoked() -> None:
    revoke = RevokeApiKey(key_id=CREATE.key_id)
    events = when(given(ANALYST, CREATED), revoke)
    assert events == [UserApiKeyRevoked(key_id=CREATE.key_id)]
    assert reasons(when(given(ANALYST, CREATED, *events), revoke)) == [
        "api-key-already-revoked"]


def test_revoke_unknown_api_key_is_rejected() -> None:
    assert reasons(when(given(ANALYST), RevokeApiKey(key_id="ffffffffffff"))) == [
        "api-key-unknown"]


def test_state_with_keys_survives_dump_and_load_and_old_snapshots_load() -> None:
    state = given(ANALYST, CREATED, UserApiKeyRevoked(key_id=CREATE.key_id))
    assert state.api_keys == {CREATE.key_id: True}
    assert AGG.load(AGG.dump(state)) == state
    old = {k: v for k, v in AGG.dump(state).items() if k != "api_keys"}
    assert AGG.load(old).api_keys == {}


@pytest.mark.parametrize("bad", [{"legacy_key_hash": "not-a-sha256"}, {"key_id": "XYZ"},
                                 {"scopes": ()}, {"scopes": ("Bad Scope",)}])
def test_create_api_key_command_refuses_malformed_fields(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CreateApiKey.model_validate({**CREATE.model_dump(), **bad})


def test_change_display_name_is_recorded_and_the_same_name_is_rejected() -> None:
    from schemas.identity import ChangeDisplayName, UserDisplayNameChanged

    events = when(given(ANALYST), ChangeDisplayName(display_name="s1:bm9uY2U:Yg"))
    assert events == [UserDisplayNameChanged(display_name="s1:bm9uY2U:Yg")]
    assert AGG.evolve(given(ANALYST), events[0]).display_name == "s1:bm9uY2U:Yg"
    same = ChangeDisplayName(display_name=ANALYST.display_name)
    assert reasons(when(given(ANALYST), same)) == ["display-name-unchanged"]
    assert reasons(when(given(), ChangeDisplayName(display_name="p0:X"))) == [
        "user-not-registered"]


# A password change ends the keys made with the old password ----------------------------------

NEW_CREDENTIAL = uuid.UUID(int=4)


def _created(key_id: str) -> UserApiKeyCreated:
    return CREATED.model_copy(update={"key_id": key_id})


def test_change_password_revokes_every_live_api_key_in_the_same_decision() -> None:
    from schemas.identity import ChangeUserPassword, UserPasswordChanged

    state = given(ANALYST, _created("aaaaaaaaaaaa"), _created("bbbbbbbbbbbb"),
                  _created("cccccccccccc"), UserApiKeyRevoked(key_id="bbbbbbbbbbbb"))
    events = when(state, ChangeUserPassword(credential_id=NEW_CREDENTIAL), actor=user_id(EMAIL))
    assert isinstance(events[0], UserPasswordChanged)
    assert events[1:] == [UserApiKeyRevoked(key_id="aaaaaaaaaaaa"),
                          UserApiKeyRevoked(key_id="cccccccccccc")]


def test_after_a_password_change_no_key_is_live_so_a_second_change_revokes_nothing() -> None:
    from schemas.identity import ChangeUserPassword

    state = given(ANALYST, _created("aaaaaaaaaaaa"))
    for event in when(state, ChangeUserPassword(credential_id=NEW_CREDENTIAL),
                      actor=user_id(EMAIL)):
        state = AGG.evolve(state, event)
    assert not any(live is False for live in state.api_keys.values())
    assert len(when(state, ChangeUserPassword(credential_id=NEW_CREDENTIAL),
                    actor=user_id(EMAIL))) == 1


def test_a_rehash_after_login_keeps_the_api_keys() -> None:
    from schemas.identity import ChangeUserPassword, UserPasswordChanged

    state = given(ANALYST, _created("aaaaaaaaaaaa"))
    assert when(state, ChangeUserPassword(credential_id=NEW_CREDENTIAL, rehash=True),
                actor=user_id(EMAIL)) == [UserPasswordChanged(credential_id=NEW_CREDENTIAL)]
