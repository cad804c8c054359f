"""The `account_equity` read model: each account's equity curve, downsampled for charts.

`account.equity-marked` comes at most once a second of tick time per account; this keeps at
most one point per account per minute (`bucket`, the minute the mark falls in by its own
time `at_ns`): the bucket's last mark. Coarser resolutions are folded at read time
(core/views/trading.py). The key is the text `<account id>:<minute>` (`point_key`; minutes
since the epoch), so that the kernel's one-column `RowTable` holds it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from core.adapters.keyed_rows import KeyedProjection, at_ns
from kernel.projection import Applied, RowTable
from schemas.trading import AccountEquityMarked

MINUTE_NS = 60_000_000_000

COLUMNS = (
    "point_key", "account_id", "bucket", "marked_at", "equity", "unrealized", "margin_used",
    "margin_free", "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS account_equity (
        point_key TEXT PRIMARY KEY,
        account_id UUID NOT NULL,
        bucket TIMESTAMPTZ NOT NULL,
        marked_at TIMESTAMPTZ NOT NULL,
        equity NUMERIC NOT NULL,
        unrealized NUMERIC NOT NULL,
        margin_used NUMERIC NOT NULL,
        margin_free NUMERIC NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS account_equity_by_account ON account_equity "
    "(account_id, bucket DESC)",
)


class Row(NamedTuple):
    point_key: str
    account_id: str
    bucket: datetime
    marked_at: datetime
    equity: Decimal
    unrealized: Decimal
    margin_used: Decimal
    margin_free: Decimal
    version: int


def key(applied: Applied) -> str | None:
    event = applied.payload
    if isinstance(event, AccountEquityMarked):
        return f"{applied.envelope.aggregate_id}:{event.at_ns // MINUTE_NS}"
    return None


def fold(row: Row | None, applied: Applied) -> Row | None:
    """The bucket's point after one mark: the later mark wins; a mark at or below the
    point's version (a replay) is skipped."""
    env, event = applied.envelope, applied.payload
    if not isinstance(event, AccountEquityMarked) or (
            row is not None and env.sequence <= row.version):
        return row
    minute = event.at_ns // MINUTE_NS
    return Row(f"{env.aggregate_id}:{minute}", env.aggregate_id, at_ns(minute * MINUTE_NS),
               at_ns(event.at_ns), event.equity, event.unrealized, event.margin_used,
               event.margin_free, env.sequence)


TABLE = RowTable("account_equity", COLUMNS, Row)


class AccountEquityProjection(KeyedProjection):
    name = "account-equity"
    table = TABLE
    tables = ("account_equity",)
    ddl_statements = DDL
    key = staticmethod(key)
    step = staticmethod(fold)
