"""Wire contracts: envelopes, every event and command, the topic catalogue and the codec.

Imports nothing else of ours.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import (
    account,
    assessment,
    book,
    identity,
    instrument,
    market,
    payment,
    platform,
    simulation,
    tier,
)
from schemas.family import Family
from schemas.registry import TypeRegistry, build_registry

# Every family of wire contracts, in catalogue order; each service's manifest names the ones
# it owns (a test checks every family here has exactly one owner).
FAMILIES: tuple[Family, ...] = (
    instrument.FAMILY,
    identity.FAMILY,
    tier.FAMILY,
    payment.FAMILY,
    assessment.FAMILY,
    account.FAMILY,
    book.FAMILY,
    market.FAMILY,
    platform.FAMILY,
    simulation.FAMILY,
)


def registry_for(families: Iterable[Family]) -> TypeRegistry:
    """Return a registry of the event and command types of `families`, with their upcasters."""
    families = tuple(families)
    groups = []
    for family in families:
        groups += [family.commands, family.events]
    registry = build_registry(groups)
    for family in families:
        for type_, from_version, upcaster in family.upcasters:
            registry.register_upcaster(type_, from_version, upcaster)
    return registry


def default_registry() -> TypeRegistry:
    """Return a registry of every event and command type propstream publishes."""
    return registry_for(FAMILIES)
