"""Given events, when a command, then events: the assessment and account aggregates."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given as for_all
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.domain.accounts import Account, AccountAggregate
from core.domain.assessments import Assessment, AssessmentAggregate
from kernel.aggregate import DecideContext
from schemas.account import (
    AccountClosed,
    AccountCommandRejected,
    AccountOpened,
    CloseAccount,
    OpenAccount,
    account_id_for,
)
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCommandRejected,
    AssessmentCreated,
    AssessmentReversalRecorded,
    CancelAssessment,
    CreateAssessment,
    assessment_id_for,
)
from schemas.envelope import CommandPayload, EventPayload
from tests.support.purchases import terms

AGG = AssessmentAggregate()
ACCOUNTS = AccountAggregate()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE = uuid.UUID("6a1f0c3e-58b2-4d7e-9c41-2f8e6b0a3d17")
USER = uuid.UUID("0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02")
ASSESSMENT = assessment_id_for(str(PURCHASE))
CREATE = CreateAssessment(purchase_id=PURCHASE, user_id=USER, tier_id="starter-25k",
                          tier_revision=2, terms=terms(), source="stripe")


def cancel(stripe_event_id: str = "evt_1", reason: str = "refunded") -> CancelAssessment:
    return CancelAssessment.model_validate({"purchase_id": PURCHASE, "reason": reason,
                                            "stripe_event_id": stripe_event_id})


def ctx(n: int = 1) -> DecideContext:
    return DecideContext(now=NOW, command_id=uuid.UUID(int=n), actor=None)


def given(*events: EventPayload) -> Assessment:
    state = AGG.initial(ASSESSMENT)
    for event in events:
        state = AGG.evolve(state, event)
    return state


def when(state: Assessment, command: CommandPayload) -> list[EventPayload]:
    return AGG.decide(command, state, ctx())


def rejected(events: list[EventPayload]) -> list[str]:
    return [e.reason for e in events
            if isinstance(e, AssessmentCommandRejected | AccountCommandRejected)]


def test_create_starts_in_the_first_phase_with_its_rules_and_derived_account() -> None:
    [event] = when(given(), CREATE)
    assert isinstance(event, AssessmentCreated)
    assert (event.phase, event.rules) == ("challenge", CREATE.terms.phases[0].rules)
    assert str(event.account_id) == account_id_for(ASSESSMENT)
    assert (event.purchase_id, event.user_id, event.tier_revision, event.source) == (
        PURCHASE, USER, 2, "stripe")
    assert event.terms == CREATE.terms


def test_create_when_it_exists_is_rejected() -> None:
    state = given(*when(given(), CREATE))
    assert rejected(when(state, CREATE)) == ["assessment-exists"]


def test_create_after_a_cancel_is_rejected_so_no_assessment_is_ever_created() -> None:
    state = given(AssessmentCancelled(reason="refunded", stripe_event_id="evt_1"))
    assert rejected(when(state, CREATE)) == ["assessment-cancelled"]


def test_create_for_another_purchase_is_rejected() -> None:
    other = CREATE.model_copy(update={"purchase_id": uuid.uuid4()})
    assert rejected(when(given(), other)) == ["purchase-mismatch"]


def test_cancel_before_creation_cancels() -> None:
    assert when(given(), cancel()) == [AssessmentCancelled(reason="refunded",
                                                           stripe_event_id="evt_1")]


def test_cancel_of_an_active_assessment_not_trading_cancels() -> None:
    state = given(*when(given(), CREATE))
    [event] = when(state, cancel(reason="disputed"))
    assert event == AssessmentCancelled(reason="disputed", stripe_event_id="evt_1")
    assert AGG.evolve(state, event).status == "cancelled"


def test_cancel_when_trading_started_is_recorded_not_cancelled() -> None:
    state = replace(given(*when(given(), CREATE)), trading_started=True)
    [event] = when(state, cancel())
    assert event == AssessmentReversalRecorded(reason="refunded", stripe_event_id="evt_1")
    assert AGG.evolve(state, event).status == "active"


def test_second_reversal_of_a_cancelled_assessment_is_recorded() -> None:
    state = given(AssessmentCancelled(reason="refunded", stripe_event_id="evt_1"))
    assert when(state, cancel("evt_2", "disputed")) == [
        AssessmentReversalRecorded(reason="disputed", stripe_event_id="evt_2")]


def test_the_same_stripe_event_is_recorded_once() -> None:
    state = given(AssessmentCancelled(reason="refunded", stripe_event_id="evt_1"))
    assert rejected(when(state, cancel("evt_1"))) == ["stripe-event-seen"]
    trading = replace(given(*when(given(), CREATE)), trading_started=True)
    trading = given_from(trading, AssessmentReversalRecorded(reason="refunded",
                                                             stripe_event_id="evt_1"))
    assert rejected(when(trading, cancel("evt_1"))) == ["stripe-event-seen"]


def given_from(state: Assessment, *events: EventPayload) -> Assessment:
    for event in events:
        state = AGG.evolve(state, event)
    return state


def test_state_survives_a_snapshot_round_trip() -> None:
    state = given(*when(given(), CREATE), AssessmentReversalRecorded(
        reason="disputed", stripe_event_id="evt_9"))
    assert AGG.load(AGG.dump(state)) == state


# Property: whatever the order and duplication of one purchase's commands -------------------

COMMAND = st.one_of(
    st.just(CREATE),
    st.builds(cancel, st.sampled_from(["evt_r1", "evt_r2", "evt_d1"]),
              st.sampled_from(["refunded", "disputed"])),
)


@hsettings(max_examples=300, deadline=None)
@for_all(st.lists(COMMAND, min_size=1, max_size=12))
def test_any_interleaving_gives_at_most_one_creation_and_ends_cancelled_when_cancelled(
    commands: list[CommandPayload],
) -> None:
    state = given()
    created = 0
    for n, command in enumerate(commands):
        for event in AGG.decide(command, state, ctx(n)):
            created += isinstance(event, AssessmentCreated)
            state = AGG.evolve(state, event)
    assert created <= 1
    if any(isinstance(c, CancelAssessment) for c in commands):
        assert state.status == "cancelled"
    else:
        assert created == 1 and state.status == "active"
    first_cancel = next((i for i, c in enumerate(commands) if isinstance(c, CancelAssessment)),
                        None)
    if first_cancel is not None and CREATE not in commands[:first_cancel]:
        assert created == 0  # refunded before completion: never created


# The account ---------------------------------------------------------------------------------

ACCOUNT = account_id_for(ASSESSMENT)
OPEN = OpenAccount(assessment_id=uuid.UUID(ASSESSMENT), user_id=USER,
                   starting_balance=Decimal("25000"), currency="USD")


def account(*events: EventPayload) -> Account:
    state = ACCOUNTS.initial(ACCOUNT)
    for event in events:
        state = ACCOUNTS.evolve(state, event)
    return state


def test_open_gives_the_starting_balance_as_decimal() -> None:
    [event] = ACCOUNTS.decide(OPEN, account(), ctx())
    assert isinstance(event, AccountOpened)
    state = account(event)
    assert (state.status, state.balance, state.currency) == ("open", Decimal("25000"), "USD")
    assert isinstance(state.balance, Decimal)


def test_open_twice_is_rejected() -> None:
    opened = account(*ACCOUNTS.decide(OPEN, account(), ctx()))
    assert rejected(ACCOUNTS.decide(OPEN, opened, ctx())) == ["account-exists"]


def test_open_for_another_assessment_is_rejected() -> None:
    other = OPEN.model_copy(update={"assessment_id": uuid.uuid4()})
    assert rejected(ACCOUNTS.decide(other, account(), ctx())) == ["assessment-mismatch"]


def test_close_when_never_opened_is_rejected() -> None:
    assert rejected(ACCOUNTS.decide(CloseAccount(reason="refunded"), account(), ctx())) == [
        "account-not-open"]


def test_close_then_close_again_is_rejected() -> None:
    opened = account(*ACCOUNTS.decide(OPEN, account(), ctx()))
    [closed] = ACCOUNTS.decide(CloseAccount(reason="refunded"), opened, ctx())
    assert closed == AccountClosed(reason="refunded")
    state = ACCOUNTS.evolve(opened, closed)
    assert rejected(ACCOUNTS.decide(CloseAccount(reason="refunded"), state, ctx())) == [
        "account-closed"]
    assert ACCOUNTS.load(ACCOUNTS.dump(state)) == state
