"""The tiers read model's fold: idempotent by sequence, every revision kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from core.adapters.tiers_projection import Revision, Row, fold
from core.seeds import DEFAULT_TIERS
from kernel.projection import Applied
from schemas.envelope import EventPayload, make_event
from schemas.tier import (
    TierCommandRejected,
    TierCreated,
    TierReactivated,
    TierRetired,
    TierRevised,
    TierTerms,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TERMS = DEFAULT_TIERS["standard-50k"]
RENAMED = TERMS.model_copy(update={"name": "Standard 50k (2026)"})


def applied(payload: EventPayload, sequence: int) -> Applied:
    cause = uuid.uuid4()
    env = make_event(payload, aggregate_id="standard-50k", sequence=sequence,
                     occurred_at=T0 + timedelta(seconds=sequence), correlation_id=cause,
                     causation_id=cause, event_id=uuid.uuid4())
    return Applied(env, payload)


def run(*events: Applied) -> tuple[Row | None, list[Revision]]:
    row: Row | None = None
    revisions: list[Revision] = []
    for event in events:
        row, revision = fold(row, event)
        if revision is not None:
            revisions.append(revision)
    return row, revisions


def test_created_makes_an_active_row_and_revision_1() -> None:
    row, revisions = run(applied(TierCreated(terms=TERMS), 1))
    assert row is not None
    assert (row.tier_id, row.name, row.status, row.revision, row.version) == (
        "standard-50k", "Standard 50k", "active", 1, 1)
    assert TierTerms.model_validate(orjson.loads(row.terms)) == TERMS
    assert [(r.revision, r.revised_at) for r in revisions] == [(1, T0 + timedelta(seconds=1))]


def test_revised_moves_the_row_and_keeps_both_revisions() -> None:
    row, revisions = run(applied(TierCreated(terms=TERMS), 1),
                         applied(TierRevised(revision=2, terms=RENAMED), 2))
    assert row is not None
    assert (row.name, row.revision, row.version) == ("Standard 50k (2026)", 2, 2)
    assert row.created_at == T0 + timedelta(seconds=1)
    assert row.updated_at == T0 + timedelta(seconds=2)
    assert [TierTerms.model_validate(orjson.loads(r.terms)) for r in revisions] == [
        TERMS, RENAMED]


def test_retire_and_reactivate_change_only_the_status() -> None:
    row, _ = run(applied(TierCreated(terms=TERMS), 1), applied(TierRetired(reason="x"), 2))
    assert row is not None and (row.status, row.revision) == ("retired", 1)
    row, revision = fold(row, applied(TierReactivated(), 3))
    assert row is not None and row.status == "active" and revision is None


def test_an_event_already_applied_changes_nothing() -> None:
    created = applied(TierCreated(terms=TERMS), 1)
    revised = applied(TierRevised(revision=2, terms=RENAMED), 2)
    row, _ = run(created, revised)
    assert fold(row, revised) == (row, None)
    assert fold(row, created) == (row, None)


def test_a_rejection_bumps_the_version_only_once_the_tier_exists() -> None:
    rejection = TierCommandRejected(command_id=uuid.uuid4(), command_type="tier.retire",
                                    reason="tier-not-found")
    assert run(applied(rejection, 1)) == (None, [])
    row, _ = run(applied(rejection, 1), applied(TierCreated(terms=TERMS), 2),
                 applied(rejection, 3))
    assert row is not None and (row.version, row.revision) == (3, 1)
