"""POST /webhooks/stripe: Stripe's events, verified on the raw body, turned into commands.

Nothing reaches the log unless the `Stripe-Signature` holds for the exact bytes received
under our webhook secret and its timestamp is within the tolerance. The command id of a
Stripe event is derived from the Stripe event id, so every redelivery of that event is the
same command and the payment decider gives it one effect. The answer comes once the command
is durably on the log, without waiting for the decision: Stripe needs a quick 2xx.

A verified event we cannot attribute to a purchase the read model knows (the purchase its
metadata names, or the completed one its payment intent paid, within a short grace for
projection lag), or whose fields make no valid command, is answered 200 and parked on
`payment.webhooks.dlq` with the reason and a seal (HMAC under the webhook secret: it was
verified), for an operator to replay once the purchase exists (`propstream dlq replay
payment.webhooks.dlq`, core.adapters.stripe_intake: the same translation, the same command
id). A command is never sent for an unknown purchase: the decider would reject it and keep
that answer for the command id, so a later replay would be a duplicate of the rejection.
Why 200: a non-2xx makes Stripe retry for days and, after repeated failures, disable the
endpoint, so one foreign event would put every webhook of ours at risk; the event was
genuine (signed), so the dead letter keeps it instead of losing it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Request
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from core.adapters.stripe_events import WebhookCommand
from core.adapters.stripe_gateway import WebhookRejected
from core.adapters.stripe_intake import (
    DEAD_LETTERS,
    SEAL_HEADER,
    minimise,
    purchase_of,
    seal,
)
from core.config import CoreSettings
from core.entrypoints.http.deps import BusDep
from core.entrypoints.http.purchases import GatewayDep
from core.handlers.purchases import receive_stripe_event
from kernel.auth import public
from kernel.commands import CommandBus
from kernel.http import PROBLEM_SCHEMA, Problem
from kernel.observability import get_logger
from kernel.ratelimit import rate_limited

log = get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

# Per IP only (Stripe sends no credentials), and generous: Stripe bursts after an outage.
WEBHOOK_LIMIT = Depends(rate_limited("stripe-webhooks", rate=200.0, burst=1000))

EXAMPLE_EVENT = {
    "id": "evt_1Example", "object": "event", "type": "checkout.session.completed",
    "data": {"object": {"id": "cs_test_a1b2c3", "object": "checkout.session",
                        "payment_status": "paid", "amount_total": 9900, "currency": "usd",
                        "payment_intent": "pi_1Example",
                        "client_reference_id": "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a",
                        "metadata": {"purchase_id": "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"}}},
}


class WebhookReceipt(BaseModel):
    """What became of the event: a command on the log, nothing, or a dead letter."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "event_id": "evt_1QzX2bC3dE4fG5hI", "action": "command-sent",
        "purchase_id": "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a", "detail": ""}]})

    event_id: str
    action: Literal["command-sent", "ignored", "dead-lettered"]
    purchase_id: str | None = None
    detail: str = ""


@router.post(
    "/stripe", operation_id="receiveStripeWebhook", response_model=WebhookReceipt,
    summary="Stripe webhook endpoint (signed by Stripe, no bearer token)",
    responses={400: PROBLEM_SCHEMA, 413: PROBLEM_SCHEMA, 429: PROBLEM_SCHEMA,
               503: PROBLEM_SCHEMA},
    dependencies=[public("Stripe calls it without credentials: the Stripe-Signature is "
                         "verified over the exact body before anything is done"),
                  WEBHOOK_LIMIT],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "description": "a Stripe event, verified byte for byte"},
        "example": EXAMPLE_EVENT}}}},
)
async def receive(
    request: Request, bus: BusDep, gateway: GatewayDep,
    stripe_signature: Annotated[str | None, Header(
        alias="Stripe-Signature", max_length=2000,
        description="t=<unix seconds>,v1=<HMAC-SHA256 of '<t>.<raw body>'>",
        examples=["t=1767268800,v1=5257a869e7ecebeda32affa62cdca3fa"
                  "51cad7e77a0e56ff536d0ce8e108d8bd"],
    )] = None,
) -> WebhookReceipt:
    body = await request.body()
    try:
        event = gateway.verify_webhook(body, stripe_signature)
    except WebhookRejected as exc:
        log.warning("stripe webhook refused", reason=exc.slug, detail=exc.detail[:200])
        raise Problem(400, exc.slug, "Webhook refused", exc.detail) from None
    event_id = str(event.get("id", ""))

    async def park(reason: str, detail: str) -> None:
        await _dead_letter(bus, body, event_id=event_id, reason=reason, detail=detail)

    try:
        receipt = await receive_stripe_event(
            bus, event, find_purchase=lambda found: _purchase_of(request, found), park=park)
    except KafkaError as exc:
        raise _log_unavailable(exc) from None
    return WebhookReceipt(event_id=receipt.event_id, action=receipt.action,
                          purchase_id=receipt.purchase_id, detail=receipt.detail)


async def _purchase_of(request: Request, found: WebhookCommand) -> str | None:
    pool: AsyncConnectionPool = request.app.state.pool
    async with pool.connection() as conn:
        return await purchase_of(conn, found)


async def _dead_letter(bus: CommandBus, body: bytes, *, event_id: str, reason: str,
                       detail: str) -> None:
    assert bus.producer is not None
    assert isinstance(bus.settings, CoreSettings)  # the core API's bus carries them
    log.warning("stripe webhook dead-lettered", event_id=event_id, reason=reason, detail=detail)
    body = minimise(body)  # kept for 30 days: without the buyer's email, name and address
    headers: list[tuple[str, bytes]] = [
        ("x-error-reason", reason.encode()), ("x-error", detail.encode()[:2000]),
        ("x-stripe-event-id", event_id.encode()[:255]), ("x-consumer", b"stripe-webhook"),
        # Verified above: the seal lets a replay trust the body without Stripe's signature.
        (SEAL_HEADER, seal(bus.settings, body))]
    try:
        await bus.producer.send_and_wait(bus.settings.topic(DEAD_LETTERS), value=body,
                                         key=event_id.encode() or None, headers=headers)
    except KafkaError as exc:
        raise _log_unavailable(exc) from None


def _log_unavailable(exc: Exception) -> Problem:
    log.warning("stripe webhook not stored: Kafka unavailable", error=str(exc)[:200])
    # A 5xx makes Stripe deliver the event again later, which is what we want here.
    return Problem(503, "log-unavailable", "The event could not be stored", "Stripe retries",
                   headers={"Retry-After": "10"})
