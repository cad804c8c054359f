"""The platform-wide trading switch: one aggregate (`trading`), decided by its own decider and
read whole by the account engine, which refuses new exposure and fills nothing while it is
halted (issue 12, the admin's platform-wide halt).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family

SWITCH = "trading"  # the one aggregate id
Why = Annotated[str, Field(min_length=1, max_length=200)]


class HaltTrading(CommandPayload):
    TYPE = "platform.halt-trading"

    reason: Why


class ResumeTrading(CommandPayload):
    TYPE = "platform.resume-trading"

    reason: Why


class TradingHalted(EventPayload):
    """No account takes new exposure and no resting order fills until resumed."""

    TYPE = "platform.trading-halted"

    reason: str
    by: str


class TradingResumed(EventPayload):
    TYPE = "platform.trading-resumed"

    reason: str
    by: str


COMMANDS = (HaltTrading, ResumeTrading)
EVENTS = (TradingHalted, TradingResumed)

FAMILY = Family(name="platform", commands=COMMANDS, events=EVENTS, partitions=1,
                key="the switch's name (`trading`)")
