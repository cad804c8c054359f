"""The `accounts` read model: one row per opened virtual account, folded from its events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import psycopg

from kernel.projection import Applied, RowTable
from schemas.account import AccountClosed, AccountCommandRejected, AccountOpened

COLUMNS = (
    "account_id", "assessment_id", "user_id", "currency", "starting_balance", "balance",
    "status", "opened_at", "closed_at", "close_reason", "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS accounts (
        account_id UUID PRIMARY KEY,
        assessment_id UUID NOT NULL,
        user_id UUID NOT NULL,
        currency TEXT NOT NULL,
        starting_balance NUMERIC NOT NULL,
        balance NUMERIC NOT NULL,
        status TEXT NOT NULL,
        opened_at TIMESTAMPTZ NOT NULL,
        closed_at TIMESTAMPTZ,
        close_reason TEXT,
        version BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS accounts_by_user ON accounts "
    "(user_id, opened_at DESC, account_id DESC)",
)


class Row(NamedTuple):
    account_id: str
    assessment_id: str
    user_id: str
    currency: str
    starting_balance: Decimal
    balance: Decimal
    status: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    version: int


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    match event:
        case AccountOpened() if row is None:
            return Row(env.aggregate_id, str(event.assessment_id), str(event.user_id),
                       event.currency, event.starting_balance, event.starting_balance, "open",
                       env.occurred_at, None, None, env.sequence)
        case AccountClosed(reason=reason) if row is not None:
            return row._replace(status="closed", closed_at=env.occurred_at, close_reason=reason,
                                version=env.sequence)
        case AccountCommandRejected() if row is not None:
            return row._replace(version=env.sequence)
    return row


TABLE = RowTable("accounts", COLUMNS, Row, key_type="uuid")


class AccountsProjection:
    name = "accounts"
    topics: tuple[str, ...] = ("account.events",)
    tables: tuple[str, ...] = ("accounts",)

    def ddl(self) -> Sequence[str]:
        return DDL

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        await TABLE.fold(conn, events, fold)
