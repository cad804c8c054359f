"""The topic catalogue: every topic, its partitions, key, retention and what it carries.

Each family declares its own topics (`schemas.family.Family`); the catalogue is their fold
plus the replies topic. Topics are created from here (`propstream topics apply`) and nowhere
else.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import FAMILIES
from schemas.family import (
    DAY_MS,
    FOREVER,
    CleanupPolicy,
    Family,
    TopicKind,
    TopicSpec,
    aggregate_topics,
    dead_letters,
)

__all__ = ["CATALOGUE", "DAY_MS", "FOREVER", "REPLIES", "CleanupPolicy", "TopicKind",
           "TopicSpec", "aggregate_topics", "catalogue", "dead_letters", "topic"]

REPLIES = TopicSpec(
    name="propstream.replies",
    kind="replies",
    partitions=3,
    key="command_id",
    retention_ms=60 * 60 * 1000,
    carries=("command-reply",),
    description="decided outcomes for the API instances waiting on them",
)


def catalogue(families: Iterable[Family]) -> tuple[TopicSpec, ...]:
    """Every topic of `families`, in their order, then the replies topic."""
    return (*(spec for family in families for spec in family.catalogue()), REPLIES)


CATALOGUE: tuple[TopicSpec, ...] = catalogue(FAMILIES)


def topic(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(f"topic {name!r} is not in the catalogue")
