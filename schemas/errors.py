"""The root of every exception propstream raises, and the wire-contract errors."""

from __future__ import annotations


class PropstreamError(Exception):
    """Root of all propstream exceptions: bugs and broken infrastructure, never refusals."""


class SchemaError(PropstreamError):
    """A message does not match its contract."""


class DecodeError(SchemaError):
    """Bytes that cannot be turned into a known, valid envelope.

    `reason` is a stable machine-readable code; the message says what is wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class UnknownTypeError(DecodeError):
    def __init__(self, type_: str, version: int) -> None:
        super().__init__("unknown-type", f"no model is registered for {type_!r} version {version}")
        self.type = type_
        self.version = version


class MessageTooLargeError(SchemaError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit
