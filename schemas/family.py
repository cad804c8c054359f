"""A family of wire contracts declared once: its commands, events, upcasters and topics.

A family module in `schemas/` ends with `FAMILY = Family(...)`; the type registry and the
topic catalogue are folds over a tuple of families (`schemas.FAMILIES`), and a service's
manifest names the families it decides, so a new family is one module here and one line in
its service's manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import CommandPayload, EventPayload

TopicKind = Literal["commands", "events", "stream", "snapshots", "replies", "dead-letters"]
# "stream": a high-volume log of facts keyed by instrument (ticks, bars), written by a
# publisher or processor rather than decided by a decider.
CleanupPolicy = Literal["delete", "compact"]

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1


class TopicSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    kind: TopicKind
    partitions: int = Field(ge=1, le=256)
    key: str = Field(description="what the record key is; one aggregate -> one partition")
    retention_ms: int = FOREVER
    cleanup_policy: CleanupPolicy = "delete"
    carries: tuple[str, ...] = ()
    dead_letter: str | None = None
    description: str = ""

    @property
    def may_grow(self) -> bool:
        """Whether partitions may be added to this topic while it holds data.

        Adding partitions changes `hash(key) % partitions`: new records of a key land on
        another partition than its old ones. For a commands/events pair that means a decider
        decides an aggregate without its history; for a snapshot topic, snapshots the
        restorer never finds; for a market stream (ticks, bars keyed by instrument), the
        old partition's backlog and the new one's records of an instrument are folded out of
        order by two consumers. Only dead letters (an operator reads and replays them one by
        one; order carries nothing) and replies (keyed by command id, each read once, kept an
        hour) may grow; the APIs assign the replies partitions when they start, so they must
        be restarted after it.
        """
        return self.kind in ("dead-letters", "replies")

    def config(self) -> dict[str, str]:
        """Return the broker-side topic configuration."""
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            # Room for our 512 KiB limit plus headers and batch overhead.
            "max.message.bytes": str(1024 * 1024),
        }


def aggregate_topics(
    name: str,
    *,
    partitions: int,
    key: str,
    commands: tuple[str, ...],
    events: tuple[str, ...],
) -> tuple[TopicSpec, ...]:
    """Commands and events of one aggregate family: co-partitioned, each with its dead letters."""
    return (
        TopicSpec(
            name=f"{name}.commands",
            kind="commands",
            partitions=partitions,
            key=key,
            retention_ms=7 * DAY_MS,
            carries=commands,
            dead_letter=f"{name}.commands.dlq",
            description=f"commands to the {name} decider",
        ),
        TopicSpec(
            name=f"{name}.events",
            kind="events",
            partitions=partitions,
            key=key,
            retention_ms=FOREVER,
            carries=events,
            dead_letter=f"{name}.events.dlq",
            description=f"the {name} log of record",
        ),
        TopicSpec(
            name=f"{name}.snapshots",
            kind="snapshots",
            partitions=1,
            key="<partition>:manifest | <partition>:<chunk>",
            retention_ms=FOREVER,
            cleanup_policy="compact",
            description=f"snapshots of the {name} decider's state per events partition",
        ),
        TopicSpec(
            name=f"{name}.commands.dlq",
            kind="dead-letters",
            partitions=1,
            key="origin key",
            retention_ms=30 * DAY_MS,
            description=f"undecodable or unprocessable {name} commands, with the error in headers",
        ),
        TopicSpec(
            name=f"{name}.events.dlq",
            kind="dead-letters",
            partitions=1,
            key="origin key",
            retention_ms=30 * DAY_MS,
            description=f"{name} events a consumer could not decode or apply",
        ),
    )



def dead_letters(name: str, description: str) -> TopicSpec:
    """The dead-letter topic of `name` (one partition, kept 30 days)."""
    return TopicSpec(name=f"{name}.dlq", kind="dead-letters", partitions=1, key="origin key",
                     retention_ms=30 * DAY_MS, description=description)


Upcaster = tuple[str, int, Callable[[dict[str, Any]], dict[str, Any]]]


@dataclass(frozen=True, kw_only=True)
class Family:
    """One family: its payload types, upcasters and the topics that carry them.

    An aggregate family (`partitions` set) gets `<name>.commands`, `.events`, `.snapshots`
    and their dead letters, co-partitioned by `key`; `topics` adds any others (market's
    streams, the parked Stripe webhooks).
    """

    name: str
    commands: tuple[type[CommandPayload], ...]
    events: tuple[type[EventPayload], ...]
    partitions: int | None = None
    key: str = ""
    upcasters: tuple[Upcaster, ...] = ()
    topics: tuple[TopicSpec, ...] = ()
    # Other type prefixes its topics carry: trading's `trading.*` and `position.*` ride on the
    # account's topics, decided by the account engine, yet keep the names of seed 002.
    also_prefixes: tuple[str, ...] = ()

    def owns_type(self, type_: str) -> bool:
        """Whether a command or event type name belongs on this family's topics."""
        return type_.partition(".")[0] in (self.name, *self.also_prefixes)

    def catalogue(self) -> tuple[TopicSpec, ...]:
        """Every topic of this family, in catalogue order."""
        decided: tuple[TopicSpec, ...] = ()
        if self.partitions is not None:
            decided = aggregate_topics(self.name, partitions=self.partitions, key=self.key,
                                       commands=tuple(m.TYPE for m in self.commands),
                                       events=tuple(m.TYPE for m in self.events))
        return (*decided, *self.topics)
