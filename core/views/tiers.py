"""Queries over the `tiers` read model: the catalogue and every revision's terms."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from kernel.pg import page_by_key
from schemas.tier import TierStatus, TierTerms

COLUMNS = "tier_id, status, revision, terms, created_at, updated_at, version"


class TierView(BaseModel):
    """A tier as the catalogue shows it: its current revision's terms and its status."""

    model_config = ConfigDict(frozen=True)

    tier_id: str = Field(examples=["starter-10k"])
    status: TierStatus
    revision: int = Field(ge=1, description="the revision a purchase made now is sold at")
    terms: TierTerms
    created_at: datetime
    updated_at: datetime
    version: int = Field(ge=1, description="sequence of the last event the row reflects")


async def get_tier(conn: psycopg.AsyncConnection, tier_id: str) -> TierView | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {COLUMNS} FROM tiers WHERE tier_id = %s", (tier_id,))
        row = await cur.fetchone()
    return None if row is None else TierView.model_validate(row)


async def get_tier_revision(conn: psycopg.AsyncConnection, tier_id: str,
                            revision: int) -> TierTerms | None:
    """The terms a tier had at `revision`, which a purchase made then keeps for ever."""
    cur = await conn.execute(
        "SELECT terms FROM tier_revisions WHERE tier_id = %s AND revision = %s",
        (tier_id, revision))
    row = await cur.fetchone()
    return None if row is None else TierTerms.model_validate(row[0])


async def list_tiers(
    conn: psycopg.AsyncConnection,
    *,
    after: str | None,
    limit: int,
    status: TierStatus | None = None,
) -> list[TierView]:
    """Tiers ordered by id, strictly after `after`, at most `limit` of them."""
    rows = await page_by_key(conn, table="tiers", columns=COLUMNS, key="tier_id",
                             after=after, limit=limit, equal={"status": status})
    return [TierView.model_validate(r) for r in rows]
