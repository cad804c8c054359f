"""Bytes on the wire <-> envelopes: JSON through pydantic-core, with a hard size limit."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas import fastcodec
from schemas.envelope import CommandEnvelope, EventEnvelope
from schemas.errors import DecodeError, MessageTooLargeError

# Below the broker's default message.max.bytes (1 MiB) so a refusal is ours, with our message.
MAX_MESSAGE_BYTES = 512 * 1024

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel, *, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """Serialise an envelope (or any wire model) to compact JSON bytes."""
    data = model.__pydantic_serializer__.to_json(model)
    if len(data) > limit:
        raise MessageTooLargeError(len(data), limit)
    return data


def _decode(data: bytes | None, model: type[M], *, limit: int) -> M:
    if data is None:
        raise DecodeError("empty", "message has no value (tombstone)")
    if len(data) > limit:
        raise DecodeError("too-large", f"message of {len(data)} bytes exceeds {limit}")
    try:
        # The compiled path for the envelopes; it builds the same model or steps aside, and
        # then pydantic accepts or refuses exactly as it always did (schemas/fastcodec.py).
        return fastcodec.decode(data, model)
    except fastcodec.Fallback:
        pass
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise DecodeError("malformed-json", errors[0]["msg"]) from None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:5]
        )
        raise DecodeError("invalid-envelope", detail) from None


def decode_event(data: bytes | None, *, limit: int = MAX_MESSAGE_BYTES) -> EventEnvelope:
    return _decode(data, EventEnvelope, limit=limit)


def decode_command(data: bytes | None, *, limit: int = MAX_MESSAGE_BYTES) -> CommandEnvelope:
    return _decode(data, CommandEnvelope, limit=limit)


def decode_model(data: bytes | None, model: type[M], *, limit: int = MAX_MESSAGE_BYTES) -> M:
    return _decode(data, model, limit=limit)
