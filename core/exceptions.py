"""Core service exceptions, rooted in PropstreamError."""

from __future__ import annotations

from schemas.errors import PropstreamError


class CoreError(PropstreamError):
    """A bug or broken infrastructure inside the core service."""
