"""Given events, when a command, then events: the user aggregate and the input checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from core.domain.users import (
    User,
    UserAggregate,
    email_problem,
    normalise_email,
    password_problems,
    user_id,
)
from kernel.aggregate import DecideContext
from kernel.sealing import new_data_key, seal
from schemas.envelope import CommandPayload, EventPayload
from schemas.identity import (
    ChangeDisplayName,
    ChangeUserPassword,
    ChangeUserRole,
    CreateApiKey,
    ForgetUser,
    RegisterUser,
    UserCommandRejected,
    UserForgotten,
    UserPasswordChanged,
    UserRegistered,
    UserRoleChanged,
)

AGG = UserAggregate()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = "ada@example.com"
UID = user_id(EMAIL)
KEY = new_data_key()
SEALED_EMAIL = seal(KEY, subject=UID, field="email", text=EMAIL)
SEALED_NAME = seal(KEY, subject=UID, field="display_name", text="Ada")
CRED = uuid.UUID(int=5)
CRED2 = uuid.UUID(int=6)
ADMIN = "11111111-1111-5111-8111-111111111111"
REGISTERED = UserRegistered(email=SEALED_EMAIL, credential_id=CRED, display_name=SEALED_NAME,
                            role="trader")


def ctx(actor: str | None = None) -> DecideContext:
    return DecideContext(now=NOW, command_id=uuid.UUID(int=1), actor=actor)


def given(*events: EventPayload, email: str = EMAIL) -> User:
    state = AGG.initial(user_id(email))
    for event in events:
        state = AGG.evolve(state, event)
    return state


def when(state: User, command: CommandPayload, actor: str | None = None) -> list[EventPayload]:
    return AGG.decide(command, state, ctx(actor))


def reasons(events: list[EventPayload]) -> list[str]:
    return [e.reason for e in events if isinstance(e, UserCommandRejected)]


REGISTER = RegisterUser(email=SEALED_EMAIL, credential_id=CRED, display_name=SEALED_NAME)


def test_register_when_new_is_registered_as_trader_by_default() -> None:
    assert when(given(), REGISTER) == [REGISTERED]


def test_register_when_email_already_registered_is_rejected_as_email_taken() -> None:
    events = when(given(REGISTERED), REGISTER)
    assert events == [UserCommandRejected(
        command_id=uuid.UUID(int=1), command_type="user.register", reason="email-taken",
        detail="a user with this email is registered")]


def test_register_with_a_legacy_email_on_the_aggregate_of_another_email_is_rejected() -> None:
    command = REGISTER.model_copy(update={"email": "p0:" + EMAIL})
    assert reasons(when(given(email="bob@example.com"), command)) == ["user-id-mismatch"]


def test_register_without_a_credential_is_rejected() -> None:
    command = REGISTER.model_copy(update={"credential_id": None})
    assert reasons(when(given(), command)) == ["credential-required"]


@pytest.mark.parametrize("email", ["Ada@Example.com", "ada@example", "ada@@example.com"])
def test_register_with_an_unnormalised_or_invalid_legacy_email_is_rejected(email: str) -> None:
    command = RegisterUser(email="p0:" + email, credential_id=CRED, display_name=SEALED_NAME)
    assert reasons(when(given(email=email), command)) == ["email-invalid"]


def test_change_role_by_admin_is_recorded_with_the_actor() -> None:
    events = when(given(REGISTERED), ChangeUserRole(role="analyst"), actor=ADMIN)
    assert events == [UserRoleChanged(role="analyst", previous_role="trader", changed_by=ADMIN)]
    assert AGG.evolve(given(REGISTERED), events[0]).role == "analyst"


def test_change_role_without_an_actor_is_rejected() -> None:
    assert reasons(when(given(REGISTERED), ChangeUserRole(role="admin"))) == ["actor-required"]


def test_change_role_to_the_current_role_is_rejected() -> None:
    events = when(given(REGISTERED), ChangeUserRole(role="trader"), actor=ADMIN)
    assert reasons(events) == ["role-unchanged"]


@pytest.mark.parametrize("command", [ChangeUserRole(role="admin"),
                                     ChangeUserPassword(credential_id=CRED2),
                                     ForgetUser()])
def test_change_when_unregistered_is_rejected(command: CommandPayload) -> None:
    assert reasons(when(given(), command, actor=ADMIN)) == ["user-not-registered"]


def test_change_password_when_registered_records_only_the_new_credential_id() -> None:
    events = when(given(REGISTERED), ChangeUserPassword(credential_id=CRED2))
    assert events == [UserPasswordChanged(credential_id=CRED2)]
    assert "$argon2id$" not in events[0].model_dump_json()


def test_forget_by_admin_is_recorded_with_the_actor_and_no_personal_data() -> None:
    events = when(given(REGISTERED), ForgetUser(), actor=ADMIN)
    assert events == [UserForgotten(forgotten_by=ADMIN)]
    assert set(events[0].model_dump()) == {"forgotten_by"}


def test_forget_without_an_actor_is_rejected() -> None:
    assert reasons(when(given(REGISTERED), ForgetUser())) == ["actor-required"]


@pytest.mark.parametrize("command", [
    ChangeUserRole(role="admin"), ChangeUserPassword(credential_id=CRED2), ForgetUser(),
    ChangeDisplayName(display_name="p0:Eve"),
    CreateApiKey(key_id="0123456789ab", name="p0:n", scopes=("reports:read",))])
def test_every_change_after_forget_is_rejected(command: CommandPayload) -> None:
    forgotten = given(REGISTERED, UserForgotten(forgotten_by=ADMIN))
    assert reasons(when(forgotten, command, actor=ADMIN)) == ["user-forgotten"]


def test_register_again_after_forget_is_rejected_as_email_taken() -> None:
    forgotten = given(REGISTERED, UserForgotten(forgotten_by=ADMIN))
    assert reasons(when(forgotten, REGISTER)) == ["email-taken"]


def test_forgotten_state_survives_dump_and_load_without_personal_data() -> None:
    state = given(REGISTERED, UserForgotten(forgotten_by=ADMIN))
    assert AGG.load(AGG.dump(state)) == state
    assert state.display_name is None


def test_a_snapshot_of_the_plaintext_era_loads_with_the_name_in_legacy_form() -> None:
    old = {"user_id": UID, "email": EMAIL, "display_name": "Ada", "role": "trader",
           "api_keys": {}}
    state = AGG.load(old)
    assert state.registered and state.display_name == "p0:Ada"
    assert EMAIL not in str(AGG.dump(state))


def test_state_survives_dump_and_load() -> None:
    state = given(REGISTERED, UserRoleChanged(role="admin", previous_role="trader",
                                              changed_by=ADMIN))
    assert AGG.load(AGG.dump(state)) == state
    assert not {"password_hash", "credential_id", "email"} & set(AGG.dump(state))


@pytest.mark.parametrize("field", ["email", "display_name"])
def test_register_command_refuses_a_plaintext_personal_value(field: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        RegisterUser.model_validate({**REGISTER.model_dump(), field: EMAIL})


# Emails -------------------------------------------------------------------------------------


def test_normalise_email_trims_and_lowers() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM \n") == "ada.lovelace@example.com"


def test_user_id_is_the_same_for_every_spelling_of_an_email() -> None:
    assert user_id("ADA@example.com ") == user_id(EMAIL)
    assert user_id("bob@example.com") != user_id(EMAIL)


@pytest.mark.parametrize(("email", "problem"), [
    ("", "email-empty"),
    ("a" * 250 + "@x.io", "email-too-long"),
    ("adä@example.com", "email-not-ascii"),
    ("ada", "email-malformed"),
    ("ada@localhost", "email-malformed"),
    (".ada@example.com", "email-malformed"),
    ("ada..l@example.com", "email-malformed"),
    ("ada@-example.com", "email-malformed"),
    ("a" * 65 + "@example.com", "email-malformed"),
])
def test_email_problem_names_the_broken_rule(email: str, problem: str) -> None:
    assert email_problem(email) == problem


@pytest.mark.parametrize("email", ["ada@example.com", "a.b+tag@mail.example.co.uk",
                                   "x_y-z@sub-1.example.org"])
def test_email_problem_when_valid_is_none(email: str) -> None:
    assert email_problem(email) is None


@for_all(st.text())
def test_normalise_email_is_idempotent(value: str) -> None:
    once = normalise_email(value)
    assert normalise_email(once) == once


# Passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "problems"), [
    ("Short1!", ["password-too-short"]),
    ("Aa1!" * 33, ["password-too-long"]),
    ("abcdefghijklmnop", ["password-one-character-class"]),
    ("1234567890123456", ["password-one-character-class"]),
    ("Password1234", ["password-common"]),
    ("aaaa", ["password-too-short", "password-one-character-class"]),
])
def test_password_problems_name_every_broken_rule(password: str, problems: list[str]) -> None:
    assert password_problems(password) == problems


@pytest.mark.parametrize("password", ["correct horse battery", "Tr0ub4dor&3xyz",
                                      "a" * 127 + "1"])
def test_password_problems_when_acceptable_are_empty(password: str) -> None:
    assert password_problems(password) == []
