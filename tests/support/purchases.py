"""Tier terms and payment events as the payments service publishes them, for assessment tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.payment import PurchaseCompleted, PurchaseDisputed, PurchaseGranted, PurchaseRefunded
from schemas.tier import RuleSet, TierPhase, TierTerms


def terms(*, account_size: int = 25_000, currency: str = "USD") -> TierTerms:
    return TierTerms.model_validate({
        "name": "Starter 25k", "account_size": account_size, "price_minor": 14_900,
        "currency": currency,
        "phases": [
            TierPhase(name="challenge", rules=RuleSet(
                daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
                profit_target_pct=Decimal(8), min_trading_days=3)),
            TierPhase(name="funded", rules=RuleSet(
                daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))),
        ],
    })


def completed(user_id: uuid.UUID, *, account_size: int = 25_000,
              stripe_event_id: str | None = None) -> PurchaseCompleted:
    t = terms(account_size=account_size)
    return PurchaseCompleted(
        user_id=str(user_id), tier_id="starter-25k", tier_revision=1, terms=t,
        amount_minor=t.price_minor, currency=t.currency,
        stripe_event_id=stripe_event_id or f"evt_{uuid.uuid4().hex[:16]}",
        checkout_session_id=f"cs_test_{uuid.uuid4().hex[:16]}", payment_intent_id=None)


def granted(user_id: uuid.UUID) -> PurchaseGranted:
    return PurchaseGranted(user_id=str(user_id), tier_id="starter-25k", tier_revision=1,
                           terms=terms(), granted_by="00000000-0000-4000-8000-00000000ad01",
                           reason="demo")


def refunded(user_id: uuid.UUID, stripe_event_id: str | None = None) -> PurchaseRefunded:
    return PurchaseRefunded(user_id=str(user_id),
                            stripe_event_id=stripe_event_id or f"evt_{uuid.uuid4().hex[:16]}",
                            amount_minor=14_900, currency="USD")


def disputed(user_id: uuid.UUID) -> PurchaseDisputed:
    return PurchaseDisputed(user_id=str(user_id), stripe_event_id=f"evt_{uuid.uuid4().hex[:16]}",
                            dispute_id=f"dp_{uuid.uuid4().hex[:16]}")


def payment_event(purchase_id: uuid.UUID, payload: EventPayload, *, sequence: int = 1,
                  event_id: uuid.UUID | None = None) -> Any:
    """A `payment.events` envelope of one purchase, as the payment decider would append it."""
    return make_event(payload, aggregate_id=str(purchase_id), sequence=sequence,
                      occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
                      causation_id=uuid.uuid4(), event_id=event_id or uuid.uuid4())


def payment_record(purchase_id: uuid.UUID, payload: EventPayload, *, sequence: int = 1,
                   event_id: uuid.UUID | None = None) -> tuple[bytes, bytes]:
    env = payment_event(purchase_id, payload, sequence=sequence, event_id=event_id)
    return str(purchase_id).encode(), encode(env)
