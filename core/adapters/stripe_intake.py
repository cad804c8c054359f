"""A verified Stripe event -> the payment command it becomes, or why it is parked: one path
for the webhook endpoint and for re-driving parked webhooks (`propstream dlq replay
payment.webhooks.dlq`), so a replay decides exactly as the live delivery would have.

Parked webhooks are raw Stripe JSON on `payment.webhooks.dlq`. Stripe's signature cannot be
checked again (its header is not kept and its timestamp would be stale), so the endpoint seals
each body it parks, after verifying it, with an HMAC under the webhook secret; a replay sends
only sealed bodies. Anyone able to write to the topic cannot make a replay forge a payment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson
import psycopg

from core.adapters.stripe_events import Ignored, Malformed, WebhookCommand, translate
from core.config import CoreSettings as Settings
from core.views.purchases import get_purchase, purchase_of_payment_intent
from kernel.dlq import DeadLetter, read_dead_letters
from kernel.kafka import make_producer
from kernel.pg import connect
from schemas.codec import encode
from schemas.envelope import CommandEnvelope, make_command
from schemas.payment import stripe_command_id

DEAD_LETTERS = "payment.webhooks.dlq"
COMMANDS = "payment.commands"
SEAL_HEADER = "x-verified-mac"
# How long the endpoint waits for a purchase named by an event to reach the read model: the
# purchase is decided before its Checkout Session exists, so only projection lag (well under
# a second) separates them; Stripe wants its answer within seconds.
PURCHASE_GRACE_S = 3.0

Lookup = Callable[[WebhookCommand], Awaitable[str | None]]


# What Stripe objects say about the buyer: never needed to decide a payment, and a dead-letter
# topic keeps a body for 30 days, so a parked body leaves them out (anywhere in the tree).
PERSONAL_KEYS = frozenset({
    "customer_details", "customer_email", "billing_details", "shipping", "shipping_details",
    "receipt_email", "email", "name", "phone", "address", "customer", "collected_information",
    "evidence", "evidence_details"})


def minimise(body: bytes) -> bytes:
    """The body as parked: the verified event without the buyer's personal data."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in PERSONAL_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return orjson.dumps(strip(event))


def seal(settings: Settings, body: bytes) -> bytes:
    """The platform's mark that `body` passed Stripe's signature check (hex HMAC-SHA256)."""
    key = settings.stripe_webhook_secret.get_secret_value().encode()
    return hmac.new(key, b"propstream parked webhook\n" + body, hashlib.sha256).hexdigest() \
        .encode()


def sealed(settings: Settings, body: bytes, mark: bytes) -> bool:
    return hmac.compare_digest(seal(settings, body), mark)


async def purchase_of(conn: psycopg.AsyncConnection, found: WebhookCommand) -> str | None:
    """The purchase an event is about, if the read model knows it: the one its metadata names,
    or the completed one its PaymentIntent paid."""
    if found.purchase_id is not None:
        known = await get_purchase(conn, found.purchase_id)
        return None if known is None else found.purchase_id
    if found.payment_intent_id is None:
        return None
    return await purchase_of_payment_intent(conn, found.payment_intent_id)


async def within(lookup: Lookup, found: WebhookCommand, *, grace_s: float) -> str | None:
    """`lookup`, again every 0.2 s until it finds the purchase or `grace_s` has passed."""
    deadline = time.monotonic() + grace_s
    while True:
        purchase_id = await lookup(found)
        if purchase_id is not None or time.monotonic() >= deadline:
            return purchase_id
        await asyncio.sleep(0.2)


def command_for(found: WebhookCommand, purchase_id: str) -> CommandEnvelope:
    """The command of a Stripe event: its id derives from the Stripe event id, so every
    delivery and every replay of the event is the same command, decided once."""
    return make_command(found.command, aggregate_id=purchase_id,
                        command_id=stripe_command_id(found.stripe_event_id),
                        issued_at=datetime.now(UTC), actor="stripe")


@dataclass(frozen=True)
class Redriven:
    """What a replay did with one parked webhook."""

    offset: int
    event_id: str
    action: Literal["command-sent", "still-parked", "refused", "ignored"]
    detail: str = ""
    purchase_id: str | None = None


async def redrive(settings: Settings, letter: DeadLetter, lookup: Lookup) -> tuple[
        Redriven, CommandEnvelope | None]:
    """Decide what a parked webhook becomes now (pure but for `lookup`)."""
    body = letter.value or b""
    event_id = _header(letter, "x-stripe-event-id") or _event_id_of(body)
    mark = _header(letter, SEAL_HEADER).encode()
    if not mark or not sealed(settings, body, mark):
        return Redriven(letter.offset, event_id, "refused",
                        "not sealed by this platform's webhook secret (parked before sealing, "
                        "under another secret, or not by the endpoint): have Stripe resend "
                        "the event from its dashboard instead"), None
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Redriven(letter.offset, event_id, "refused", "the body is not JSON"), None
    outcome = translate(event) if isinstance(event, dict) else Malformed("not an object")
    if isinstance(outcome, Ignored):
        return Redriven(letter.offset, event_id, "ignored", outcome.reason), None
    if isinstance(outcome, Malformed):
        return Redriven(letter.offset, event_id, "still-parked", outcome.reason), None
    purchase_id = await lookup(outcome)
    if purchase_id is None:
        return Redriven(letter.offset, event_id, "still-parked",
                        "no purchase matches its metadata or payment intent yet"), None
    return (Redriven(letter.offset, event_id, "command-sent", purchase_id=purchase_id),
            command_for(outcome, purchase_id))


async def replay_parked_webhooks(settings: Settings, *, offsets: set[int] | None = None,
                                 limit: int = 1000) -> list[Redriven]:
    """Send every parked webhook that now makes a command to `payment.commands`. Letters stay
    on the topic: replaying one twice sends the same command id, which the decider decides
    once."""
    letters = [letter for letter in await read_dead_letters(settings, DEAD_LETTERS, limit=limit)
               if offsets is None or letter.offset in offsets]
    if not letters:
        return []
    conn = await connect(settings, autocommit=True)
    producer = make_producer(settings, client_id="propstream-webhook-replay")
    await producer.start()
    results: list[Redriven] = []
    try:
        async def lookup(found: WebhookCommand) -> str | None:
            return await purchase_of(conn, found)

        for letter in letters:
            result, command = await redrive(settings, letter, lookup)
            if command is not None:
                await producer.send_and_wait(
                    settings.topic(COMMANDS), value=encode(command),
                    key=command.aggregate_id.encode(),
                    headers=[("x-replayed-from", f"{DEAD_LETTERS}@{letter.offset}".encode())])
            results.append(result)
    finally:
        await producer.stop()
        await conn.close()
    return results


def _header(letter: DeadLetter, name: str) -> str:
    for key, value in letter.headers:
        if key == name:
            return value.decode(errors="replace")
    return ""


def _event_id_of(body: bytes) -> str:
    """The event id a body claims, only to name it in the operator's table."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    claimed = event.get("id") if isinstance(event, dict) else None
    return claimed[:255] if isinstance(claimed, str) else ""
