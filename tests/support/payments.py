"""Test material for payments: tier terms to sell, and Stripe's webhook signing scheme.

The signer is written from Stripe's documented scheme, not taken from the library under test,
so the verification in the API is checked against an independent implementation:
`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any

import orjson

from schemas.tier import RuleSet, TierPhase, TierTerms


def sample_terms(*, price_minor: int = 9900, currency: str = "USD") -> TierTerms:
    """A one-phase challenge tier priced `price_minor` in `currency`."""
    rules = RuleSet(daily_loss_limit_pct=Decimal("5"), max_loss_pct=Decimal("10"),
                    profit_target_pct=Decimal("8"))
    return TierTerms(name="Starter 25k", account_size=25_000, price_minor=price_minor,
                     currency=currency,
                     phases=(TierPhase(name="challenge", rules=rules),))


def stripe_signature(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value Stripe would send with `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def stripe_event(event_id: str, kind: str, obj: dict[str, Any]) -> bytes:
    """A Stripe event's JSON body as delivered to a webhook endpoint."""
    return orjson.dumps({"id": event_id, "object": "event", "type": kind,
                         "api_version": "2025-01-27", "created": int(time.time()),
                         "livemode": False, "data": {"object": obj}})
