"""Re-driving parked Stripe webhooks: sealed bodies only, the live translation, the same id."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from core.adapters.stripe_events import WebhookCommand
from core.adapters.stripe_intake import SEAL_HEADER, redrive, seal
from kernel.dlq import DeadLetter
from propstream.settings import PlatformSettings as Settings
from schemas.payment import stripe_command_id
from tests.support.payments import stripe_event

SETTINGS = Settings(stripe_webhook_secret=SecretStr("whsec_unit"))
PURCHASE = "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"
PAID = stripe_event("evt_1", "checkout.session.completed", {
    "id": "cs_1", "object": "checkout.session", "payment_status": "paid", "amount_total": 9900,
    "currency": "usd", "payment_intent": "pi_1", "metadata": {"purchase_id": PURCHASE}})


def letter(body: bytes, *, mark: bytes | None) -> DeadLetter:
    headers = [("x-stripe-event-id", b"evt_1")]
    if mark is not None:
        headers.append((SEAL_HEADER, mark))
    return DeadLetter(offset=7, origin_topic="", origin_partition=-1, origin_offset=-1,
                      reason="unknown-purchase", error="", consumer="stripe-webhook",
                      failed_at_ms=0, key=b"evt_1", value=body, headers=tuple(headers))


async def known(found: WebhookCommand) -> str | None:
    return found.purchase_id


async def unknown(found: WebhookCommand) -> str | None:
    return None


def test_a_sealed_letter_whose_purchase_exists_becomes_the_live_command() -> None:
    result, command = asyncio.run(redrive(SETTINGS, letter(PAID, mark=seal(SETTINGS, PAID)),
                                          known))
    assert result.action == "command-sent" and result.purchase_id == PURCHASE
    assert command is not None
    assert command.command_id == stripe_command_id("evt_1")
    assert (command.type, command.aggregate_id, command.actor) == \
        ("payment.complete-purchase", PURCHASE, "stripe")


def test_a_sealed_letter_whose_purchase_is_still_unknown_stays_parked() -> None:
    result, command = asyncio.run(redrive(SETTINGS, letter(PAID, mark=seal(SETTINGS, PAID)),
                                          unknown))
    assert (result.action, command) == ("still-parked", None)


@pytest.mark.parametrize("mark", [None, b"", b"0" * 64, b"not-hex"])
def test_a_letter_without_a_valid_seal_is_refused(mark: bytes | None) -> None:
    result, command = asyncio.run(redrive(SETTINGS, letter(PAID, mark=mark), known))
    assert (result.action, command) == ("refused", None)


def test_a_seal_holds_for_its_body_and_secret_only() -> None:
    other = Settings(stripe_webhook_secret=SecretStr("whsec_other"))
    tampered = PAID.replace(b"9900", b"0001")
    assert asyncio.run(redrive(SETTINGS, letter(tampered, mark=seal(SETTINGS, PAID)),
                               known))[0].action == "refused"
    assert asyncio.run(redrive(other, letter(PAID, mark=seal(SETTINGS, PAID)),
                               known))[0].action == "refused"


def test_a_parked_body_keeps_what_decides_the_payment_and_drops_the_buyers_details() -> None:
    import orjson

    from core.adapters.stripe_events import translate
    from core.adapters.stripe_intake import minimise

    live = orjson.loads(PAID)
    live["data"]["object"] |= {
        "customer": "cus_9", "customer_email": "ada@example.com",
        "customer_details": {"email": "ada@example.com", "name": "Ada Lovelace",
                             "address": {"line1": "12 St James's Sq"}, "phone": "+44 20"},
        "shipping_details": {"name": "Ada Lovelace"}}
    body = orjson.dumps(live)
    parked = minimise(body)
    for personal in (b"ada@example.com", b"Ada Lovelace", b"St James", b"cus_9", b"+44"):
        assert personal in body and personal not in parked
    assert translate(orjson.loads(parked)) == translate(live)
    outcome, command = asyncio.run(redrive(SETTINGS, letter(
        parked, mark=seal(SETTINGS, parked)), known))
    assert outcome.action == "command-sent" and command is not None
