"""The assessment aggregate: pure decide and evolve, no IO.

One aggregate per purchase. A cancel (refund or dispute) is decided whenever it comes: before
the assessment exists it leaves the aggregate cancelled, so the create that follows is
refused and no assessment is ever created for money that went back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.account import account_id_for
from schemas.assessment import (
    AbandonAssessment,
    AssessmentAbandoned,
    AssessmentCancelled,
    AssessmentCommandRejected,
    AssessmentCompleted,
    AssessmentCreated,
    AssessmentPhaseStarted,
    AssessmentRejection,
    AssessmentReversalRecorded,
    CancelAssessment,
    CompleteAssessment,
    CreateAssessment,
    assessment_id_for,
    phase_account_id,
)
from schemas.envelope import CommandPayload, EventPayload

Status = Literal["none", "active", "cancelled", "passed", "failed", "abandoned"]


@dataclass(frozen=True)
class Assessment:
    assessment_id: str
    status: Status = "none"
    created: AssessmentCreated | None = None
    # Set by trading (issue 6) through a future event; until then a cancel always cancels.
    trading_started: bool = False
    stripe_events: frozenset[str] = field(default_factory=frozenset)
    phase_index: int = 0  # the current phase's place in the terms
    account_id: str | None = None  # the current phase's account


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
            case CompleteAssessment() | AbandonAssessment():
                if state.status != "active" or state.created is None:
                    return reject("assessment-not-active",
                                  f"assessment {state.assessment_id} is {state.status}")
                if str(command.account_id) != state.account_id:
                    return reject("account-mismatch", f"account {command.account_id} is not "
                                                      "the current phase's")
                if isinstance(command, AbandonAssessment):
                    return [AssessmentAbandoned(
                        phase=state.created.terms.phases[state.phase_index].name,
                        account_id=command.account_id, inactive_days=command.inactive_days,
                        at_ns=command.at_ns)]
                return _completed(command, state)
        raise TypeError(f"the assessment aggregate does not handle {command.TYPE}")

    def evolve(self, state: Assessment, event: EventPayload) -> Assessment:
        match event:
            case AssessmentCreated():
                return replace(state, status="active", created=event,
                               account_id=str(event.account_id))
            case AssessmentCompleted(outcome=outcome, final=final):
                if not final:
                    return state  # the phase that follows is started by the next event
                return replace(state, status="passed" if outcome == "passed" else "failed")
            case AssessmentPhaseStarted():
                return replace(state, phase_index=event.index,
                               account_id=str(event.account_id))
            case AssessmentAbandoned():
                return replace(state, status="abandoned")
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
                "stripe_events": sorted(state.stripe_events),
                "phase_index": state.phase_index, "account_id": state.account_id}

    def load(self, data: dict[str, Any]) -> Assessment:
        created = (None if data["created"] is None else
                   AssessmentCreated.model_validate(data["created"]))
        return Assessment(assessment_id=data["assessment_id"], status=data["status"],
                          created=created, trading_started=data["trading_started"],
                          stripe_events=frozenset(data["stripe_events"]),
                          phase_index=data.get("phase_index", 0),
                          account_id=data.get("account_id") or (
                              None if created is None else str(created.account_id)))


def _created(command: CreateAssessment, assessment_id: str) -> AssessmentCreated:
    """The assessment starts in the first phase of the terms it was sold with."""
    first = command.terms.phases[0]
    return AssessmentCreated(
        purchase_id=command.purchase_id, user_id=command.user_id, tier_id=command.tier_id,
        tier_revision=command.tier_revision, terms=command.terms, phase=first.name,
        rules=first.rules, account_id=account_id_for(assessment_id), source=command.source)


def _completed(command: CompleteAssessment, state: Assessment) -> list[EventPayload]:
    """A failed phase ends the assessment; a passed one starts the next phase, if any."""
    assert state.created is not None
    phases = state.created.terms.phases
    following = state.phase_index + 1
    final = command.outcome == "failed" or following >= len(phases)
    out: list[EventPayload] = [AssessmentCompleted(
        phase=phases[state.phase_index].name, account_id=command.account_id,
        outcome=command.outcome, rule=command.rule, digest=command.digest,
        at_ns=command.at_ns, final=final)]
    if not final:
        nxt = phases[following]
        out.append(AssessmentPhaseStarted(
            phase=nxt.name, index=following, rules=nxt.rules,
            account_id=uuid.UUID(phase_account_id(state.assessment_id, following)),
            user_id=state.created.user_id, starting_balance=state.created.terms.account_size,
            currency=state.created.terms.currency))
    return out
