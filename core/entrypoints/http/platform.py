"""The admin's platform-wide trading halt: `POST /trading/halt` and `/trading/resume`.

While halted, the account engine refuses every order that adds exposure (409
`trading-halted`; reducing a position is still taken) and fills no resting order; rules are
still judged. Who: an admin with the `admin` scope.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from core.entrypoints.http.commands import CommandAccepted, accepted, refused
from core.entrypoints.http.deps import BusDep, IdempotencyKey, RegistryDep
from core.handlers import platform as handlers
from kernel.application import Command, Pending, Rejected
from kernel.auth import Principal, access
from kernel.commands import command_id_for
from kernel.http import PROBLEM_SCHEMA
from kernel.ratelimit import rate_limited
from schemas.platform import SWITCH, HaltTrading, ResumeTrading

router = APIRouter(prefix="/trading", tags=["platform"])
Admin = Annotated[Principal, access("admin", scope="admin")]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (400, 401, 403, 409, 413, 422, 429, 503)}
LIMIT = [Depends(rate_limited("order-commands"))]


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"reason": "venue outage"}]})

    reason: str = Field(min_length=1, max_length=200)


class TradingState(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "halted": True, "changed": True, "reason": "venue outage",
        "command_id": "5f0c6d7e-3a1b-4c2d-9e8f-0a1b2c3d4e5f"}]})

    halted: bool
    changed: bool = Field(description="false when trading already was so")
    reason: str
    command_id: uuid.UUID


async def _switch(payload: HaltTrading | ResumeTrading, admin: Principal, bus: BusDep,
                  registry: RegistryDep, idempotency_key: str | None, route: str) -> Any:
    command = Command(payload=payload, aggregate_id=SWITCH, actor=admin.user_id,
                      command_id=command_id_for(idempotency_key, caller=admin.user_id,
                                                scope=f"{route}:{SWITCH}", body=payload))
    outcome = await handlers.switch(bus, registry, command)
    if isinstance(outcome, handlers.Switched):
        return TradingState(halted=outcome.halted, changed=outcome.changed,
                            reason=outcome.reason, command_id=outcome.command_id)
    if isinstance(outcome, Rejected):
        raise refused(outcome, {})
    if isinstance(outcome, Pending):
        return accepted(outcome.command_id)
    return accepted(outcome.command_id, status="accepted")


@router.post("/halt", operation_id="haltTrading",
             summary="Halt trading platform-wide: no new exposure, no resting order fills",
             response_model=TradingState, responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=LIMIT)
async def halt_trading(body: SwitchRequest, admin: Admin, bus: BusDep, registry: RegistryDep,
                       idempotency_key: IdempotencyKey = None) -> Any:
    return await _switch(HaltTrading(reason=body.reason), admin, bus, registry,
                         idempotency_key, "halt-trading")


@router.post("/resume", operation_id="resumeTrading", summary="Resume trading platform-wide",
             response_model=TradingState, responses={202: {"model": CommandAccepted}, **ERRORS},
             dependencies=LIMIT)
async def resume_trading(body: SwitchRequest, admin: Admin, bus: BusDep,
                         registry: RegistryDep, idempotency_key: IdempotencyKey = None) -> Any:
    return await _switch(ResumeTrading(reason=body.reason), admin, bus, registry,
                         idempotency_key, "resume-trading")
