"""FastAPI dependencies of the core routers (settings and connections: kernel.deps)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kernel.commands import CommandBus
from kernel.ratelimit import settings_limited
from schemas.registry import TypeRegistry


# Plain `def`, so FastAPI runs these in its thread pool: `async def` saved 0.1-0.7 ms of the
# API's CPU per command (the hand-off is ~25 % of its py-spy samples), yet the round trip's
# latency was worse in most alternating runs on the shared 2-core machine and collapsed
# at 200/s (bench/RESULTS.md, "second pass"); a quiet machine is to decide.
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
