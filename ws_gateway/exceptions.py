"""Gateway exceptions, rooted in PropstreamError: bugs and broken infrastructure only; a bad
client message is answered with an error frame or a close code, never raised."""

from __future__ import annotations

from schemas.errors import PropstreamError


class GatewayError(PropstreamError):
    """A bug or broken infrastructure inside the WebSocket gateway."""


class InstrumentIdsExhausted(GatewayError):
    """More instruments than a binary frame's 16-bit id can name."""
