"""REST read side of assessments and virtual accounts (they are created by the policy).

Who sees what: a trader sees only their own (another user's id answers 404, the same as an
id that does not exist, so ids cannot be probed); an admin sees every record and may filter
by `user_id`; an analyst gets 403 — analysts read aggregates and reports, which are built
later, not individual traders' records. A trader's API key needs the `account:read` scope.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from core.entrypoints.http.deps import LIST_READS
from core.entrypoints.http.time_travel import AsOf, HistoryReaderDep, account_at
from core.views.account_history import EXAMPLE_AS_OF, AccountAsOf
from core.views.assessments import (
    EXAMPLE_ACCOUNT,
    EXAMPLE_ASSESSMENT,
    AccountPublic,
    AssessmentPublic,
    get_account,
    get_assessment,
    list_accounts,
    list_assessments,
)
from core.views.rule_status import AssessmentRules, get_rule_status
from kernel.auth import Principal, access
from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor
from schemas.account import AccountStatus
from schemas.assessment import AssessmentStatus
from schemas.identity import Role

assessments_router = APIRouter(prefix="/assessments", tags=["assessments"])
accounts_router = APIRouter(prefix="/accounts", tags=["accounts"])

NOBODY = uuid.UUID(int=0)  # owns no record
# The scope each role's credential needs to read these records; analysts read none.
READ_SCOPE: dict[Role, str] = {"trader": "account:read", "admin": "admin"}
# Their trader reads their own records, an admin everyone's.
Reader = Annotated[Principal, access("trader", "admin", scope=READ_SCOPE)]
AssessmentIdPath = Annotated[uuid.UUID, Path(examples=["31d9a3ba-80f2-5532-a0c4-d47c4a8a348f"])]
AccountIdPath = Annotated[uuid.UUID, Path(examples=["b195265a-27c9-5e2b-b8bb-da93ac0e1fb5"])]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 422, 429, 503)}
ONE_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: PROBLEM_SCHEMA}
# Examples without nulls: the document drops them, and under `anyOf` a dropped required
# field reads as a wrong example.
AS_OF_ANSWER: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {
    "examples": {"now": {"value": {**EXAMPLE_ACCOUNT, "status": "closed",
                                   "closed_at": "2026-01-09T17:00:00Z",
                                   "close_reason": "assessment-cancelled"}},
                 "as_of": {"value": EXAMPLE_AS_OF}}}}}}
Cursor = Annotated[str | None, Query(max_length=400, description="`next_cursor` of the "
                                     "previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]
UserFilter = Annotated[uuid.UUID | None, Query(
    description="admins: only this user's records; a trader sees only their own anyway")]


class AssessmentPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [EXAMPLE_ASSESSMENT], "next_cursor": None}]})

    items: list[AssessmentPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class AccountPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [EXAMPLE_ACCOUNT], "next_cursor": None}]})

    items: list[AccountPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


def _owner_scope(principal: Principal, user_id: uuid.UUID | None) -> uuid.UUID | None:
    """Whose records a list may show: an admin's filter, or always the trader themself."""
    if principal.role == "admin":
        return user_id
    own = _uuid_or_nil(principal.user_id)
    if user_id is not None and user_id != own:
        # Asking for someone else's: answer as if they had none, revealing nothing.
        return NOBODY
    return own


def _uuid_or_nil(value: str) -> uuid.UUID:
    """User ids are UUIDs; any other subject owns nothing here."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return NOBODY


def _visible(principal: Principal, owner: uuid.UUID) -> bool:
    return principal.role == "admin" or str(owner) == principal.user_id


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    data = decode_cursor(cursor, keys=("at", "id"))
    try:
        return datetime.fromisoformat(data["at"]), uuid.UUID(data["id"])
    except (TypeError, ValueError):
        raise Problem(400, "invalid-cursor", "The cursor is not valid",
                      "pass back the `next_cursor` of a previous page unchanged") from None


def _next(more: bool, at: datetime, key: uuid.UUID) -> str | None:
    return encode_cursor({"at": at.isoformat(), "id": str(key)}) if more else None


@assessments_router.get("", operation_id="listAssessments", response_model=AssessmentPage,
                        summary="Assessments, newest first (a trader's own only)",
                        responses=ERRORS, dependencies=[LIST_READS])
async def list_all_assessments(principal: Reader, conn: ConnDep, cursor: Cursor = None,
                               limit: Limit = 50, status: AssessmentStatus | None = None,
                               user_id: UserFilter = None) -> AssessmentPage:
    items = await list_assessments(conn, user_id=_owner_scope(principal, user_id),
                                   status=status, after=_after(cursor), limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    last = items[-1] if items else None
    return AssessmentPage(items=items, next_cursor=None if last is None else
                          _next(more, last.created_at, last.assessment_id))


@assessments_router.get("/{assessment_id}", operation_id="getAssessment",
                        response_model=AssessmentPublic, summary="One assessment",
                        responses=ONE_ERRORS)
async def get_one_assessment(assessment_id: AssessmentIdPath, principal: Reader,
                             conn: ConnDep) -> AssessmentPublic:
    found = await get_assessment(conn, assessment_id)
    if found is None or not _visible(principal, found.user_id):
        raise Problem(404, "assessment-not-found", "Assessment not found",
                      f"no assessment {assessment_id} of yours")
    return found


@assessments_router.get("/{assessment_id}/rules", operation_id="getAssessmentRules",
                        response_model=AssessmentRules,
                        summary="The current phase's rules: value, limit, headroom, status",
                        responses=ONE_ERRORS)
async def get_assessment_rules(assessment_id: AssessmentIdPath, principal: Reader,
                               conn: ConnDep) -> AssessmentRules:
    """Per rule of the current phase: the value now, the limit, the headroom (money and %)
    and the status, from the `rule_status` read model (no log read). Before the phase's
    account has folded its opening the list is empty."""
    found = await get_assessment(conn, assessment_id)
    if found is None or not _visible(principal, found.user_id):
        raise Problem(404, "assessment-not-found", "Assessment not found",
                      f"no assessment {assessment_id} of yours")
    status = await get_rule_status(conn, found.account_id)
    if status is None:
        return AssessmentRules(assessment_id=assessment_id, account_id=found.account_id,
                               phase=found.phase, marked_at=None, version=0, rules=[])
    version, marked_at, rules = status
    return AssessmentRules(assessment_id=assessment_id, account_id=found.account_id,
                           phase=found.phase, marked_at=marked_at,
                           version=version, rules=rules)


@accounts_router.get("", operation_id="listAccounts", response_model=AccountPage,
                     summary="Virtual accounts, newest first (a trader's own only)",
                     responses=ERRORS, dependencies=[LIST_READS])
async def list_all_accounts(principal: Reader, conn: ConnDep, cursor: Cursor = None,
                            limit: Limit = 50, status: AccountStatus | None = None,
                            user_id: UserFilter = None) -> AccountPage:
    items = await list_accounts(conn, user_id=_owner_scope(principal, user_id), status=status,
                                after=_after(cursor), limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    last = items[-1] if items else None
    return AccountPage(items=items, next_cursor=None if last is None else
                       _next(more, last.opened_at, last.account_id))


@accounts_router.get("/{account_id}", operation_id="getAccount",
                     response_model=AccountPublic | AccountAsOf,
                     summary="One virtual account; with `as_of`, as it was then",
                     responses={**ONE_ERRORS, **AS_OF_ANSWER})
async def get_one_account(account_id: AccountIdPath, principal: Reader, conn: ConnDep,
                          history: HistoryReaderDep, as_of: AsOf = None
                          ) -> AccountPublic | AccountAsOf:
    found = await get_account(conn, account_id)
    if found is None or not _visible(principal, found.user_id):
        raise Problem(404, "account-not-found", "Account not found",
                      f"no account {account_id} of yours")
    if as_of is not None:  # time travel (core/entrypoints/http/time_travel.py)
        return await account_at(conn, history, account_id, as_of)
    return found
