"""Parked Stripe webhooks are replayable into the payment decider, exactly once.

Against the real platform: a genuine (signed) `checkout.session.completed` arrives for a
purchase that does not exist yet, is answered 200 and parked; the purchase is then created;
`propstream dlq replay payment.webhooks.dlq` completes it, and a second replay changes nothing.
A parked body not sealed by the platform (written to the topic by anyone else) is refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from core.entrypoints.http.purchases import PurchaseCreate
from kernel.commands import command_id_for
from tests.conftest import process_env
from tests.integration.helpers import produce, read_topic
from tests.security.conftest import Platform, Who
from tests.support.payments import sample_terms, stripe_event, stripe_signature

pytestmark = pytest.mark.integration


def _replay(platform: Platform) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "propstream", "dlq", "replay", "payment.webhooks.dlq"],
        env=process_env(platform.settings) | {"COLUMNS": "400"}, capture_output=True,
        text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return " ".join(result.stdout.replace("│", " ").split())  # the table's cells, spaced


def _eventually(check: Any, *, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _completions(platform: Platform, purchase_id: str) -> list[Any]:
    import asyncio

    events = asyncio.run(read_topic(platform.settings, "payment.events"))
    return [e for e in events
            if e.aggregate_id == purchase_id and e.type == "payment.purchase-completed"]


def _active_tier(platform: Platform, admin: Who) -> str:
    tier_id = f"wh-{uuid.uuid4().hex[:8]}"
    with platform.client(admin) as c:
        made = c.post("/tiers", json={"tier_id": tier_id,
                                      "terms": sample_terms().model_dump(mode="json")})
        assert made.status_code in (201, 202), made.text
        _eventually(lambda: c.get(f"/tiers/{tier_id}").status_code == 200,
                    what="the tier in the read model")
    return tier_id


def test_a_parked_webhook_completes_its_purchase_once_it_exists_exactly_once(
        platform: Platform, people: dict[str, Who]) -> None:
    trader = platform.user("trader")
    tier_id = _active_tier(platform, people["admin"])
    key = uuid.uuid4().hex
    # A purchase's id follows from the buyer's Idempotency-Key, so it can be named before it
    # exists, as a Checkout Session completed ahead of the purchase's decision would.
    assert trader.user_id is not None
    purchase_id = str(command_id_for(key, caller=trader.user_id, scope="purchase",
                                     body=PurchaseCreate(tier_id=tier_id)))
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    body = stripe_event(event_id, "checkout.session.completed", {
        "id": f"cs_test_{uuid.uuid4().hex[:8]}", "object": "checkout.session",
        "payment_status": "paid", "amount_total": 9900, "currency": "usd",
        "payment_intent": f"pi_{uuid.uuid4().hex[:12]}", "client_reference_id": purchase_id,
        "metadata": {"purchase_id": purchase_id}})
    secret = platform.settings.stripe_webhook_secret.get_secret_value()
    with platform.client() as c:
        parked = c.post("/webhooks/stripe", content=body,
                        headers={"Content-Type": "application/json",
                                 "Stripe-Signature": stripe_signature(body, secret)})
    assert parked.status_code == 200, parked.text
    assert parked.json()["action"] == "dead-lettered"

    with platform.client(trader) as c:
        bought = c.post("/purchases", json={"tier_id": tier_id},
                        headers={"Idempotency-Key": key})
    assert bought.status_code == 201, bought.text
    assert bought.json()["purchase_id"] == purchase_id

    said = _replay(platform)
    assert f"{event_id} command-sent {purchase_id}" in said, said
    _eventually(lambda: _completions(platform, purchase_id), what="the completion")
    with platform.client(trader) as c:
        _eventually(lambda: c.get(f"/purchases/{purchase_id}").json()["status"] == "paid",
                    what="the purchase paid in the read model")

    again = _replay(platform)
    assert f"{event_id} command-sent {purchase_id}" in again, again
    time.sleep(2)  # time for a second completion, were there to be one
    [completed] = _completions(platform, purchase_id)
    assert completed.payload["stripe_event_id"] == event_id


def test_a_parked_body_without_the_platforms_seal_is_never_sent(platform: Platform) -> None:
    """Whoever can write to the dead-letter topic cannot make a replay forge a payment."""
    import asyncio

    forged_id = f"evt_forged_{uuid.uuid4().hex[:8]}"
    purchase_id = str(uuid.uuid4())
    body = stripe_event(forged_id, "checkout.session.completed", {
        "id": "cs_test_forged", "object": "checkout.session", "payment_status": "paid",
        "amount_total": 1, "currency": "usd", "metadata": {"purchase_id": purchase_id}})
    asyncio.run(produce(platform.settings, "payment.webhooks.dlq", [(forged_id.encode(), body)]))
    said = _replay(platform)
    assert f"{forged_id} refused" in said, said
    commands = asyncio.run(read_topic(platform.settings, "payment.commands", raw=True))
    assert not [m for m in commands if m.key == purchase_id.encode()]
