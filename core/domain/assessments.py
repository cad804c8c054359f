"""The assessment aggregate: pure decide and evolve, no IO.

One aggregate per purchase. A cancel (refund or dispute) is decided whenever it comes: before
the assessment exists it leaves the aggregate cancelled, so the create that follows is
refused and no assessment is ever created for money that went back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.account import account_id_for
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCommandRejected,
    AssessmentCreated,
    AssessmentRejection,
    AssessmentReversalRecorded,
    CancelAssessment,
    CreateAssessment,
    assessment_id_for,
)
from schemas.envelope import CommandPayload, EventPayload

Status = Literal["none", "active", "cancelled"]


@dataclass(frozen=True)
class Assessment:
    assessment_id: str
    status: Status = "none"
    created: AssessmentCreated | None = None
    # Set by trading (issue 6) through a future event; until then a cancel always cancels.
    trading_started: bool = False
    stripe_events: frozenset[str] = field(default_factory=frozenset)


class AssessmentAggregate:
    family = "assessment"
    rejection: type[EventPayload] = AssessmentCommandRejected

    def initial(self, aggregate_id: str) -> Assessment:
        return Assessment(assessment_id=aggregate_id)

    def decide(self, command: CommandPayload, state: Assessment,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: AssessmentRejection, detail: str) -> list[EventPayload]:
            return [AssessmentCommandRejected(command_id=ctx.command_id,
                                              command_type=command.TYPE, reason=reason,
                                              detail=detail)]

        match command:
            case CreateAssessment() | CancelAssessment() if \
                    assessment_id_for(str(command.purchase_id)) != state.assessment_id:
                return reject("purchase-mismatch",
                              f"purchase {command.purchase_id} is not assessment "
                              f"{state.assessment_id}'s")
            case CreateAssessment():
                if state.status == "cancelled":
                    return reject("assessment-cancelled",
                                  "the purchase was refunded or disputed before the "
                                  "assessment was created")
                if state.status == "active":
                    return reject("assessment-exists",
                                  f"assessment {state.assessment_id} already exists")
                return [_created(command, state.assessment_id)]
            case CancelAssessment(reason=reason, stripe_event_id=stripe_event_id):
                if stripe_event_id in state.stripe_events:
                    return reject("stripe-event-seen",
                                  f"Stripe event {stripe_event_id} is already recorded")
                if state.status == "cancelled" or state.trading_started:
                    return [AssessmentReversalRecorded(reason=reason,
                                                       stripe_event_id=stripe_event_id)]
                return [AssessmentCancelled(reason=reason, stripe_event_id=stripe_event_id)]
        raise TypeError(f"the assessment aggregate does not handle {command.TYPE}")

    def evolve(self, state: Assessment, event: EventPayload) -> Assessment:
        match event:
            case AssessmentCreated():
                return replace(state, status="active", created=event)
            case AssessmentCancelled(stripe_event_id=stripe_event_id):
                return replace(state, status="cancelled",
                               stripe_events=state.stripe_events | {stripe_event_id})
            case AssessmentReversalRecorded(stripe_event_id=stripe_event_id):
                return replace(state, stripe_events=state.stripe_events | {stripe_event_id})
            case AssessmentCommandRejected():
                return state
        raise TypeError(f"the assessment aggregate does not know {event.TYPE}")

    def dump(self, state: Assessment) -> dict[str, Any]:
        return {"assessment_id": state.assessment_id, "status": state.status,
                "created": None if state.created is None else
                state.created.model_dump(mode="json"),
                "trading_started": state.trading_started,
                "stripe_events": sorted(state.stripe_events)}

    def load(self, data: dict[str, Any]) -> Assessment:
        created = (None if data["created"] is None else
                   AssessmentCreated.model_validate(data["created"]))
        return Assessment(assessment_id=data["assessment_id"], status=data["status"],
                          created=created, trading_started=data["trading_started"],
                          stripe_events=frozenset(data["stripe_events"]))


def _created(command: CreateAssessment, assessment_id: str) -> AssessmentCreated:
    """The assessment starts in the first phase of the terms it was sold with."""
    first = command.terms.phases[0]
    return AssessmentCreated(
        purchase_id=command.purchase_id, user_id=command.user_id, tier_id=command.tier_id,
        tier_revision=command.tier_revision, terms=command.terms, phase=first.name,
        rules=first.rules, account_id=account_id_for(assessment_id), source=command.source)
