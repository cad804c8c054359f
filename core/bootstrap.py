"""Wires the core service's processes: API, instrument decider, instruments projection."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from fastapi import FastAPI

from core.adapters.instruments_projection import InstrumentsProjection
from core.adapters.users_projection import UsersProjection
from core.domain.instruments import InstrumentAggregate
from core.domain.users import UserAggregate
from core.entrypoints.http.app import create_app
from core.seeds import DEFAULT_INSTRUMENTS
from kernel.auth import ROLE_SCOPES
from kernel.commands import CommandBus
from kernel.decider import DeciderRunner
from kernel.projection import Projection
from kernel.settings import Settings
from schemas import default_registry
from schemas.envelope import make_command
from schemas.instrument import RegisterInstrument

PROJECTIONS: dict[str, type[Projection]] = {
    "instruments": InstrumentsProjection,
    "users": UsersProjection,
}
SEED_NAMESPACE = uuid.UUID("9d3c1b2a-4e5f-4a6b-8c7d-1e2f3a4b5c6d")


def api(settings: Settings) -> FastAPI:
    return create_app(settings)


def instrument_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, InstrumentAggregate(), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


def user_decider(settings: Settings) -> DeciderRunner:  # type: ignore[type-arg]
    return DeciderRunner(settings, UserAggregate(ROLE_SCOPES), default_registry(),
                         snapshot_every=settings.decider_snapshot_every)


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
    out = {}
    for spec, reply in zip(DEFAULT_INSTRUMENTS, results, strict=True):
        if reply is None:
            out[spec.symbol] = "pending"
        elif reply.duplicate:
            out[spec.symbol] = "already seeded"
        else:
            out[spec.symbol] = reply.status if reply.status == "accepted" else str(reply.reason)
    return out
