"""Virtual accounts: one per assessment, keyed by `account_id_for(assessment_id)`.

The account holds the assessment's balance in the tier's currency; trading (issue 6) moves
it. Money is a Decimal of whole currency units plus fractions, never a float.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family
from schemas.rules import COMMANDS as RULES_COMMANDS
from schemas.rules import EVENTS as RULES_EVENTS
from schemas.tier import RuleSet, TierCurrency
from schemas.trading import COMMANDS as TRADING_COMMANDS
from schemas.trading import EVENTS as TRADING_EVENTS

# Fixed forever: changing it would give every existing assessment a second account id.
ACCOUNT_NAMESPACE = uuid.UUID("a7d04f3e-2b91-4c58-b6e3-1f0a9c8d7e25")

Balance = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=2)]
AccountStatus = Literal["open", "closed"]


def account_id_for(assessment_id: str) -> str:
    """Return the account id (the aggregate id) of an assessment's virtual account."""
    return str(uuid.uuid5(ACCOUNT_NAMESPACE, str(assessment_id)))


# Commands -------------------------------------------------------------------------------------


class OpenAccount(CommandPayload):
    TYPE = "account.open"

    assessment_id: uuid.UUID
    user_id: uuid.UUID
    starting_balance: Balance
    currency: TierCurrency
    rules: RuleSet | None = Field(
        default=None, description="the phase's rules the account trades under (order limits); "
                                  "none: no limit beyond the instrument's")


class CloseAccount(CommandPayload):
    TYPE = "account.close"

    reason: str = Field(min_length=1, max_length=200)


# Events ---------------------------------------------------------------------------------------


class AccountOpened(EventPayload):
    TYPE = "account.opened"

    assessment_id: uuid.UUID
    user_id: uuid.UUID
    starting_balance: Balance
    currency: TierCurrency
    rules: RuleSet | None = None
    at_ns: int | None = Field(default=None, ge=0,
                              description="when it opened (ns): the rules' first trading day")


class AccountClosed(EventPayload):
    TYPE = "account.closed"

    reason: str


AccountRejection = Literal["account-exists", "account-not-open", "account-closed",
                           "assessment-mismatch"]


class AccountCommandRejected(EventPayload):
    """A refused command: recorded so that a redelivery is recognised and answered alike."""

    TYPE = "account.command-rejected"

    command_id: uuid.UUID
    command_type: str
    reason: AccountRejection
    detail: str = ""


# Trading (schemas/trading.py) rides on the account's topics: the account engine decides it.
COMMANDS = (OpenAccount, CloseAccount, *TRADING_COMMANDS, *RULES_COMMANDS)
EVENTS = (AccountOpened, AccountClosed, AccountCommandRejected, *TRADING_EVENTS,
          *RULES_EVENTS)

FAMILY = Family(
    name="account", commands=COMMANDS, events=EVENTS, partitions=3,
    key="account id (uuid5 of the assessment id)",
    also_prefixes=("trading", "position", "rules"),
)
