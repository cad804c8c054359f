"""What every command route shares: publish, wait for the decision, map a refusal to a
problem, and read your own write from the read model within a bounded wait."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Literal, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from kernel.commands import CommandBus
from kernel.problems import Problem
from schemas.envelope import CommandPayload, make_command
from schemas.replies import CommandReply

READ_YOUR_WRITES_S = 2.0  # how long a change waits for the read model to show it
T = TypeVar("T")

# A refusal reason -> its HTTP status (the problem type is the reason), or (status, type).
Reasons = Mapping[str, int | tuple[int, str]]


class CommandAccepted(BaseModel):
    """The command is on the log; `pending`: not decided within the wait (poll `location`);
    `accepted`: decided, but the read model does not show the result yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f", "status": "pending",
        "location": "/commands/5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f",
    }]})

    command_id: uuid.UUID
    status: Literal["pending", "accepted"] = "pending"
    location: str


def accepted(command_id: uuid.UUID, *, location: str | None = None,
             status: Literal["pending", "accepted"] = "pending") -> JSONResponse:
    """The 202 of a command the caller must come back for."""
    where = location or f"/commands/{command_id}"
    return JSONResponse(CommandAccepted(command_id=command_id, status=status, location=where)
                        .model_dump(mode="json"), status_code=202, headers={"Location": where})


async def dispatch(bus: CommandBus, topic: str, aggregate_id: str, payload: CommandPayload, *,
                   command_id: uuid.UUID, actor: str | None,
                   reasons: Reasons) -> CommandReply | JSONResponse:
    """Publish a command; its accepted reply, a 202 when undecided, or the refusal raised as
    problem+json (an unknown reason is a 409 of its own type)."""
    command = make_command(payload, aggregate_id=aggregate_id, command_id=command_id,
                           issued_at=datetime.now(UTC), actor=actor)
    reply = await bus.send(topic, command)
    if reply is None:
        return accepted(command_id)
    if reply.actor is not None and reply.actor != actor:
        # The id was decided for someone else's command: its outcome is not this caller's.
        raise Problem(409, "command-id-taken", "Command id already used",
                      "send the request with another Idempotency-Key")
    if reply.status == "rejected":
        reason = reply.reason or "rejected"
        mapped = reasons.get(reason, 409)
        status, slug = mapped if isinstance(mapped, tuple) else (mapped, reason)
        raise Problem(status, slug, slug.replace("-", " ").capitalize(), reply.detail or "",
                      command_id=str(command_id))
    return reply


def version_of(reply: CommandReply) -> int:
    """The aggregate version the accepted command left (its last event's sequence)."""
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
