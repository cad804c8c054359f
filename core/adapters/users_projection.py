"""The `users` read model: one row per user and one per API key, folded from user events.

Both tables change in the projection's one transaction, and the user row's `version` (the
last sequence applied) is what makes a redelivered event a no-op for the key rows too: every
event of a user, key events included, carries the user's sequence.

Email and display name are kept sealed, as the events carry them (core.views.users opens them
with the user's data key). No secret is kept: a row names its current `credential_id` in the
identity service's store (core.adapters.credentials), which this projection never writes.
Users of the version 1 era keep their hashes in the `legacy_*` columns until they change their
password or are forgotten; `user.forgotten` clears every personal and legacy column.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg

from kernel.pg import copy_upsert
from kernel.projection import Applied
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

USER_COLUMNS = ("user_id", "email", "display_name", "role", "credential_id",
                "legacy_password_hash", "registered_at", "updated_at", "version", "forgotten_at")
KEY_COLUMNS = ("key_id", "owner", "name", "legacy_key_hash", "scopes", "created_at",
               "revoked_at")

USERS_DDL = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT,
    display_name TEXT,
    role TEXT NOT NULL,
    credential_id UUID,
    legacy_password_hash TEXT,
    registered_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL,
    forgotten_at TIMESTAMPTZ
)
"""
KEYS_DDL = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT,
    legacy_key_hash TEXT,
    scopes TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
)
"""
KEYS_OWNER_INDEX = "CREATE INDEX IF NOT EXISTS api_keys_owner ON api_keys (owner, key_id)"
USERS_ROLE_INDEX = "CREATE INDEX IF NOT EXISTS users_role ON users (role, user_id)"


class UserRow(NamedTuple):
    user_id: str
    email: str | None
    display_name: str | None
    role: str
    credential_id: uuid.UUID | None
    legacy_password_hash: str | None
    registered_at: datetime
    updated_at: datetime
    version: int
    forgotten_at: datetime | None


class KeyRow(NamedTuple):
    key_id: str
    owner: str
    name: str | None  # sealed; None once the owner is forgotten
    legacy_key_hash: str | None
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


def fold(user: UserRow | None, keys: Mapping[str, KeyRow],
         applied: Applied) -> tuple[UserRow | None, list[KeyRow]]:
    """Return the user row after one event and the key rows it changed.

    Events at or below the row's version were applied before and change nothing.
    """
    env, event = applied.envelope, applied.payload
    if user is not None and env.sequence <= user.version:
        return user, []
    at = env.occurred_at
    match event:
        case UserRegistered() if user is None:
            return UserRow(env.aggregate_id, event.email, event.display_name, event.role,
                           event.credential_id, event.legacy_password_hash, at, at,
                           env.sequence, None), []
        case UserRoleChanged(role=role) if user is not None:
            return user._replace(role=role, updated_at=at, version=env.sequence), []
        case UserPasswordChanged() if user is not None:
            return user._replace(credential_id=event.credential_id,
                                 legacy_password_hash=event.legacy_password_hash,
                                 updated_at=at, version=env.sequence), []
        case UserDisplayNameChanged(display_name=name) if user is not None:
            return user._replace(display_name=name, updated_at=at, version=env.sequence), []
        case UserApiKeyCreated() if user is not None:
            key = KeyRow(event.key_id, user.user_id, event.name, event.legacy_key_hash,
                         list(event.scopes), at, None)
            return user._replace(version=env.sequence), [key]
        case UserApiKeyRevoked(key_id=key_id) if user is not None and key_id in keys:
            return user._replace(version=env.sequence), [keys[key_id]._replace(revoked_at=at)]
        case UserForgotten() if user is not None:
            forgotten = user._replace(email=None, display_name=None, credential_id=None,
                                      legacy_password_hash=None, updated_at=at,
                                      version=env.sequence, forgotten_at=at)
            owned = [k._replace(name=None, legacy_key_hash=None, revoked_at=k.revoked_at or at)
                     for k in keys.values() if k.owner == user.user_id]
            return forgotten, owned
        case UserCommandRejected() if user is not None:
            return user._replace(version=env.sequence), []
    return user, []


class UsersProjection:
    name = "users"
    topics: tuple[str, ...] = ("user.events",)
    tables: tuple[str, ...] = ("users", "api_keys")

    def ddl(self) -> Sequence[str]:
        return (USERS_DDL, KEYS_DDL, KEYS_OWNER_INDEX, USERS_ROLE_INDEX)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        ids = sorted({a.envelope.aggregate_id for a in events})
        cur = await conn.execute(
            f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE user_id = ANY(%s)", (ids,))
        users: dict[str, UserRow | None] = {r[0]: UserRow(*r) for r in await cur.fetchall()}
        cur = await conn.execute(
            f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys WHERE owner = ANY(%s)", (ids,))
        keys: dict[str, KeyRow] = {r[0]: KeyRow(*r) for r in await cur.fetchall()}
        changed_users: dict[str, UserRow] = {}
        changed_keys: dict[str, KeyRow] = {}
        for applied in events:
            uid = applied.envelope.aggregate_id
            before = users.get(uid)
            after, changed = fold(before, keys, applied)
            if after is not None and after is not before:
                users[uid] = changed_users[uid] = after
            for key in changed:
                keys[key.key_id] = changed_keys[key.key_id] = key
        # Users first: a key row never exists without its owner's row.
        if changed_users:
            await copy_upsert(conn, table="users", columns=USER_COLUMNS, key=("user_id",),
                              rows=changed_users.values())
        if changed_keys:
            await copy_upsert(conn, table="api_keys", columns=KEY_COLUMNS, key=("key_id",),
                              rows=changed_keys.values())
