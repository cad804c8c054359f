"""kernel.auth's ApiKeyStore over PostgreSQL: every service that accepts API keys (the core
API, the WebSocket gateway) looks them up here, in the identity read models.

A key's hash is the identity service's (`api_key_secrets`), or the legacy one of a key made
in the version 1 era (`api_keys.legacy_key_hash`); a key of a forgotten user has neither and
is not found. The owner's role of today caps what the key may do.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from kernel.auth import StoredApiKey
from kernel.tokens import ApiKey

_LOOKUP = (
    "SELECT k.key_id, k.owner, COALESCE(s.key_hash, k.legacy_key_hash), k.scopes, "
    "k.revoked_at IS NOT NULL, u.role "
    "FROM api_keys k JOIN users u ON u.user_id = k.owner "
    "LEFT JOIN api_key_secrets s ON s.key_id = k.key_id AND s.user_id = k.owner "
    "WHERE k.key_id = %s AND u.forgotten_at IS NULL")


class PostgresApiKeyStore:
    """Look API keys up by id in the `api_keys` table, with the owner's role of today."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LOOKUP, (key_id,))
            row = await cur.fetchone()
        if row is None or row[2] is None:
            return None
        key_id_, owner, key_hash, scopes, revoked, role = row
        key = ApiKey(key_id=key_id_, owner=str(owner), key_hash=key_hash,
                     scopes=frozenset(scopes), revoked=revoked)
        return StoredApiKey(key=key, owner_role=role)
