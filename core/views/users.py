"""Queries over the `users` read model, opening sealed values with each user's data key.

Only `login_record` returns a password hash: the current credential's, from the identity
service's store, or the legacy one a version 1 event carried. A forgotten user has neither,
and their email and display name read as null.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from core.adapters.credentials import data_keys
from kernel.observability import get_logger
from kernel.pg import page_by_key
from kernel.sealing import KeyWrapper, SealError, open_sealed
from schemas.identity import Role

log = get_logger(__name__)

PUBLIC_COLUMNS = ("user_id, email, display_name, role, registered_at, updated_at, version, "
                  "forgotten_at")
KEY_COLUMNS = "key_id, name, scopes, created_at, revoked_at"


EXAMPLE_USER: dict[str, Any] = {
    "user_id": "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02", "email": "ada@example.com",
    "display_name": "Ada", "role": "trader", "registered_at": "2026-01-05T08:15:00Z",
    "updated_at": "2026-02-11T17:40:22Z", "version": 2, "forgotten_at": None,
}
EXAMPLE_FORGOTTEN_USER: dict[str, Any] = {
    **EXAMPLE_USER, "email": None, "display_name": None, "updated_at": "2026-03-02T09:00:00Z",
    "version": 3, "forgotten_at": "2026-03-02T09:00:00Z",
}
EXAMPLE_API_KEY: dict[str, Any] = {
    "key_id": "3f9a1c7e5b2d", "name": "research notebook",
    "scopes": ["market:read", "reports:read"], "created_at": "2026-02-01T10:00:00Z",
    "revoked_at": "2026-03-01T10:00:00Z", "prefix": "psk_3f9a1c7e5b2d_",
}


class UserPublic(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={
        "examples": [EXAMPLE_USER, EXAMPLE_FORGOTTEN_USER]})

    user_id: str
    email: str | None = Field(description="null once the user is forgotten")
    display_name: str | None = Field(description="null once the user is forgotten")
    role: Role
    registered_at: datetime
    updated_at: datetime
    version: int
    forgotten_at: datetime | None = Field(
        default=None, description="when the user's personal data was erased; null if never")


class ApiKeyPublic(BaseModel):
    """An API key as its owner sees it: never the key, never its hash."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_API_KEY]})

    key_id: str
    name: str | None = Field(description="null once its owner is forgotten")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    prefix: str = Field(description="how the key starts, to recognise it")


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str
    role: Role
    password_hash: str


def _open(key: bytes | None, uid: str, field: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return open_sealed(key, subject=uid, field=field, value=value)
    except SealError:
        # Sealed under a key that is gone (a forget raced a change that made a new key):
        # unreadable is what forgetting means, so answer as forgotten rather than fail.
        log.warning("sealed value does not open", user_id=uid, field=field)
        return None


def _public(row: dict[str, Any], key: bytes | None) -> UserPublic:
    uid = row["user_id"]
    opened = {name: _open(key, uid, name, row[name]) for name in ("email", "display_name")}
    return UserPublic.model_validate({**row, **opened})


async def _keys(conn: psycopg.AsyncConnection, wrapper: KeyWrapper | None,
                user_ids: Collection[str]) -> dict[str, bytes]:
    return {} if wrapper is None or not user_ids else await data_keys(conn, wrapper, user_ids)


# The user and their wrapped data key in one round trip (GET /me is the hottest read).
_WITH_KEY = (", ".join(f"u.{c.strip()}" for c in PUBLIC_COLUMNS.split(","))
             + ", k.data_key FROM users u LEFT JOIN user_keys k ON k.user_id = u.user_id "
               "WHERE u.user_id = %s")


async def get_user(conn: psycopg.AsyncConnection, user_id: str,
                   wrapper: KeyWrapper | None = None) -> UserPublic | None:
    """One user; without `wrapper` the sealed email and display name read as null."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if wrapper is None:
            await cur.execute(f"SELECT {PUBLIC_COLUMNS} FROM users WHERE user_id = %s",
                              (user_id,))
        else:
            await cur.execute(f"SELECT {_WITH_KEY}", (user_id,))
        row = await cur.fetchone()
    if row is None:
        return None
    wrapped = row.pop("data_key", None)
    key = None if wrapped is None or wrapper is None else wrapper.unwrap(bytes(wrapped),
                                                                       subject=user_id)
    return _public(row, key)


async def login_record(conn: psycopg.AsyncConnection, user_id: str,
                       wrapper: KeyWrapper) -> Credentials | None:
    """What a login checks a password against: the current credential's hash, opened with the
    user's data key (or, for a user of the version 1 era who has not changed it since, the
    legacy hash); None if forgotten or unknown."""
    cur = await conn.execute(
        "SELECT u.role, c.password_hash, u.legacy_password_hash, k.data_key "
        "FROM users u LEFT JOIN credentials c "
        "ON c.credential_id = u.credential_id AND c.user_id = u.user_id "
        "LEFT JOIN user_keys k ON k.user_id = u.user_id "
        "WHERE u.user_id = %s AND u.forgotten_at IS NULL", (user_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    role, sealed, legacy_hash, wrapped = row
    if sealed is not None and wrapped is not None:
        key = wrapper.unwrap(bytes(wrapped), subject=user_id)
        password_hash = open_sealed(key, subject=user_id, field="password_hash", value=sealed)
        return None if password_hash is None else Credentials(user_id, role, password_hash)
    return None if legacy_hash is None else Credentials(user_id, role, legacy_hash)


async def user_exists(conn: psycopg.AsyncConnection, user_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,))
    return await cur.fetchone() is not None


async def list_users(conn: psycopg.AsyncConnection, *, after: str | None, limit: int,
                     role: str | None = None,
                     wrapper: KeyWrapper | None = None) -> list[UserPublic]:
    """Users ordered by id, strictly after `after`, at most `limit` of them."""
    rows = await page_by_key(conn, table="users", columns=PUBLIC_COLUMNS, key="user_id",
                             after=after, limit=limit, equal={"role": role})
    keys = await _keys(conn, wrapper, [r["user_id"] for r in rows])
    return [_public(r, keys.get(r["user_id"])) for r in rows]


async def list_api_keys(conn: psycopg.AsyncConnection, owner: str,
                        wrapper: KeyWrapper | None = None) -> list[ApiKeyPublic]:
    """The owner's keys; their names are opened with the owner's data key (null without)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE owner = %s ORDER BY created_at, key_id",
            (owner,))
        rows = await cur.fetchall()
    key = (await _keys(conn, wrapper, [owner])).get(owner) if rows else None
    return [ApiKeyPublic.model_validate({**r, "prefix": f"psk_{r['key_id']}_",
                                         "name": _open(key, owner, "api_key_name", r["name"])})
            for r in rows]
