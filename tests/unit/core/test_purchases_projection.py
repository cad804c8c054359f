"""The purchases read model's fold: statuses in any order of reversal, idempotent by sequence."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from core.adapters.purchases_projection import Row, fold, recorded_stripe_event
from kernel.projection import Applied
from schemas.envelope import EventPayload, make_event
from schemas.payment import (
    CheckoutOpened,
    PaymentCommandRejected,
    PurchaseCompleted,
    PurchaseCreated,
    PurchaseGranted,
    PurchaseRefunded,
)
from tests.support.payments import sample_terms

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE = "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"
USER = "00000000-0000-4000-8000-000000000001"
TERMS = sample_terms()
CREATED = PurchaseCreated(user_id=USER, tier_id="starter-25k", tier_revision=1, terms=TERMS,
                          amount_minor=9900, currency="USD")
COMPLETED = PurchaseCompleted(user_id=USER, tier_id="starter-25k", tier_revision=1, terms=TERMS,
                              amount_minor=9900, currency="USD", stripe_event_id="evt_1",
                              checkout_session_id="cs_test_1", payment_intent_id="pi_1")
REFUNDED = PurchaseRefunded(user_id=USER, stripe_event_id="evt_r", amount_minor=9900,
                            currency="USD")


def applied(payload: EventPayload, sequence: int) -> Applied:
    env = make_event(payload, aggregate_id=PURCHASE, sequence=sequence,
                     occurred_at=T0 + timedelta(seconds=sequence), correlation_id=uuid.uuid4(),
                     causation_id=None, event_id=uuid.uuid4())
    return Applied(env, payload)


def run(*payloads: EventPayload) -> Row | None:
    row: Row | None = None
    for n, payload in enumerate(payloads, start=1):
        row = fold(row, applied(payload, n))
    return row


def test_created_opened_completed_is_paid_with_its_intent() -> None:
    row = run(CREATED, CheckoutOpened(checkout_session_id="cs_test_1", checkout_url="https://c"),
              COMPLETED)
    assert row is not None
    assert (row.status, row.amount_minor, row.checkout_url, row.payment_intent_id,
            row.version) == ("paid", 9900, "https://c", "pi_1", 3)


def test_refund_before_completion_stays_refunded() -> None:
    row = run(CREATED, REFUNDED, COMPLETED)
    assert row is not None and row.status == "refunded" and row.payment_intent_id == "pi_1"


def test_grant_is_granted_at_no_charge() -> None:
    row = run(PurchaseGranted(user_id=USER, tier_id="starter-25k", tier_revision=1, terms=TERMS,
                              granted_by="admin", reason="demo"))
    assert row is not None and (row.status, row.amount_minor) == ("granted", 0)


def test_an_event_already_applied_is_skipped_and_rejections_only_move_the_version() -> None:
    row = run(CREATED, COMPLETED)
    assert row is not None
    assert fold(row, applied(REFUNDED, 2)) is row
    rejected = PaymentCommandRejected(command_id=uuid.uuid4(), command_type="x",
                                      reason="already-completed")
    after = fold(row, applied(rejected, 3))
    assert after is not None and (after.status, after.version) == ("paid", 3)


def test_only_stripe_events_are_recorded_in_payment_events() -> None:
    assert recorded_stripe_event(applied(CREATED, 1)) is None
    assert recorded_stripe_event(applied(REFUNDED, 2)) == (
        "evt_r", PURCHASE, "payment.purchase-refunded", T0 + timedelta(seconds=2))
