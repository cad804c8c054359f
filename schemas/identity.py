"""Identity: commands and events of the `user` aggregate (keyed by user id).

The user id is `user_id_for_email(normalised email)`, a UUIDv5. Registration of an email
therefore always lands on the same aggregate, so its one decider decides whether the email is
taken: a second `user.register` for that email is rejected with `email-taken`. A user's email
cannot change under this scheme; changing it would need an email-claim aggregate of its own.

Secrets never travel (version 2): the identity service keeps password hashes and API-key
hashes in PostgreSQL (core.adapters.credentials) and the log records only an opaque
`credential_id` ("the password changed at T") or a key's id, name and scopes. Email and display
name travel sealed under the user's data key (kernel.sealing): deleting that key (`user.forget`)
makes them unreadable everywhere at once while every event stays replayable.

Version 1 events carried the email and display name in plain text and the argon2id / SHA-256
hashes; they upcast to version 2 with the text in the legacy `p0:` form and the hash in a
`legacy_*` field, and stay on the topic, readable, until the log is rewritten
(docs/decisions/0004). Logins are not on the log; refresh-token families live in Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family
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
# kernel.sealing's forms: `s1:<nonce>:<ciphertext>` under the user's data key, with the user id
# and field name as associated data, or `p0:<text>` for a value upcast from a version 1 event.
# Still personal: a `p0:` value is plain text, and a sealed one is nobody else's business.
Sealed = Annotated[str, Field(min_length=3, max_length=1024,
                              pattern=r"^(s1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$|p0:)",
                              description="sealed under the user's data key (kernel.sealing)"),
                   PERSONAL]
# Which row of the identity service's credential store holds the password hash.
CredentialId = Annotated[uuid.UUID, Field(description="opaque: the hash is not on the log")]
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
    """The identity service stored the password hash as `credential_id` and sealed the rest."""

    TYPE = "user.register"
    VERSION = 2

    email: Sealed
    credential_id: CredentialId | None = None
    display_name: Sealed
    role: Role = "trader"
    legacy_password_hash: PasswordHash | None = Field(
        default=None, description="only in commands upcast from version 1")


class ChangeUserRole(CommandPayload):
    """Only an admin may send this; the API checks the role, the event records the actor."""

    TYPE = "user.change-role"

    role: Role


class ChangeUserPassword(CommandPayload):
    TYPE = "user.change-password"
    VERSION = 2

    credential_id: CredentialId | None = None
    legacy_password_hash: PasswordHash | None = Field(
        default=None, description="only in commands upcast from version 1")
    rehash: bool = Field(
        default=False,
        description="the same password re-stored under today's hash parameters after a login: "
                    "nothing leaked, so the user's API keys live on")


class ChangeDisplayName(CommandPayload):
    TYPE = "user.change-display-name"
    VERSION = 2

    display_name: Sealed


class CreateApiKey(CommandPayload):
    """Record a new API key; its hash is in the identity service's store, not here."""

    TYPE = "user.create-api-key"
    VERSION = 2

    key_id: ApiKeyId
    name: Sealed  # free text its owner typed: sealed like the display name
    scopes: Scopes
    legacy_key_hash: ApiKeyHash | None = Field(
        default=None, description="only in commands upcast from version 1")


class RevokeApiKey(CommandPayload):
    TYPE = "user.revoke-api-key"

    key_id: ApiKeyId


class ForgetUser(CommandPayload):
    """Only an admin may send this, after the identity service deleted the user's data key,
    credentials and API-key secrets: the log then records that it happened, and nothing else."""

    TYPE = "user.forget"


# Events ---------------------------------------------------------------------------------------


class UserRegistered(EventPayload):
    TYPE = "user.registered"
    VERSION = 2

    email: Sealed
    credential_id: CredentialId | None = None
    display_name: Sealed
    role: Role
    legacy_password_hash: PasswordHash | None = Field(
        default=None, description="only in events upcast from version 1")


class UserRoleChanged(EventPayload):
    TYPE = "user.role-changed"

    role: Role
    previous_role: Role
    changed_by: str = Field(min_length=1, max_length=200)


class UserPasswordChanged(EventPayload):
    """The password changed at the event's time; the new hash is the store's `credential_id`."""

    TYPE = "user.password-changed"
    VERSION = 2

    credential_id: CredentialId | None = None
    legacy_password_hash: PasswordHash | None = Field(
        default=None, description="only in events upcast from version 1")


class UserDisplayNameChanged(EventPayload):
    TYPE = "user.display-name-changed"
    VERSION = 2

    display_name: Sealed


class UserApiKeyCreated(EventPayload):
    TYPE = "user.api-key-created"
    VERSION = 2

    key_id: ApiKeyId
    name: Sealed
    scopes: Scopes
    legacy_key_hash: ApiKeyHash | None = Field(
        default=None, description="only in events upcast from version 1")


class UserApiKeyRevoked(EventPayload):
    TYPE = "user.api-key-revoked"

    key_id: ApiKeyId


class UserForgotten(EventPayload):
    """The user's data key, credentials and key secrets are deleted: their sealed values no
    longer open, and the aggregate refuses every further change."""

    TYPE = "user.forgotten"

    forgotten_by: str = Field(min_length=1, max_length=200)


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
    "user-forgotten",
    "credential-required",
]


class UserCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "user.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: RejectionReason
    detail: str = ""


COMMANDS = (RegisterUser, ChangeUserRole, ChangeUserPassword, ChangeDisplayName, CreateApiKey,
            RevokeApiKey, ForgetUser)
EVENTS = (UserRegistered, UserRoleChanged, UserPasswordChanged, UserDisplayNameChanged,
          UserApiKeyCreated, UserApiKeyRevoked, UserForgotten, UserCommandRejected)


# Upcasters: version 1 payloads, written before secrets left the log ---------------------------

LEGACY = "p0:"


def _personal_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Email and display name in the legacy plaintext form; a password hash moves to the
    `legacy_password_hash` field, which only login reads (for users of the version 1 era)."""
    out = dict(payload)
    for name in ("email", "display_name"):
        if isinstance(out.get(name), str):
            out[name] = LEGACY + out[name]
    if "password_hash" in out:
        out["legacy_password_hash"] = out.pop("password_hash")
    return out


def _key_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """The key's name in the legacy plaintext form; its hash to `legacy_key_hash`."""
    out = dict(payload)
    if isinstance(out.get("name"), str):
        out["name"] = LEGACY + out["name"]
    if "key_hash" in out:
        out["legacy_key_hash"] = out.pop("key_hash")
    return out


UPCASTERS: tuple[tuple[str, int, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    (RegisterUser.TYPE, 1, _personal_v1_to_v2),
    (ChangeUserPassword.TYPE, 1, _personal_v1_to_v2),
    (ChangeDisplayName.TYPE, 1, _personal_v1_to_v2),
    (CreateApiKey.TYPE, 1, _key_v1_to_v2),
    (UserRegistered.TYPE, 1, _personal_v1_to_v2),
    (UserPasswordChanged.TYPE, 1, _personal_v1_to_v2),
    (UserDisplayNameChanged.TYPE, 1, _personal_v1_to_v2),
    (UserApiKeyCreated.TYPE, 1, _key_v1_to_v2),
)

FAMILY = Family(
    name="user", commands=COMMANDS, events=EVENTS, partitions=3,
    key="user id (uuid5 of the normalised email)",
    upcasters=UPCASTERS,
)
