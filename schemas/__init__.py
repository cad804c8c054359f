"""Wire contracts: envelopes, every event and command, the topic catalogue and the codec.

Imports nothing else of ours.
"""

from __future__ import annotations

from types import ModuleType

from schemas import (
    account,
    assessment,
    identity,
    instrument,
    market,
    payment,
    tier,
)
from schemas.registry import TypeRegistry, build_registry

# Every module that defines a family's COMMANDS and EVENTS; a new family is added here.
FAMILY_MODULES: tuple[ModuleType, ...] = (
    instrument,
    market,
    identity,
    tier,
    payment,
    assessment,
    account,
)


def default_registry() -> TypeRegistry:
    """Return a registry of every event and command type propstream publishes."""
    groups = []
    for module in FAMILY_MODULES:
        groups += [module.COMMANDS, module.EVENTS]
    registry = build_registry(groups)
    for module in FAMILY_MODULES:
        for type_, from_version, upcaster in getattr(module, "UPCASTERS", ()):
            registry.register_upcaster(type_, from_version, upcaster)
    return registry
