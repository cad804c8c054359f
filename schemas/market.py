"""Market data on the log: tick batches, simulator regime and news events, closed bars.

Ticks travel in batches: one event per instrument per flush of the publisher (at most 100
ticks or 5 ms), so a tick costs a row in a list, not an envelope of its own. A batch's
`sequence` is monotonic per instrument but not contiguous: the publisher uses
max(previous + 1, the batch's last venue time in microseconds), which survives a restart
without reading its own output back. Prices are floats here, as in every numeric path;
they are already quantised to the instrument's tick size.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import DAY_MS, FOREVER, Family, TopicSpec, dead_letters
from schemas.instrument import Symbol, Venue

Resolution = Literal["1m", "5m", "15m", "1h", "4h", "1d"]
RegimeName = Literal["low", "medium", "high"]


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number above zero")
    return value


def _finite_non_negative(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number, zero or above")
    return value


Price = Annotated[float, AfterValidator(_finite_positive)]
Size = Annotated[float, AfterValidator(_finite_non_negative)]
Nanos = Annotated[int, Field(ge=946_684_800_000_000_000, le=4_102_444_800_000_000_000,
                             description="ns since the epoch, UTC, years 2000-2099")]


class TickRow(BaseModel):
    """One tick inside a batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue_ts_ns: Nanos
    received_ts_ns: Nanos
    price: Price
    size: Size
    bid: Price | None = None
    ask: Price | None = None
    side: Literal["buy", "sell"] | None = None
    trade_id: str | None = Field(default=None, max_length=100)


class MarketTicksPublished(EventPayload):
    TYPE = "market.ticks-published"

    instrument: Symbol
    venue: Venue
    ticks: tuple[TickRow, ...] = Field(min_length=1, max_length=1000)


class MarketRegimeChanged(EventPayload):
    TYPE = "market.regime-changed"

    instrument: Symbol
    at_ns: Nanos
    from_regime: RegimeName
    to_regime: RegimeName
    sigma: Annotated[float, AfterValidator(_finite_non_negative)]
    forced: bool = Field(default=False, description="set by an admin override")


class MarketNewsPublished(EventPayload):
    TYPE = "market.news-published"

    instrument: Symbol
    at_ns: Nanos
    headline: str = Field(min_length=1, max_length=300)
    jump: float = Field(description="log return applied to the price (logit for probabilities)")
    signal: Literal["bullish", "bearish"]
    strength: float = Field(ge=0, description="|jump| in units of the typical jump")
    injected: bool = Field(default=False, description="set by an admin")


class MarketBarClosed(EventPayload):
    TYPE = "market.bar-closed"

    instrument: Symbol
    resolution: Resolution
    open_time_ns: Nanos
    close_time_ns: Nanos
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Size
    trades: int = Field(ge=1)


class SimulatorCommand(CommandPayload):
    """Admin control of the simulator; the aggregate id is the instrument (or `*`)."""


class StartSimulator(SimulatorCommand):
    TYPE = "market.start-simulator"


class StopSimulator(SimulatorCommand):
    TYPE = "market.stop-simulator"


class OverrideRegime(SimulatorCommand):
    TYPE = "market.override-regime"

    regime: RegimeName


class InjectNews(SimulatorCommand):
    TYPE = "market.inject-news"

    headline: str = Field(min_length=1, max_length=300)
    jump: float = Field(ge=-2, le=2, description="log return (logit for probabilities)")


COMMANDS = (StartSimulator, StopSimulator, OverrideRegime, InjectNews)
EVENTS = (MarketTicksPublished, MarketRegimeChanged, MarketNewsPublished, MarketBarClosed)

# Not an aggregate family: its topics are streams and one control pair, declared here.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name="market.ticks", kind="stream", partitions=6, key="instrument",
        retention_ms=30 * DAY_MS, carries=(MarketTicksPublished.TYPE,),
        dead_letter="market.ticks.dlq",
        description="every price the platform uses: batches of normalised ticks",
    ),
    TopicSpec(
        name="market.bars", kind="stream", partitions=6, key="instrument",
        retention_ms=FOREVER, carries=(MarketBarClosed.TYPE,),
        dead_letter="market.bars.dlq", description="OHLCV bars closed by the bar processor",
    ),
    TopicSpec(
        name="market.commands", kind="commands", partitions=1, key="instrument or *",
        retention_ms=7 * DAY_MS, carries=tuple(m.TYPE for m in COMMANDS),
        dead_letter="market.commands.dlq", description="admin control of the simulator",
    ),
    TopicSpec(
        name="market.events", kind="events", partitions=1, key="instrument or *",
        retention_ms=FOREVER,
        carries=(MarketRegimeChanged.TYPE, MarketNewsPublished.TYPE),
        dead_letter="market.events.dlq",
        description="volatility regime changes and news, generated or injected",
    ),
    dead_letters("market.ticks", "tick batches a consumer could not decode or apply"),
    dead_letters("market.bars", "bars a consumer could not decode or apply"),
    dead_letters("market.commands", "simulator commands that could not be decoded"),
    dead_letters("market.events", "regime or news events a consumer could not decode"),
    dead_letters("market.raw", "venue frames that could not be parsed, raw bytes kept"),
)

FAMILY = Family(name="market", commands=COMMANDS, events=EVENTS, topics=TOPICS)
