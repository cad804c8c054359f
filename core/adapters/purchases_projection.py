"""The `purchases` read model: one row per purchase, and every Stripe event it recorded.

`payment_events` keeps which Stripe event touched which purchase, for the record; the
webhook also finds a charge's or dispute's purchase here through its payment intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg

from kernel.projection import Applied, RowTable
from schemas.payment import (
    CheckoutOpened,
    PaymentCommandRejected,
    PurchaseCompleted,
    PurchaseCreated,
    PurchaseDisputed,
    PurchaseGranted,
    PurchaseRefunded,
)

COLUMNS = (
    "purchase_id", "user_id", "tier_id", "tier_revision", "amount_minor", "currency", "status",
    "checkout_session_id", "checkout_url", "payment_intent_id", "created_at", "updated_at",
    "version",
)

DDL = (
    """
    CREATE TABLE IF NOT EXISTS purchases (
        purchase_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        tier_id TEXT NOT NULL,
        tier_revision INT NOT NULL,
        amount_minor BIGINT NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL,
        checkout_session_id TEXT,
        checkout_url TEXT,
        payment_intent_id TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS purchases_by_user ON purchases (user_id, purchase_id)",
    "CREATE INDEX IF NOT EXISTS purchases_by_intent ON purchases (payment_intent_id)",
    """
    CREATE TABLE IF NOT EXISTS payment_events (
        stripe_event_id TEXT PRIMARY KEY,
        purchase_id TEXT NOT NULL,
        type TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
    )
    """,
)


class Row(NamedTuple):
    purchase_id: str
    user_id: str
    tier_id: str
    tier_revision: int
    amount_minor: int
    currency: str
    status: str
    checkout_session_id: str | None
    checkout_url: str | None
    payment_intent_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int


def fold(row: Row | None, applied: Applied) -> Row | None:
    """Return the row after one event; events at or below the row's version are skipped."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row
    at = env.occurred_at
    match event:
        case PurchaseCreated() | PurchaseGranted() if row is None:
            paid = isinstance(event, PurchaseCreated)
            return Row(env.aggregate_id, event.user_id, event.tier_id, event.tier_revision,
                       event.terms.price_minor if paid else 0, event.terms.currency,
                       "pending" if paid else "granted", None, None, None, at, at,
                       env.sequence)
        case CheckoutOpened() if row is not None:
            return row._replace(checkout_session_id=event.checkout_session_id,
                                checkout_url=event.checkout_url, updated_at=at,
                                version=env.sequence)
        case PurchaseCompleted() if row is not None:
            # A refund or dispute delivered before the payment keeps the row reversed.
            status = "paid" if row.status == "pending" else row.status
            return row._replace(status=status, checkout_session_id=event.checkout_session_id,
                                payment_intent_id=event.payment_intent_id, updated_at=at,
                                version=env.sequence)
        case PurchaseRefunded() if row is not None:
            return row._replace(status="refunded", updated_at=at, version=env.sequence)
        case PurchaseDisputed() if row is not None:
            return row._replace(status="disputed", updated_at=at, version=env.sequence)
        case PaymentCommandRejected():
            return row if row is None else row._replace(version=env.sequence)
    return row


def recorded_stripe_event(applied: Applied) -> tuple[str, str, str, datetime] | None:
    """The `payment_events` row of an event that came from Stripe, if it did."""
    event = applied.payload
    if isinstance(event, PurchaseCompleted | PurchaseRefunded | PurchaseDisputed):
        return (event.stripe_event_id, applied.envelope.aggregate_id, event.TYPE,
                applied.envelope.occurred_at)
    return None


TABLE = RowTable("purchases", COLUMNS, Row)


class PurchasesProjection:
    name = "purchases"
    topics: tuple[str, ...] = ("payment.events",)
    tables: tuple[str, ...] = ("purchases", "payment_events")

    def ddl(self) -> Sequence[str]:
        return DDL

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        stripe_rows: list[tuple[str, str, str, datetime]] = []

        def step(row: Row | None, applied: Applied) -> Row | None:
            after = fold(row, applied)
            if after is not None and after is not row:
                recorded = recorded_stripe_event(applied)
                if recorded is not None:
                    stripe_rows.append(recorded)
            return after

        await TABLE.fold(conn, events, step)
        if stripe_rows:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO payment_events (stripe_event_id, purchase_id, type, received_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (stripe_event_id) DO NOTHING",
                    stripe_rows)
