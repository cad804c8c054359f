"""The gateway's reads of PostgreSQL: who owns a private channel, and its snapshot.

The gateway reads core's read models (`accounts`, `assessments`) as plain SQL,
as any reader of the shared database does; it imports nothing of core.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from psycopg_pool import AsyncConnectionPool


class Owners:
    """Who owns a private channel's key, and the channel's snapshot, by its access rule."""

    # access rule -> the read model row naming the owner
    _OWNER = {
        "account-owner": "SELECT user_id FROM accounts WHERE account_id = %s",
        "assessment-owner": "SELECT user_id FROM assessments WHERE assessment_id = %s",
    }
    # channel family -> its snapshot: the row a client starts from (no rules, no terms: the
    # REST routes have those)
    _SNAPSHOT = {
        "account": "SELECT account_id, status, currency, balance, equity, unrealized, "
                   "margin_used, margin_free, halted, version FROM accounts "
                   "WHERE account_id = %s",
        "assessment": "SELECT assessment_id, tier_id, tier_revision, phase, status, "
                      "account_id, cancel_reason, created_at, updated_at, version "
                      "FROM assessments WHERE assessment_id = %s",
    }

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def owner(self, access: str, key: str) -> str | None:
        """The user id owning `key` under rule `access`, or None when there is no such row
        (yet); KeyError for a rule without an owner (public)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(self._OWNER[access], (key,))
            row = await cur.fetchone()
        return str(row[0]) if row else None

    def has_snapshot(self, family: str) -> bool:
        return family in self._SNAPSHOT

    async def snapshot(self, family: str, key: str) -> bytes:
        """The channel's read-model row as JSON, `null` when not there."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(self._SNAPSHOT[family], (key,))
            row = await cur.fetchone()
            names = [d.name for d in cur.description or ()]
        if row is None:
            return b"null"
        return orjson.dumps({n: _plain(v) for n, v in zip(names, row, strict=True)})


def _plain(value: Any) -> Any:
    """JSON for a column: numbers as strings (Decimals keep their digits), times ISO."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
