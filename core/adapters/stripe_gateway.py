"""Stripe through its official library: Checkout Sessions out, webhook signatures in.

The client's API base comes from settings (`Settings.stripe_base`): stripe-mock for the mock
key, Stripe itself for a real key, or any base set explicitly. Requests go through the
library's async httpx client, so the event loop never blocks on Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import stripe

from core.config import CoreSettings as Settings
from core.exceptions import CoreError

SIGNATURE_INVALID = "webhook-signature-invalid"
PAYLOAD_INVALID = "webhook-payload-invalid"


class PaymentProviderUnavailable(CoreError):
    """Stripe could not be reached (connection refused, timeout)."""


class PaymentProviderError(CoreError):
    """Stripe answered, but refused or failed the request."""


class WebhookRejected(CoreError):
    """A webhook whose signature, timestamp or body is not acceptable."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug = slug
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class CheckoutRequest:
    purchase_id: str
    user_id: str
    tier_id: str
    tier_revision: int
    product_name: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class StripeGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = stripe.HTTPXClient(timeout=settings.stripe_timeout_s)
        self.client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_base},
            http_client=self.http,
            max_network_retries=1,
        )

    async def close(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe

    async def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        """A one-item payment session; the purchase id rides in every place Stripe echoes it."""
        metadata = {"purchase_id": request.purchase_id, "user_id": request.user_id,
                    "tier_id": request.tier_id, "tier_revision": str(request.tier_revision)}
        base = self.settings.public_base_url.rstrip("/")
        params: Any = {
            "mode": "payment",
            "client_reference_id": request.purchase_id,
            "metadata": metadata,
            # On the PaymentIntent too, so its charges, refunds and disputes lead back here.
            "payment_intent_data": {"metadata": metadata},
            "line_items": [{"quantity": 1, "price_data": {
                "currency": request.currency.lower(),
                "unit_amount": request.amount_minor,
                "product_data": {"name": request.product_name},
            }}],
            "success_url": f"{base}/purchases/{request.purchase_id}?checkout=success",
            "cancel_url": f"{base}/purchases/{request.purchase_id}?checkout=cancelled",
        }
        try:
            # Stripe's own idempotency: a retried purchase gets the same session, not a second.
            session = await self.client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"checkout-{request.purchase_id}"})
        except stripe.APIConnectionError as exc:
            raise PaymentProviderUnavailable(str(exc.user_message or exc)) from exc
        except stripe.StripeError as exc:
            raise PaymentProviderError(str(exc.user_message or exc)) from exc
        if not session.url:
            raise PaymentProviderError(f"checkout session {session.id} came without a URL")
        return CheckoutSession(id=session.id, url=session.url)

    def verify_webhook(self, body: bytes, signature: str | None) -> dict[str, Any]:
        """The event of a webhook whose signature holds on the raw body, else WebhookRejected."""
        if not signature:
            raise WebhookRejected(SIGNATURE_INVALID, "the Stripe-Signature header is missing")
        try:
            stripe.WebhookSignature.verify_header(
                body.decode("utf-8", errors="replace"), signature,
                self.settings.stripe_webhook_secret.get_secret_value(),
                tolerance=self.settings.stripe_webhook_tolerance_s)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(SIGNATURE_INVALID, str(exc.user_message or exc)) from None
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise WebhookRejected(PAYLOAD_INVALID, "the body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookRejected(PAYLOAD_INVALID, "the body is not a Stripe event object")
        return event
