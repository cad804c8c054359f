"""The virtual account aggregate: pure decide and evolve, no IO; money as Decimal."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from kernel.aggregate import DecideContext
from schemas.account import (
    AccountClosed,
    AccountCommandRejected,
    AccountOpened,
    AccountRejection,
    CloseAccount,
    OpenAccount,
    account_id_for,
)
from schemas.assessment import phase_account_id
from schemas.envelope import CommandPayload, EventPayload

Status = Literal["none", "open", "closed"]


@dataclass(frozen=True)
class Account:
    account_id: str
    status: Status = "none"
    assessment_id: str | None = None
    user_id: str | None = None
    currency: str | None = None
    balance: Decimal = Decimal(0)


class AccountAggregate:
    family = "account"
    rejection: type[EventPayload] = AccountCommandRejected

    def initial(self, aggregate_id: str) -> Account:
        return Account(account_id=aggregate_id)

    def decide(self, command: CommandPayload, state: Account,
               ctx: DecideContext) -> list[EventPayload]:
        def reject(reason: AccountRejection, detail: str) -> list[EventPayload]:
            return [AccountCommandRejected(command_id=ctx.command_id, command_type=command.TYPE,
                                           reason=reason, detail=detail)]

        match command:
            case OpenAccount():
                if state.account_id not in _phase_accounts(str(command.assessment_id)):
                    return reject("assessment-mismatch",
                                  f"assessment {command.assessment_id} does not own account "
                                  f"{state.account_id}")
                if state.status != "none":
                    return reject("account-exists", f"account {state.account_id} was opened")
                return [AccountOpened(assessment_id=command.assessment_id,
                                      user_id=command.user_id,
                                      starting_balance=command.starting_balance,
                                      currency=command.currency, rules=command.rules)]
            case CloseAccount(reason=reason):
                if state.status == "none":
                    return reject("account-not-open",
                                  f"account {state.account_id} was never opened")
                if state.status == "closed":
                    return reject("account-closed", f"account {state.account_id} is closed")
                return [AccountClosed(reason=reason)]
        raise TypeError(f"the account aggregate does not handle {command.TYPE}")

    def evolve(self, state: Account, event: EventPayload) -> Account:
        match event:
            case AccountOpened():
                return replace(state, status="open", assessment_id=str(event.assessment_id),
                               user_id=str(event.user_id), currency=event.currency,
                               balance=event.starting_balance)
            case AccountClosed():
                return replace(state, status="closed")
            case AccountCommandRejected():
                return state
        raise TypeError(f"the account aggregate does not know {event.TYPE}")

    def dump(self, state: Account) -> dict[str, Any]:
        return {"account_id": state.account_id, "status": state.status,
                "assessment_id": state.assessment_id, "user_id": state.user_id,
                "currency": state.currency, "balance": str(state.balance)}

    def load(self, data: dict[str, Any]) -> Account:
        return Account(account_id=data["account_id"], status=data["status"],
                       assessment_id=data["assessment_id"], user_id=data["user_id"],
                       currency=data["currency"], balance=Decimal(data["balance"]))


def _phase_accounts(assessment_id: str) -> set[str]:
    """The accounts an assessment may own: one per phase of its terms (at most a few)."""
    return {account_id_for(assessment_id),
            *(phase_account_id(assessment_id, i) for i in range(1, MAX_PHASES))}


MAX_PHASES = 8
