"""Purchases for real: Kafka, PostgreSQL, Redis, the payment decider process and stripe-mock.

Tiers are given as events on `tier.events` (the tier side is tested on its own) and folded
by the tiers projection in-process; purchases go through the API, Stripe webhooks are signed
with Stripe's scheme by tests.support.payments, independently of the library under test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from core.adapters.tiers_projection import TiersProjection
from kernel.infra.procs import port_open
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from propstream.processes import projection_runner
from schemas import default_registry
from schemas.codec import encode
from schemas.envelope import EventPayload, make_event
from schemas.identity import Role
from schemas.tier import TierCreated, TierRetired
from tests.integration.helpers import (
    PlatformProcess,
    asgi_client,
    assert_problem,
    bearer,
    produce,
    read_topic,
    wait_until,
)
from tests.support.payments import sample_terms, stripe_event, stripe_signature

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ALICE = "00000000-0000-4000-8000-00000000a11c"
BOB = "00000000-0000-4000-8000-00000000b0b0"
ADMIN = "00000000-0000-4000-8000-00000000ad01"
TIER = "starter-25k"


@pytest.fixture
def stripe_mock(settings: Settings) -> str:
    """The stripe-mock `infra up` started; its absence fails the test, it never skips it."""
    if not port_open(settings.host, settings.stripe_mock_port):
        pytest.fail(f"stripe-mock is not listening on {settings.host}:{settings.stripe_mock_port};"
                    " `propstream infra up` builds and starts it (it needs Go on PATH)")
    return settings.stripe_base


@pytest_asyncio.fixture(loop_scope="session")
async def tiers(settings: Settings) -> None:
    """`starter-25k` (9900 USD) active and `old-10k` retired, in the tiers read model."""
    at = datetime.now(UTC)

    def record(tier_id: str, payload: EventPayload, seq: int) -> tuple[bytes, bytes]:
        cause = uuid.uuid4()
        return tier_id.encode(), encode(make_event(
            payload, aggregate_id=tier_id, sequence=seq, occurred_at=at, correlation_id=cause,
            causation_id=cause, event_id=uuid.uuid4()))

    await produce(settings, "tier.events", [
        record(TIER, TierCreated(terms=sample_terms()), 1),
        record("old-10k", TierCreated(terms=sample_terms(price_minor=4900)), 1),
        record("old-10k", TierRetired(reason="replaced"), 2),
    ])
    runner = ProjectionRunner(settings, TiersProjection(), default_registry())
    await runner.start()
    try:
        await runner.run(until_caught_up=True, timeout=30)
    finally:
        await runner.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def payments(settings: Settings, spawn: type, tiers: None,
                   stripe_mock: str) -> AsyncIterator[PlatformProcess]:
    """The payment and user deciders and the purchases and users projections running; yields
    the purchases projection."""
    await spawn("decider", "user").start().ready()
    await spawn("projection", "users").start().ready()
    await spawn("decider", "payment").start().ready()
    yield await spawn("projection", "purchases").start().ready()


def as_user(settings: Settings, user_id: str, role: Role = "trader") -> dict[str, str]:
    return bearer(settings, role=role, user_id=user_id)


async def webhook(api: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    """POST a webhook as Stripe does: no bearer token, the signature header only."""
    request = api.build_request("POST", "/webhooks/stripe", content=body,
                                headers={"Content-Type": "application/json"})
    del request.headers["authorization"]
    if signature is not None:
        request.headers["Stripe-Signature"] = signature
    return await api.send(request)


def secret(settings: Settings) -> str:
    return settings.stripe_webhook_secret.get_secret_value()


def paid_session(purchase: dict[str, Any], *, amount: int = 9900,
                 currency: str = "usd") -> dict[str, Any]:
    return {"id": purchase["checkout_session_id"] or "cs_test_x", "object": "checkout.session",
            "payment_status": "paid", "amount_total": amount, "currency": currency,
            "payment_intent": f"pi_{purchase['purchase_id'][:8]}",
            "client_reference_id": purchase["purchase_id"],
            "metadata": {"purchase_id": purchase["purchase_id"]}}


async def deliver(api: httpx.AsyncClient, settings: Settings, event_id: str, kind: str,
                  obj: dict[str, Any]) -> dict[str, Any]:
    body = stripe_event(event_id, kind, obj)
    answer = await webhook(api, body, stripe_signature(body, secret(settings)))
    assert answer.status_code == 200, answer.text
    receipt: dict[str, Any] = answer.json()
    return receipt


async def buy(api: httpx.AsyncClient, settings: Settings, user: str,
              key: str | None = None) -> dict[str, Any]:
    headers = as_user(settings, user)
    if key is not None:
        headers["Idempotency-Key"] = key
    created = await api.post("/purchases", json={"tier_id": TIER}, headers=headers, timeout=60)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def status_becomes(api: httpx.AsyncClient, purchase_id: str, status: str) -> None:
    async def reached() -> bool:
        got = await api.get(f"/purchases/{purchase_id}")
        return got.status_code == 200 and got.json()["status"] == status

    await wait_until(reached, timeout=30, what=f"purchase {purchase_id} {status}")


def types_of(events: list[Any], purchase_id: str) -> list[str]:
    return [e.type for e in events if e.aggregate_id == purchase_id]


async def test_purchase_paid_once_by_a_signed_webhook_delivered_twice(
        settings: Settings, api: httpx.AsyncClient, payments: None) -> None:
    purchase = await buy(api, settings, ALICE)
    assert purchase["status"] == "pending"
    assert (purchase["tier_id"], purchase["amount_minor"], purchase["currency"]) == \
        (TIER, 9900, "USD")
    assert purchase["checkout_url"].startswith("https://checkout.stripe.com/")
    assert purchase["checkout_session_id"].startswith("cs_")
    pid = purchase["purchase_id"]

    for _ in range(2):  # Stripe redelivers: the same event, the same command id
        receipt = await deliver(api, settings, "evt_paid_1", "checkout.session.completed",
                                paid_session(purchase))
        assert receipt == {"event_id": "evt_paid_1", "action": "command-sent",
                           "purchase_id": pid, "detail": ""}
    await status_becomes(api, pid, "paid")
    # Another event completing it again is refused by the decider, not applied twice.
    await deliver(api, settings, "evt_paid_2", "checkout.session.completed",
                  paid_session(purchase))

    async def decided_all() -> bool:
        return len(types_of(await read_topic(settings, "payment.events"), pid)) == 4

    await wait_until(decided_all, timeout=30, what="the second completion decided")
    events = [e for e in await read_topic(settings, "payment.events") if e.aggregate_id == pid]
    assert [e.type for e in events] == [
        "payment.purchase-created", "payment.checkout-opened", "payment.purchase-completed",
        "payment.command-rejected"]
    completed = events[2].payload
    assert (completed["user_id"], completed["amount_minor"], completed["stripe_event_id"],
            completed["terms"]["price_minor"]) == (ALICE, 9900, "evt_paid_1", 9900)
    assert events[3].payload["reason"] == "already-completed"

    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        await conn.execute(f"SET search_path TO {settings.pg_schema}")
        cur = await conn.execute("SELECT stripe_event_id, type FROM payment_events "
                                 "WHERE purchase_id = %s", (pid,))
        assert await cur.fetchall() == [("evt_paid_1", "payment.purchase-completed")]
    finally:
        await conn.close()

    # Isolation: Bob sees neither Alice's purchase nor its existence; admins see all.
    bob = as_user(settings, BOB)
    assert_problem(await api.get(f"/purchases/{pid}", headers=bob), 404, "purchase-not-found")
    assert (await api.get("/purchases", headers=bob)).json()["items"] == []
    sneaky = await api.get("/purchases", params={"user_id": ALICE}, headers=bob)
    assert sneaky.json()["items"] == []
    mine = (await api.get("/purchases", headers=as_user(settings, ALICE))).json()["items"]
    assert [p["purchase_id"] for p in mine] == [pid]
    everyone = (await api.get("/purchases", params={"user_id": ALICE})).json()["items"]
    assert [p["status"] for p in everyone] == ["paid"]


async def test_retry_with_the_same_idempotency_key_is_the_same_purchase(
        settings: Settings, api: httpx.AsyncClient, payments: None) -> None:
    first = await buy(api, settings, ALICE, key="buy-once")
    again = await buy(api, settings, ALICE, key="buy-once")
    assert again["purchase_id"] == first["purchase_id"]
    assert again["checkout_url"] == first["checkout_url"]
    other = await buy(api, settings, BOB, key="buy-once")  # keys are per user
    assert other["purchase_id"] != first["purchase_id"]


@pytest.mark.parametrize("case", ["bad-signature", "missing-header", "old-timestamp",
                                  "not-json"])
async def test_unverifiable_webhooks_are_400_and_emit_nothing(
        settings: Settings, api: httpx.AsyncClient, case: str) -> None:
    pid = str(uuid.uuid4())
    purchase = {"purchase_id": pid, "checkout_session_id": "cs_test_1"}
    body = stripe_event("evt_bad", "checkout.session.completed", paid_session(purchase))
    if case == "not-json":
        body = b'{"id": "evt_bad", "type": '
    signature = {
        "bad-signature": stripe_signature(body, "whsec_not_ours"),
        "missing-header": None,
        "old-timestamp": stripe_signature(
            body, secret(settings),
            timestamp=int(time.time()) - settings.stripe_webhook_tolerance_s - 5),
        "not-json": stripe_signature(body, secret(settings)),
    }[case]
    answer = await webhook(api, body, signature)
    slug = "webhook-payload-invalid" if case == "not-json" else "webhook-signature-invalid"
    assert_problem(answer, 400, slug)
    for topic in ("payment.commands", "payment.events", "payment.webhooks.dlq"):
        assert await read_topic(settings, topic, raw=True) == [], topic


async def test_refund_first_dispute_by_intent_mismatch_unknown_grants_and_rebuild(
        settings: Settings, api: httpx.AsyncClient, payments: PlatformProcess) -> None:
    purchase = await buy(api, settings, ALICE)
    pid = purchase["purchase_id"]
    intent = f"pi_{pid[:8]}"
    # Out of order: the refund is delivered before the payment it reverses.
    await deliver(api, settings, "evt_refund", "charge.refunded", {
        "id": "ch_1", "object": "charge", "amount_refunded": 9900, "currency": "usd",
        "payment_intent": intent, "metadata": {"purchase_id": pid}})
    await status_becomes(api, pid, "refunded")
    await deliver(api, settings, "evt_paid", "checkout.session.completed",
                  paid_session(purchase))
    # A dispute naming only the payment intent: found through the read model.
    await wait_until(lambda: _intent_known(settings, intent), timeout=30,
                     what="the payment intent in the read model")
    receipt = await deliver(api, settings, "evt_dispute", "charge.dispute.created", {
        "id": "dp_1", "object": "dispute", "payment_intent": intent, "metadata": {}})
    assert receipt["purchase_id"] == pid
    await status_becomes(api, pid, "disputed")

    # Paid the wrong amount: recorded as a rejection, never completed.
    cheap = await buy(api, settings, BOB)
    await deliver(api, settings, "evt_cheap", "checkout.session.completed",
                  paid_session(cheap, amount=100))
    # A signed event about no purchase of ours: 200, parked on the dead letters.
    unknown = await deliver(api, settings, "evt_unknown", "charge.refunded", {
        "id": "ch_9", "amount_refunded": 1, "currency": "usd", "payment_intent": "pi_nobody",
        "metadata": {}})
    assert unknown["action"] == "dead-lettered"

    # Admin grant: the offline path, recorded as its own event with the admin as actor.
    trader_grant = await api.post("/admin/grants", json={
        "user_id": BOB, "tier_id": TIER, "reason": "demo"}, headers=as_user(settings, BOB))
    assert_problem(trader_grant, 403, "forbidden")
    nobody = await api.post("/admin/grants", json={"user_id": BOB, "tier_id": TIER,
                                                    "reason": "conference demo"})
    assert_problem(nobody, 404, "user-not-found")
    registered = await api.post("/auth/register", json={
        "email": "carol.grant@example.com", "password": "correct horse battery 9",
        "display_name": "Carol"})
    assert registered.status_code == 201, registered.text
    carol = registered.json()["user_id"]
    granted = await api.post("/admin/grants", json={"user_id": carol, "tier_id": TIER,
                                                     "reason": "conference demo"})
    assert granted.status_code == 201, granted.text
    assert (granted.json()["status"], granted.json()["user_id"]) == ("granted", carol)
    gid = granted.json()["purchase_id"]

    async def all_decided() -> bool:
        events = await read_topic(settings, "payment.events")
        return len(types_of(events, cheap["purchase_id"])) == 3 and bool(types_of(events, gid))

    await wait_until(all_decided, timeout=30, what="mismatch and grant decided")
    events = await read_topic(settings, "payment.events")
    assert types_of(events, pid) == [
        "payment.purchase-created", "payment.checkout-opened", "payment.purchase-refunded",
        "payment.purchase-completed", "payment.purchase-disputed"]
    mismatch = [e for e in events if e.aggregate_id == cheap["purchase_id"]][-1]
    assert (mismatch.type, mismatch.payload["reason"]) == \
        ("payment.command-rejected", "amount-mismatch")
    await status_becomes(api, cheap["purchase_id"], "pending")
    [grant_event] = [e for e in events if e.aggregate_id == gid]
    assert grant_event.type == "payment.purchase-granted"
    assert (grant_event.payload["granted_by"], grant_event.payload["reason"]) == \
        (ADMIN, "conference demo")
    dead = await read_topic(settings, "payment.webhooks.dlq", raw=True)
    assert [dict(m.headers)["x-stripe-event-id"] for m in dead] == [b"evt_unknown"]

    # Disposable: the read model rebuilt from the log equals the live one.
    await status_becomes(api, gid, "granted")
    payments.stop()
    live = await _read_model(settings)
    runner = projection_runner(settings, "purchases")
    await runner.drop()
    await runner.start()
    try:
        await runner.run(until_caught_up=True, timeout=60)
    finally:
        await runner.stop()
    assert await _read_model(settings) == live
    assert len(live[0]) == 3 and len(live[1]) == 3  # purchases; Stripe events recorded


async def _read_model(settings: Settings) -> tuple[list[Any], list[Any]]:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        await conn.execute(f"SET search_path TO {settings.pg_schema}")
        purchases = await (await conn.execute(
            "SELECT * FROM purchases ORDER BY purchase_id")).fetchall()
        # received_at is when the event occurred on the log, so it survives the rebuild.
        stripe = await (await conn.execute(
            "SELECT * FROM payment_events ORDER BY stripe_event_id")).fetchall()
        return purchases, stripe
    finally:
        await conn.close()


async def _intent_known(settings: Settings, intent: str) -> bool:
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    try:
        await conn.execute(f"SET search_path TO {settings.pg_schema}")
        cur = await conn.execute("SELECT 1 FROM purchases WHERE payment_intent_id = %s",
                                 (intent,))
        return await cur.fetchone() is not None
    finally:
        await conn.close()


async def test_tier_problems_and_roles_are_refused_before_anything_is_sent(
        settings: Settings, api: httpx.AsyncClient, tiers: None) -> None:
    alice = as_user(settings, ALICE)
    cases = [
        ({"tier_id": "no-such-tier"}, alice, 404, "tier-not-found"),
        ({"tier_id": "old-10k"}, alice, 409, "tier-retired"),
        ({"tier_id": TIER, "currency": "EUR"}, alice, 422, "currency-mismatch"),
        ({"tier_id": TIER, "price": 1}, alice, 422, "validation-failed"),
        ({"tier_id": TIER}, as_user(settings, BOB, role="analyst"), 403, "forbidden"),
    ]
    for body, headers, status, slug in cases:
        assert_problem(await api.post("/purchases", json=body, headers=headers), status, slug)
    assert await read_topic(settings, "payment.commands", raw=True) == []


async def test_stripe_unreachable_is_503_the_purchase_stays_pending_and_a_retry_resumes_it(
        settings: Settings, api: httpx.AsyncClient, payments: None) -> None:
    from core.bootstrap import api as make_api

    # A real (non-mock) key pointed at a closed port: nothing listens there.
    offline = settings.model_copy(update={"stripe_api_key": SecretStr("sk_test_offline"),
                                          "stripe_api_base": "http://127.0.0.1:9"})
    headers = {**as_user(settings, ALICE), "Idempotency-Key": "buy-while-stripe-is-down"}
    async with asgi_client(make_api(offline), headers=headers) as client:
        answer = await client.post("/purchases", json={"tier_id": TIER}, timeout=60)
        problem = assert_problem(answer, 503, "payment-provider-unavailable")
        pid = problem["purchase_id"]
        await status_becomes(client, pid, "pending")
        assert (await client.get(f"/purchases/{pid}")).json()["checkout_url"] is None

    # Stripe is back: the same request with the same key completes the same purchase.
    resumed = await api.post("/purchases", json={"tier_id": TIER}, headers=headers, timeout=60)
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["purchase_id"] == pid
    assert resumed.json()["checkout_url"].startswith("https://checkout.stripe.com/")
    events = await read_topic(settings, "payment.events")
    assert types_of(events, pid) == ["payment.purchase-created", "payment.checkout-opened"]
