"""Tiers: what a trader can buy, and the versioned rule sets an assessment is judged by.

A tier (keyed by its slug) is managed by admins. Each change of its terms is a new *revision*
(1, 2, …) carrying the whole `TierTerms`; a purchase copies the terms of the revision it was
sold at, so changing a tier never changes an assessment already bought.

`RuleSet` is the contract `core.domain.rules` evaluates (docs/rules.md). Its `schema_version` says
which evaluator reads it: a new parameter with a default can be added to version 1; a change
of meaning is version 2, with an upcaster. Percentages are of the base named next to them,
as decimals in [0, 100].
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family

TIER_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
# Currencies a tier may be priced in: the ones our Stripe account settles (ISO 4217).
CURRENCIES = ("USD", "EUR", "GBP")


def _check_tier_id(value: str) -> str:
    if not TIER_ID_RE.fullmatch(value):
        raise ValueError("tier id must be 2-40 characters of a-z, 0-9 and -, starting with a "
                         "letter or digit")
    return value


TierId = Annotated[str, AfterValidator(_check_tier_id),
                   Field(json_schema_extra={"pattern": f"^{TIER_ID_RE.pattern}$"},
                         examples=["starter-25k"])]
TierCurrency = Literal["USD", "EUR", "GBP"]
Percent = Annotated[Decimal, Field(gt=0, le=100, max_digits=7, decimal_places=4)]
PhaseName = Literal["challenge", "verification", "funded"]
TierStatus = Literal["active", "retired"]


class RuleSet(BaseModel):
    """The parameters of one phase's rules; evaluated by `core.domain.rules` (docs/rules.md).

    Every parameter added after the first release has a default that keeps the meaning an
    older rule set had, so terms written before it decode unchanged (schema version 1).
    Cross-parameter contradictions are refused where terms are written (POST /tiers), not
    here, so a rule set already on the log always decodes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    daily_loss_limit_pct: Percent = Field(description="largest loss in one trading day")
    daily_loss_base: Literal["starting-balance", "day-start-balance", "day-start-equity",
                             "day-start-higher"] = Field(
        default="day-start-balance",
        description="what daily_loss_limit_pct is a percentage of, measured down from the "
                    "day's start balance (starting-balance, day-start-balance), its start "
                    "equity (day-start-equity) or the higher of the two (day-start-higher)")
    max_loss_pct: Percent = Field(description="largest loss from the reference level")
    max_loss_mode: Literal["static", "trailing"] = Field(
        default="static",
        description="static: from the starting balance; trailing: from the highest equity "
                    "reached (stops trailing once it reaches the starting balance, unless "
                    "max_loss_trailing_lock is false)")
    profit_target_pct: Percent | None = Field(
        default=None, description="profit to reach to pass the phase; none in a funded phase")
    min_trading_days: int = Field(default=0, ge=0, le=365)
    max_duration_days: int | None = Field(default=None, ge=1, le=3650,
                                          description="calendar days allowed; none = unlimited")
    max_risk_per_trade_pct: Percent | None = Field(
        default=None, description="largest loss a single order may risk (stop distance x "
                                  "quantity, % of the balance); when set, an order without a "
                                  "stop-loss is refused")
    consistency_limit_pct: Percent | None = Field(
        default=None, description="largest share of the total profit one day may contribute")
    max_leverage: Annotated[Decimal, Field(ge=1, le=500, max_digits=6, decimal_places=2)] = \
        Decimal("1")
    allowed_instruments: tuple[str, ...] = Field(
        default=(), max_length=500, description="instrument symbols; empty = every instrument")
    # Added with issue 12; the defaults are the behaviour before them.
    day_boundary_tz: str = Field(
        default="UTC", min_length=1, max_length=64,
        description="IANA time zone in which trading days start", examples=["Europe/Prague"])
    day_boundary_time: str = Field(
        default="00:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="local time (HH:MM) at which a trading day starts", examples=["17:00"])
    max_loss_trailing_lock: bool = Field(
        default=True, description="trailing mode: the floor stops rising at the starting balance")
    max_open_lots: Annotated[Decimal, Field(gt=0, le=1_000_000_000, max_digits=18,
                                            decimal_places=8)] | None = Field(
        default=None, description="largest sum of open position quantities; none = unlimited")
    max_open_exposure_pct: Annotated[Decimal, Field(gt=0, le=50_000, max_digits=9,
                                                    decimal_places=4)] | None = Field(
        default=None, description="largest open notional at entry prices, % of the starting "
                                  "balance; none = unlimited")
    no_weekend_holding: bool = Field(
        default=False, description="a position open when Friday's trading day ends is a breach")
    no_news_holding: bool = Field(
        default=False, description="a position open in an instrument when news on it is "
                                   "published is a breach")
    warning_threshold_pct: Annotated[Decimal, Field(gt=0, lt=100, max_digits=7,
                                                    decimal_places=4)] = Field(
        default=Decimal("80"), description="a warning is issued once a limit is this % used")
    max_inactive_days: int | None = Field(
        default=None, ge=1, le=3650,
        description="trading days without a fill after which the phase is abandoned; "
                    "none = never")

    @field_validator("day_boundary_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError(f"{value!r} is not an IANA time zone name")
        return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


class TierPhase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PhaseName
    rules: RuleSet


class TierTerms(BaseModel):
    """Everything a revision of a tier fixes: what is sold, for how much, judged how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=80, examples=["Starter 25k"])
    description: str = Field(default="", max_length=2000)
    account_size: int = Field(gt=0, le=10_000_000,
                              description="starting balance of the virtual account, whole units")
    price_minor: int = Field(gt=0, le=100_000_000,
                             description="price in the currency's minor unit (cents)")
    currency: TierCurrency
    phases: tuple[TierPhase, ...] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _phases_in_order(self) -> TierTerms:
        order = ("challenge", "verification", "funded")
        names = [p.name for p in self.phases]
        if names != sorted(set(names), key=order.index):
            raise ValueError("phases are unique and ordered challenge, verification, funded")
        for phase in self.phases:
            if phase.name != "funded" and phase.rules.profit_target_pct is None:
                raise ValueError(f"the {phase.name} phase needs a profit target")
        return self


# Commands -------------------------------------------------------------------------------------


class CreateTier(CommandPayload):
    TYPE = "tier.create"

    terms: TierTerms


class ReviseTier(CommandPayload):
    """New terms for future purchases; bought assessments keep the revision they were sold at."""

    TYPE = "tier.revise"

    terms: TierTerms


class RetireTier(CommandPayload):
    TYPE = "tier.retire"

    reason: str = Field(min_length=1, max_length=200)


class ReactivateTier(CommandPayload):
    TYPE = "tier.reactivate"


# Events ---------------------------------------------------------------------------------------


class TierCreated(EventPayload):
    TYPE = "tier.created"

    revision: Literal[1] = 1
    terms: TierTerms


class TierRevised(EventPayload):
    TYPE = "tier.revised"

    revision: int = Field(ge=2)
    terms: TierTerms


class TierRetired(EventPayload):
    TYPE = "tier.retired"

    reason: str


class TierReactivated(EventPayload):
    TYPE = "tier.reactivated"


TierRejection = Literal["tier-exists", "tier-not-found", "terms-unchanged", "tier-retired",
                        "tier-active"]


class TierCommandRejected(EventPayload):
    TYPE = "tier.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: TierRejection
    detail: str = ""


COMMANDS = (CreateTier, ReviseTier, RetireTier, ReactivateTier)
EVENTS = (TierCreated, TierRevised, TierRetired, TierReactivated, TierCommandRejected)

FAMILY = Family(
    name="tier", commands=COMMANDS, events=EVENTS, partitions=1,
    key="tier id (slug)",
)
