"""FastAPI dependencies of the core routers (settings and connections: kernel.deps)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kernel.commands import CommandBus


def get_bus(request: Request) -> CommandBus:
    bus: CommandBus = request.app.state.bus
    return bus


BusDep = Annotated[CommandBus, Depends(get_bus)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Repeat a POST with the same key to get the same outcome, once"),
]
