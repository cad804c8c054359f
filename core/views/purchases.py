"""Queries over the `purchases` read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from kernel.pg import page_by_key
from schemas.payment import PurchaseStatus
from schemas.tier import TierCurrency

COLUMNS = (
    "purchase_id, user_id, tier_id, tier_revision, amount_minor, currency, status, "
    "checkout_session_id, checkout_url, created_at, updated_at, version"
)

EXAMPLE_PURCHASE: dict[str, Any] = {
    "purchase_id": "5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a",
    "user_id": "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02", "tier_id": "starter-25k",
    "tier_revision": 1, "amount_minor": 14900, "currency": "USD", "status": "paid",
    "checkout_session_id": "cs_test_a1b2c3",
    "checkout_url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3",
    "created_at": "2026-01-01T12:00:00Z", "updated_at": "2026-01-01T12:03:41Z", "version": 3,
}


class PurchasePublic(BaseModel):
    """A purchase as its buyer (or an admin) sees it."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [EXAMPLE_PURCHASE]})

    purchase_id: str = Field(examples=["5f0c6b7e-2d4a-4c1e-9b8f-3a7d2e1c0b9a"])
    user_id: str
    tier_id: str = Field(examples=["starter-25k"])
    tier_revision: int = Field(ge=1, description="the tier revision whose terms were sold")
    amount_minor: int = Field(description="price in minor units; 0 for a grant")
    currency: TierCurrency
    status: PurchaseStatus
    checkout_session_id: str | None = None
    checkout_url: str | None = Field(default=None,
                                     description="where the buyer pays (Stripe Checkout)")
    created_at: datetime
    updated_at: datetime
    version: int = Field(ge=1, description="sequence of the last event the row reflects")


async def get_purchase(conn: psycopg.AsyncConnection, purchase_id: str) -> PurchasePublic | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM purchases WHERE purchase_id = %s",
                          (purchase_id,))
        row = await cur.fetchone()
    return None if row is None else PurchasePublic.model_validate(row)


async def list_purchases(conn: psycopg.AsyncConnection, *, user_id: str | None,
                         after: str | None, limit: int) -> list[PurchasePublic]:
    """Purchases by id (of one user, or all), strictly after `after`, at most `limit`."""
    rows = await page_by_key(conn, table="purchases", columns=COLUMNS, key="purchase_id",
                             after=after, limit=limit, equal={"user_id": user_id})
    return [PurchasePublic.model_validate(r) for r in rows]


async def purchase_of_payment_intent(conn: psycopg.AsyncConnection,
                                     payment_intent_id: str) -> str | None:
    """The purchase paid by a Stripe PaymentIntent, once its completion is in the read model."""
    cur = await conn.execute("SELECT purchase_id FROM purchases WHERE payment_intent_id = %s",
                             (payment_intent_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])
