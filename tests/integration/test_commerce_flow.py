"""Issue 5 end to end: register -> buy a tier through stripe-mock -> signed webhook -> an
assessment and a funded virtual account, all through the HTTP API of real processes, with
every decider, projection and policy running against the real Kafka, PostgreSQL and Redis.
Then the isolation sweep: a second trader sees none of it, on every endpoint."""

from __future__ import annotations

import socket
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kernel.settings import Settings
from propstream.processes import PLATFORM
from tests.integration.helpers import assert_problem, bearer, read_topic, wait_until
from tests.support.payments import stripe_event, stripe_signature

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "correct horse battery 42"
TIER = {
    "tier_id": "flow-25k",
    "terms": {
        "name": "Flow 25k", "account_size": 25000, "price_minor": 14900, "currency": "USD",
        "phases": [
            {"name": "challenge", "rules": {"daily_loss_limit_pct": "5", "max_loss_pct": "10",
                                            "profit_target_pct": "8", "min_trading_days": 4}},
            {"name": "funded", "rules": {"daily_loss_limit_pct": "5", "max_loss_pct": "10"}},
        ],
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _platform(settings: Settings, spawn: type) -> tuple[Settings, str]:
    """Every core process of the platform in the test's namespace; the API's base URL."""
    background = [spawn(*argv).start() for argv in PLATFORM.values()
                  if argv[0] in ("decider", "projection", "policy")]
    for process in background:
        await process.ready()
    api_settings = settings.model_copy(update={"api_port": _free_port()})
    api = spawn("api", with_settings=api_settings).start()
    base = f"http://{settings.host}:{api_settings.api_port}"

    async def ready() -> bool:
        assert api.proc is not None and api.proc.poll() is None, api.output()[-2000:]
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(ready, timeout=60, what="the API's /readyz")
    return api_settings, base


async def _register_and_login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    registered = await client.post("/auth/register", json={
        "email": email, "password": PASSWORD, "display_name": email.split("@")[0]})
    assert registered.status_code == 201, registered.text
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _checkout_completed(purchase: dict[str, Any], session_id: str, event_id: str) -> bytes:
    """The body Stripe posts when a Checkout Session is paid (the fields we read)."""
    return stripe_event(event_id, "checkout.session.completed", {
        "id": session_id, "object": "checkout.session", "payment_status": "paid",
        "status": "complete", "amount_total": purchase["amount_minor"],
        "currency": purchase["currency"].lower(),
        "client_reference_id": purchase["purchase_id"],
        "payment_intent": f"pi_{uuid.uuid4().hex[:24]}",
        "metadata": {"purchase_id": purchase["purchase_id"]},
    })


async def _until_json(client: httpx.AsyncClient, path: str, headers: dict[str, str],
                      check: Any, what: str) -> Any:
    found: list[Any] = []

    async def seen() -> bool:
        resp = await client.get(path, headers=headers)
        if resp.status_code == 200 and check(resp.json()):
            found.append(resp.json())
            return True
        return False

    await wait_until(seen, timeout=30, what=what)
    return found[-1]


async def test_register_buy_pay_then_assessment_and_funded_account_are_visible(
    settings: Settings, spawn: type,
) -> None:
    api_settings, base = await _platform(settings, spawn)
    admin = bearer(settings)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        created = await client.post("/tiers", json=TIER, headers=admin)
        assert created.status_code == 201, created.text
        alice = await _register_and_login(client, "alice.flow@example.com")
        bob = await _register_and_login(client, "bob.flow@example.com")

        bought = await client.post("/purchases", json={"tier_id": "flow-25k"}, headers=alice)
        assert bought.status_code == 201, bought.text
        purchase = bought.json()
        assert purchase["checkout_url"].startswith("http")
        assert (purchase["amount_minor"], purchase["currency"]) == (14900, "USD")

        body = _checkout_completed(purchase, purchase["checkout_session_id"], "evt_flow_1")
        secret = api_settings.stripe_webhook_secret.get_secret_value()
        forged = await client.post("/webhooks/stripe", content=body, headers={
            "Stripe-Signature": stripe_signature(body, "whsec_not_ours"),
            "content-type": "application/json"})
        assert_problem(forged, 400, "webhook-signature-invalid")
        for _ in range(2):  # Stripe delivers at least once
            delivered = await client.post("/webhooks/stripe", content=body, headers={
                "Stripe-Signature": stripe_signature(body, secret),
                "content-type": "application/json"})
            assert delivered.status_code == 200, delivered.text

        assessments = await _until_json(
            client, "/assessments", alice, lambda page: len(page["items"]) == 1,
            "alice's assessment")
        assessment = assessments["items"][0]
        assert assessment["tier_id"] == "flow-25k" and assessment["phase"] == "challenge"
        assert Decimal(str(assessment["rules"]["profit_target_pct"])) == Decimal("8")
        accounts = await _until_json(
            client, "/accounts", alice, lambda page: len(page["items"]) == 1, "alice's account")
        account = accounts["items"][0]
        assert Decimal(str(account["balance"])) == Decimal("25000")
        assert account["currency"] == "USD" and account["status"] == "open"
        paid = await client.get(f"/purchases/{purchase['purchase_id']}", headers=alice)
        assert paid.json()["status"] == "paid"

        # Isolation: bob sees nothing of alice's, and her ids are 404 to him, not 403.
        for path, key in (("/purchases", "purchase_id"), ("/assessments", "assessment_id"),
                          ("/accounts", "account_id")):
            own = await client.get(path, headers=bob)
            assert own.status_code == 200 and own.json()["items"] == [], (path, own.text)
            theirs = {"/purchases": purchase, "/assessments": assessment,
                      "/accounts": account}[path][key]
            assert (await client.get(f"{path}/{theirs}", headers=bob)).status_code == 404
        me = (await client.get("/me", headers=bob)).json()
        assert me["email"] == "bob.flow@example.com" and "password_hash" not in me

    # Exactly one of each on the log, despite the webhook delivered twice.
    completed = [e for e in await read_topic(settings, "payment.events")
                 if e.type == "payment.purchase-completed"]
    assert len(completed) == 1
    created_events = [e for e in await read_topic(settings, "assessment.events")
                      if e.type == "assessment.created"]
    opened = [e for e in await read_topic(settings, "account.events")
              if e.type == "account.opened"]
    assert len(created_events) == len(opened) == 1
