"""The purchase aggregate: pure decide and evolve, no IO.

One purchase is paid at most once: a second completion is refused (`already-completed`),
whatever its command id. A completion whose amount or currency is not the purchase's price is
refused and so recorded (`amount-mismatch`), never completed. Refunds and disputes are
Stripe's facts: they are recorded whenever they come, before the completion as well, and each
Stripe event id has at most one effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.envelope import CommandPayload, EventPayload
from schemas.payment import (
    CheckoutOpened,
    CompletePurchase,
    CreatePurchase,
    GrantPurchase,
    OpenCheckout,
    PaymentCommandRejected,
    PurchaseCompleted,
    PurchaseCreated,
    PurchaseDisputed,
    PurchaseGranted,
    PurchaseRefunded,
    RecordDispute,
    RecordRefund,
    RejectionReason,
)
from schemas.tier import TierTerms

Stage = Literal["new", "pending", "paid", "granted"]


@dataclass(frozen=True)
class Purchase:
    purchase_id: str
    stage: Stage = "new"
    user_id: str | None = None
    tier_id: str | None = None
    tier_revision: int = 0
    terms: TierTerms | None = None
    checkout_session_id: str | None = None
    # Where the buyer pays: no decision needs it, but the API answers with it (the state a
    # handler rebuilds from a reply is the whole answer to POST /purchases).
    checkout_url: str | None = None
    refunded: bool = False
    disputed: bool = False
    stripe_events: frozenset[str] = field(default_factory=frozenset)

    @property
    def completed(self) -> bool:
        return self.stage in ("paid", "granted")


class PurchaseAggregate:
    family = "payment"
    rejection: type[EventPayload] = PaymentCommandRejected

    def initial(self, aggregate_id: str) -> Purchase:
        return Purchase(purchase_id=aggregate_id)

    def decide(self, command: CommandPayload, state: Purchase,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: RejectionReason, detail: str) -> list[EventPayload]:
            return [PaymentCommandRejected(command_id=ctx.command_id, command_type=command.TYPE,
                                           reason=reason, detail=detail)]

        exists = state.stage != "new"
        match command:
            case CreatePurchase():
                if exists:
                    return reject("purchase-exists", f"purchase {state.purchase_id} exists")
                return [PurchaseCreated(
                    user_id=command.user_id, tier_id=command.tier_id,
                    tier_revision=command.tier_revision, terms=command.terms,
                    amount_minor=command.terms.price_minor, currency=command.terms.currency)]
            case GrantPurchase():
                if ctx.actor is None:
                    return reject("actor-required", "a grant names the admin who gave it")
                if exists:
                    return reject("purchase-exists", f"purchase {state.purchase_id} exists")
                return [PurchaseGranted(
                    user_id=command.user_id, tier_id=command.tier_id,
                    tier_revision=command.tier_revision, terms=command.terms,
                    granted_by=ctx.actor, reason=command.reason)]
        if not exists:
            return reject("purchase-not-found", f"no purchase {state.purchase_id}")
        match command:
            case OpenCheckout():
                if state.completed:
                    return reject("already-completed", "the purchase is already paid")
                if state.checkout_session_id is not None:
                    return reject("checkout-already-open",
                                  f"checkout session {state.checkout_session_id} is open")
                return [CheckoutOpened(checkout_session_id=command.checkout_session_id,
                                       checkout_url=command.checkout_url)]
            case CompletePurchase():
                return _complete(command, state) or reject(*_completion_refusal(command, state))
            case RecordRefund():
                if command.stripe_event_id in state.stripe_events:
                    return reject("stripe-event-seen", f"{command.stripe_event_id} is recorded")
                assert state.user_id is not None
                return [PurchaseRefunded(user_id=state.user_id,
                                         stripe_event_id=command.stripe_event_id,
                                         amount_minor=command.amount_minor,
                                         currency=command.currency)]
            case RecordDispute():
                if command.stripe_event_id in state.stripe_events:
                    return reject("stripe-event-seen", f"{command.stripe_event_id} is recorded")
                assert state.user_id is not None
                return [PurchaseDisputed(user_id=state.user_id,
                                         stripe_event_id=command.stripe_event_id,
                                         dispute_id=command.dispute_id)]
        raise TypeError(f"the purchase aggregate does not handle {command.TYPE}")

    def evolve(self, state: Purchase, event: EventPayload) -> Purchase:
        match event:
            case PurchaseCreated() | PurchaseGranted():
                return replace(state, stage="pending" if isinstance(event, PurchaseCreated)
                               else "granted", user_id=event.user_id, tier_id=event.tier_id,
                               tier_revision=event.tier_revision, terms=event.terms)
            case CheckoutOpened(checkout_session_id=session, checkout_url=url):
                return replace(state, checkout_session_id=session, checkout_url=url)
            case PurchaseCompleted():
                return replace(state, stage="paid",
                               checkout_session_id=event.checkout_session_id,
                               stripe_events=state.stripe_events | {event.stripe_event_id})
            case PurchaseRefunded(stripe_event_id=seen):
                return replace(state, refunded=True, stripe_events=state.stripe_events | {seen})
            case PurchaseDisputed(stripe_event_id=seen):
                return replace(state, disputed=True, stripe_events=state.stripe_events | {seen})
            case PaymentCommandRejected():
                return state
        raise TypeError(f"the purchase aggregate does not know {event.TYPE}")

    def dump(self, state: Purchase) -> dict[str, Any]:
        return {
            "purchase_id": state.purchase_id, "stage": state.stage, "user_id": state.user_id,
            "tier_id": state.tier_id, "tier_revision": state.tier_revision,
            "terms": None if state.terms is None else state.terms.model_dump(mode="json"),
            "checkout_session_id": state.checkout_session_id,
            "checkout_url": state.checkout_url, "refunded": state.refunded,
            "disputed": state.disputed, "stripe_events": sorted(state.stripe_events),
        }

    def load(self, data: dict[str, Any]) -> Purchase:
        terms = None if data["terms"] is None else TierTerms.model_validate(data["terms"])
        return Purchase(
            purchase_id=data["purchase_id"], stage=data["stage"], user_id=data["user_id"],
            tier_id=data["tier_id"], tier_revision=data["tier_revision"], terms=terms,
            checkout_session_id=data["checkout_session_id"],
            # Snapshots written before the URL was kept have none: it is only ever shown.
            checkout_url=data.get("checkout_url"), refunded=data["refunded"],
            disputed=data["disputed"], stripe_events=frozenset(data["stripe_events"]))


def _completion_refusal(command: CompletePurchase,
                        state: Purchase) -> tuple[RejectionReason, str]:
    if state.completed:
        return "already-completed", f"the purchase is already {state.stage}"
    if command.stripe_event_id in state.stripe_events:
        return "stripe-event-seen", f"{command.stripe_event_id} is recorded"
    assert state.terms is not None
    return ("amount-mismatch",
            f"paid {command.amount_minor} {command.currency}, the price is "
            f"{state.terms.price_minor} {state.terms.currency}")


def _complete(command: CompletePurchase, state: Purchase) -> list[EventPayload]:
    """The completion, or nothing when it must be refused (see `_completion_refusal`)."""
    terms = state.terms
    if state.completed or command.stripe_event_id in state.stripe_events or terms is None:
        return []
    if (command.amount_minor, command.currency) != (terms.price_minor, terms.currency):
        return []
    assert state.user_id is not None and state.tier_id is not None
    return [PurchaseCompleted(
        user_id=state.user_id, tier_id=state.tier_id, tier_revision=state.tier_revision,
        terms=terms, amount_minor=command.amount_minor, currency=command.currency,
        stripe_event_id=command.stripe_event_id,
        checkout_session_id=command.checkout_session_id,
        payment_intent_id=command.payment_intent_id)]
