"""The `accounts` read model: one row per opened virtual account, folded from its events.

Trading shares the account's sequence: most events of an account (orders, fills, positions)
leave this row alone, and do not move its `version` (nothing would be written for them). An
event at or below the version is one already folded (every event this fold changes the row
for sets the version), so it is skipped; one above it is new, whatever came in between.
Balance comes from `account.balance-changed`, equity, unrealized P&L and margin from
`account.equity-marked` (until the first mark: the balance, nothing unrealized, no margin
used), the halt from `account.halted|resumed`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.adapters.keyed_rows import KeyedProjection, at_ns
from kernel.projection import Applied, RowTable
from schemas.account import AccountClosed, AccountCommandRejected, AccountOpened
from schemas.trading import (
    AccountBalanceChanged,
    AccountEquityMarked,
    AccountHalted,
    AccountResumed,
)

COLUMNS = (
    "account_id", "assessment_id", "user_id", "currency", "starting_balance", "balance",
    "status", "opened_at", "closed_at", "close_reason", "version", "equity", "unrealized",
    "margin_used", "margin_free", "marked_at", "halted", "halt_reason",
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
    # Issue 11: a table made before these columns gets them; its rows get their values from
    # a rebuild (`propstream replay accounts`).
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS equity NUMERIC",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS unrealized NUMERIC",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS margin_used NUMERIC",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS margin_free NUMERIC",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS marked_at TIMESTAMPTZ",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS halted BOOLEAN NOT NULL DEFAULT false",
    "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS halt_reason TEXT",
)


ZERO = Decimal(0)


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
    equity: Decimal | None
    unrealized: Decimal | None
    margin_used: Decimal | None
    margin_free: Decimal | None
    marked_at: datetime | None
    halted: bool
    halt_reason: str | None


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    seq = env.sequence
    match event:
        case AccountOpened() if row is None:
            start = event.starting_balance
            return Row(env.aggregate_id, str(event.assessment_id), str(event.user_id),
                       event.currency, start, start, "open", env.occurred_at, None, None, seq,
                       start, ZERO, ZERO, start, None, False, None)
        case AccountBalanceChanged(balance=balance) if row is not None:
            return row._replace(balance=balance, version=seq)
        case AccountEquityMarked() if row is not None:
            return row._replace(equity=event.equity, unrealized=event.unrealized,
                                margin_used=event.margin_used, margin_free=event.margin_free,
                                marked_at=at_ns(event.at_ns), version=seq)
        case AccountHalted(reason=reason) if row is not None:
            return row._replace(halted=True, halt_reason=reason, version=seq)
        case AccountResumed() if row is not None:
            return row._replace(halted=False, halt_reason=None, version=seq)
        case AccountClosed(reason=reason) if row is not None:
            return row._replace(status="closed", closed_at=env.occurred_at, close_reason=reason,
                                version=env.sequence)
        case AccountCommandRejected() if row is not None:
            return row._replace(version=env.sequence)
    return row


_FOLDED = (AccountOpened, AccountClosed, AccountCommandRejected, AccountBalanceChanged,
           AccountEquityMarked, AccountHalted, AccountResumed)


def key(applied: Applied) -> str | None:
    """The account, for the events this read model folds (not orders, fills, positions)."""
    return applied.envelope.aggregate_id if isinstance(applied.payload, _FOLDED) else None


TABLE = RowTable("accounts", COLUMNS, Row, key_type="uuid")


class AccountsProjection(KeyedProjection):
    name = "accounts"
    table = TABLE
    tables = ("accounts",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)
