"""Stripe webhook events -> payment commands: a pure translation, no IO.

Which purchase an event belongs to: a Checkout Session carries it in `metadata.purchase_id`
(and `client_reference_id`); a charge or dispute carries it in `metadata.purchase_id` when its
PaymentIntent's metadata was copied there, and otherwise only names its `payment_intent`,
which the caller looks up in the read model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas.envelope import CommandPayload
from schemas.payment import CompletePurchase, RecordDispute, RecordRefund

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Both mean "the session is paid"; the second comes for delayed methods (bank debits).
PAID_SESSION_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


@dataclass(frozen=True)
class WebhookCommand:
    """The command a Stripe event becomes, and how to find its purchase."""

    stripe_event_id: str
    command: CommandPayload
    purchase_id: str | None
    payment_intent_id: str | None


@dataclass(frozen=True)
class Ignored:
    """A verified event we take no action on, and why (logged, answered 200)."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """A verified event whose fields do not make a valid command (dead-lettered)."""

    reason: str


def translate(event: dict[str, Any]) -> WebhookCommand | Ignored | Malformed:
    event_id, kind = event.get("id"), event.get("type")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) \
        else None
    if not isinstance(event_id, str) or not isinstance(kind, str) or not isinstance(obj, dict):
        return Malformed("not a Stripe event: id, type or data.object missing")
    try:
        if kind in PAID_SESSION_EVENTS:
            return _paid_session(event_id, obj)
        if kind == "charge.refunded":
            return _charge_refunded(event_id, obj)
        if kind == "charge.dispute.created":
            return _dispute_created(event_id, obj)
    except (ValidationError, TypeError, AttributeError, KeyError) as exc:
        return Malformed(f"{kind} {event_id}: {str(exc)[:300]}")
    return Ignored(f"{kind} is not an event payments act on")


def _purchase_id(obj: dict[str, Any], *fallbacks: Any) -> str | None:
    metadata = obj.get("metadata") or {}
    for candidate in (metadata.get("purchase_id"), *fallbacks):
        if isinstance(candidate, str) and UUID_RE.fullmatch(candidate):
            return candidate
    return None


def _intent(obj: dict[str, Any]) -> str | None:
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):  # expanded
        intent = intent.get("id")
    return intent if isinstance(intent, str) else None


def _paid_session(event_id: str, obj: dict[str, Any]) -> WebhookCommand | Ignored:
    if obj.get("payment_status") != "paid":
        return Ignored(f"session {obj.get('id')} is {obj.get('payment_status')}, not paid")
    purchase_id = _purchase_id(obj, obj.get("client_reference_id"))
    if purchase_id is None:
        return Ignored(f"session {obj.get('id')} is not a propstream purchase")
    command = CompletePurchase(
        stripe_event_id=event_id, checkout_session_id=obj["id"],
        payment_intent_id=_intent(obj), amount_minor=obj["amount_total"],
        currency=str(obj["currency"]).upper())
    return WebhookCommand(event_id, command, purchase_id, _intent(obj))


def _charge_refunded(event_id: str, obj: dict[str, Any]) -> WebhookCommand:
    command = RecordRefund(stripe_event_id=event_id, amount_minor=obj["amount_refunded"],
                           currency=str(obj["currency"]).upper())
    return WebhookCommand(event_id, command, _purchase_id(obj), _intent(obj))


def _dispute_created(event_id: str, obj: dict[str, Any]) -> WebhookCommand:
    command = RecordDispute(stripe_event_id=event_id, dispute_id=obj["id"])
    return WebhookCommand(event_id, command, _purchase_id(obj), _intent(obj))
