"""REST read side of trading: an account's orders, fills, positions and equity curve.

Who sees what, as for the account itself (core/entrypoints/http/assessments.py): a trader
with `account:read` sees only their own accounts (another user's account answers 404
`account-not-found`, exactly like an unknown one); an admin with `admin` sees any; analysts
get 403. Lists are newest first with keyset cursors; a cursor that is not one of ours, and
any other bad parameter, is a 422 problem.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from core.entrypoints.http.assessments import (
    ONE_ERRORS,
    AccountIdPath,
    Cursor,
    Limit,
    Reader,
)
from core.entrypoints.http.deps import LIST_READS
from core.views.trading import (
    EXAMPLE_FILL,
    EXAMPLE_ORDER,
    EXAMPLE_POINT,
    EXAMPLE_POSITION,
    OPEN_STATUSES,
    EquityPoint,
    FillPublic,
    OrderPublic,
    OrderStatus,
    PositionPublic,
    Resolution,
    account_owner,
    equity_curve,
    get_order,
    list_fills,
    list_orders,
    list_positions,
)
from kernel.auth import Principal
from kernel.deps import ConnDep
from kernel.http import Problem, decode_cursor, encode_cursor

router = APIRouter(prefix="/accounts", tags=["trading"])

OrderIdPath = Annotated[uuid.UUID, Path(examples=["9b1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e"])]
Limit1000 = Annotated[int, Query(ge=1, le=1000)]


def _examples(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [{"items": [example], "next_cursor": None}]})


class OrderPage(BaseModel):
    model_config = _examples(EXAMPLE_ORDER)

    items: list[OrderPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class FillPage(BaseModel):
    model_config = _examples(EXAMPLE_FILL)

    items: list[FillPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class PositionPage(BaseModel):
    model_config = _examples(EXAMPLE_POSITION)

    items: list[PositionPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class EquityPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"resolution": "1m", "items": [EXAMPLE_POINT], "next_cursor": None}]})

    resolution: Resolution
    items: list[EquityPoint]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


async def _own_account(conn: psycopg.AsyncConnection, account_id: uuid.UUID,
                       principal: Principal) -> None:
    """404 unless the account exists and the reader may see it (the same answer for both)."""
    owner = await account_owner(conn, account_id)
    if owner is None or not (principal.role == "admin" or str(owner) == principal.user_id):
        raise Problem(404, "account-not-found", "Account not found",
                      f"no account {account_id} of yours")


def _bad_cursor() -> Problem:
    return Problem(422, "invalid-cursor", "The cursor is not valid",
                   "pass back the `next_cursor` of a previous page unchanged")


def _cursor(cursor: str | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, keys=keys)
    except Problem:
        raise _bad_cursor() from None


def _at_id(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    data = _cursor(cursor, ("at", "id"))
    if data is None:
        return None
    try:
        return datetime.fromisoformat(data["at"]), uuid.UUID(data["id"])
    except (TypeError, ValueError):
        raise _bad_cursor() from None


def _at_text(cursor: str | None) -> tuple[datetime, str] | None:
    data = _cursor(cursor, ("at", "id"))
    if data is None:
        return None
    try:
        at, key = datetime.fromisoformat(data["at"]), data["id"]
    except (TypeError, ValueError):
        raise _bad_cursor() from None
    if not isinstance(key, str) or not key:
        raise _bad_cursor()
    return at, key


def _next(more: bool, at: datetime, key: object) -> str | None:
    return encode_cursor({"at": at.isoformat(), "id": str(key)}) if more else None


@router.get("/{account_id}/orders", operation_id="listAccountOrders", response_model=OrderPage,
            summary="An account's orders, newest first", responses=ONE_ERRORS,
            dependencies=[LIST_READS])
async def list_account_orders(
    account_id: AccountIdPath, principal: Reader, conn: ConnDep, cursor: Cursor = None,
    limit: Limit = 50, status: OrderStatus | None = None,
    open: Annotated[bool, Query(description="only working and partially filled orders")]
    = False,
) -> OrderPage:
    await _own_account(conn, account_id, principal)
    statuses: tuple[str, ...] | None = OPEN_STATUSES if open else None
    if status is not None:
        statuses = (status,) if statuses is None or status in statuses else ()
    items = await list_orders(conn, account_id, statuses=statuses, after=_at_id(cursor),
                              limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    last = items[-1] if items else None
    return OrderPage(items=items, next_cursor=None if last is None else
                     _next(more, last.created_at, last.order_id))


@router.get("/{account_id}/orders/{order_id}", operation_id="getAccountOrder",
            response_model=OrderPublic, summary="One order of an account", responses=ONE_ERRORS)
async def get_account_order(account_id: AccountIdPath, order_id: OrderIdPath,
                            principal: Reader, conn: ConnDep) -> OrderPublic:
    await _own_account(conn, account_id, principal)
    found = await get_order(conn, account_id, order_id)
    if found is None:
        raise Problem(404, "order-not-found", "Order not found",
                      f"no order {order_id} on account {account_id}")
    return found


@router.get("/{account_id}/fills", operation_id="listAccountFills", response_model=FillPage,
            summary="An account's fills, newest first", responses=ONE_ERRORS,
            dependencies=[LIST_READS])
async def list_account_fills(account_id: AccountIdPath, principal: Reader, conn: ConnDep,
                             cursor: Cursor = None, limit: Limit = 50) -> FillPage:
    await _own_account(conn, account_id, principal)
    items = await list_fills(conn, account_id, after=_at_id(cursor), limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    last = items[-1] if items else None
    return FillPage(items=items, next_cursor=None if last is None else
                    _next(more, last.filled_at, last.fill_id))


@router.get("/{account_id}/positions", operation_id="listAccountPositions",
            response_model=PositionPage, responses=ONE_ERRORS, dependencies=[LIST_READS],
            summary="An account's positions, most recently changed first (open by default)")
async def list_account_positions(
    account_id: AccountIdPath, principal: Reader, conn: ConnDep, cursor: Cursor = None,
    limit: Limit = 50, status: Literal["open", "closed", "all"] = "open",
) -> PositionPage:
    await _own_account(conn, account_id, principal)
    items = await list_positions(conn, account_id,
                                 statuses=None if status == "all" else (status,),
                                 after=_at_text(cursor), limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    last = items[-1] if items else None
    return PositionPage(items=items, next_cursor=None if last is None else
                        _next(more, last.updated_at, last.instrument))


@router.get("/{account_id}/equity", operation_id="getAccountEquity", response_model=EquityPage,
            summary="An account's equity curve: the last mark per bucket, newest first",
            responses=ONE_ERRORS, dependencies=[LIST_READS])
async def get_account_equity(
    account_id: AccountIdPath, principal: Reader, conn: ConnDep, cursor: Cursor = None,
    limit: Limit1000 = 500,
    since: Annotated[datetime | None, Query(alias="from", description="first bucket (incl.)")]
    = None,
    until: Annotated[datetime | None, Query(alias="to", description="end (excl.)")] = None,
    resolution: Resolution = "1m",
) -> EquityPage:
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, "validation-failed", "The request is not valid",
                          f"`{name}` needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise Problem(422, "validation-failed", "The request is not valid",
                      "`from` must be before `to`")
    await _own_account(conn, account_id, principal)
    data = _cursor(cursor, ("before",))
    before = None
    if data is not None:
        try:
            before = datetime.fromisoformat(data["before"])
        except (TypeError, ValueError):
            raise _bad_cursor() from None
        if before.tzinfo is None:
            raise _bad_cursor()
    items = await equity_curve(conn, account_id, since=since, until=until,
                               resolution=resolution, before=before, limit=limit + 1)
    more, items = len(items) > limit, items[:limit]
    next_cursor = encode_cursor({"before": items[-1].bucket.isoformat()}) \
        if more and items else None
    return EquityPage(resolution=resolution, items=items, next_cursor=next_cursor)
