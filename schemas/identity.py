"""Identity: commands and events of the `user` aggregate (keyed by user id).

The user id is `user_id_for_email(normalised email)`, a UUIDv5. Registration of an email
therefore always lands on the same aggregate, so its one decider decides whether the email is
taken: a second `user.register` for that email is rejected with `email-taken`. A user's email
cannot change under this scheme; changing it would need an email-claim aggregate of its own.

Passwords never travel: commands and events carry only the argon2id hash (PHC string). The
events topic is kept forever, so whoever can read `user.events` can read those hashes.
Logins are not on the log: a successful login changes no state the log must keep, and failed
logins are throttled at the edge. Refresh-token families live in Redis, outside the log; API
keys are on the log as their SHA-256 only (the key is shown to its owner once).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.sensitive import PERSONAL, SECRET

# Fixed forever: changing it would give every existing email a second user id.
USER_ID_NAMESPACE = uuid.UUID("3b8f5d2a-6c1e-5f4b-9a7d-0e2c4b6a8d1f")

Role = Literal["trader", "analyst", "admin"]

Email = Annotated[str, Field(min_length=3, max_length=254,
                             description="normalised (see core.domain.users.normalise_email)"),
                 PERSONAL]
# A PHC string; argon2id is what core.domain.passwords produces.
PasswordHash = Annotated[str, Field(min_length=20, max_length=512, pattern=r"^\$argon2id\$"),
                         SECRET]
DisplayName = Annotated[str, Field(min_length=1, max_length=100), PERSONAL]
ApiKeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{12}$", description="public id of an API key")]
# SHA-256 (hex) of the whole key: the key itself is shown once and never stored or sent.
ApiKeyHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$"), SECRET]
# Free text its owner typed: treated as personal.
ApiKeyName = Annotated[str, Field(min_length=1, max_length=100), PERSONAL]
Scope = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)?$", max_length=64)]
Scopes = Annotated[tuple[Scope, ...], Field(min_length=1, max_length=20)]


def user_id_for_email(normalised_email: str) -> uuid.UUID:
    """Return the user id (the aggregate id) of a normalised email."""
    return uuid.uuid5(USER_ID_NAMESPACE, normalised_email)


# Commands -------------------------------------------------------------------------------------


class RegisterUser(CommandPayload):
    TYPE = "user.register"

    email: Email
    password_hash: PasswordHash
    display_name: DisplayName
    role: Role = "trader"


class ChangeUserRole(CommandPayload):
    """Only an admin may send this; the API checks the role, the event records the actor."""

    TYPE = "user.change-role"

    role: Role


class ChangeUserPassword(CommandPayload):
    TYPE = "user.change-password"

    password_hash: PasswordHash


class ChangeDisplayName(CommandPayload):
    TYPE = "user.change-display-name"

    display_name: DisplayName


class CreateApiKey(CommandPayload):
    """Record a new API key of the user; the edge made the key and sends only its hash."""

    TYPE = "user.create-api-key"

    key_id: ApiKeyId
    key_hash: ApiKeyHash
    name: ApiKeyName
    scopes: Scopes


class RevokeApiKey(CommandPayload):
    TYPE = "user.revoke-api-key"

    key_id: ApiKeyId


# Events ---------------------------------------------------------------------------------------


class UserRegistered(EventPayload):
    TYPE = "user.registered"

    email: Email
    password_hash: PasswordHash
    display_name: DisplayName
    role: Role


class UserRoleChanged(EventPayload):
    TYPE = "user.role-changed"

    role: Role
    previous_role: Role
    changed_by: str = Field(min_length=1, max_length=200)


class UserPasswordChanged(EventPayload):
    TYPE = "user.password-changed"

    password_hash: PasswordHash


class UserDisplayNameChanged(EventPayload):
    TYPE = "user.display-name-changed"

    display_name: DisplayName


class UserApiKeyCreated(EventPayload):
    TYPE = "user.api-key-created"

    key_id: ApiKeyId
    key_hash: ApiKeyHash
    name: ApiKeyName
    scopes: Scopes


class UserApiKeyRevoked(EventPayload):
    TYPE = "user.api-key-revoked"

    key_id: ApiKeyId


RejectionReason = Literal[
    "email-taken",
    "email-invalid",
    "user-id-mismatch",
    "user-not-registered",
    "role-unchanged",
    "actor-required",
    "display-name-unchanged",
    "api-key-duplicate",
    "api-key-unknown",
    "api-key-already-revoked",
    "api-key-scope-not-allowed",
]


class UserCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "user.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: RejectionReason
    detail: str = ""


COMMANDS = (RegisterUser, ChangeUserRole, ChangeUserPassword, ChangeDisplayName, CreateApiKey,
            RevokeApiKey)
EVENTS = (UserRegistered, UserRoleChanged, UserPasswordChanged, UserDisplayNameChanged,
          UserApiKeyCreated, UserApiKeyRevoked, UserCommandRejected)
