"""Given events, when a command, then events: the tier aggregate's pure decisions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from core.domain.tiers import Tier, TierAggregate
from core.seeds import DEFAULT_TIERS
from kernel.aggregate import DecideContext
from schemas.envelope import CommandPayload, EventPayload
from schemas.tier import (
    CreateTier,
    ReactivateTier,
    RetireTier,
    ReviseTier,
    TierCommandRejected,
    TierCreated,
    TierReactivated,
    TierRetired,
    TierRevised,
    TierTerms,
)

AGG = TierAggregate()
CTX = DecideContext(now=datetime(2026, 1, 1, tzinfo=UTC), command_id=uuid.UUID(int=1),
                    actor="admin-1")
TERMS = DEFAULT_TIERS["starter-10k"]
CHEAPER = TERMS.model_copy(update={"price_minor": 7_900})


def given(*events: EventPayload) -> Tier:
    state = AGG.initial("starter-10k")
    for event in events:
        state = AGG.evolve(state, event)
    return state


def when(state: Tier, command: CommandPayload) -> list[EventPayload]:
    return AGG.decide(command, state, CTX)


def rejected(events: list[EventPayload]) -> str:
    assert len(events) == 1 and isinstance(events[0], TierCommandRejected), events
    assert events[0].command_id == CTX.command_id
    return events[0].reason


def test_create_when_absent_is_created_at_revision_1() -> None:
    assert when(given(), CreateTier(terms=TERMS)) == [TierCreated(terms=TERMS)]
    state = given(TierCreated(terms=TERMS))
    assert (state.status, state.revision, state.terms) == ("active", 1, TERMS)


def test_create_when_exists_is_rejected_tier_exists() -> None:
    assert rejected(when(given(TierCreated(terms=TERMS)), CreateTier(terms=CHEAPER))) == \
        "tier-exists"


@pytest.mark.parametrize("command", [ReviseTier(terms=TERMS), RetireTier(reason="x"),
                                     ReactivateTier()])
def test_any_change_to_an_absent_tier_is_rejected_not_found(command: CommandPayload) -> None:
    assert rejected(when(given(), command)) == "tier-not-found"


def test_revise_with_new_terms_is_the_next_revision() -> None:
    state = given(TierCreated(terms=TERMS))
    assert when(state, ReviseTier(terms=CHEAPER)) == [TierRevised(revision=2, terms=CHEAPER)]
    state = AGG.evolve(state, TierRevised(revision=2, terms=CHEAPER))
    assert when(state, ReviseTier(terms=TERMS)) == [TierRevised(revision=3, terms=TERMS)]


def test_revise_with_the_same_terms_is_rejected_unchanged() -> None:
    state = given(TierCreated(terms=TERMS), TierRevised(revision=2, terms=CHEAPER))
    assert rejected(when(state, ReviseTier(terms=CHEAPER))) == "terms-unchanged"


def test_a_retired_tier_can_still_be_revised_and_stays_retired() -> None:
    state = given(TierCreated(terms=TERMS), TierRetired(reason="sold out"))
    events = when(state, ReviseTier(terms=CHEAPER))
    assert events == [TierRevised(revision=2, terms=CHEAPER)]
    assert AGG.evolve(state, events[0]).status == "retired"


def test_retire_then_retire_again_is_rejected_tier_retired() -> None:
    state = given(TierCreated(terms=TERMS))
    assert when(state, RetireTier(reason="replaced")) == [TierRetired(reason="replaced")]
    state = AGG.evolve(state, TierRetired(reason="replaced"))
    assert rejected(when(state, RetireTier(reason="again"))) == "tier-retired"


def test_reactivate_only_a_retired_tier() -> None:
    active = given(TierCreated(terms=TERMS))
    assert rejected(when(active, ReactivateTier())) == "tier-active"
    retired = AGG.evolve(active, TierRetired(reason="x"))
    assert when(retired, ReactivateTier()) == [TierReactivated()]
    assert AGG.evolve(retired, TierReactivated()).status == "active"


def test_a_rejection_changes_nothing() -> None:
    state = given(TierCreated(terms=TERMS))
    event = TierCommandRejected(command_id=uuid.uuid4(), command_type="tier.create",
                                reason="tier-exists")
    assert AGG.evolve(state, event) == state


def test_dump_and_load_round_trip() -> None:
    for state in (given(), given(TierCreated(terms=TERMS), TierRetired(reason="x"))):
        assert AGG.load(AGG.dump(state)) == state


# A command sequence: what an admin might send, in any order.
_commands = st.lists(st.one_of(
    st.just(CreateTier(terms=TERMS)),
    st.sampled_from([TERMS, CHEAPER, TERMS.model_copy(update={"name": "Renamed"})]).map(
        lambda t: ReviseTier(terms=t)),
    st.just(RetireTier(reason="x")),
    st.just(ReactivateTier()),
), max_size=40)


@for_all(_commands)
def test_revisions_strictly_increase_by_one(commands: list[CommandPayload]) -> None:
    state = AGG.initial("starter-10k")
    revisions: list[int] = []
    for command in commands:
        for event in when(state, command):
            if isinstance(event, TierCreated | TierRevised):
                revisions.append(event.revision)
                assert event.terms != state.terms  # a revision always changes the terms
            state = AGG.evolve(state, event)
            assert AGG.load(AGG.dump(state)) == state
    assert revisions == list(range(1, len(revisions) + 1))
    assert state.revision == len(revisions)


def test_terms_equal_by_value_so_a_copy_is_unchanged() -> None:
    copy = TierTerms.model_validate(TERMS.model_dump(mode="json"))
    state = given(TierCreated(terms=TERMS))
    assert rejected(when(state, ReviseTier(terms=copy))) == "terms-unchanged"
