"""What the auth and users routers share: sending a user command and reading the result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from core.identity import Identity
from kernel.commands import CommandBus
from kernel.problems import Problem
from schemas.envelope import CommandPayload, make_command
from schemas.replies import CommandReply

COMMANDS_TOPIC = "user.commands"
READ_YOUR_WRITES_S = 2.0  # how long a change waits for the users read model to show it
T = TypeVar("T")

# Refusal reasons -> (HTTP status, problem type).
REASONS: dict[str, tuple[int, str]] = {
    "email-taken": (409, "email-taken"),
    "email-invalid": (422, "email-invalid"),
    "user-not-registered": (404, "user-not-found"),
    "role-unchanged": (409, "role-unchanged"),
    "display-name-unchanged": (409, "display-name-unchanged"),
    "api-key-unknown": (404, "api-key-not-found"),
    "api-key-already-revoked": (409, "api-key-already-revoked"),
    "api-key-duplicate": (409, "api-key-duplicate"),
    "api-key-scope-not-allowed": (422, "scope-not-allowed"),
}

UserIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                         r"[0-9a-f]{12}$", examples=[
                                             "0b3c8f0e-52d1-5c6a-9f1e-2a7d4b8c9e10"])]


class CommandAccepted(BaseModel):
    """On the log but not decided within the wait: poll `location` (GET /commands/{id})."""

    command_id: uuid.UUID
    status: str = "pending"
    location: str


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


# For routes that hash or wait: they borrow a connection per query instead of holding one
# (ConnDep) through 100 ms of argon2 or a read-your-write wait, which starves the pool.
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]


def get_identity(request: Request) -> Identity:
    identity: Identity = request.app.state.identity
    return identity


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def send(bus: CommandBus, user_id: str, payload: CommandPayload, *,
               command_id: uuid.UUID, actor: str | None = None) -> CommandReply | JSONResponse:
    """Publish a user command; the accepted reply, a 202 when undecided, or the refusal."""
    command = make_command(payload, aggregate_id=user_id, command_id=command_id,
                           issued_at=datetime.now(UTC), actor=actor)
    reply = await bus.send(COMMANDS_TOPIC, command)
    if reply is None:
        location = f"/commands/{command_id}"
        return JSONResponse(CommandAccepted(command_id=command_id, location=location)
                            .model_dump(mode="json"), status_code=202,
                            headers={"Location": location})
    if reply.status == "rejected":
        reason = reply.reason or "rejected"
        status, slug = REASONS.get(reason, (409, reason))
        raise Problem(status, slug, slug.replace("-", " ").capitalize(), reply.detail or "",
                      command_id=str(command_id))
    return reply


def version_of(reply: CommandReply) -> int:
    return max((int(e["sequence"]) for e in reply.events), default=0)


async def read_your_write(read: Callable[[], Awaitable[T | None]],
                          done: Callable[[T], bool],
                          wait: float = READ_YOUR_WRITES_S) -> T | None:
    """The read model's answer once `done` holds, or the freshest answer after `wait`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        current = await read()
        if (current is not None and done(current)) or loop.time() >= deadline:
            return current
        await asyncio.sleep(0.01)
