"""Market-data service exceptions, rooted in PropstreamError."""

from __future__ import annotations

from schemas.errors import PropstreamError


class MarketDataError(PropstreamError):
    """A bug or broken infrastructure inside the market-data service."""


class SnapshotError(MarketDataError):
    """A persisted builder snapshot cannot be restored (wrong instrument, version or shape)."""
