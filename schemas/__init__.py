"""Wire contracts: envelopes, every event and command, the topic catalogue and the codec.

Imports nothing else of ours.
"""

from __future__ import annotations

from schemas import identity, instrument, market
from schemas.registry import TypeRegistry, build_registry


def default_registry() -> TypeRegistry:
    """Return a registry of every event and command type propstream publishes."""
    return build_registry([instrument.COMMANDS, instrument.EVENTS, market.COMMANDS,
                           market.EVENTS, identity.COMMANDS, identity.EVENTS])
