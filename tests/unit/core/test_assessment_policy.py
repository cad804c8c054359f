"""The purchase -> assessment -> account policy, pure: which command each event calls for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.processors.assessment_policy import ACTOR, commands_for, policy_command_id
from kernel.projection import Applied
from schemas.account import CloseAccount, OpenAccount, account_id_for
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCreated,
    AssessmentReversalRecorded,
    CancelAssessment,
    CreateAssessment,
    assessment_id_for,
)
from schemas.envelope import EventPayload, make_event
from schemas.payment import CheckoutOpened
from tests.support.purchases import completed, disputed, granted, payment_event, refunded, terms

USER = uuid.UUID("0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02")
PURCHASE = uuid.UUID("6a1f0c3e-58b2-4d7e-9c41-2f8e6b0a3d17")
ASSESSMENT = assessment_id_for(str(PURCHASE))


def applied(env: object) -> Applied:
    from schemas import default_registry

    return Applied(env, default_registry().event_payload(env))  # type: ignore[arg-type]


def assessment_event(payload: EventPayload) -> Applied:
    return applied(make_event(payload, aggregate_id=ASSESSMENT, sequence=1,
                              occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
                              correlation_id=uuid.UUID(int=7), causation_id=uuid.UUID(int=8),
                              event_id=uuid.UUID(int=9)))


@pytest.mark.parametrize(("payload", "source"), [(completed(USER), "stripe"),
                                                 (granted(USER), "grant")])
def test_a_completed_or_granted_purchase_creates_its_assessment(payload: EventPayload,
                                                                source: str) -> None:
    env = payment_event(PURCHASE, payload)
    [emit] = commands_for(applied(env))
    assert emit.topic == "assessment.commands"
    assert emit.command.aggregate_id == ASSESSMENT
    create = CreateAssessment.model_validate(emit.command.payload)
    assert (create.purchase_id, create.user_id, create.source) == (PURCHASE, USER, source)
    assert emit.command.command_id == policy_command_id(env.event_id, "assessment.create")
    assert (emit.command.correlation_id, emit.causation_id) == (env.correlation_id, env.event_id)
    assert emit.command.issued_at == env.occurred_at and emit.command.actor == ACTOR


def test_the_same_event_twice_makes_the_same_command() -> None:
    env = payment_event(PURCHASE, completed(USER))
    assert commands_for(applied(env)) == commands_for(applied(env))


@pytest.mark.parametrize(("payload", "reason"), [(refunded(USER, "evt_r"), "refunded"),
                                                 (disputed(USER), "disputed")])
def test_a_refund_or_dispute_cancels_the_assessment(payload: EventPayload, reason: str) -> None:
    [emit] = commands_for(applied(payment_event(PURCHASE, payload, sequence=3)))
    cancel = CancelAssessment.model_validate(emit.command.payload)
    assert emit.command.aggregate_id == ASSESSMENT
    assert (cancel.reason, cancel.stripe_event_id) == (reason, payload.stripe_event_id)  # type: ignore[attr-defined]


def test_a_created_assessment_opens_its_account_with_the_account_size_and_its_rules() -> None:
    t = terms(account_size=50_000)
    created = AssessmentCreated(purchase_id=PURCHASE, user_id=USER, tier_id="starter-25k",
                                tier_revision=1, terms=t, phase="challenge",
                                rules=t.phases[0].rules,
                                account_id=uuid.UUID(account_id_for(ASSESSMENT)), source="stripe")
    [emit] = commands_for(assessment_event(created))
    assert (emit.topic, emit.command.aggregate_id) == ("account.commands",
                                                       account_id_for(ASSESSMENT))
    assert OpenAccount.model_validate(emit.command.payload) == OpenAccount(
        assessment_id=uuid.UUID(ASSESSMENT), user_id=USER, starting_balance=Decimal(50_000),
        currency="USD", rules=t.phases[0].rules)


def test_a_cancelled_assessment_closes_its_account() -> None:
    [emit] = commands_for(assessment_event(AssessmentCancelled(reason="refunded",
                                                               stripe_event_id="evt_1")))
    assert emit.command.aggregate_id == account_id_for(ASSESSMENT)
    assert CloseAccount.model_validate(emit.command.payload).reason.endswith("refunded")


@pytest.mark.parametrize("payload", [
    CheckoutOpened(checkout_session_id="cs_1", checkout_url="https://checkout.example/cs_1"),
    AssessmentReversalRecorded(reason="refunded", stripe_event_id="evt_1"),
])
def test_other_events_call_for_nothing(payload: EventPayload) -> None:
    assert commands_for(assessment_event(payload)) == []


def test_a_purchase_id_that_is_no_uuid_is_refused() -> None:
    env = payment_event(PURCHASE, completed(USER)).model_copy(update={"aggregate_id": "p-1"})
    with pytest.raises(ValueError):
        commands_for(applied(env))
