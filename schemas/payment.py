"""Payments: one aggregate per purchase (keyed by purchase id, a UUID), decided from Stripe.

Written to the shared contract (issue 5, contracts.md) by the assessments helper so the
purchase -> assessment policy can decode what it consumes; the payments helper owns it.
Money is an integer in the currency's minor unit plus the currency.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.tier import TierCurrency, TierId, TierTerms

MinorAmount = Annotated[int, Field(ge=0, le=100_000_000)]
StripeId = Annotated[str, Field(min_length=1, max_length=255)]
Revision = Annotated[int, Field(ge=1)]

# Commands -------------------------------------------------------------------------------------


class CreatePurchase(CommandPayload):
    TYPE = "payment.create-purchase"

    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: Revision
    terms: TierTerms


class OpenCheckout(CommandPayload):
    TYPE = "payment.open-checkout"

    checkout_session_id: StripeId
    checkout_url: str = Field(min_length=1, max_length=2000)


class CompletePurchase(CommandPayload):
    TYPE = "payment.complete-purchase"

    stripe_event_id: StripeId
    checkout_session_id: StripeId
    payment_intent_id: StripeId | None = None
    amount_minor: MinorAmount
    currency: TierCurrency


class RecordRefund(CommandPayload):
    TYPE = "payment.record-refund"

    stripe_event_id: StripeId
    amount_minor: MinorAmount
    currency: TierCurrency


class RecordDispute(CommandPayload):
    TYPE = "payment.record-dispute"

    stripe_event_id: StripeId
    dispute_id: StripeId


class GrantPurchase(CommandPayload):
    """An admin gives a tier without a payment; the actor is on the envelope."""

    TYPE = "payment.grant"

    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: Revision
    terms: TierTerms
    reason: str = Field(min_length=1, max_length=200)


# Events ---------------------------------------------------------------------------------------


class PurchaseCreated(EventPayload):
    TYPE = "payment.purchase-created"

    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: Revision
    terms: TierTerms
    amount_minor: MinorAmount
    currency: TierCurrency


class CheckoutOpened(EventPayload):
    TYPE = "payment.checkout-opened"

    checkout_session_id: StripeId
    checkout_url: str


class PurchaseCompleted(EventPayload):
    TYPE = "payment.purchase-completed"

    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: Revision
    terms: TierTerms
    amount_minor: MinorAmount
    currency: TierCurrency
    stripe_event_id: StripeId
    checkout_session_id: StripeId
    payment_intent_id: StripeId | None = None


class PurchaseGranted(EventPayload):
    TYPE = "payment.purchase-granted"

    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: Revision
    terms: TierTerms
    granted_by: str = Field(min_length=1, max_length=200)
    reason: str


class PurchaseRefunded(EventPayload):
    TYPE = "payment.purchase-refunded"

    user_id: uuid.UUID
    stripe_event_id: StripeId
    amount_minor: MinorAmount
    currency: TierCurrency


class PurchaseDisputed(EventPayload):
    TYPE = "payment.purchase-disputed"

    user_id: uuid.UUID
    stripe_event_id: StripeId
    dispute_id: StripeId


PaymentRejection = Literal["purchase-exists", "purchase-not-found", "already-completed",
                           "amount-mismatch", "stripe-event-seen", "checkout-already-open"]


class PaymentCommandRejected(EventPayload):
    TYPE = "payment.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: PaymentRejection
    detail: str = ""


COMMANDS = (CreatePurchase, OpenCheckout, CompletePurchase, RecordRefund, RecordDispute,
            GrantPurchase)
EVENTS = (PurchaseCreated, CheckoutOpened, PurchaseCompleted, PurchaseGranted, PurchaseRefunded,
          PurchaseDisputed, PaymentCommandRejected)
