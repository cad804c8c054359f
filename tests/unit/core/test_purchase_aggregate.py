"""Given events, when a command, then events: the purchase aggregate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given as for_all
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.domain.purchases import Purchase, PurchaseAggregate
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
)
from tests.support.payments import sample_terms

AGG = PurchaseAggregate()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE = "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"
USER = "00000000-0000-4000-8000-000000000001"
TERMS = sample_terms(price_minor=9900, currency="USD")
CREATED = PurchaseCreated(user_id=USER, tier_id="starter-25k", tier_revision=2, terms=TERMS,
                          amount_minor=9900, currency="USD")
PAY = CompletePurchase(stripe_event_id="evt_paid1", checkout_session_id="cs_test_1",
                       payment_intent_id="pi_1", amount_minor=9900, currency="USD")


def ctx(actor: str | None = None, command: int = 1) -> DecideContext:
    return DecideContext(now=NOW, command_id=uuid.UUID(int=command), actor=actor)


def given(*events: EventPayload) -> Purchase:
    state = AGG.initial(PURCHASE)
    for event in events:
        state = AGG.evolve(state, event)
    return state


def decide(state: Purchase, command: CommandPayload,
           actor: str | None = None) -> list[EventPayload]:
    return AGG.decide(command, state, ctx(actor))


def rejected(events: list[EventPayload]) -> str:
    assert len(events) == 1 and isinstance(events[0], PaymentCommandRejected), events
    return events[0].reason


def test_create_purchase_records_the_price_of_the_terms_snapshot() -> None:
    events = decide(given(), CreatePurchase(user_id=USER, tier_id="starter-25k", tier_revision=2,
                                            terms=TERMS))
    assert events == [CREATED]


def test_create_purchase_twice_is_rejected_as_existing() -> None:
    assert rejected(decide(given(CREATED), CreatePurchase(
        user_id=USER, tier_id="starter-25k", tier_revision=2, terms=TERMS))) == "purchase-exists"


def test_open_checkout_once_then_already_open() -> None:
    opened = decide(given(CREATED), OpenCheckout(checkout_session_id="cs_test_1",
                                                 checkout_url="https://checkout/1"))
    assert opened == [CheckoutOpened(checkout_session_id="cs_test_1",
                                     checkout_url="https://checkout/1")]
    again = decide(given(CREATED, *opened), OpenCheckout(checkout_session_id="cs_test_2",
                                                         checkout_url="https://checkout/2"))
    assert rejected(again) == "checkout-already-open"


def test_complete_purchase_emits_completion_with_the_terms() -> None:
    [event] = decide(given(CREATED), PAY)
    assert isinstance(event, PurchaseCompleted)
    assert (event.user_id, event.tier_id, event.tier_revision, event.terms) == \
        (USER, "starter-25k", 2, TERMS)
    assert (event.amount_minor, event.currency, event.stripe_event_id, event.payment_intent_id) \
        == (9900, "USD", "evt_paid1", "pi_1")


def test_complete_purchase_twice_is_rejected_already_completed() -> None:
    state = given(CREATED, *decide(given(CREATED), PAY))
    other = PAY.model_copy(update={"stripe_event_id": "evt_paid2"})
    assert rejected(decide(state, PAY)) == "already-completed"
    assert rejected(decide(state, other)) == "already-completed"


def test_complete_with_another_amount_or_currency_is_rejected_amount_mismatch() -> None:
    cheaper = PAY.model_copy(update={"amount_minor": 100})
    euros = PAY.model_copy(update={"currency": "EUR"})
    assert rejected(decide(given(CREATED), cheaper)) == "amount-mismatch"
    assert rejected(decide(given(CREATED), euros)) == "amount-mismatch"


def test_complete_unknown_purchase_is_rejected_not_found() -> None:
    assert rejected(decide(given(), PAY)) == "purchase-not-found"


def test_refund_before_completion_is_recorded_and_completion_still_counts_once() -> None:
    refund = RecordRefund(stripe_event_id="evt_ref1", amount_minor=9900, currency="USD")
    events = decide(given(CREATED), refund)
    assert events == [PurchaseRefunded(user_id=USER, stripe_event_id="evt_ref1",
                                       amount_minor=9900, currency="USD")]
    state = given(CREATED, *events)
    assert state.refunded
    assert isinstance(decide(state, PAY)[0], PurchaseCompleted)


def test_same_stripe_event_recorded_once() -> None:
    refund = RecordRefund(stripe_event_id="evt_ref1", amount_minor=9900, currency="USD")
    dispute = RecordDispute(stripe_event_id="evt_dp1", dispute_id="dp_1")
    state = given(CREATED, *decide(given(CREATED), refund))
    assert rejected(decide(state, refund)) == "stripe-event-seen"
    [disputed] = decide(state, dispute)
    assert disputed == PurchaseDisputed(user_id=USER, stripe_event_id="evt_dp1",
                                        dispute_id="dp_1")
    assert rejected(decide(given(CREATED, disputed), dispute)) == "stripe-event-seen"


def test_grant_needs_an_actor_and_records_it() -> None:
    grant = GrantPurchase(user_id=USER, tier_id="starter-25k", tier_revision=2, terms=TERMS,
                          reason="demo")
    assert rejected(decide(given(), grant)) == "actor-required"
    [event] = decide(given(), grant, actor="admin-1")
    assert event == PurchaseGranted(user_id=USER, tier_id="starter-25k", tier_revision=2,
                                    terms=TERMS, granted_by="admin-1", reason="demo")
    assert rejected(decide(given(event), PAY)) == "already-completed"


def test_dump_load_round_trip() -> None:
    refund = PurchaseRefunded(user_id=USER, stripe_event_id="evt_ref1", amount_minor=1,
                              currency="USD")
    state = given(CREATED, *decide(given(CREATED), PAY), refund)
    assert AGG.load(AGG.dump(state)) == state


WEBHOOKS: list[CommandPayload] = [
    PAY,
    PAY.model_copy(update={"stripe_event_id": "evt_paid2"}),
    PAY.model_copy(update={"amount_minor": 1}),
    RecordRefund(stripe_event_id="evt_ref1", amount_minor=9900, currency="USD"),
    RecordDispute(stripe_event_id="evt_dp1", dispute_id="dp_1"),
    OpenCheckout(checkout_session_id="cs_test_1", checkout_url="https://checkout/1"),
]


@hsettings(max_examples=300, deadline=None)
@for_all(st.lists(st.sampled_from(WEBHOOKS), min_size=1, max_size=12))
def test_any_order_and_duplication_of_webhooks_completes_at_most_once(
        deliveries: list[CommandPayload]) -> None:
    state = given(CREATED)
    log: list[EventPayload] = []
    for n, command in enumerate(deliveries):
        for event in AGG.decide(command, state, ctx(command=n)):
            state = AGG.evolve(state, event)
            log.append(event)
    completions = [e for e in log if isinstance(e, PurchaseCompleted)]
    assert len(completions) == (1 if any(c in deliveries for c in WEBHOOKS[:2]) else 0)
    for kind in (PurchaseRefunded, PurchaseDisputed):
        assert sum(isinstance(e, kind) for e in log) == (
            1 if any(isinstance(c, {PurchaseRefunded: RecordRefund,
                                    PurchaseDisputed: RecordDispute}[kind]) for c in deliveries)
            else 0)
