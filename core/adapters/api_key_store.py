"""kernel.auth's ApiKeyStore over the `users` read model in PostgreSQL."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from core.views.users import api_key_record
from kernel.auth import StoredApiKey
from kernel.tokens import ApiKey


class PostgresApiKeyStore:
    """Look API keys up by id in the `api_keys` table, with the owner's role of today."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def lookup(self, key_id: str) -> StoredApiKey | None:
        async with self.pool.connection() as conn:
            record = await api_key_record(conn, key_id)
        if record is None:
            return None
        key = ApiKey(key_id=record.key_id, owner=record.owner, key_hash=record.key_hash,
                     scopes=record.scopes, revoked=record.revoked)
        return StoredApiKey(key=key, owner_role=record.owner_role)
