"""Instrument registry: commands and events of the `instrument` aggregate (keyed by symbol)."""

from __future__ import annotations

import re
import uuid
from datetime import time
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._:/-]{0,39}$")

AssetClass = Literal["crypto", "fx", "index", "equity", "commodity", "prediction"]
InstrumentStatus = Literal["active", "halted", "resolved"]
# Who said how a prediction market ended: an admin, or the venue the contract is quoted on.
ResolutionSource = Literal["admin", "polymarket", "kalshi"]
# How orders on the instrument execute: against the market stream's quotes (the prop-firm
# default) or in the instrument's own price-time order book (internal markets, issue 11.3).
Execution = Literal["market", "book"]


def _check_symbol(value: str) -> str:
    # fullmatch, not match: `$` also matches before a trailing newline, which let "BTC\n" through.
    if not SYMBOL_RE.fullmatch(value):
        raise ValueError(
            "symbol must be 1-40 characters of A-Z, 0-9 and . _ : / -, starting with a letter "
            "or digit"
        )
    return value


Symbol = Annotated[
    str,
    AfterValidator(_check_symbol),
    # The check above is Python, invisible to JSON Schema; state the same rule for other readers.
    Field(json_schema_extra={"pattern": SYMBOL_RE.pattern}),
]
PositiveDecimal = Annotated[Decimal, Field(gt=0, max_digits=28, decimal_places=12)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3,5}$")]
Venue = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# Per-instrument trading costs. Bounded so that a typo cannot take an account's balance in one
# fill: at most 1,000,000 per unit, 10 % of the notional, 1,000 ticks of slippage.
CommissionPerUnit = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=28,
                                             decimal_places=12)]
CommissionRate = Annotated[Decimal, Field(ge=0, le=Decimal("0.1"), max_digits=28,
                                          decimal_places=12)]
SlippageTicks = Annotated[int, Field(ge=0, le=1_000)]


LOCAL_TIME_RE = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"


def _local(value: time) -> time:
    # A wall-clock time in the instrument's timezone has no offset of its own; one sent (or
    # recorded in an old event) is dropped rather than refused, so old events stay readable,
    # and every time is served as the `HH:MM[:SS]` the schema states.
    return value.replace(tzinfo=None) if value.tzinfo is not None else value


# Served as "09:30:00": JSON Schema's `format: time` demands an offset, so a schema-checking
# client refused what we sent. State the shape actually sent and read.
LocalTime = Annotated[
    time,
    AfterValidator(_local),
    WithJsonSchema({"type": "string", "pattern": LOCAL_TIME_RE, "examples": ["09:30:00"],
                    "description": "wall-clock time in the instrument's timezone, "
                                   "HH:MM[:SS], no offset"}),
]


class TradingSession(BaseModel):
    """One weekly window when the instrument trades; `close` before `open` wraps midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[Annotated[int, Field(ge=0, le=6)], ...] = Field(
        min_length=1, max_length=7, description="0 = Monday … 6 = Sunday"
    )
    open: LocalTime
    close: LocalTime


class TradingHours(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(default="UTC", max_length=64)
    sessions: tuple[TradingSession, ...] = Field(
        default=(), max_length=14, description="empty means the instrument trades around the clock"
    )


class InstrumentSpec(BaseModel):
    """The attributes of an instrument, shared by registration and its event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    venue: Venue
    asset_class: AssetClass
    tick_size: PositiveDecimal
    lot_size: PositiveDecimal
    quote_currency: Currency
    trading_hours: TradingHours = TradingHours()
    description: str = Field(default="", max_length=200)
    commission_per_unit: CommissionPerUnit = Field(
        default=Decimal(0), description="commission per unit filled, in the quote currency")
    commission_rate: CommissionRate = Field(
        default=Decimal(0), description="commission as a fraction of a fill's notional "
                                        "(0.001 = 0.1 %), added to the per-unit one")
    slippage_ticks: SlippageTicks = Field(
        default=0, description="ticks a taker fill is worse than the touch")
    execution: Execution = "market"


class InstrumentChanges(BaseModel):
    """The attributes an update may change; at least one must be given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: Venue | None = None
    tick_size: PositiveDecimal | None = None
    lot_size: PositiveDecimal | None = None
    quote_currency: Currency | None = None
    trading_hours: TradingHours | None = None
    description: str | None = Field(default=None, max_length=200)
    commission_per_unit: CommissionPerUnit | None = None
    commission_rate: CommissionRate | None = None
    slippage_ticks: SlippageTicks | None = None
    execution: Execution | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> InstrumentChanges:
        # A plain loop: this runs for every update event a projection replays.
        for name in self.model_fields_set:
            if getattr(self, name) is not None:
                return self
        raise ValueError("an update must change at least one attribute")


# Commands -------------------------------------------------------------------------------------


class RegisterInstrument(CommandPayload):
    TYPE = "instrument.register"

    spec: InstrumentSpec


class UpdateInstrument(CommandPayload):
    TYPE = "instrument.update"

    changes: InstrumentChanges


class HaltInstrument(CommandPayload):
    TYPE = "instrument.halt"

    reason: str = Field(min_length=1, max_length=200)


class ResumeInstrument(CommandPayload):
    TYPE = "instrument.resume"


class ResolveInstrument(CommandPayload):
    """A prediction market ended: its contracts settle at `outcome` (1: yes, 0: no)."""

    TYPE = "instrument.resolve"

    outcome: Literal[0, 1]
    source: ResolutionSource = "admin"
    resolved_at: AwareDatetime | None = Field(
        default=None, description="when the market resolved (the venue's time); the time "
                                  "it is decided when not given")


# Events ---------------------------------------------------------------------------------------


class InstrumentRegistered(EventPayload):
    TYPE = "instrument.registered"

    spec: InstrumentSpec


class InstrumentUpdated(EventPayload):
    TYPE = "instrument.updated"

    changes: InstrumentChanges


class InstrumentHalted(EventPayload):
    TYPE = "instrument.halted"

    reason: str


class InstrumentResumed(EventPayload):
    TYPE = "instrument.resumed"


class InstrumentResolved(EventPayload):
    """A prediction instrument resolved, once and for ever: no orders from now on, and every
    account holding it settles at `outcome` per unit."""

    TYPE = "instrument.resolved"

    outcome: Literal[0, 1]
    source: ResolutionSource
    resolved_at: AwareDatetime


RejectionReason = Literal[
    "instrument-already-registered",
    "instrument-not-registered",
    "instrument-already-halted",
    "instrument-not-halted",
    "symbol-mismatch",
    "nothing-to-change",
    "instrument-not-resolvable",
    "instrument-already-resolved",
    "resolution-conflict",
    "instrument-resolved",
]


class InstrumentCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "instrument.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: RejectionReason
    detail: str = ""


COMMANDS = (RegisterInstrument, UpdateInstrument, HaltInstrument, ResumeInstrument,
            ResolveInstrument)
EVENTS = (
    InstrumentRegistered,
    InstrumentUpdated,
    InstrumentHalted,
    InstrumentResumed,
    InstrumentCommandRejected,
    InstrumentResolved,
)

FAMILY = Family(
    name="instrument", commands=COMMANDS, events=EVENTS, partitions=3,
    key="symbol",
)
