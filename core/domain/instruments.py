"""The instrument aggregate: pure decide and evolve, no IO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.envelope import CommandPayload, EventPayload
from schemas.instrument import (
    HaltInstrument,
    InstrumentChanges,
    InstrumentCommandRejected,
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
    InstrumentSpec,
    InstrumentUpdated,
    RegisterInstrument,
    RejectionReason,
    ResolutionSource,
    ResolveInstrument,
    ResumeInstrument,
    UpdateInstrument,
)


@dataclass(frozen=True)
class Instrument:
    symbol: str
    spec: InstrumentSpec | None = None
    status: Literal["unregistered", "active", "halted", "resolved"] = "unregistered"
    halt_reason: str | None = None
    outcome: Literal[0, 1] | None = None  # a resolved prediction market's, for ever
    resolution_source: ResolutionSource | None = None
    resolved_at: datetime | None = None


class InstrumentAggregate:
    family = "instrument"
    rejection: type[EventPayload] = InstrumentCommandRejected

    def initial(self, aggregate_id: str) -> Instrument:
        return Instrument(symbol=aggregate_id)

    def decide(self, command: CommandPayload, state: Instrument,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: RejectionReason, detail: str) -> list[EventPayload]:
            return [InstrumentCommandRejected(command_id=ctx.command_id,
                                              command_type=command.TYPE, reason=reason,
                                              detail=detail)]

        match command:
            case RegisterInstrument(spec=spec):
                if spec.symbol != state.symbol:
                    return reject("symbol-mismatch",
                                  f"command for {state.symbol} carries symbol {spec.symbol}")
                if state.status != "unregistered":
                    return reject("instrument-already-registered",
                                  f"{state.symbol} is already registered")
                return [InstrumentRegistered(spec=spec)]
            case UpdateInstrument(changes=changes):
                if state.spec is None:
                    return reject("instrument-not-registered", f"{state.symbol} is not registered")
                effective = _effective_changes(state.spec, changes)
                if effective is None:
                    return reject("nothing-to-change",
                                  "every attribute already has the requested value")
                return [InstrumentUpdated(changes=effective)]
            case HaltInstrument(reason=reason):
                if state.spec is None:
                    return reject("instrument-not-registered", f"{state.symbol} is not registered")
                if state.status == "resolved":
                    return reject("instrument-resolved", f"{state.symbol} has resolved")
                if state.status == "halted":
                    return reject("instrument-already-halted", f"{state.symbol} is halted")
                return [InstrumentHalted(reason=reason)]
            case ResumeInstrument():
                if state.spec is None:
                    return reject("instrument-not-registered", f"{state.symbol} is not registered")
                if state.status == "resolved":
                    return reject("instrument-resolved", f"{state.symbol} has resolved")
                if state.status != "halted":
                    return reject("instrument-not-halted", f"{state.symbol} is not halted")
                return [InstrumentResumed()]
            case ResolveInstrument():
                return _resolve(state, command, ctx, reject)
        raise TypeError(f"the instrument aggregate does not handle {command.TYPE}")

    def evolve(self, state: Instrument, event: EventPayload) -> Instrument:
        match event:
            case InstrumentRegistered(spec=spec):
                return replace(state, spec=spec, status="active")
            case InstrumentUpdated(changes=changes):
                assert state.spec is not None
                return replace(state, spec=apply_changes(state.spec, changes))
            case InstrumentHalted(reason=reason):
                return replace(state, status="halted", halt_reason=reason)
            case InstrumentResumed():
                return replace(state, status="active", halt_reason=None)
            case InstrumentResolved():
                return replace(state, status="resolved", outcome=event.outcome,
                               resolution_source=event.source, resolved_at=event.resolved_at)
            case InstrumentCommandRejected():
                return state
        raise TypeError(f"the instrument aggregate does not know {event.TYPE}")


    def dump(self, state: Instrument) -> dict[str, Any]:
        return {"symbol": state.symbol, "status": state.status, "halt_reason": state.halt_reason,
                "spec": None if state.spec is None else state.spec.model_dump(mode="json"),
                "outcome": state.outcome, "resolution_source": state.resolution_source,
                "resolved_at": None if state.resolved_at is None
                else state.resolved_at.isoformat()}

    def load(self, data: dict[str, Any]) -> Instrument:
        spec = None if data["spec"] is None else InstrumentSpec.model_validate(data["spec"])
        at = data.get("resolved_at")  # absent from snapshots written before resolutions
        return Instrument(symbol=data["symbol"], spec=spec, status=data["status"],
                          halt_reason=data["halt_reason"], outcome=data.get("outcome"),
                          resolution_source=data.get("resolution_source"),
                          resolved_at=None if at is None else datetime.fromisoformat(at))


def _resolve(state: Instrument, command: ResolveInstrument, ctx: DecideContext,
             reject: Callable[[RejectionReason, str], list[EventPayload]]
             ) -> list[EventPayload]:
    """A prediction market resolves once: the same outcome again is recognised (and changes
    nothing), another one is refused; any other asset class never resolves."""
    if state.spec is None:
        return reject("instrument-not-registered", f"{state.symbol} is not registered")
    if state.spec.asset_class != "prediction":
        return reject("instrument-not-resolvable",
                      f"{state.symbol} is {state.spec.asset_class}: only prediction "
                      "instruments resolve")
    if state.status == "resolved":
        if command.outcome == state.outcome:
            return reject("instrument-already-resolved",
                          f"{state.symbol} already resolved at {state.outcome}")
        return reject("resolution-conflict",
                      f"{state.symbol} resolved at {state.outcome}, not {command.outcome}")
    return [InstrumentResolved(outcome=command.outcome, source=command.source,
                               resolved_at=command.resolved_at or ctx.now)]


def apply_changes(spec: InstrumentSpec, changes: InstrumentChanges) -> InstrumentSpec:
    values = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None}
    return spec.model_copy(update={k: getattr(changes, k) for k in values})


def _effective_changes(spec: InstrumentSpec,
                       changes: InstrumentChanges) -> InstrumentChanges | None:
    """Keep only the attributes whose value really changes; None when nothing does."""
    kept = {
        name: getattr(changes, name)
        for name in changes.model_fields_set
        if getattr(changes, name) is not None and getattr(changes, name) != getattr(spec, name)
    }
    if not kept:
        return None
    return InstrumentChanges(**kept)
