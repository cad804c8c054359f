"""Queries over the `users` read model. Only `credentials_by_email` returns a password hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from kernel.pg import page_by_key
from schemas.identity import Role

PUBLIC_COLUMNS = "user_id, email, display_name, role, registered_at, updated_at, version"
KEY_COLUMNS = "key_id, name, scopes, created_at, revoked_at"


EXAMPLE_USER: dict[str, Any] = {
    "user_id": "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02", "email": "ada@example.com",
    "display_name": "Ada", "role": "trader", "registered_at": "2026-01-05T08:15:00Z",
    "updated_at": "2026-02-11T17:40:22Z", "version": 2,
}
EXAMPLE_API_KEY: dict[str, Any] = {
    "key_id": "3f9a1c7e5b2d", "name": "research notebook",
    "scopes": ["market:read", "reports:read"], "created_at": "2026-02-01T10:00:00Z",
    "revoked_at": "2026-03-01T10:00:00Z", "prefix": "psk_3f9a1c7e5b2d_",
}


class UserPublic(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_USER]})

    user_id: str
    email: str
    display_name: str
    role: Role
    registered_at: datetime
    updated_at: datetime
    version: int


class ApiKeyPublic(BaseModel):
    """An API key as its owner sees it: never the key, never its hash."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_API_KEY]})

    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    prefix: str = Field(description="how the key starts, to recognise it")


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str
    role: Role
    password_hash: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    owner: str
    key_hash: str
    scopes: frozenset[str]
    revoked: bool
    owner_role: Role


async def get_user(conn: psycopg.AsyncConnection, user_id: str) -> UserPublic | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {PUBLIC_COLUMNS} FROM users WHERE user_id = %s", (user_id,))
        row = await cur.fetchone()
    return None if row is None else UserPublic.model_validate(row)


async def credentials_by_email(conn: psycopg.AsyncConnection,
                               email: str) -> Credentials | None:
    """What a login checks a password against; `email` must be normalised."""
    cur = await conn.execute(
        "SELECT user_id, role, password_hash FROM users WHERE email = %s", (email,))
    row = await cur.fetchone()
    return None if row is None else Credentials(*row)


async def password_hash_of(conn: psycopg.AsyncConnection, user_id: str) -> str | None:
    cur = await conn.execute("SELECT password_hash FROM users WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def list_users(conn: psycopg.AsyncConnection, *, after: str | None, limit: int,
                     role: str | None = None) -> list[UserPublic]:
    """Users ordered by id, strictly after `after`, at most `limit` of them."""
    rows = await page_by_key(conn, table="users", columns=PUBLIC_COLUMNS, key="user_id",
                             after=after, limit=limit, equal={"role": role})
    return [UserPublic.model_validate(r) for r in rows]


async def list_api_keys(conn: psycopg.AsyncConnection, owner: str) -> list[ApiKeyPublic]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE owner = %s ORDER BY created_at, key_id",
            (owner,))
        rows = await cur.fetchall()
    return [ApiKeyPublic.model_validate({**r, "prefix": f"psk_{r['key_id']}_"}) for r in rows]


async def api_key_record(conn: psycopg.AsyncConnection, key_id: str) -> KeyRecord | None:
    """A key with its owner's current role, which caps what the key may do."""
    cur = await conn.execute(
        "SELECT k.key_id, k.owner, k.key_hash, k.scopes, k.revoked_at IS NOT NULL, u.role "
        "FROM api_keys k JOIN users u ON u.user_id = k.owner WHERE k.key_id = %s", (key_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    key_id_, owner, key_hash, scopes, revoked, role = row
    return KeyRecord(key_id_, owner, key_hash, frozenset(scopes), revoked, role)
