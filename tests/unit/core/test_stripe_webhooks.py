"""Stripe webhooks, pure parts: signature verification on the raw body, event translation."""

from __future__ import annotations

import time

import orjson
import pytest
from pydantic import SecretStr

from core.adapters.stripe_events import Ignored, Malformed, WebhookCommand, translate
from core.adapters.stripe_gateway import (
    PAYLOAD_INVALID,
    SIGNATURE_INVALID,
    StripeGateway,
    WebhookRejected,
)
from kernel.settings import STRIPE_API_BASE
from propstream.settings import PlatformSettings as Settings
from schemas.payment import CompletePurchase, RecordDispute, RecordRefund, stripe_command_id
from tests.support.payments import stripe_event, stripe_signature

SECRET = "whsec_unit_test_secret"
PURCHASE = "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"
SESSION = {"id": "cs_test_1", "object": "checkout.session", "payment_status": "paid",
           "amount_total": 9900, "currency": "usd", "payment_intent": "pi_1",
           "client_reference_id": PURCHASE, "metadata": {"purchase_id": PURCHASE}}


@pytest.fixture
def gateway() -> StripeGateway:
    return StripeGateway(Settings(stripe_webhook_secret=SecretStr(SECRET),
                                  stripe_webhook_tolerance_s=300))


def test_a_correctly_signed_body_is_accepted(gateway: StripeGateway) -> None:
    body = stripe_event("evt_1", "checkout.session.completed", SESSION)
    event = gateway.verify_webhook(body, stripe_signature(body, SECRET))
    assert event["id"] == "evt_1"


@pytest.mark.parametrize("case", ["missing", "wrong-secret", "tampered", "old", "garbage"])
def test_signature_problems_are_refused(gateway: StripeGateway, case: str) -> None:
    body = stripe_event("evt_1", "checkout.session.completed", SESSION)
    header: str | None = {
        "missing": None,
        "wrong-secret": stripe_signature(body, "whsec_other"),
        "tampered": stripe_signature(body.replace(b"9900", b"9901"), SECRET),
        "old": stripe_signature(body, SECRET, timestamp=int(time.time()) - 301),
        "garbage": "not a signature",
    }[case]
    with pytest.raises(WebhookRejected) as refused:
        gateway.verify_webhook(body, header)
    assert refused.value.slug == SIGNATURE_INVALID


def test_a_signed_body_that_is_not_json_is_refused_as_payload(gateway: StripeGateway) -> None:
    body = b"{not json"
    with pytest.raises(WebhookRejected) as refused:
        gateway.verify_webhook(body, stripe_signature(body, SECRET))
    assert refused.value.slug == PAYLOAD_INVALID


def test_paid_session_becomes_complete_purchase() -> None:
    found = translate(orjson.loads(stripe_event("evt_1", "checkout.session.completed",
                                                SESSION)))
    assert found == WebhookCommand("evt_1", CompletePurchase(
        stripe_event_id="evt_1", checkout_session_id="cs_test_1", payment_intent_id="pi_1",
        amount_minor=9900, currency="USD"), PURCHASE, "pi_1")


def test_unpaid_or_foreign_sessions_and_other_types_are_ignored() -> None:
    unpaid = {**SESSION, "payment_status": "unpaid"}
    foreign = {**SESSION, "metadata": {}, "client_reference_id": None}
    for kind, obj in (("checkout.session.completed", unpaid),
                      ("checkout.session.completed", foreign),
                      ("customer.created", {"id": "cus_1"})):
        assert isinstance(translate(orjson.loads(stripe_event("evt_2", kind, obj))), Ignored)


def test_refund_and_dispute_find_the_purchase_by_metadata_or_intent() -> None:
    charge = {"id": "ch_1", "amount_refunded": 9900, "currency": "usd", "payment_intent": "pi_1",
              "metadata": {"purchase_id": PURCHASE}}
    refund = translate(orjson.loads(stripe_event("evt_r", "charge.refunded", charge)))
    assert refund == WebhookCommand("evt_r", RecordRefund(
        stripe_event_id="evt_r", amount_minor=9900, currency="USD"), PURCHASE, "pi_1")
    dispute = translate(orjson.loads(stripe_event("evt_d", "charge.dispute.created", {
        "id": "dp_1", "payment_intent": "pi_1", "metadata": {}})))
    assert dispute == WebhookCommand("evt_d", RecordDispute(
        stripe_event_id="evt_d", dispute_id="dp_1"), None, "pi_1")


def test_events_without_usable_fields_are_malformed() -> None:
    assert isinstance(translate({"id": "evt_x"}), Malformed)
    no_amount = {k: v for k, v in SESSION.items() if k != "amount_total"}
    assert isinstance(translate(orjson.loads(stripe_event(
        "evt_y", "checkout.session.completed", no_amount))), Malformed)
    yen = {**SESSION, "currency": "jpy"}
    assert isinstance(translate(orjson.loads(stripe_event(
        "evt_z", "checkout.session.completed", yen))), Malformed)


def test_every_delivery_of_a_stripe_event_is_the_same_command() -> None:
    assert stripe_command_id("evt_1") == stripe_command_id("evt_1")
    assert stripe_command_id("evt_1") != stripe_command_id("evt_2")


def test_stripe_base_is_the_mock_for_the_mock_key_and_stripe_for_a_real_one() -> None:
    assert Settings(stripe_mock_port=12999).stripe_base == "http://127.0.0.1:12999"
    real = Settings(stripe_api_key=SecretStr("sk_test_51RealKey"))
    assert real.stripe_base == STRIPE_API_BASE
    pinned = Settings(stripe_api_key=SecretStr("sk_test_51RealKey"),
                      stripe_api_base="http://proxy:1")
    assert pinned.stripe_base == "http://proxy:1"


def test_prod_refuses_the_dev_webhook_secret() -> None:
    with pytest.raises(ValueError, match="PROPSTREAM_STRIPE_WEBHOOK_SECRET"):
        Settings(env="prod", secret_key=SecretStr("a-real-secret"))
