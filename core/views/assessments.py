"""Queries over the `assessments` and `accounts` read models.

Lists are newest first with keyset paging on (time, id); `user_id` narrows to one owner,
which is how a trader's reads are confined to their own records.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from schemas.account import AccountStatus
from schemas.assessment import AssessmentSource, AssessmentStatus, CancelReason
from schemas.tier import PhaseName, RuleSet, TierCurrency, TierTerms

EXAMPLE_RULES: dict[str, Any] = {"schema_version": 1, "daily_loss_limit_pct": "5",
                                 "max_loss_pct": "10", "profit_target_pct": "8",
                                 "min_trading_days": 3}
EXAMPLE_ASSESSMENT: dict[str, Any] = {
    "assessment_id": "3f0c7e1a-8f1b-5d2e-9a4c-6b7d8e9f0a1b",
    "purchase_id": "6a1f0c3e-58b2-4d7e-9c41-2f8e6b0a3d17",
    "user_id": "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02", "tier_id": "starter-25k",
    "tier_revision": 1, "phase": "challenge", "status": "active", "rules": EXAMPLE_RULES,
    "terms": {"name": "Starter 25k", "description": "", "account_size": 25000,
              "price_minor": 14900, "currency": "USD",
              "phases": [{"name": "challenge", "rules": EXAMPLE_RULES}]},
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e", "source": "stripe",
    "cancel_reason": None, "created_at": "2026-01-01T12:00:00Z",
    "updated_at": "2026-01-01T12:00:00Z", "version": 1,
}
EXAMPLE_ACCOUNT: dict[str, Any] = {
    "account_id": "b2c3d4e5-f6a7-5b8c-9d0e-1f2a3b4c5d6e",
    "assessment_id": "3f0c7e1a-8f1b-5d2e-9a4c-6b7d8e9f0a1b",
    "user_id": "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02", "currency": "USD",
    "starting_balance": "25000", "balance": "25000", "status": "open",
    "opened_at": "2026-01-01T12:00:01Z", "closed_at": None, "close_reason": None, "version": 1,
    "equity": "25000", "unrealized": "0", "margin_used": "0", "margin_free": "25000",
    "marked_at": None, "halted": False, "halt_reason": None,
}


class AssessmentPublic(BaseModel):
    """An assessment with the terms it was sold at and the rules of its current phase."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_ASSESSMENT]})

    assessment_id: uuid.UUID
    purchase_id: uuid.UUID
    user_id: uuid.UUID
    tier_id: str
    tier_revision: int
    phase: PhaseName
    status: AssessmentStatus
    rules: RuleSet
    terms: TierTerms
    account_id: uuid.UUID
    source: AssessmentSource
    cancel_reason: CancelReason | None
    created_at: datetime
    updated_at: datetime
    version: int


class AccountPublic(BaseModel):
    """A virtual account; money as decimal strings in the account's currency."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_ACCOUNT]})

    account_id: uuid.UUID
    assessment_id: uuid.UUID
    user_id: uuid.UUID
    currency: TierCurrency
    starting_balance: Decimal
    balance: Decimal
    status: AccountStatus
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    version: int
    equity: Decimal | None = Field(description="balance + unrealized P&L at the last mark "
                                               "(the starting balance before any)")
    unrealized: Decimal | None
    margin_used: Decimal | None
    margin_free: Decimal | None
    marked_at: datetime | None = Field(default=None,
                                       description="when equity was last marked to market")
    halted: bool = Field(description="a halted account may only reduce its positions")
    halt_reason: str | None = None


ASSESSMENT_COLUMNS = (
    "assessment_id, purchase_id, user_id, tier_id, tier_revision, phase, status, rules, terms, "
    "account_id, source, cancel_reason, created_at, updated_at, version"
)
ACCOUNT_COLUMNS = (
    "account_id, assessment_id, user_id, currency, starting_balance, balance, status, "
    "opened_at, closed_at, close_reason, version, equity, unrealized, margin_used, "
    "margin_free, marked_at, halted, halt_reason"
)


async def get_assessment(conn: psycopg.AsyncConnection,
                         assessment_id: uuid.UUID) -> AssessmentPublic | None:
    row = await _one(conn, f"SELECT {ASSESSMENT_COLUMNS} FROM assessments "
                           "WHERE assessment_id = %s", assessment_id)
    return None if row is None else AssessmentPublic.model_validate(row)


async def get_account(conn: psycopg.AsyncConnection,
                      account_id: uuid.UUID) -> AccountPublic | None:
    row = await _one(conn, f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = %s",
                     account_id)
    return None if row is None else AccountPublic.model_validate(row)


async def get_account_and_grid(conn: psycopg.AsyncConnection, account_id: uuid.UUID,
                               symbol: str) -> tuple[AccountPublic | None,
                                                     tuple[Decimal, Decimal] | None]:
    """The account and the tick and lot size of `symbol` (None when unknown), in one round
    trip: an order route reads both before every order."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {ACCOUNT_COLUMNS}, "
            "(SELECT tick_size FROM instruments WHERE symbol = %s) AS grid_tick, "
            "(SELECT lot_size FROM instruments WHERE symbol = %s) AS grid_lot "
            "FROM accounts WHERE account_id = %s", (symbol, symbol, account_id))
        row = await cur.fetchone()
    if row is None:
        return None, None
    tick, lot = row.pop("grid_tick"), row.pop("grid_lot")
    return AccountPublic.model_validate(row), None if tick is None else (tick, lot)


async def list_assessments(conn: psycopg.AsyncConnection, *, user_id: uuid.UUID | None,
                           status: str | None, after: tuple[datetime, uuid.UUID] | None,
                           limit: int) -> list[AssessmentPublic]:
    rows = await _page(conn, table="assessments", columns=ASSESSMENT_COLUMNS,
                       order=("created_at", "assessment_id"), user_id=user_id, status=status,
                       after=after, limit=limit)
    return [AssessmentPublic.model_validate(r) for r in rows]


async def list_accounts(conn: psycopg.AsyncConnection, *, user_id: uuid.UUID | None,
                        status: str | None, after: tuple[datetime, uuid.UUID] | None,
                        limit: int) -> list[AccountPublic]:
    rows = await _page(conn, table="accounts", columns=ACCOUNT_COLUMNS,
                       order=("opened_at", "account_id"), user_id=user_id, status=status,
                       after=after, limit=limit)
    return [AccountPublic.model_validate(r) for r in rows]


async def _one(conn: psycopg.AsyncConnection, query: str,
               key: uuid.UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, (key,))
        return await cur.fetchone()


async def _page(conn: psycopg.AsyncConnection, *, table: str, columns: str,
                order: tuple[str, str], user_id: uuid.UUID | None, status: str | None,
                after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[dict[str, Any]]:
    """Rows newest first, strictly after the (time, id) of the previous page's last row."""
    at, key = (sql.Identifier(c) for c in order)
    where: list[sql.Composable] = []
    params: list[Any] = []
    if user_id is not None:
        where.append(sql.SQL("user_id = %s"))
        params.append(user_id)
    if status is not None:
        where.append(sql.SQL("status = %s"))
        params.append(status)
    if after is not None:
        where.append(sql.SQL("({}, {}) < (%s, %s)").format(at, key))
        params += list(after)
    clause = sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {} {} ORDER BY {} DESC, {} DESC LIMIT %s").format(
        sql.SQL(columns), sql.Identifier(table), clause, at, key)
    params.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
