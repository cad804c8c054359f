"""The gateway's reads of PostgreSQL: who owns an account, an account's snapshot, API keys.

The gateway reads core's read models (`accounts`, `api_keys`) as plain SQL, as any reader
of the shared database does; it imports nothing of core.
"""

from __future__ import annotations

from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool

from kernel.auth import StoredApiKey
from kernel.tokens import ApiKey


class AccountDirectory:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def owner(self, account_id: str) -> str | None:
        """The user id owning `account_id`, or None when there is no such account (yet)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT user_id FROM accounts WHERE account_id = %s",
                                     (account_id,))
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def snapshot(self, account_id: str) -> bytes:
        """The account's row as JSON (balances and state), `null` when not there."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT account_id, status, currency, balance, equity, unrealized, margin_used, "
                "margin_free, halted, version FROM accounts WHERE account_id = %s",
                (account_id,))
            row = await cur.fetchone()
            names = [d.name for d in cur.description or ()]
        if row is None:
            return b"null"
        data: dict[str, Any] = {n: (str(v) if v is not None and not isinstance(v, bool | int)
                                    else v) for n, v in zip(names, row, strict=True)}
        return orjson.dumps(data)


class SqlApiKeyStore:
    """kernel.auth's ApiKeyStore over the `api_keys` read model (what core's API reads)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT k.key_id, k.owner, COALESCE(s.key_hash, k.legacy_key_hash), k.scopes, "
                "k.revoked_at IS NOT NULL, u.role "
                "FROM api_keys k JOIN users u ON u.user_id = k.owner "
                "LEFT JOIN api_key_secrets s ON s.key_id = k.key_id AND s.user_id = k.owner "
                "WHERE k.key_id = %s AND u.forgotten_at IS NULL", (key_id,))
            row = await cur.fetchone()
        if row is None or row[2] is None:
            return None
        key_id_, owner, key_hash, scopes, revoked, role = row
        key = ApiKey(key_id=key_id_, owner=str(owner), key_hash=key_hash,
                     scopes=frozenset(scopes), revoked=revoked)
        return StoredApiKey(key=key, owner_role=role)
