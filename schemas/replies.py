"""The decided outcome of a command, sent back to whoever waits for it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class CommandReply(BaseModel):
    """`accepted` with the events the command produced, or `rejected` with the reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: uuid.UUID
    aggregate_id: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    detail: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    duplicate: bool = False
