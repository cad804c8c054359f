"""The `assessments` read model: one row per created assessment, folded from its events.

A row appears only with `assessment.created`. A purchase refunded or disputed before its
assessment was created has a cancelled aggregate whose create is refused: no assessment
ever existed, so it has no row (rather than a row of nulls a client would have to explain).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import psycopg

from kernel.projection import Applied, RowTable
from kernel.projection_small import RowChanges
from schemas.assessment import (
    AssessmentAbandoned,
    AssessmentCancelled,
    AssessmentCommandRejected,
    AssessmentCompleted,
    AssessmentCreated,
    AssessmentPhaseStarted,
    AssessmentReversalRecorded,
)

COLUMNS = (
    "assessment_id", "purchase_id", "user_id", "tier_id", "tier_revision", "phase", "status",
    "rules", "terms", "account_id", "source", "cancel_reason", "created_at", "updated_at",
    "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS assessments (
        assessment_id UUID PRIMARY KEY,
        purchase_id UUID NOT NULL,
        user_id UUID NOT NULL,
        tier_id TEXT NOT NULL,
        tier_revision INT NOT NULL,
        phase TEXT NOT NULL,
        status TEXT NOT NULL,
        rules JSONB NOT NULL,
        terms JSONB NOT NULL,
        account_id UUID NOT NULL,
        source TEXT NOT NULL,
        cancel_reason TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    # The list a trader pages through: their own, newest first.
    "CREATE INDEX IF NOT EXISTS assessments_by_user ON assessments "
    "(user_id, created_at DESC, assessment_id DESC)",
)


class Row(NamedTuple):
    assessment_id: str
    purchase_id: str
    user_id: str
    tier_id: str
    tier_revision: int
    phase: str
    status: str
    rules: str
    terms: str
    account_id: str
    source: str
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int


def _json(model: Any) -> str:
    return orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    at = env.occurred_at
    match event:
        case AssessmentCreated() if row is None:
            return Row(env.aggregate_id, str(event.purchase_id), str(event.user_id),
                       event.tier_id, event.tier_revision, event.phase, "active",
                       _json(event.rules), _json(event.terms), str(event.account_id),
                       event.source, None, at, at, env.sequence)
        case AssessmentCancelled(reason=reason) if row is not None:
            return row._replace(status="cancelled", cancel_reason=reason, updated_at=at,
                                version=env.sequence)
        case AssessmentCompleted(outcome=outcome, final=final) if row is not None:
            return row._replace(status=outcome if final else row.status, updated_at=at,
                                version=env.sequence)
        case AssessmentPhaseStarted() if row is not None:
            return row._replace(phase=event.phase, rules=_json(event.rules),
                                account_id=str(event.account_id), updated_at=at,
                                version=env.sequence)
        case AssessmentAbandoned() if row is not None:
            return row._replace(status="abandoned", updated_at=at, version=env.sequence)
        case AssessmentReversalRecorded() | AssessmentCommandRejected() if row is not None:
            return row._replace(version=env.sequence)
    return row


TABLE = RowTable("assessments", COLUMNS, Row, key_type="uuid",
                 as_text=frozenset({"rules", "terms"}))


class AssessmentsProjection:
    name = "assessments"
    topics: tuple[str, ...] = ("assessment.events",)
    tables: tuple[str, ...] = ("assessments",)

    def ddl(self) -> Sequence[str]:
        return DDL

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        await TABLE.fold(conn, events, fold)

    async def changes(self, conn: psycopg.AsyncConnection,
                      events: Sequence[Applied]) -> list[RowChanges]:
        """A small batch's rows, unwritten: the store writes them with its offsets in one
        statement (kernel.projection_small)."""
        return await TABLE.step_changes(conn, events, fold)
