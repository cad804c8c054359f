"""The purchase saga (core.handlers.purchases) with a deciding bus and a fake Stripe:
created and opened, Stripe down then resumed, Stripe refusing, undecided steps, an earlier
attempt that went further, refusals; and grants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.adapters.purchases_projection import Row, fold
from core.adapters.stripe_gateway import (
    CheckoutRequest,
    CheckoutSession,
    PaymentProviderError,
    PaymentProviderUnavailable,
)
from core.domain.purchases import PurchaseAggregate
from core.handlers import purchases as handlers
from core.views.purchases import PurchasePublic
from core.views.tiers import TierView
from kernel.application import Decided, Pending, Rejected
from kernel.projection import Applied
from schemas.envelope import make_command
from schemas.payment import CompletePurchase, stripe_command_id
from tests.support.deciding_bus import DecidingBus
from tests.support.purchases import terms

PID = "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"
BUYER = "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02"
AT = datetime(2026, 1, 1, tzinfo=UTC)
TIER = TierView(tier_id="starter-25k", status="active", revision=2, terms=terms(),
                created_at=AT, updated_at=AT, version=2)


class FakeStripe:
    """Stripe's Checkout as the saga sees it: one session per purchase (its idempotency
    key), or the failure it is told to raise."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[CheckoutRequest] = []

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        self.calls.append(request)
        if self.fail is not None:
            raise self.fail
        sid = f"cs_test_{request.purchase_id[:8]}"
        return CheckoutSession(id=sid, url=f"https://checkout.stripe.com/c/pay/{sid}")


def bus() -> DecidingBus:
    return DecidingBus({handlers.COMMANDS_TOPIC: PurchaseAggregate()})


def read_model(b: DecidingBus) -> PurchasePublic | None:
    row: Row | None = None
    for env in b.events_of(PID):
        row = fold(row, Applied(env, b.registry.event_payload(env)))
    if row is None:
        return None
    data = row._asdict()
    del data["payment_intent_id"]
    return PurchasePublic.model_validate(data)


async def buy(b: DecidingBus, stripe: FakeStripe, *, tier: TierView | None = TIER,
              currency: str | None = None) -> handlers.BuyOutcome:
    async def read_tier(tier_id: str) -> TierView | None:
        return tier

    async def read_purchase(purchase_id: str) -> PurchasePublic | None:
        return read_model(b)

    return await handlers.buy(b, b.registry, stripe, handlers.BuyTier(
        purchase_id=PID, buyer=BUYER, tier_id="starter-25k", currency=currency),
        read_tier=read_tier, read_purchase=read_purchase)


def types(b: DecidingBus) -> list[str]:
    return [e.type for e in b.log]


@pytest.mark.asyncio
async def test_created_and_opened_answers_the_pending_purchase_with_its_checkout() -> None:
    b, stripe = bus(), FakeStripe()
    outcome = await buy(b, stripe)
    assert isinstance(outcome, Decided)
    answer = handlers.public(outcome.known)
    assert answer == read_model(b)
    assert (answer.status, answer.amount_minor, answer.version) == ("pending", 14_900, 2)
    assert answer.checkout_url == "https://checkout.stripe.com/c/pay/cs_test_5f0c6b7e"
    assert types(b) == ["payment.purchase-created", "payment.checkout-opened"]
    (asked,) = stripe.calls
    assert (asked.amount_minor, asked.currency, asked.tier_revision) == (14_900, "USD", 2)


@pytest.mark.asyncio
async def test_stripe_down_leaves_it_pending_and_a_retry_resumes_the_same_purchase() -> None:
    b = bus()
    down = await buy(b, FakeStripe(PaymentProviderUnavailable("connection refused")))
    assert isinstance(down, handlers.ProviderFailed) and down.unavailable
    assert down.purchase_id == PID and "connection refused" in down.detail
    assert types(b) == ["payment.purchase-created"]
    pending = read_model(b)
    assert pending is not None and (pending.status, pending.checkout_url) == ("pending", None)
    resumed = await buy(b, FakeStripe())
    assert isinstance(resumed, Decided) and resumed.known.state.checkout_url is not None
    # The creation was a duplicate: one purchase, two events, no second creation.
    assert types(b) == ["payment.purchase-created", "payment.checkout-opened"]
    assert [c.command_id for c in b.sent[:1]] == [b.sent[1].command_id]


@pytest.mark.asyncio
async def test_stripe_refusing_is_a_provider_error_and_nothing_is_opened() -> None:
    b = bus()
    refused = await buy(b, FakeStripe(PaymentProviderError("amount too small")))
    assert isinstance(refused, handlers.ProviderFailed) and not refused.unavailable
    assert types(b) == ["payment.purchase-created"]


@pytest.mark.asyncio
async def test_an_open_step_undecided_in_time_is_pending_and_the_retry_answers_it() -> None:
    b, stripe = bus(), FakeStripe()
    b.undecided.add("payment.open-checkout")
    assert isinstance(await buy(b, stripe), Pending)
    b.undecided.clear()
    again = await buy(b, stripe)
    # Opened by the earlier attempt: its decision is answered again, not made twice.
    assert isinstance(again, Decided) and again.duplicate
    assert handlers.public(again.known) == read_model(b)
    assert types(b) == ["payment.purchase-created", "payment.checkout-opened"]


@pytest.mark.asyncio
async def test_a_create_undecided_in_time_is_pending_before_stripe_is_called() -> None:
    b, stripe = bus(), FakeStripe()
    b.undecided.add("payment.create-purchase")
    assert isinstance(await buy(b, stripe), Pending)
    assert stripe.calls == []


@pytest.mark.asyncio
async def test_a_purchase_paid_before_the_retry_answers_what_is_recorded() -> None:
    b = bus()
    await buy(b, FakeStripe(PaymentProviderUnavailable("timeout")))
    # Stripe made the session although its answer was lost, and the buyer paid it.
    await b.send(handlers.COMMANDS_TOPIC, make_command(
        CompletePurchase(stripe_event_id="evt_1", checkout_session_id="cs_test_5f0c6b7e",
                         payment_intent_id="pi_1", amount_minor=14_900, currency="USD"),
        aggregate_id=PID, command_id=stripe_command_id("evt_1"), issued_at=AT, actor="stripe"))
    outcome = await buy(b, FakeStripe())
    assert isinstance(outcome, handlers.Recorded)
    assert outcome.current == read_model(b) and outcome.current is not None
    assert outcome.current.status == "paid"
    assert outcome.created is not None and outcome.created.version == 1


@pytest.mark.asyncio
async def test_replies_without_events_answer_the_read_models_row() -> None:
    b, stripe = bus(), FakeStripe()
    await buy(b, stripe)
    b.trim = True
    outcome = await buy(b, stripe)
    assert isinstance(outcome, handlers.Recorded) and outcome.created is None
    assert outcome.current == read_model(b)


@pytest.mark.asyncio
async def test_a_purchase_id_already_granted_is_rejected_and_stripe_never_called() -> None:
    b, stripe = bus(), FakeStripe()
    granted = await grant(b)
    assert isinstance(granted, Decided)
    outcome = await buy(b, stripe)
    assert isinstance(outcome, Rejected) and outcome.reason == "purchase-exists"
    assert stripe.calls == []


@pytest.mark.parametrize(("tier", "currency", "reason"), [
    (None, None, "tier-not-found"),
    (TIER.model_copy(update={"status": "retired"}), None, "tier-retired"),
    (TIER, "EUR", "currency-mismatch"),
])
@pytest.mark.asyncio
async def test_a_tier_not_on_sale_as_asked_is_refused_before_anything_is_sent(
        tier: TierView | None, currency: str | None, reason: str) -> None:
    b, stripe = bus(), FakeStripe()
    outcome = await buy(b, stripe, tier=tier, currency=currency)
    assert isinstance(outcome, handlers.TierRefused) and outcome.reason == reason
    assert b.sent == [] and stripe.calls == []


async def grant(b: DecidingBus, *, user_known: bool = True) -> handlers.GrantOutcome:
    async def read_tier(tier_id: str) -> TierView | None:
        return TIER

    async def user_exists(user_id: str) -> bool:
        return user_known

    async def read_purchase(purchase_id: str) -> PurchasePublic | None:
        return read_model(b)

    return await handlers.grant(b, b.registry, handlers.GrantTier(
        purchase_id=PID, admin="admin-1", user_id=BUYER, tier_id="starter-25k",
        reason="conference demo"), read_tier=read_tier, user_exists=user_exists,
        read_purchase=read_purchase)


@pytest.mark.asyncio
async def test_a_grant_answers_the_granted_purchase_with_nothing_to_pay() -> None:
    b = bus()
    outcome = await grant(b)
    assert isinstance(outcome, Decided)
    answer = handlers.public(outcome.known)
    assert answer == read_model(b)
    assert (answer.status, answer.amount_minor, answer.checkout_url) == ("granted", 0, None)
    assert b.log[0].actor == "admin-1"


@pytest.mark.asyncio
async def test_a_grant_for_an_unknown_user_sends_nothing() -> None:
    b = bus()
    assert isinstance(await grant(b, user_known=False), handlers.UserUnknown)
    assert b.sent == []


def test_an_older_snapshot_without_the_checkout_url_still_loads() -> None:
    agg = PurchaseAggregate()
    data = agg.dump(agg.initial(PID))
    del data["checkout_url"]
    assert agg.load(data) == agg.initial(PID)


# Stripe's webhooks -----------------------------------------------------------------------------

PAID_SESSION = {"id": "cs_test_1", "object": "checkout.session", "payment_status": "paid",
                "amount_total": 14_900, "currency": "usd", "payment_intent": "pi_1",
                "client_reference_id": PID, "metadata": {"purchase_id": PID}}


def stripe(event_id: str, kind: str, obj: dict[str, object]) -> dict[str, object]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


class Parked:
    def __init__(self) -> None:
        self.letters: list[tuple[str, str]] = []

    async def __call__(self, reason: str, detail: str) -> None:
        self.letters.append((reason, detail))


async def known(found: object) -> str | None:
    return PID


async def unknown(found: object) -> str | None:
    return None


@pytest.mark.asyncio
async def test_a_paid_session_completes_the_purchase_once_however_often_delivered() -> None:
    b, parked = bus(), Parked()
    await buy(b, FakeStripe())
    event = stripe("evt_paid", "checkout.session.completed", PAID_SESSION)
    for _ in range(2):
        receipt = await handlers.receive_stripe_event(b, event, find_purchase=known,
                                                      park=parked)
        assert receipt == handlers.Receipt(event_id="evt_paid", action="command-sent",
                                           purchase_id=PID)
    assert b.sent[-1].command_id == b.sent[-2].command_id == stripe_command_id("evt_paid")
    assert types(b).count("payment.purchase-completed") == 1 and parked.letters == []
    paid = read_model(b)
    assert paid is not None and paid.status == "paid"


@pytest.mark.asyncio
async def test_an_event_of_no_purchase_is_parked_never_sent() -> None:
    b, parked = bus(), Parked()
    receipt = await handlers.receive_stripe_event(
        b, stripe("evt_lost", "checkout.session.completed", PAID_SESSION),
        find_purchase=unknown, park=parked, grace_s=0.0)
    assert receipt.action == "dead-lettered" and b.sent == []
    assert [reason for reason, _ in parked.letters] == ["unknown-purchase"]


@pytest.mark.asyncio
async def test_a_malformed_event_is_parked_and_an_uninteresting_one_ignored() -> None:
    b, parked = bus(), Parked()
    malformed = await handlers.receive_stripe_event(
        b, {"id": "evt_x"}, find_purchase=known, park=parked)
    ignored = await handlers.receive_stripe_event(
        b, stripe("evt_c", "customer.created", {"id": "cus_1"}), find_purchase=known,
        park=parked)
    assert (malformed.action, ignored.action) == ("dead-lettered", "ignored")
    assert [reason for reason, _ in parked.letters] == ["malformed"] and b.sent == []
