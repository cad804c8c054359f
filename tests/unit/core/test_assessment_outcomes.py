"""Given events, when the account engine's verdict, then events: a phase failed, passed into
the next phase's fresh account (opened by the policy), the last phase passed, abandoned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from core.domain.accounts import AccountAggregate
from core.domain.assessments import AssessmentAggregate
from core.processors.assessment_policy import commands_for
from kernel.aggregate import DecideContext
from kernel.projection import Applied
from schemas import default_registry
from schemas.account import AccountCommandRejected, AccountOpened, OpenAccount, account_id_for
from schemas.assessment import (
    AbandonAssessment,
    AssessmentAbandoned,
    AssessmentCommandRejected,
    AssessmentCompleted,
    AssessmentCreated,
    AssessmentPhaseStarted,
    CompleteAssessment,
    CreateAssessment,
    assessment_id_for,
    phase_account_id,
)
from schemas.envelope import CommandPayload, EventPayload, make_event
from tests.support.purchases import terms

AGG = AssessmentAggregate()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PURCHASE = uuid.UUID("6a1f0c3e-58b2-4d7e-9c41-2f8e6b0a3d17")
USER = uuid.UUID("0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02")
ASSESSMENT = assessment_id_for(str(PURCHASE))
FIRST = uuid.UUID(account_id_for(ASSESSMENT))
DIGEST = "ab" * 32
CREATED = AGG.decide(CreateAssessment(purchase_id=PURCHASE, user_id=USER, tier_id="starter-25k",
                                      tier_revision=1, terms=terms(), source="stripe"),
                     AGG.initial(ASSESSMENT),
                     DecideContext(now=NOW, command_id=uuid.UUID(int=1), actor=None))


def given(*events: EventPayload) -> object:
    state = AGG.initial(ASSESSMENT)
    for event in (*CREATED, *events):
        state = AGG.evolve(state, event)
    return state


def when(state: object, command: CommandPayload) -> list[EventPayload]:
    return AGG.decide(command, state,  # type: ignore[arg-type]
                      DecideContext(now=NOW, command_id=uuid.UUID(int=2), actor=None))


def complete(outcome: str, account: uuid.UUID = FIRST) -> CompleteAssessment:
    return CompleteAssessment(account_id=account, outcome=outcome,  # type: ignore[arg-type]
                              rule="daily-loss" if outcome == "failed" else "profit-target",
                              digest=DIGEST, at_ns=1)


def test_a_failed_phase_completes_the_assessment_failed_for_good() -> None:
    [event] = when(given(), complete("failed"))
    assert isinstance(event, AssessmentCompleted)
    assert (event.phase, event.outcome, event.final, event.digest) == (
        "challenge", "failed", True, DIGEST)
    [again] = when(given(event), complete("failed"))
    assert isinstance(again, AssessmentCommandRejected)
    assert again.reason == "assessment-not-active"


def test_a_passed_phase_starts_the_next_on_a_fresh_account_which_the_policy_opens() -> None:
    completed, started = when(given(), complete("passed"))
    assert isinstance(completed, AssessmentCompleted) and not completed.final
    assert isinstance(started, AssessmentPhaseStarted)
    assert (started.phase, started.index) == ("funded", 1)
    assert str(started.account_id) == phase_account_id(ASSESSMENT, 1) != str(FIRST)
    assert started.rules == terms().phases[1].rules
    # The old account's verdicts no longer count; the new one's do.
    state = given(completed, started)
    [refused] = when(state, complete("failed"))
    assert isinstance(refused, AssessmentCommandRejected) and refused.reason == "account-mismatch"
    [last] = when(state, complete("passed", started.account_id))
    assert isinstance(last, AssessmentCompleted) and last.final and last.phase == "funded"

    env = make_event(started, aggregate_id=ASSESSMENT, sequence=3, occurred_at=NOW,
                     correlation_id=uuid.UUID(int=7), causation_id=None,
                     event_id=uuid.UUID(int=9))
    [emit] = commands_for(Applied(env, default_registry().event_payload(env)))
    assert emit.topic == "account.commands"
    assert emit.command.aggregate_id == str(started.account_id)
    opening = OpenAccount.model_validate(emit.command.payload)
    assert opening.starting_balance == Decimal(25_000) and opening.rules == started.rules
    # The account decider takes that account as the assessment's.
    accounts = AccountAggregate()
    [opened] = accounts.decide(opening, accounts.initial(str(started.account_id)),
                               DecideContext(now=NOW, command_id=uuid.UUID(int=3),
                                             actor=None))
    assert isinstance(opened, AccountOpened), opened
    [foreign] = accounts.decide(opening, accounts.initial(str(uuid.uuid4())),
                                DecideContext(now=NOW, command_id=uuid.UUID(int=4), actor=None))
    assert isinstance(foreign, AccountCommandRejected)


def test_an_idle_phase_is_abandoned() -> None:
    [event] = when(given(), AbandonAssessment(account_id=FIRST, inactive_days=30, at_ns=5))
    assert isinstance(event, AssessmentAbandoned)
    assert (event.phase, event.inactive_days) == ("challenge", 30)
    [refused] = when(given(event), complete("passed"))
    assert isinstance(refused, AssessmentCommandRejected)


def test_the_state_with_its_phase_survives_a_snapshot() -> None:
    completed, started = when(given(), complete("passed"))
    state = given(completed, started)
    assert AGG.load(AGG.dump(state)) == state  # type: ignore[arg-type]
    assert isinstance(CREATED[0], AssessmentCreated)


def test_the_read_model_shows_the_phase_and_the_outcome() -> None:
    from core.adapters.assessments_projection import fold

    completed, started = when(given(), complete("passed"))
    [failed] = when(given(completed, started), complete("failed", started.account_id))
    row = None
    for n, event in enumerate((*CREATED, completed, started, failed), start=1):
        env = make_event(event, aggregate_id=ASSESSMENT, sequence=n, occurred_at=NOW,
                         correlation_id=uuid.UUID(int=7), causation_id=None,
                         event_id=uuid.UUID(int=100 + n))
        row = fold(row, Applied(env, event))
        if n == 3:
            assert row is not None
            assert (row.status, row.phase, row.account_id) == (
                "active", "funded", str(started.account_id))
    assert row is not None and (row.status, row.version) == ("failed", 4)
