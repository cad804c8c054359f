"""Payments: commands and events of the `payment` aggregate, one purchase (keyed by purchase id).

A purchase is created with a snapshot of the tier's terms at one revision, then paid through a
Stripe Checkout Session (or granted by an admin without a card). Stripe's webhooks become
commands whose id is derived from the Stripe event id, so a redelivered webhook is a duplicate
command the decider drops; the aggregate also remembers every Stripe event id it recorded, so
the same Stripe event never has two effects even under another command id.

Refunds and disputes are facts from Stripe: they are recorded whenever they arrive, also
before the completion they reverse (webhooks are not delivered in order). Money is an integer
amount in the currency's minor unit.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family, dead_letters
from schemas.tier import TierCurrency, TierId, TierTerms

# Dedup of webhooks: the command id of a Stripe event is uuid5(this, stripe event id).
# Fixed forever: changing it would let a redelivered webhook through as a new command.
STRIPE_EVENT_NAMESPACE = uuid.UUID("9d4b7e21-3c5a-5e8f-8b1d-6a2f0c9e4b73")

# Ids travel as canonical (lowercase, hyphenated) UUID strings.
UuidStr = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                       r"[0-9a-f]{12}$",
                               examples=["5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"])]
# Stripe ids: a short prefix, an underscore, then letters and digits (`evt_1Nx…`, `cs_test_…`).
StripeId = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[a-z]+_[A-Za-z0-9_]+$")]
MinorAmount = Annotated[int, Field(ge=0, le=100_000_000,
                                   description="amount in the currency's minor unit (cents)")]
PurchaseStatus = Literal["pending", "paid", "granted", "refunded", "disputed"]


def stripe_command_id(stripe_event_id: str) -> uuid.UUID:
    """Return the command id of a Stripe event: the same for every delivery of that event."""
    return uuid.uuid5(STRIPE_EVENT_NAMESPACE, stripe_event_id)


# Commands -------------------------------------------------------------------------------------


class CreatePurchase(CommandPayload):
    """Open a purchase at the price of `terms` (price_minor, currency)."""

    TYPE = "payment.create-purchase"

    user_id: UuidStr
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms


class OpenCheckout(CommandPayload):
    """Record the Stripe Checkout Session the buyer is sent to."""

    TYPE = "payment.open-checkout"

    checkout_session_id: StripeId
    checkout_url: str = Field(min_length=1, max_length=2048)


class CompletePurchase(CommandPayload):
    """Stripe says the checkout session was paid (`checkout.session.completed`)."""

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
    """A purchase without a card (the offline demo path); the admin is the envelope's actor."""

    TYPE = "payment.grant"

    user_id: UuidStr
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    reason: str = Field(min_length=1, max_length=200)


# Events ---------------------------------------------------------------------------------------


class PurchaseCreated(EventPayload):
    TYPE = "payment.purchase-created"

    user_id: UuidStr
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    amount_minor: MinorAmount
    currency: TierCurrency


class CheckoutOpened(EventPayload):
    TYPE = "payment.checkout-opened"

    checkout_session_id: StripeId
    checkout_url: str


class PurchaseCompleted(EventPayload):
    """Paid: the assessment policy creates the assessment from this."""

    TYPE = "payment.purchase-completed"

    user_id: UuidStr
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    amount_minor: MinorAmount
    currency: TierCurrency
    stripe_event_id: StripeId
    checkout_session_id: StripeId
    payment_intent_id: StripeId | None = None


class PurchaseGranted(EventPayload):
    """Given by an admin without payment; the assessment policy treats it like a completion."""

    TYPE = "payment.purchase-granted"

    user_id: UuidStr
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    granted_by: str = Field(min_length=1, max_length=200)
    reason: str


class PurchaseRefunded(EventPayload):
    TYPE = "payment.purchase-refunded"

    user_id: UuidStr
    stripe_event_id: StripeId
    amount_minor: MinorAmount
    currency: TierCurrency


class PurchaseDisputed(EventPayload):
    TYPE = "payment.purchase-disputed"

    user_id: UuidStr
    stripe_event_id: StripeId
    dispute_id: StripeId


RejectionReason = Literal[
    "purchase-exists",
    "purchase-not-found",
    "already-completed",
    "amount-mismatch",
    "checkout-already-open",
    "stripe-event-seen",
    "actor-required",
]


class PaymentCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "payment.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: RejectionReason
    detail: str = ""


COMMANDS = (CreatePurchase, OpenCheckout, CompletePurchase, RecordRefund, RecordDispute,
            GrantPurchase)
EVENTS = (PurchaseCreated, CheckoutOpened, PurchaseCompleted, PurchaseGranted, PurchaseRefunded,
          PurchaseDisputed, PaymentCommandRejected)

FAMILY = Family(
    name="payment", commands=COMMANDS, events=EVENTS, partitions=3,
    key="purchase id (uuid)",
    topics=(dead_letters("payment.webhooks", "verified Stripe webhooks matching no purchase "
                         "or no valid command, raw body kept, for an operator to replay"),),
)
