"""The identity service's own store: password hashes, API-key hashes and users' data keys.

Written only by the identity service (the API process and the CLI's register path), before it
sends the command that refers to a row; never by a projection, so `propstream replay` leaves
it alone. The log carries only a row's opaque id. Forgetting a user deletes all three kinds of
row in one transaction: their sealed values on the log no longer open.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import psycopg
from psycopg_pool import AsyncConnectionPool

from core.config import CoreSettings as Settings
from kernel.pg import apply_ddl, ensure_schema
from kernel.sealing import KeyWrapper, new_data_key, seal

CREDENTIALS_DDL = """
CREATE TABLE IF NOT EXISTS credentials (
    credential_id UUID PRIMARY KEY,
    user_id TEXT NOT NULL,
    password_hash TEXT NOT NULL, -- sealed (kernel.sealing) under the user's data key
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
CREDENTIALS_USER_INDEX = ("CREATE INDEX IF NOT EXISTS credentials_user "
                          "ON credentials (user_id, created_at)")
KEY_SECRETS_DDL = """
CREATE TABLE IF NOT EXISTS api_key_secrets (
    key_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
KEY_SECRETS_USER_INDEX = ("CREATE INDEX IF NOT EXISTS api_key_secrets_user "
                          "ON api_key_secrets (user_id)")
USER_KEYS_DDL = """
CREATE TABLE IF NOT EXISTS user_keys (
    user_id TEXT PRIMARY KEY,
    data_key BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
DDL = (CREDENTIALS_DDL, CREDENTIALS_USER_INDEX, KEY_SECRETS_DDL, KEY_SECRETS_USER_INDEX,
       USER_KEYS_DDL)


async def ensure_tables(conn: psycopg.AsyncConnection) -> None:
    await apply_ddl(conn, DDL)


async def data_keys(conn: psycopg.AsyncConnection, wrapper: KeyWrapper,
                    user_ids: Collection[str]) -> dict[str, bytes]:
    """The data keys of these users that still exist (a forgotten user has none)."""
    cur = await conn.execute("SELECT user_id, data_key FROM user_keys WHERE user_id = ANY(%s)",
                             (list(user_ids),))
    return {uid: wrapper.unwrap(bytes(wrapped), subject=uid)
            for uid, wrapped in await cur.fetchall()}


class CredentialStore:
    """Rows of the identity service's store, one short transaction per call."""

    def __init__(self, pool: AsyncConnectionPool, wrapper: KeyWrapper) -> None:
        self.pool = pool
        self.wrapper = wrapper

    async def ensure_tables(self, settings: Settings) -> None:
        """Create the namespace's schema (an API may start before any projection) and tables."""
        async with self.pool.connection() as conn:
            await ensure_schema(conn, settings)
            await ensure_tables(conn)

    async def data_key(self, user_id: str, *, create: bool = False) -> bytes | None:
        """The user's data key; with `create`, made first if absent (idempotent, race-safe)."""
        async with self.pool.connection() as conn:
            if create:
                await conn.execute(
                    "INSERT INTO user_keys (user_id, data_key) VALUES (%s, %s) "
                    "ON CONFLICT (user_id) DO NOTHING",
                    (user_id, self.wrapper.wrap(new_data_key(), subject=user_id)))
            return (await data_keys(conn, self.wrapper, [user_id])).get(user_id)

    async def add_password(self, user_id: str, password_hash: str, *,
                           data_key: bytes) -> uuid.UUID:
        """Store a hash as a new credential; it counts once a decided event names its id.

        The hash is sealed under the user's data key too: a dump of this table without
        PROPSTREAM_DATA_KEY_SECRET gives nothing to crack offline.
        """
        credential_id = uuid.uuid4()
        sealed = seal(data_key, subject=user_id, field="password_hash", text=password_hash)
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO credentials (credential_id, user_id, password_hash) "
                "VALUES (%s, %s, %s)", (credential_id, user_id, sealed))
        return credential_id

    async def discard_password(self, credential_id: uuid.UUID) -> None:
        """Delete a credential no decided event names (its command was refused or a repeat)."""
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM credentials WHERE credential_id = %s",
                               (credential_id,))

    async def prune_passwords(self, user_id: str, *, current: uuid.UUID) -> None:
        """Delete the user's credentials older than the current one (superseded hashes)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM credentials WHERE user_id = %s AND created_at < "
                "(SELECT created_at FROM credentials WHERE credential_id = %s)",
                (user_id, current))

    async def add_api_key(self, *, key_id: str, user_id: str, key_hash: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO api_key_secrets (key_id, user_id, key_hash) VALUES (%s, %s, %s)",
                (key_id, user_id, key_hash))

    async def forget(self, user_id: str) -> None:
        """Delete the user's data key, every credential and every API-key secret, at once."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM user_keys WHERE user_id = %s", (user_id,))
            await conn.execute("DELETE FROM credentials WHERE user_id = %s", (user_id,))
            await conn.execute("DELETE FROM api_key_secrets WHERE user_id = %s", (user_id,))
