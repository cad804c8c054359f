"""`GET /accounts/{id}?as_of=`: the parsing and the problems of a time travel (the route itself
is `getAccount` in `assessments.py`, which checks who may see the account first)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated

import psycopg
from fastapi import Depends, Query, Request

from core.adapters.account_log import AccountLogReader, ReadersBusy, TailTooLong
from core.handlers.time_travel import HistoryPending, NotOpenYet, travel
from core.views.account_history import AccountAsOf
from kernel.http import Problem

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<frac>\.\d{1,9})?"
                      r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})")

AsOf = Annotated[str | None, Query(
    max_length=40, examples=["2026-01-02T09:30:00Z"],
    description="an RFC 3339 instant with its offset: the account as it was then, rebuilt "
                "from the log (balance, positions, open orders); later than now: as it is")]


async def get_history_reader(request: Request) -> AccountLogReader:
    reader: AccountLogReader = request.app.state.account_history
    return reader


HistoryReaderDep = Annotated[AccountLogReader, Depends(get_history_reader)]


def parse_instant(text: str) -> datetime:
    """An RFC 3339 date-time with its offset; 422 `invalid-as-of` for anything else."""
    match = _RFC3339.fullmatch(text)
    if match is not None:
        frac = match["frac"] or ""
        zone = match["zone"].upper().replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(f"{text[:19].replace(' ', 'T').replace('t', 'T')}"
                                          f"{frac[:7]}{zone}").astimezone(UTC)
        except (ValueError, OverflowError):
            pass  # a day or an hour out of range, or an instant before year 1 in UTC
    raise Problem(422, "invalid-as-of", "`as_of` is not an RFC 3339 instant",
                  "pass a date-time with its offset, e.g. 2026-01-02T09:30:00Z")


async def account_at(conn: psycopg.AsyncConnection, reader: AccountLogReader,
                     account_id: uuid.UUID, as_of: str) -> AccountAsOf:
    """The account at `as_of`, or the problem saying why not."""
    instant = parse_instant(as_of)
    try:
        got = await travel(conn, reader, account_id, instant)
    except TailTooLong:
        raise Problem(503, "history-behind", "The account's history is behind the log",
                      "its history projection has not caught up; retry shortly",
                      headers={"Retry-After": "2"}) from None
    except ReadersBusy:
        raise Problem(503, "time-travel-busy", "Too many time travels at once",
                      "retry shortly", headers={"Retry-After": "1"}) from None
    if isinstance(got, HistoryPending):
        raise Problem(503, "history-pending", "The account's history is not built yet",
                      "its history projection has not reached it; retry shortly",
                      headers={"Retry-After": "2"})
    if isinstance(got, NotOpenYet):
        raise Problem(404, "account-not-found", "Account not found",
                      f"account {account_id} did not exist yet at {instant.isoformat()}")
    return got.account
