"""The assessments and accounts folds: idempotent by sequence; no row without a creation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.adapters import accounts_projection, assessments_projection
from kernel.projection import Applied
from schemas.account import AccountClosed, AccountOpened, account_id_for
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCreated,
    AssessmentReversalRecorded,
    assessment_id_for,
)
from schemas.envelope import EventPayload, make_event
from tests.support.purchases import terms

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE = uuid.UUID("6a1f0c3e-58b2-4d7e-9c41-2f8e6b0a3d17")
USER = uuid.UUID("0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02")
ASSESSMENT = assessment_id_for(str(PURCHASE))
ACCOUNT = account_id_for(ASSESSMENT)
TERMS = terms()
CREATED = AssessmentCreated(purchase_id=PURCHASE, user_id=USER, tier_id="starter-25k",
                            tier_revision=1, terms=TERMS, phase="challenge",
                            rules=TERMS.phases[0].rules, account_id=uuid.UUID(ACCOUNT),
                            source="grant")


def applied(aggregate_id: str, payload: EventPayload, sequence: int) -> Applied:
    env = make_event(payload, aggregate_id=aggregate_id, sequence=sequence,
                     occurred_at=T0 + timedelta(seconds=sequence), correlation_id=uuid.uuid4(),
                     causation_id=uuid.uuid4(), event_id=uuid.uuid4())
    return Applied(env, payload)


def test_created_then_cancelled_gives_a_cancelled_row_and_duplicates_change_nothing() -> None:
    fold = assessments_projection.fold
    row = fold(None, applied(ASSESSMENT, CREATED, 1))
    assert row is not None and (row.status, row.phase, row.source) == ("active", "challenge",
                                                                        "grant")
    assert fold(row, applied(ASSESSMENT, CREATED, 1)) is row
    cancelled = fold(row, applied(ASSESSMENT, AssessmentCancelled(
        reason="refunded", stripe_event_id="evt_1"), 2))
    assert cancelled is not None
    assert (cancelled.status, cancelled.cancel_reason, cancelled.version) == (
        "cancelled", "refunded", 2)
    recorded = fold(cancelled, applied(ASSESSMENT, AssessmentReversalRecorded(
        reason="disputed", stripe_event_id="evt_2"), 3))
    assert recorded is not None and (recorded.status, recorded.version) == ("cancelled", 3)


def test_a_cancel_before_creation_leaves_no_row() -> None:
    cancel = AssessmentCancelled(reason="refunded", stripe_event_id="evt_1")
    assert assessments_projection.fold(None, applied(ASSESSMENT, cancel, 1)) is None


def test_account_opened_then_closed() -> None:
    fold = accounts_projection.fold
    opened = AccountOpened(assessment_id=uuid.UUID(ASSESSMENT), user_id=USER,
                           starting_balance=Decimal("25000"), currency="USD")
    row = fold(None, applied(ACCOUNT, opened, 1))
    assert row is not None
    assert (row.balance, row.starting_balance, row.status) == (Decimal(25000), Decimal(25000),
                                                               "open")
    closed = fold(row, applied(ACCOUNT, AccountClosed(reason="refunded"), 2))
    assert closed is not None and closed.status == "closed"
    assert closed.closed_at == T0 + timedelta(seconds=2)
    assert fold(closed, applied(ACCOUNT, AccountClosed(reason="again"), 2)) is closed
