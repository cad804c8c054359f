"""The decided outcome of a command, sent back to whoever waits for it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class CommandReply(BaseModel):
    """`accepted` with the events the command produced, or `rejected` with the reason."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"examples": [{
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f", "aggregate_id": "BTC-USD",
        "status": "accepted", "reason": None, "detail": None,
        "events": [{"type": "instrument.halted", "symbol": "BTC-USD",
                    "reason": "exchange outage"}],
        "duplicate": False,
    }]})

    command_id: uuid.UUID
    aggregate_id: str
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    detail: str | None = None
    events: tuple[dict[str, Any], ...] = ()
    duplicate: bool = False
