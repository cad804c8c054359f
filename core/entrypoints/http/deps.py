"""FastAPI dependencies of the core routers (settings and connections: kernel.deps)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kernel.commands import CommandBus
from kernel.ratelimit import settings_limited
from schemas.registry import TypeRegistry


# Dependencies are `async def` even when they only read app.state: FastAPI runs a plain `def`
# one in its thread pool, a hand-off that cost ~25 % of the API's CPU per command (py-spy of
# bench.command_round_trip) and a wait behind busy worker threads.
async def get_bus(request: Request) -> CommandBus:
    bus: CommandBus = request.app.state.bus
    return bus


BusDep = Annotated[CommandBus, Depends(get_bus)]


async def get_registry(request: Request) -> TypeRegistry:
    registry: TypeRegistry = request.app.state.registry
    return registry


# Decodes the events of a reply, for handlers to fold them onto the state they know.
RegistryDep = Annotated[TypeRegistry, Depends(get_registry)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Repeat a POST with the same key to get the same outcome, once"),
]
# A page of a list is one indexed query, but a loop of them is a cheap way to load the
# database: every list route takes a token of the caller's and the IP's read bucket.
LIST_READS = Depends(settings_limited("list-reads", "read_rate_per_s", "read_burst"))
