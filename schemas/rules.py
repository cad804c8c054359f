"""Rule enforcement on an account: the verdicts the account engine records, on the account
family's topics (keyed by account id), in the transaction of the fill or mark that moved them.

Each verdict carries what `core.domain.rules` compared and its sha256 stamp, so `verify` can
re-derive it from the log (docs/rules.md, "Hash stamp"). `rules.day-started` is the trading
day boundary as the engine met it in log time (a tick's or a command's time): folded, never
recomputed, so a replay sees the same days.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.instrument import Symbol
from schemas.market import Nanos

RuleName = Literal["daily-loss", "max-loss", "profit-target", "max-duration", "risk-per-trade",
                   "consistency", "max-open-lots", "max-open-exposure", "weekend-holding",
                   "news-holding"]
Figure = Annotated[Decimal, Field(max_digits=60, decimal_places=30)]
Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Who = Annotated[str, Field(min_length=1, max_length=200)]
Why = Annotated[str, Field(min_length=1, max_length=500)]


class _Verdict(EventPayload):
    rule: RuleName
    value: Figure | None = Field(description="what the rule compared (none: no stop-loss)")
    limit: Figure
    headroom: Figure | None = Field(description="limit - value")
    headroom_pct: Figure | None = Field(description="headroom as % of the limit")
    at_ns: Nanos
    first_sequence: int = Field(ge=0, description="the account's first rule input folded")
    last_sequence: int = Field(ge=0, description="the account event that moved the rule")
    inputs: dict[str, str] = Field(description="the canonical values the hash covers")
    digest: Digest = Field(description="sha256 over the verdict's canonical inputs")


class RuleWarningIssued(_Verdict):
    """A limit is `warning_threshold_pct` used: once per rule per trading day."""

    TYPE = "rules.warning-issued"


class RuleViolationDetected(_Verdict):
    """A limit is breached: the account halts, is flattened and its phase fails."""

    TYPE = "rules.violation-detected"


class PhasePassed(_Verdict):
    """Profit target and minimum trading days met, flat, no violation: the phase is passed."""

    TYPE = "rules.phase-passed"


StatusRule = Literal[RuleName, "min-trading-days"]
RuleStanding = Literal["ok", "warning", "violated", "pending", "met", "passed", "withheld"]


class RuleStatusItem(BaseModel):
    """One rule as it stands: what it compares now, its limit and the headroom left."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: StatusRule
    status: RuleStanding = Field(description="limits: ok|warning|violated; goals: pending|"
                                             "met|passed; consistency: ok|withheld")
    value: Figure | None = None
    limit: Figure | None = None
    headroom: Figure | None = Field(default=None, description="limit - value")
    headroom_pct: Figure | None = Field(default=None, description="headroom as % of the limit")


class RuleStatusChanged(EventPayload):
    """The account's standing against its rules moved to another band (a status, or a
    headroom crossing a multiple of 5 % of its limit), recorded with the mark that moved it:
    what a dashboard pushed over the WebSocket gateway shows between verdicts."""

    TYPE = "rules.status-changed"

    at_ns: Nanos
    rules: tuple[RuleStatusItem, ...]


class TradingDayStarted(EventPayload):
    """Trading day `day` began (under the rules' zone and boundary time) at `at_ns`."""

    TYPE = "rules.day-started"

    day: dt.date
    at_ns: Nanos


class NewsMet(EventPayload):
    """Flagged news on an instrument the account holds (`market.news-published`), recorded
    for an account whose rules forbid holding through news, so a replay judges it alike."""

    TYPE = "rules.news-met"

    instrument: Symbol
    at_ns: Nanos


class AccountKillSwitched(EventPayload):
    """The emergency stop: halted, open orders cancelled, positions flattened."""

    TYPE = "account.kill-switched"

    by: Who = Field(description="the actor who pulled it (user:<id>, admin, platform)")
    reason: Why


class KillAccount(CommandPayload):
    """Halt at once, cancel every open order, flatten every position at the touch."""

    TYPE = "account.kill"

    reason: Why


COMMANDS = (KillAccount,)
EVENTS = (RuleWarningIssued, RuleViolationDetected, PhasePassed, TradingDayStarted,
          NewsMet, AccountKillSwitched, RuleStatusChanged)
