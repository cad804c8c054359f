"""What every command route shares: a handler's outcome that is not a decided state, as HTTP.

A rejection is problem+json with the reason as its type (or a mapped one); a command not
decided within the wait is a 202 to poll; a command decided whose state the read model does
not show yet is a 202 pointing at where it will appear.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Literal, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from kernel.application import Accepted, Command, Pending, Rejected
from kernel.auth import Principal
from kernel.commands import command_id_for
from kernel.problems import Problem
from schemas.envelope import CommandPayload

C = TypeVar("C", bound=CommandPayload)

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


def refused(rejected: Rejected, reasons: Reasons) -> Problem:
    """The problem of a refusal (an unknown reason is a 409 of its own type)."""
    if rejected.foreign:
        return Problem(409, "command-id-taken", "Command id already used", rejected.detail)
    mapped = reasons.get(rejected.reason, 409)
    status, slug = mapped if isinstance(mapped, tuple) else (mapped, rejected.reason)
    return Problem(status, slug, slug.replace("-", " ").capitalize(), rejected.detail,
                   command_id=str(rejected.command_id))


def undecided(outcome: Accepted | Pending, *, location: str) -> JSONResponse:
    """202: `Pending` polls /commands/{id}; `Accepted` (decided, the state not known here)
    points at `location`, where the read model will show it."""
    if isinstance(outcome, Pending):
        return accepted(outcome.command_id)
    return accepted(outcome.command_id, location=location, status="accepted")


def admin_command(payload: C, aggregate_id: str, *, admin: Principal,
                  idempotency_key: str | None, route: str) -> Command[C]:
    """A command as `admin` sends it (its actor on the log) through `route`: a repeated
    Idempotency-Key is the same command only on the same route and aggregate."""
    return Command(payload=payload, aggregate_id=aggregate_id, actor=admin.user_id,
                   command_id=command_id_for(idempotency_key, caller=admin.user_id,
                                             scope=f"{route}:{aggregate_id}", body=payload))
