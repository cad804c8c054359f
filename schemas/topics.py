"""The topic catalogue: every topic, its partitions, key, retention and what it carries.

Topics are created from here (`propstream topics apply`) and nowhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import (
    account,
    assessment,
    identity,
    instrument,
    market,
    payment,
    tier,
)

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


def _family(
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


REPLIES = TopicSpec(
    name="propstream.replies",
    kind="replies",
    partitions=3,
    key="command_id",
    retention_ms=60 * 60 * 1000,
    carries=("command-reply",),
    description="decided outcomes for the API instances waiting on them",
)

def _dead_letters(name: str, description: str) -> TopicSpec:
    return TopicSpec(name=f"{name}.dlq", kind="dead-letters", partitions=1, key="origin key",
                     retention_ms=30 * DAY_MS, description=description)


MARKET: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="market.ticks", kind="stream", partitions=6, key="instrument",
        retention_ms=30 * DAY_MS, carries=(market.MarketTicksPublished.TYPE,),
        dead_letter="market.ticks.dlq",
        description="every price the platform uses: batches of normalised ticks",
    ),
    TopicSpec(
        name="market.bars", kind="stream", partitions=6, key="instrument",
        retention_ms=FOREVER, carries=(market.MarketBarClosed.TYPE,),
        dead_letter="market.bars.dlq", description="OHLCV bars closed by the bar processor",
    ),
    TopicSpec(
        name="market.commands", kind="commands", partitions=1, key="instrument or *",
        retention_ms=7 * DAY_MS, carries=tuple(m.TYPE for m in market.COMMANDS),
        dead_letter="market.commands.dlq", description="admin control of the simulator",
    ),
    TopicSpec(
        name="market.events", kind="events", partitions=1, key="instrument or *",
        retention_ms=FOREVER,
        carries=(market.MarketRegimeChanged.TYPE, market.MarketNewsPublished.TYPE),
        dead_letter="market.events.dlq",
        description="volatility regime changes and news, generated or injected",
    ),
    _dead_letters("market.ticks", "tick batches a consumer could not decode or apply"),
    _dead_letters("market.bars", "bars a consumer could not decode or apply"),
    _dead_letters("market.commands", "simulator commands that could not be decoded"),
    _dead_letters("market.events", "regime or news events a consumer could not decode"),
    _dead_letters("market.raw", "venue frames that could not be parsed, raw bytes kept"),
)

CATALOGUE: tuple[TopicSpec, ...] = (
    *_family(
        "instrument",
        partitions=3,
        key="symbol",
        commands=tuple(m.TYPE for m in instrument.COMMANDS),
        events=tuple(m.TYPE for m in instrument.EVENTS),
    ),
    *_family(
        "user",
        partitions=3,
        key="user id (uuid5 of the normalised email)",
        commands=tuple(m.TYPE for m in identity.COMMANDS),
        events=tuple(m.TYPE for m in identity.EVENTS),
    ),
    *_family(
        "tier",
        partitions=1,
        key="tier id (slug)",
        commands=tuple(m.TYPE for m in tier.COMMANDS),
        events=tuple(m.TYPE for m in tier.EVENTS),
    ),
    *_family(
        "payment",
        partitions=3,
        key="purchase id (uuid)",
        commands=tuple(m.TYPE for m in payment.COMMANDS),
        events=tuple(m.TYPE for m in payment.EVENTS),
    ),
    _dead_letters("payment.webhooks", "verified Stripe webhooks matching no purchase or no "
                  "valid command, raw body kept, for an operator to replay"),
    *_family(
        "assessment",
        partitions=3,
        key="assessment id (uuid5 of the purchase id)",
        commands=tuple(m.TYPE for m in assessment.COMMANDS),
        events=tuple(m.TYPE for m in assessment.EVENTS),
    ),
    *_family(
        "account",
        partitions=3,
        key="account id (uuid5 of the assessment id)",
        commands=tuple(m.TYPE for m in account.COMMANDS),
        events=tuple(m.TYPE for m in account.EVENTS),
    ),
    *MARKET,
    REPLIES,
)


def topic(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(f"topic {name!r} is not in the catalogue")
