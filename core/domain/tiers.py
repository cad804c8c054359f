"""The tier aggregate: pure decide and evolve over one catalogue entry, no IO.

A tier's terms only ever move forward by revision (1, 2, …); a purchase copies the revision it
was sold at, so nothing here ever rewrites terms already sold. Retiring hides a tier from sale
but keeps it revisable, so an admin can fix its terms before bringing it back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

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
    TierRejection,
    TierRetired,
    TierRevised,
    TierTerms,
)


@dataclass(frozen=True)
class Tier:
    tier_id: str
    status: Literal["absent", "active", "retired"] = "absent"
    revision: int = 0
    terms: TierTerms | None = None


class TierAggregate:
    family = "tier"
    rejection: type[EventPayload] = TierCommandRejected

    def initial(self, aggregate_id: str) -> Tier:
        return Tier(tier_id=aggregate_id)

    def decide(self, command: CommandPayload, state: Tier,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: TierRejection, detail: str) -> list[EventPayload]:
            return [TierCommandRejected(command_id=ctx.command_id, command_type=command.TYPE,
                                        reason=reason, detail=detail)]

        if state.status == "absent" and not isinstance(command, CreateTier):
            return reject("tier-not-found", f"there is no tier {state.tier_id!r}")
        match command:
            case CreateTier(terms=terms):
                if state.status != "absent":
                    return reject("tier-exists", f"tier {state.tier_id!r} already exists")
                return [TierCreated(terms=terms)]
            case ReviseTier(terms=terms):
                if terms == state.terms:
                    return reject("terms-unchanged",
                                  f"revision {state.revision} already has these terms")
                return [TierRevised(revision=state.revision + 1, terms=terms)]
            case RetireTier(reason=reason):
                if state.status == "retired":
                    return reject("tier-retired", f"tier {state.tier_id!r} is already retired")
                return [TierRetired(reason=reason)]
            case ReactivateTier():
                if state.status == "active":
                    return reject("tier-active", f"tier {state.tier_id!r} is already active")
                return [TierReactivated()]
        raise TypeError(f"the tier aggregate does not handle {command.TYPE}")

    def evolve(self, state: Tier, event: EventPayload) -> Tier:
        match event:
            case TierCreated(revision=revision, terms=terms):
                return replace(state, status="active", revision=revision, terms=terms)
            case TierRevised(revision=revision, terms=terms):
                return replace(state, revision=revision, terms=terms)
            case TierRetired():
                return replace(state, status="retired")
            case TierReactivated():
                return replace(state, status="active")
            case TierCommandRejected():
                return state
        raise TypeError(f"the tier aggregate does not know {event.TYPE}")

    def dump(self, state: Tier) -> dict[str, Any]:
        return {"tier_id": state.tier_id, "status": state.status, "revision": state.revision,
                "terms": None if state.terms is None else state.terms.model_dump(mode="json")}

    def load(self, data: dict[str, Any]) -> Tier:
        terms = None if data["terms"] is None else TierTerms.model_validate(data["terms"])
        return Tier(tier_id=data["tier_id"], status=data["status"], revision=data["revision"],
                    terms=terms)
