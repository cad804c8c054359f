"""Wires the core service's processes: API, deciders, projections, policies and seeds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from core.adapters.accounts_projection import AccountsProjection
from core.adapters.assessments_projection import AssessmentsProjection
from core.adapters.instruments_projection import InstrumentsProjection
from core.adapters.purchases_projection import PurchasesProjection
from core.adapters.tiers_projection import TiersProjection
from core.domain.accounts import AccountAggregate
from core.domain.assessments import AssessmentAggregate
from core.domain.instruments import InstrumentAggregate
from core.domain.purchases import PurchaseAggregate
from core.domain.tiers import TierAggregate
from core.entrypoints.http.app import create_app
from core.processors.assessment_policy import AssessmentPolicy
from core.seeds import DEFAULT_INSTRUMENTS, DEFAULT_TIERS
from kernel.commands import CommandBus
from kernel.decider import DeciderRunner
from kernel.projection import Projection
from kernel.settings import Settings
from schemas import default_registry
from schemas.envelope import make_command
from schemas.instrument import RegisterInstrument
from schemas.replies import CommandReply
from schemas.tier import CreateTier

PROJECTIONS: dict[str, type[Projection]] = {
    "instruments": InstrumentsProjection,
    "tiers": TiersProjection,
    "purchases": PurchasesProjection,
    "assessments": AssessmentsProjection,
    "accounts": AccountsProjection,
}
SEED_NAMESPACE = uuid.UUID("9d3c1b2a-4e5f-4a6b-8c7d-1e2f3a4b5c6d")


def api(settings: Settings) -> FastAPI:
    return create_app(settings)


def instrument_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, InstrumentAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def tier_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, TierAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def payment_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, PurchaseAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def assessment_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, AssessmentAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def account_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, AccountAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def assessment_policy(settings: Settings) -> AssessmentPolicy:
    return AssessmentPolicy(settings, default_registry())


async def seed_instruments(settings: Settings, *, wait_ms: int = 60000) -> dict[str, str]:
    """Register the default instruments; command ids are fixed, so seeding twice is a no-op."""
    bus = CommandBus(settings, client_id="propstream-seed")
    await bus.start()
    try:
        results = await asyncio.gather(*(
            bus.send("instrument.commands", make_command(
                RegisterInstrument(spec=spec), aggregate_id=spec.symbol,
                command_id=uuid.uuid5(SEED_NAMESPACE, spec.symbol),
                issued_at=datetime.now(UTC), actor="seed"), wait_ms=wait_ms)
            for spec in DEFAULT_INSTRUMENTS))
    finally:
        await bus.stop()
    return {spec.symbol: _outcome(reply)
            for spec, reply in zip(DEFAULT_INSTRUMENTS, results, strict=True)}


async def seed_tiers(settings: Settings, *, wait_ms: int = 60000) -> dict[str, str]:
    """Create the default tiers; command ids are fixed, so seeding twice is a no-op, and a
    tier an admin has revised since keeps its revisions (seeding only ever creates)."""
    bus = CommandBus(settings, client_id="propstream-seed-tiers")
    await bus.start()
    try:
        results = await asyncio.gather(*(
            bus.send("tier.commands", make_command(
                CreateTier(terms=terms), aggregate_id=tier_id,
                command_id=uuid.uuid5(SEED_NAMESPACE, f"tier:{tier_id}"),
                issued_at=datetime.now(UTC), actor="seed"), wait_ms=wait_ms)
            for tier_id, terms in DEFAULT_TIERS.items()))
    finally:
        await bus.stop()
    return {tier_id: _outcome(reply)
            for tier_id, reply in zip(DEFAULT_TIERS, results, strict=True)}


def _outcome(reply: CommandReply | None) -> str:
    """What seeding one item did, in words for the console."""
    if reply is None:
        return "pending"
    if reply.duplicate:
        return "already seeded"
    return reply.status if reply.status == "accepted" else str(reply.reason)
