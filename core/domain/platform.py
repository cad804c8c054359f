"""The platform-wide trading switch, pure: halting twice or resuming a running platform
changes nothing (no event)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.aggregate import DecideContext
from schemas.account import AccountCommandRejected
from schemas.envelope import CommandPayload, EventPayload
from schemas.platform import HaltTrading, ResumeTrading, TradingHalted, TradingResumed


@dataclass(frozen=True)
class Switch:
    name: str
    halted: bool = False
    reason: str | None = None


class PlatformAggregate:
    family = "platform"
    rejection: type[EventPayload] = AccountCommandRejected  # it never refuses

    def initial(self, aggregate_id: str) -> Switch:
        return Switch(aggregate_id)

    def decide(self, command: CommandPayload, state: Switch,
               ctx: DecideContext) -> list[EventPayload]:
        by = ctx.actor or "unknown"
        match command:
            case HaltTrading(reason=reason):
                return [] if state.halted else [TradingHalted(reason=reason, by=by)]
            case ResumeTrading(reason=reason):
                return [TradingResumed(reason=reason, by=by)] if state.halted else []
        raise TypeError(f"the platform switch does not handle {command.TYPE}")

    def evolve(self, state: Switch, event: EventPayload) -> Switch:
        match event:
            case TradingHalted(reason=reason):
                return Switch(state.name, True, reason)
            case TradingResumed():
                return Switch(state.name)
        raise TypeError(f"the platform switch does not know {event.TYPE}")

    def dump(self, state: Switch) -> dict[str, Any]:
        return {"name": state.name, "halted": state.halted, "reason": state.reason}

    def load(self, data: dict[str, Any]) -> Switch:
        return Switch(data["name"], data["halted"], data["reason"])
