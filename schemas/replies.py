"""The decided outcome of a command, sent back to whoever waits for it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CommandReply(BaseModel):
    """`accepted` with the events the command produced, or `rejected` with the reason.

    The events leave out every payload field marked sensitive (schemas.sensitive): a reply
    travels on the replies topic and out of the API, to the command's sender.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: uuid.UUID
    aggregate_id: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    detail: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    duplicate: bool = False
    actor: str | None = Field(
        default=None, max_length=200,
        description="who sent the command decided (the envelope's actor): the user id for a "
                    "user's command; only they, and admins, may read the reply")
