"""The user aggregate and the checks on what a user types: pure, no IO, no network."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.envelope import CommandPayload, EventPayload
from schemas.identity import (
    ChangeDisplayName,
    ChangeUserPassword,
    ChangeUserRole,
    CreateApiKey,
    ForgetUser,
    RegisterUser,
    RejectionReason,
    RevokeApiKey,
    Role,
    UserApiKeyCreated,
    UserApiKeyRevoked,
    UserCommandRejected,
    UserDisplayNameChanged,
    UserForgotten,
    UserPasswordChanged,
    UserRegistered,
    UserRoleChanged,
    user_id_for_email,
)

# Emails ---------------------------------------------------------------------------------------

EmailProblem = Literal["email-empty", "email-too-long", "email-not-ascii", "email-malformed"]

# Dot-atom local part (RFC 5322 atext, no quoted strings) and a hostname with a dot and an
# alphabetic top-level label. Internationalised addresses are refused for now.
_LOCAL_RE = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"({_LABEL}\.)+[a-z]{{2,63}}")


def normalise_email(value: str) -> str:
    """Return the one spelling of an email the platform keys users by (trimmed, lower case)."""
    # One pass is not always stable (lower() can yield text NFKC changes again), and the id is
    # derived from the result, so repeat until it is.
    current = value
    for _ in range(4):
        nxt = unicodedata.normalize("NFKC", current).lower().strip()
        if nxt == current:
            return nxt
        current = nxt
    return current


def email_problem(normalised: str) -> EmailProblem | None:
    """Return why a normalised email is unacceptable, or None when it is acceptable."""
    if not normalised:
        return "email-empty"
    if len(normalised) > 254:
        return "email-too-long"
    if not normalised.isascii():
        return "email-not-ascii"
    local, at, domain = normalised.rpartition("@")
    if (not at or len(local) > 64 or not _LOCAL_RE.fullmatch(local)
            or not _DOMAIN_RE.fullmatch(domain)):
        return "email-malformed"
    return None


def user_id(email: str) -> str:
    """Return the aggregate id of the user registered (or to be registered) with this email."""
    return str(user_id_for_email(normalise_email(email)))


# One forget command per user: a retry, a second admin or the CLI finds it decided already.
FORGET_NAMESPACE = uuid.UUID("6a0e2f4c-8b1d-5e3a-9c7f-2d4b6e8a0c15")


def forget_command_id(user_id: str) -> uuid.UUID:
    return uuid.uuid5(FORGET_NAMESPACE, user_id)


# Passwords ------------------------------------------------------------------------------------

PasswordProblem = Literal["password-too-short", "password-too-long",
                          "password-one-character-class", "password-common"]
PASSWORD_MIN = 12
PASSWORD_MAX = 128

# A deliberately tiny list: the ones that meet the length rule and top every breach list.
# A real breach corpus (k-anonymity lookup) would be IO and belongs in an adapter.
COMMON_PASSWORDS = frozenset({
    "password1234", "password12345", "password123456", "passw0rd1234", "123456789012",
    "1234567890123", "qwertyuiop12", "qwerty123456", "123456qwerty", "iloveyou1234",
    "letmein12345", "welcome12345", "admin1234567", "changeme1234", "abc123456789",
    "111111111111", "000000000000", "qwertyuiopasdf", "1q2w3e4r5t6y", "trustno11234",
    "propstream123", "propstream1234",
})


def _classes(password: str) -> int:
    lower = any(c.islower() for c in password)
    upper = any(c.isupper() for c in password)
    digit = any(c.isdigit() for c in password)
    other = any(not (c.isalpha() or c.isdigit()) for c in password)
    return lower + upper + digit + other


def password_problems(password: str) -> list[PasswordProblem]:
    """Return every rule the password breaks; empty when it is acceptable."""
    problems: list[PasswordProblem] = []
    # Length in code points, as a user counts; 128 bounds the hashing work per request.
    if len(password) < PASSWORD_MIN:
        problems.append("password-too-short")
    if len(password) > PASSWORD_MAX:
        problems.append("password-too-long")
    if password and _classes(password) < 2:
        problems.append("password-one-character-class")
    if password.casefold() in COMMON_PASSWORDS:
        problems.append("password-common")
    return problems


# The aggregate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    user_id: str
    registered: bool = False
    # Sealed (schemas.identity.Sealed): compared as sent, never opened here.
    display_name: str | None = None
    role: Role | None = None
    forgotten: bool = False
    # No email, no password hash or credential: no decision needs them, and snapshots (kept
    # on a topic) should not copy them. key id -> revoked? (hashes stay out for the same reason)
    api_keys: Mapping[str, bool] = field(default_factory=dict)


Reject = Callable[[RejectionReason, str], list[EventPayload]]
LEGACY = "p0:"


class UserAggregate:
    """Password policy is checked before hashing, at the edge: this aggregate sees only an
    opaque credential id, and personal values sealed under the user's key.

    The edge checks a sealed email (normalised, valid, the user id's own) before sealing it
    under this user id; the aggregate can check only an email in the legacy plaintext form.
    A forgotten user refuses every further change.

    `role_scopes` is what an API key of each role may be granted (kernel.auth.ROLE_SCOPES,
    passed in so the domain imports no web or Redis code); without it no key can be created.
    """

    family = "user"
    rejection: type[EventPayload] = UserCommandRejected

    def __init__(self, role_scopes: Mapping[Role, frozenset[str]] | None = None) -> None:
        self.role_scopes: Mapping[Role, frozenset[str]] = role_scopes or {}

    def initial(self, aggregate_id: str) -> User:
        return User(user_id=aggregate_id)

    def decide(self, command: CommandPayload, state: User,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: RejectionReason, detail: str) -> list[EventPayload]:
            return [UserCommandRejected(command_id=ctx.command_id, command_type=command.TYPE,
                                        reason=reason, detail=detail)]

        if isinstance(command, RegisterUser):
            return self._decide_register(command, state, reject)
        if not state.registered:
            return reject("user-not-registered", f"{state.user_id} is not registered")
        if state.forgotten:
            return reject("user-forgotten", f"{state.user_id} was forgotten")
        match command:
            case ChangeUserRole(role=role):
                if ctx.actor is None:
                    return reject("actor-required", "a role change must name who made it")
                if role == state.role:
                    return reject("role-unchanged", f"{state.user_id} already has role {role}")
                assert state.role is not None
                return [UserRoleChanged(role=role, previous_role=state.role,
                                        changed_by=ctx.actor)]
            case ChangeUserPassword(credential_id=credential_id,
                                    legacy_password_hash=legacy_hash, rehash=rehash):
                if credential_id is None and legacy_hash is None:
                    return reject("credential-required", "the command names no credential")
                # Whoever had the old password may have made keys: they end with it, as
                # explicit events of this decision (a replay never reinterprets the change).
                # A rehash re-stores the same password after a login: nothing to revoke.
                live = [] if rehash else sorted(
                    k for k, revoked in state.api_keys.items() if not revoked)
                return [UserPasswordChanged(credential_id=credential_id,
                                            legacy_password_hash=legacy_hash),
                        *(UserApiKeyRevoked(key_id=k) for k in live)]
            case ChangeDisplayName(display_name=display_name):
                # Sealed values differ on every sealing: the edge compares the plain names.
                if display_name == state.display_name:
                    return reject("display-name-unchanged", "the display name is the same")
                return [UserDisplayNameChanged(display_name=display_name)]
            case ForgetUser():
                if ctx.actor is None:
                    return reject("actor-required", "forgetting a user must name who did it")
                return [UserForgotten(forgotten_by=ctx.actor)]
            case CreateApiKey() | RevokeApiKey():
                return self._decide_api_key(command, state, reject)
        raise TypeError(f"the user aggregate does not handle {command.TYPE}")

    def _decide_register(self, command: RegisterUser, state: User,
                         reject: Reject) -> list[EventPayload]:
        if command.email.startswith(LEGACY):
            email = command.email[len(LEGACY):]
            if normalise_email(email) != email or email_problem(email) is not None:
                return reject("email-invalid", "email is not a valid normalised address")
            if user_id(email) != state.user_id:
                return reject("user-id-mismatch",
                              f"the user id of this email is not {state.user_id}")
        if state.registered:
            return reject("email-taken", "a user with this email is registered")
        if command.credential_id is None and command.legacy_password_hash is None:
            return reject("credential-required", "the command names no credential")
        return [UserRegistered(email=command.email, credential_id=command.credential_id,
                               display_name=command.display_name, role=command.role,
                               legacy_password_hash=command.legacy_password_hash)]

    def _decide_api_key(self, command: CreateApiKey | RevokeApiKey, state: User,
                        reject: Reject) -> list[EventPayload]:
        revoked = state.api_keys.get(command.key_id)
        if isinstance(command, RevokeApiKey):
            if revoked is None:
                return reject("api-key-unknown", f"no API key {command.key_id}")
            if revoked:
                return reject("api-key-already-revoked", f"{command.key_id} is revoked")
            return [UserApiKeyRevoked(key_id=command.key_id)]
        if revoked is not None:
            return reject("api-key-duplicate", f"an API key {command.key_id} exists")
        assert state.role is not None
        beyond = sorted(set(command.scopes) - self.role_scopes.get(state.role, frozenset()))
        if beyond:
            return reject("api-key-scope-not-allowed",
                          f"role {state.role} may not grant {', '.join(beyond)}")
        return [UserApiKeyCreated(key_id=command.key_id, name=command.name,
                                  scopes=command.scopes, legacy_key_hash=command.legacy_key_hash)]

    def evolve(self, state: User, event: EventPayload) -> User:
        match event:
            case UserRegistered():
                return replace(state, registered=True, display_name=event.display_name,
                               role=event.role)
            case UserRoleChanged(role=role):
                return replace(state, role=role)
            case UserDisplayNameChanged(display_name=display_name):
                return replace(state, display_name=display_name)
            case UserApiKeyCreated(key_id=key_id):
                return replace(state, api_keys={**state.api_keys, key_id: False})
            case UserApiKeyRevoked(key_id=key_id):
                return replace(state, api_keys={**state.api_keys, key_id: True})
            case UserForgotten():
                return replace(state, forgotten=True, display_name=None,
                               api_keys={k: True for k in state.api_keys})
            case UserPasswordChanged() | UserCommandRejected():
                return state
        raise TypeError(f"the user aggregate does not know {event.TYPE}")

    def dump(self, state: User) -> dict[str, Any]:
        return {"user_id": state.user_id, "registered": state.registered,
                "display_name": state.display_name, "role": state.role,
                "forgotten": state.forgotten, "api_keys": dict(state.api_keys)}

    def load(self, data: dict[str, Any]) -> User:
        # Snapshots taken before API keys existed have no "api_keys"; those taken before
        # sealing hold the plain email and display name (seal-era ones hold neither).
        registered = data.get("registered", data.get("email") is not None)
        name = data.get("display_name")
        if name is not None and "registered" not in data:
            name = LEGACY + name
        return User(user_id=data["user_id"], registered=bool(registered), display_name=name,
                    role=data["role"], forgotten=bool(data.get("forgotten", False)),
                    api_keys=dict(data.get("api_keys", {})))
