"""Event and command envelopes and the base classes of their payloads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Fixed namespace so that event ids derived from a command id are the same on every replay.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d2c4e-8a3b-4f5e-9c7d-2b1a0e9f8d7c")


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # pydantic turns only ValueError into a validation error; anything else would escape
        # the codec as a crash instead of a DecodeError.
        raise ValueError("timestamp is outside the representable range once in UTC") from None


# JSON (RFC 3339) offsets have minute precision: an offset with seconds (a zoneinfo LMT zone)
# would be cut on encode and move the instant. UTC always survives the round trip.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Payload(BaseModel):
    """Base of every event and command payload: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class EventPayload(Payload):
    """A fact in the past tense, `<aggregate>.<thing>-<past-participle>`."""


class CommandPayload(Payload):
    """An intent in the imperative, `<aggregate>.<verb>`."""


class EventEnvelope(BaseModel):
    """The one shape every event on the log has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: str = Field(min_length=1, max_length=120)
    version: int = Field(ge=1)
    aggregate_id: str = Field(min_length=1, max_length=200)
    sequence: int = Field(ge=1, description="1-based position of the event in its aggregate")
    occurred_at: UtcDatetime
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    actor: str | None = Field(
        default=None, max_length=200,
        description="who caused it: the user id of the command's actor (an admin's action is "
                    "on the log with its actor, forever); none for a process's own events")
    payload: dict[str, Any]


class CommandEnvelope(BaseModel):
    """The one shape every command on a command topic has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: uuid.UUID
    type: str = Field(min_length=1, max_length=120)
    version: int = Field(ge=1)
    aggregate_id: str = Field(min_length=1, max_length=200)
    issued_at: UtcDatetime
    correlation_id: uuid.UUID
    actor: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any]


def derive_event_id(causation_id: uuid.UUID, index: int) -> uuid.UUID:
    """Return the id of the `index`-th event caused by a command: the same on every retry."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{causation_id}/{index}")


def make_event(
    payload: EventPayload,
    *,
    aggregate_id: str,
    sequence: int,
    occurred_at: datetime,
    correlation_id: uuid.UUID,
    causation_id: uuid.UUID | None,
    event_id: uuid.UUID,
    actor: str | None = None,
) -> EventEnvelope:
    """Wrap a typed payload into an envelope."""
    return EventEnvelope(
        event_id=event_id,
        type=payload.TYPE,
        version=payload.VERSION,
        aggregate_id=aggregate_id,
        sequence=sequence,
        occurred_at=occurred_at,
        correlation_id=correlation_id,
        causation_id=causation_id,
        actor=actor,
        payload=payload.model_dump(mode="json"),
    )


def make_command(
    payload: CommandPayload,
    *,
    aggregate_id: str,
    command_id: uuid.UUID,
    issued_at: datetime,
    correlation_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> CommandEnvelope:
    """Wrap a typed command payload into an envelope."""
    return CommandEnvelope(
        command_id=command_id,
        type=payload.TYPE,
        version=payload.VERSION,
        aggregate_id=aggregate_id,
        issued_at=issued_at,
        correlation_id=correlation_id or command_id,
        actor=actor,
        payload=payload.model_dump(mode="json"),
    )
