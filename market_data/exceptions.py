"""Market-data exceptions, rooted in PropstreamError: bugs and bad input, never refusals."""

from __future__ import annotations

from schemas.errors import PropstreamError


class MarketDataError(PropstreamError):
    """A bug, bad input or broken infrastructure inside the market-data service."""


class SimulatorConfigError(MarketDataError, ValueError):
    """A simulator configuration value is invalid; the message names the field."""


class UnknownInstrumentError(MarketDataError, LookupError):
    """A control command names an instrument the simulator does not run."""


class InvalidControlError(MarketDataError, ValueError):
    """A control command (regime override, injected news) carries an invalid value."""


class SnapshotError(MarketDataError):
    """A persisted builder snapshot cannot be restored (wrong instrument, version or shape)."""
