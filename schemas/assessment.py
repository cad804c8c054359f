"""Assessments: one aggregate per purchase, keyed by `assessment_id_for(purchase_id)`.

Deriving the id from the purchase sends a purchase's create and its cancels (a refund or a
dispute, which may arrive before the completion) to the same aggregate and the same decider,
so it alone decides whether an assessment exists: at most one per purchase, never one after
a cancel. The assessment copies the terms of the tier revision it was sold at; the rules of
its current phase travel with it, so a later tier change never touches it.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family
from schemas.tier import PhaseName, RuleSet, TierCurrency, TierId, TierTerms

# Fixed forever: changing it would give every existing purchase a second assessment id.
ASSESSMENT_NAMESPACE = uuid.UUID("5c2e7a91-0d4b-4f36-8e1a-9b7c3d5f2a60")

AssessmentSource = Literal["stripe", "grant"]
Outcome = Literal["passed", "failed"]
CancelReason = Literal["refunded", "disputed"]
AssessmentStatus = Literal["active", "cancelled", "passed", "failed", "abandoned"]


def assessment_id_for(purchase_id: str) -> str:
    """Return the assessment id (the aggregate id) of a purchase."""
    return str(uuid.uuid5(ASSESSMENT_NAMESPACE, str(purchase_id)))


# Commands -------------------------------------------------------------------------------------


class CreateAssessment(CommandPayload):
    TYPE = "assessment.create"

    purchase_id: uuid.UUID
    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    source: AssessmentSource


class CancelAssessment(CommandPayload):
    """A refund or dispute of the purchase; may come before the assessment was created."""

    TYPE = "assessment.cancel"

    purchase_id: uuid.UUID
    reason: CancelReason
    stripe_event_id: str = Field(min_length=1, max_length=255)


class CompleteAssessment(CommandPayload):
    """The account engine's verdict on a phase (sent in the transaction that recorded it)."""

    TYPE = "assessment.complete"

    account_id: uuid.UUID
    outcome: Outcome
    rule: str = Field(min_length=1, max_length=40, description="the rule that decided it")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="the verdict's sha256 stamp")
    at_ns: int = Field(ge=0)


class AbandonAssessment(CommandPayload):
    """No activity on the phase's account for the rules' `max_inactive_days`."""

    TYPE = "assessment.abandon"

    account_id: uuid.UUID
    inactive_days: int = Field(ge=1)
    at_ns: int = Field(ge=0)


# Events ---------------------------------------------------------------------------------------


class AssessmentCreated(EventPayload):
    TYPE = "assessment.created"

    purchase_id: uuid.UUID
    user_id: uuid.UUID
    tier_id: TierId
    tier_revision: int = Field(ge=1)
    terms: TierTerms
    phase: PhaseName = Field(description="the first phase of the terms")
    rules: RuleSet = Field(description="that phase's rules")
    account_id: uuid.UUID
    source: AssessmentSource


class AssessmentCancelled(EventPayload):
    """Cancelled before trading started; also before it was created, which then never is."""

    TYPE = "assessment.cancelled"

    reason: CancelReason
    stripe_event_id: str


class AssessmentReversalRecorded(EventPayload):
    """A refund or dispute that no longer cancels (trading started, or already cancelled)."""

    TYPE = "assessment.reversal-recorded"

    reason: CancelReason
    stripe_event_id: str


class AssessmentCompleted(EventPayload):
    """A phase ended: failed (a rule was violated) or passed (target and minimum days)."""

    TYPE = "assessment.completed"

    phase: PhaseName
    account_id: uuid.UUID
    outcome: Outcome
    rule: str
    digest: str
    at_ns: int
    final: bool = Field(description="no further phase follows (failed, or the last passed)")


class AssessmentPhaseStarted(EventPayload):
    """The next phase of the terms, after a pass, on a fresh account (the policy opens it)."""

    TYPE = "assessment.phase-started"

    phase: PhaseName
    index: int = Field(ge=1, description="the phase's place in the terms (0 is the first)")
    rules: RuleSet
    account_id: uuid.UUID
    user_id: uuid.UUID
    starting_balance: int = Field(gt=0)
    currency: TierCurrency


class AssessmentAbandoned(EventPayload):
    """No activity on the phase's account for its configured period."""

    TYPE = "assessment.abandoned"

    phase: PhaseName
    account_id: uuid.UUID
    inactive_days: int
    at_ns: int


AssessmentRejection = Literal[
    "assessment-exists",
    "assessment-cancelled",
    "stripe-event-seen",
    "purchase-mismatch",
    "assessment-not-active",
    "account-mismatch",
]


class AssessmentCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "assessment.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: AssessmentRejection
    detail: str = ""


def phase_account_id(assessment_id: str, index: int) -> str:
    """The account of phase `index` (0: the first, `account_id_for`'s id)."""
    if index == 0:
        return str(uuid.uuid5(PHASE_ACCOUNT_NAMESPACE_0, str(assessment_id)))
    return str(uuid.uuid5(PHASE_ACCOUNT_NAMESPACE_0, f"{assessment_id}/phase/{index}"))


# Fixed forever: schemas.account.ACCOUNT_NAMESPACE (phase 0 keeps account_id_for's id).
PHASE_ACCOUNT_NAMESPACE_0 = uuid.UUID("a7d04f3e-2b91-4c58-b6e3-1f0a9c8d7e25")

COMMANDS = (CreateAssessment, CancelAssessment, CompleteAssessment, AbandonAssessment)
EVENTS = (AssessmentCreated, AssessmentCancelled, AssessmentReversalRecorded,
          AssessmentCommandRejected, AssessmentCompleted, AssessmentPhaseStarted,
          AssessmentAbandoned)

FAMILY = Family(
    name="assessment", commands=COMMANDS, events=EVENTS, partitions=3,
    key="assessment id (uuid5 of the purchase id)",
)
