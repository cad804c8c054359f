"""REST for the instrument registry: commands go through Kafka, reads come from PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.domain.instruments import Instrument
from core.entrypoints.http.commands import (
    CommandAccepted,
    admin_command,
    refused,
    undecided,
)
from core.entrypoints.http.deps import LIST_READS, BusDep, IdempotencyKey, RegistryDep
from core.handlers import instruments as handlers
from core.views.instruments import InstrumentPublic, get_instrument, list_instruments
from kernel.application import Decided, Outcome, Rejected
from kernel.auth import ROLES, Principal, access, public
from kernel.deps import ConnDep, PoolDep
from kernel.http import PROBLEM_SCHEMA, Problem, decode_cursor, encode_cursor
from kernel.ratelimit import rate_limited
from schemas.instrument import (
    AssetClass,
    HaltInstrument,
    InstrumentChanges,
    InstrumentSpec,
    InstrumentStatus,
    RegisterInstrument,
    ResolveInstrument,
    ResumeInstrument,
    UpdateInstrument,
)
from schemas.replies import CommandReply

router = APIRouter(prefix="/instruments", tags=["instruments"])
commands_router = APIRouter(prefix="/commands", tags=["commands"])

SymbolPath = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._:/-]+$",
                                  examples=["BTC-USD"])]

# Refusal reasons -> HTTP status; the problem type is the reason itself.
REASON_STATUS = {
    "instrument-already-registered": 409,
    "instrument-not-registered": 404,
    "instrument-already-halted": 409,
    "instrument-not-halted": 409,
    "nothing-to-change": 409,
    "symbol-mismatch": 422,
    "instrument-not-resolvable": 409,
    "instrument-already-resolved": 409,  # only while the read model lags: else the row, 200
    "resolution-conflict": 409,
    "instrument-resolved": 409,
}

EXAMPLE_SPEC = {
    "symbol": "BTC-USD", "venue": "simulator", "asset_class": "crypto", "tick_size": "0.01",
    "lot_size": "0.0001", "quote_currency": "USD", "trading_hours": {"timezone": "UTC",
                                                                     "sessions": []},
    "description": "Bitcoin / US dollar",
}


# The decided outcome of a halt: the reply model is shared, so its example lives here.
REPLY_EXAMPLE = {
    "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f", "aggregate_id": "BTC-USD",
    "status": "accepted", "reason": None, "detail": None, "duplicate": False,
    "actor": "7c4f1e2a-5b3d-5e6f-8a9b-0c1d2e3f4a5b",
    "events": [{
        "event_id": "a41d7c2e-9b3f-4e6a-8c1d-2f5e7a9b0c3d", "type": "instrument.halted",
        "version": 1, "aggregate_id": "BTC-USD", "sequence": 4,
        "occurred_at": "2026-03-02T14:05:11Z",
        "correlation_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f",
        "causation_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f",
        "actor": "7c4f1e2a-5b3d-5e6f-8a9b-0c1d2e3f4a5b",
        "payload": {"symbol": "BTC-USD", "reason": "exchange outage"},
    }],
}
UPDATE_EXAMPLE = {"tick_size": "0.5", "description": "Bitcoin / US dollar (simulated)"}


class InstrumentPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": InstrumentPublic.model_config["json_schema_extra"]["examples"],  # type: ignore
        "next_cursor": "eyJzeW1ib2wiOiAiQlRDLVVTRCJ9",
    }]})

    items: list[InstrumentPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"reason": "exchange outage"}]})

    reason: str = Field(min_length=1, max_length=200, examples=["exchange outage"])


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": 1, "resolved_at": "2026-11-04T03:00:00Z"}]})

    outcome: Literal[0, 1] = Field(description="1: the contract pays 1 per unit (yes), "
                                               "0: it pays nothing (no)")
    resolved_at: AwareDatetime | None = Field(
        default=None, description="when the market resolved; the time it is decided when "
                                  "not given")


ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
# Every command route is an admin's, and takes a token of the app's default bucket, per caller
# and per IP.
COMMAND_LIMIT = [Depends(rate_limited("instrument-commands"))]
AdminDep = Annotated[Principal, access("admin", scope="admin")]
REFERENCE = public("the instrument registry is reference data for every visitor")


def _answer(outcome: Outcome[Instrument], symbol: str) -> Any:
    """The decided instrument as the public DTO, else the 202 or the problem."""
    if isinstance(outcome, Decided):
        return handlers.public(outcome.known)
    if isinstance(outcome, Rejected):
        raise refused(outcome, REASON_STATUS)
    return undecided(outcome, location=f"/instruments/{symbol}")


@router.post("", operation_id="registerInstrument", status_code=201,
             summary="Register an instrument", response_model=InstrumentPublic,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def register_instrument(
    spec: Annotated[InstrumentSpec, Body(examples=[EXAMPLE_SPEC])], admin: AdminDep,
    bus: BusDep, registry: RegistryDep, response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    outcome = await handlers.register(bus, registry, admin_command(
        RegisterInstrument(spec=spec), spec.symbol, admin=admin,
        idempotency_key=idempotency_key, route="register"))
    if isinstance(outcome, Decided):
        response.headers["Location"] = f"/instruments/{spec.symbol}"
    return _answer(outcome, spec.symbol)


@router.get("", operation_id="listInstruments", summary="List instruments by symbol",
            response_model=InstrumentPage,
            responses={400: PROBLEM_SCHEMA, 422: PROBLEM_SCHEMA, 429: PROBLEM_SCHEMA},
            dependencies=[REFERENCE, LIST_READS])
async def list_all(
    conn: ConnDep,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    asset_class: AssetClass | None = None,
    status: InstrumentStatus | None = None,
) -> InstrumentPage:
    after = decode_cursor(cursor, keys=("after",))["after"] if cursor else None
    if after is not None and not isinstance(after, str):
        raise Problem(400, "invalid-cursor", "The cursor is not valid")
    items = await list_instruments(conn, after=after, limit=limit + 1,
                                   asset_class=asset_class, status=status)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = encode_cursor({"after": items[-1].symbol}) if more and items else None
    return InstrumentPage(items=items, next_cursor=next_cursor)


@router.get("/{symbol}", operation_id="getInstrument", summary="One instrument",
            response_model=InstrumentPublic, responses={404: PROBLEM_SCHEMA},
            dependencies=[REFERENCE])
async def get_one(symbol: SymbolPath, conn: ConnDep) -> InstrumentPublic:
    found = await get_instrument(conn, symbol)
    if found is None:
        raise Problem(404, "instrument-not-found", "Instrument not found",
                      f"no instrument {symbol!r} is registered")
    return found


async def _change(symbol: str, payload: handlers.Change, bus: BusDep, registry: RegistryDep,
                  pool: PoolDep, admin: Principal, idempotency_key: str | None,
                  route: str) -> Any:
    async def read() -> InstrumentPublic | None:
        async with pool.connection() as conn:  # per read: none held through the wait
            return await get_instrument(conn, symbol)

    outcome = await handlers.change(bus, registry, admin_command(
        payload, symbol, admin=admin, idempotency_key=idempotency_key, route=route),
        read=read)
    return _answer(outcome, symbol)


@router.patch("/{symbol}", operation_id="updateInstrument", summary="Change attributes",
              response_model=InstrumentPublic,
              responses={202: {"model": CommandAccepted}, **ERRORS},
              dependencies=COMMAND_LIMIT)
async def update(symbol: SymbolPath,
                 changes: Annotated[InstrumentChanges, Body(examples=[UPDATE_EXAMPLE])],
                 admin: AdminDep, bus: BusDep, registry: RegistryDep, pool: PoolDep,
                 idempotency_key: IdempotencyKey = None) -> Any:
    return await _change(symbol, UpdateInstrument(changes=changes), bus, registry, pool, admin,
                         idempotency_key, "update")


@router.post("/{symbol}/halt", operation_id="haltInstrument", summary="Halt trading",
             response_model=InstrumentPublic,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def halt(symbol: SymbolPath, body: HaltRequest, admin: AdminDep, bus: BusDep,
               registry: RegistryDep, pool: PoolDep,
               idempotency_key: IdempotencyKey = None) -> Any:
    return await _change(symbol, HaltInstrument(reason=body.reason), bus, registry, pool, admin,
                         idempotency_key, "halt")


@router.post("/{symbol}/resume", operation_id="resumeInstrument", summary="Resume trading",
             response_model=InstrumentPublic,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def resume(symbol: SymbolPath, admin: AdminDep, bus: BusDep, registry: RegistryDep,
                 pool: PoolDep, idempotency_key: IdempotencyKey = None) -> Any:
    return await _change(symbol, ResumeInstrument(), bus, registry, pool, admin, idempotency_key,
                         "resume")


@router.post("/{symbol}/resolve", operation_id="resolveInstrument",
             summary="Resolve a prediction market",
             description="Settles every position in the contract at the outcome, once. Only "
                         "`prediction` instruments resolve (others: 409 "
                         "`instrument-not-resolvable`); the same outcome again answers the "
                         "resolved instrument unchanged, another one is 409 "
                         "`resolution-conflict`.",
             response_model=InstrumentPublic,
             responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=COMMAND_LIMIT)
async def resolve(symbol: SymbolPath, body: ResolveRequest, admin: AdminDep, bus: BusDep,
                  registry: RegistryDep, pool: PoolDep,
                  idempotency_key: IdempotencyKey = None) -> Any:
    payload = ResolveInstrument(outcome=body.outcome, source="admin",
                                resolved_at=body.resolved_at)
    outcome = await handlers.change(bus, registry, admin_command(
        payload, symbol, admin=admin, idempotency_key=idempotency_key, route="resolve"),
        read=_reader(pool, symbol))
    if isinstance(outcome, Rejected) and outcome.reason == "instrument-already-resolved":
        # Resolving again as it resolved changes nothing: the instrument as it stands.
        async with pool.connection() as conn:
            found = await get_instrument(conn, symbol)
        if found is not None and found.outcome == body.outcome:
            return found
    return _answer(outcome, symbol)


def _reader(pool: Any, symbol: str) -> handlers.ReadRow:
    async def read() -> InstrumentPublic | None:
        async with pool.connection() as conn:  # per read: none held through the wait
            return await get_instrument(conn, symbol)
    return read


@commands_router.get("/{command_id}", operation_id="getCommandOutcome",
                     summary="The decided outcome of a command answered with 202",
                     description="Only for the caller who sent the command, or an admin "
                                 "(with the `admin` scope); for anyone else the command is "
                                 "not found, exactly like an unknown id. Secret and personal "
                                 "fields of the events are never in a reply.",
                     response_model=CommandReply,
                     responses={200: {"content": {"application/json": {"example": REPLY_EXAMPLE}}},
                                401: PROBLEM_SCHEMA, 404: PROBLEM_SCHEMA})
async def command_outcome(
    command_id: Annotated[uuid.UUID, Path(examples=["5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"])],
    bus: BusDep,
    caller: Annotated[Principal, access(*ROLES, note="the command's sender, or an admin with "
                                                      "the admin scope; others get 404")],
) -> CommandReply:
    reply = bus.recent(command_id)
    if reply is None or not _may_read(caller, reply):
        # Someone else's command is answered like an unknown one: ids must not be probed.
        raise Problem(404, "command-not-found", "No outcome known for this command",
                      "it is still pending, was decided before this instance started, or is "
                      "not yours")
    return reply


def _may_read(caller: Principal, reply: CommandReply) -> bool:
    if reply.actor is not None and reply.actor == caller.user_id:
        return True
    return caller.role == "admin" and "admin" in caller.scopes
