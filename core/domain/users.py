"""The user aggregate and the checks on what a user types: pure, no IO, no network."""

from __future__ import annotations

import re
import unicodedata
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
    RegisterUser,
    RejectionReason,
    RevokeApiKey,
    Role,
    UserApiKeyCreated,
    UserApiKeyRevoked,
    UserCommandRejected,
    UserDisplayNameChanged,
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
    email: str | None = None
    display_name: str | None = None
    role: Role | None = None
    # No password hash: no decision needs it, and snapshots should not copy it.
    # key id -> revoked? (hashes stay out of the state for the same reason)
    api_keys: Mapping[str, bool] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return self.email is not None


Reject = Callable[[RejectionReason, str], list[EventPayload]]


class UserAggregate:
    """Password policy is checked before hashing, at the edge: this aggregate sees only hashes.

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

        match command:
            case RegisterUser(email=email, password_hash=password_hash,
                              display_name=display_name, role=role):
                if normalise_email(email) != email or email_problem(email) is not None:
                    return reject("email-invalid", "email is not a valid normalised address")
                if user_id(email) != state.user_id:
                    return reject("user-id-mismatch",
                                  f"the user id of this email is not {state.user_id}")
                if state.registered:
                    return reject("email-taken", "a user with this email is registered")
                return [UserRegistered(email=email, password_hash=password_hash,
                                       display_name=display_name, role=role)]
            case ChangeUserRole(role=role):
                if state.role is None:
                    return reject("user-not-registered", f"{state.user_id} is not registered")
                if ctx.actor is None:
                    return reject("actor-required", "a role change must name who made it")
                if role == state.role:
                    return reject("role-unchanged", f"{state.user_id} already has role {role}")
                return [UserRoleChanged(role=role, previous_role=state.role,
                                        changed_by=ctx.actor)]
            case ChangeUserPassword(password_hash=password_hash):
                if not state.registered:
                    return reject("user-not-registered", f"{state.user_id} is not registered")
                # Whoever had the old password may have made keys: they end with it, as
                # explicit events of this decision (a replay never reinterprets the change).
                # A change with no actor is the system re-storing the same password under
                # today's hash parameters after a login: nothing leaked, nothing to revoke.
                live = sorted(k for k, revoked in state.api_keys.items()
                              if not revoked and ctx.actor is not None)
                return [UserPasswordChanged(password_hash=password_hash),
                        *(UserApiKeyRevoked(key_id=k) for k in live)]
            case ChangeDisplayName(display_name=display_name):
                if not state.registered:
                    return reject("user-not-registered", f"{state.user_id} is not registered")
                if display_name == state.display_name:
                    return reject("display-name-unchanged", "the display name is the same")
                return [UserDisplayNameChanged(display_name=display_name)]
            case CreateApiKey() | RevokeApiKey():
                return self._decide_api_key(command, state, reject)
        raise TypeError(f"the user aggregate does not handle {command.TYPE}")

    def _decide_api_key(self, command: CreateApiKey | RevokeApiKey, state: User,
                        reject: Reject) -> list[EventPayload]:
        if state.role is None:
            return reject("user-not-registered", f"{state.user_id} is not registered")
        revoked = state.api_keys.get(command.key_id)
        if isinstance(command, RevokeApiKey):
            if revoked is None:
                return reject("api-key-unknown", f"no API key {command.key_id}")
            if revoked:
                return reject("api-key-already-revoked", f"{command.key_id} is revoked")
            return [UserApiKeyRevoked(key_id=command.key_id)]
        if revoked is not None:
            return reject("api-key-duplicate", f"an API key {command.key_id} exists")
        beyond = sorted(set(command.scopes) - self.role_scopes.get(state.role, frozenset()))
        if beyond:
            return reject("api-key-scope-not-allowed",
                          f"role {state.role} may not grant {', '.join(beyond)}")
        return [UserApiKeyCreated(key_id=command.key_id, key_hash=command.key_hash,
                                  name=command.name, scopes=command.scopes)]

    def evolve(self, state: User, event: EventPayload) -> User:
        match event:
            case UserRegistered():
                return replace(state, email=event.email, display_name=event.display_name,
                               role=event.role)
            case UserRoleChanged(role=role):
                return replace(state, role=role)
            case UserDisplayNameChanged(display_name=display_name):
                return replace(state, display_name=display_name)
            case UserApiKeyCreated(key_id=key_id):
                return replace(state, api_keys={**state.api_keys, key_id: False})
            case UserApiKeyRevoked(key_id=key_id):
                return replace(state, api_keys={**state.api_keys, key_id: True})
            case UserPasswordChanged() | UserCommandRejected():
                return state
        raise TypeError(f"the user aggregate does not know {event.TYPE}")

    def dump(self, state: User) -> dict[str, Any]:
        return {"user_id": state.user_id, "email": state.email,
                "display_name": state.display_name, "role": state.role,
                "api_keys": dict(state.api_keys)}

    def load(self, data: dict[str, Any]) -> User:
        # Snapshots taken before API keys existed have no "api_keys".
        return User(user_id=data["user_id"], email=data["email"],
                    display_name=data["display_name"], role=data["role"],
                    api_keys=dict(data.get("api_keys", {})))
