"""The `tiers` read model: the catalogue as it stands, and every revision's terms kept apart.

`tiers` holds one row per tier (its current revision and status); `tier_revisions` keeps the
terms of each revision forever, so a purchase made at revision 1 can still be shown, and
priced, by the terms it was sold with after the tier moved on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg

from kernel.pg import copy_upsert
from kernel.projection import Applied, RowTable
from kernel.projection_small import RowChanges
from schemas.tier import (
    TierCommandRejected,
    TierCreated,
    TierReactivated,
    TierRetired,
    TierRevised,
    TierTerms,
)

COLUMNS = ("tier_id", "name", "status", "revision", "terms", "created_at", "updated_at",
           "version")
REVISION_COLUMNS = ("tier_id", "revision", "terms", "revised_at")

DDL = (
    """
    CREATE TABLE IF NOT EXISTS tiers (
        tier_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        revision INT NOT NULL,
        terms JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        version BIGINT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS tier_revisions (
        tier_id TEXT NOT NULL,
        revision INT NOT NULL,
        terms JSONB NOT NULL,
        revised_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (tier_id, revision)
    )
    """,
)


class Row(NamedTuple):
    """One `tiers` row; `terms` is the JSON text PostgreSQL stores."""

    tier_id: str
    name: str
    status: str
    revision: int
    terms: str
    created_at: datetime
    updated_at: datetime
    version: int


class Revision(NamedTuple):
    tier_id: str
    revision: int
    terms: str
    revised_at: datetime


def terms_json(terms: TierTerms) -> str:
    # pydantic's own serialiser, twice as fast as dumping a dict; key order does not matter,
    # as jsonb stores its canonical form.
    return terms.model_dump_json()


def fold(row: Row | None, applied: Applied) -> tuple[Row | None, Revision | None]:
    """The row after one event, and the revision it adds; events at or below the row's
    version were applied already and change nothing."""
    env, event = applied.envelope, applied.payload
    if row is not None and env.sequence <= row.version:
        return row, None
    at, tier_id, seq = env.occurred_at, env.aggregate_id, env.sequence
    match event:
        case TierCreated(revision=revision, terms=terms) if row is None:
            text = terms_json(terms)
            return (Row(tier_id, terms.name, "active", revision, text, at, at, seq),
                    Revision(tier_id, revision, text, at))
        case TierRevised(revision=revision, terms=terms) if row is not None:
            text = terms_json(terms)
            return (row._replace(name=terms.name, revision=revision, terms=text, updated_at=at,
                                 version=seq),
                    Revision(tier_id, revision, text, at))
        case TierRetired() if row is not None:
            return row._replace(status="retired", updated_at=at, version=seq), None
        case TierReactivated() if row is not None:
            return row._replace(status="active", updated_at=at, version=seq), None
        case TierCommandRejected() if row is not None:
            return row._replace(version=seq), None
    return row, None


TABLE = RowTable("tiers", COLUMNS, Row, as_text=frozenset({"terms"}))


class TiersProjection:
    name = "tiers"
    topics: tuple[str, ...] = ("tier.events",)
    tables: tuple[str, ...] = ("tiers", "tier_revisions")

    def ddl(self) -> Sequence[str]:
        return DDL

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        revisions: list[Revision] = []

        def step(row: Row | None, applied: Applied) -> Row | None:
            after, revision = fold(row, applied)
            if revision is not None:
                revisions.append(revision)
            return after

        await TABLE.fold(conn, events, step)
        if revisions:
            await copy_upsert(conn, table="tier_revisions", columns=REVISION_COLUMNS,
                              key=("tier_id", "revision"), rows=revisions)

    async def changes(self, conn: psycopg.AsyncConnection,
                      events: Sequence[Applied]) -> list[RowChanges]:
        """A small batch's rows and revisions, unwritten: the store writes them with its
        offsets in one statement (kernel.projection_small); revisions are upserted on
        (tier_id, revision) as `apply`'s COPY-upsert does."""
        revisions: list[Revision] = []

        def step(row: Row | None, applied: Applied) -> Row | None:
            after, revision = fold(row, applied)
            if revision is not None:
                revisions.append(revision)
            return after

        tiers = await TABLE.step_changes(conn, events, step)
        return [*tiers, RowChanges("tier_revisions", REVISION_COLUMNS, ("tier_id", "revision"),
                                   [], revisions)]
