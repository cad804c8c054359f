"""Admin control of the simulator: commands published to `market.commands`.

Open for now; authentication arrives with the admin roles.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kernel.auth import access
from kernel.deps import SettingsDep
from kernel.http import PROBLEM_SCHEMA
from kernel.ratelimit import rate_limited
from market_data.entrypoints.http.deps import ProducerDep
from schemas.codec import encode
from schemas.envelope import make_command
from schemas.instrument import Symbol
from schemas.market import (
    InjectNews,
    OverrideRegime,
    SimulatorCommand,
    StartSimulator,
    StopSimulator,
)

# Every simulator command takes a token of the app's default bucket, per caller and per IP.
router = APIRouter(prefix="/market/simulator", tags=["simulator"],
                   # The market API keeps no API keys (they live in core's read model): a
                   # key is refused at authentication, so the rule says a login is needed.
                   dependencies=[access("admin", scope="admin", token_only=True,
                                        note="the market API accepts logins, not API keys"),
                                 Depends(rate_limited("simulator-commands"))])

COMMANDS_TOPIC = "market.commands"
ALL = "*"
ERRORS: dict[int | str, dict[str, Any]] = {
    s: PROBLEM_SCHEMA for s in (401, 403, 409, 413, 422, 429, 503)
}


TARGET_EXAMPLE = {"symbol": "BTC-USD"}


class SimulatorTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: Symbol | None = Field(default=None, description="one instrument; omit for all")


# Optional: no body (or no symbol) means every instrument.
TargetBody = Annotated[SimulatorTarget | None, Body(examples=[TARGET_EXAMPLE])]


class RegimeRequest(OverrideRegime):
    """The command's own fields (and bounds), plus the instrument it is for."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"symbol": "BTC-USD",
                                                               "regime": "high"}]})

    symbol: Symbol


class NewsRequest(InjectNews):
    """The command's own fields (and bounds, e.g. on `jump`), plus the instrument."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "symbol": "BTC-USD", "headline": "Spot bitcoin ETF sees record inflows", "jump": 0.03}]})

    symbol: Symbol


class CommandPublished(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "command_id": "9b2d4f61-0c3e-4a7b-8d5f-1e2a3b4c5d6f", "type": "market.inject-news",
        "aggregate_id": "BTC-USD"}]})

    command_id: uuid.UUID
    type: str
    aggregate_id: str


async def _publish(producer: ProducerDep, settings: SettingsDep, payload: SimulatorCommand,
                   aggregate_id: str) -> JSONResponse:
    command = make_command(payload, aggregate_id=aggregate_id, command_id=uuid.uuid4(),
                           issued_at=datetime.now(UTC), actor="admin-api")
    await producer.send_and_wait(settings.topic(COMMANDS_TOPIC), value=encode(command),
                                 key=aggregate_id.encode())
    body = CommandPublished(command_id=command.command_id, type=command.type,
                            aggregate_id=aggregate_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


@router.post("/start", operation_id="startSimulator", status_code=202,
             summary="Start the simulator (one instrument, or all)",
             response_model=CommandPublished, responses=ERRORS)
async def start(producer: ProducerDep, settings: SettingsDep,
                body: TargetBody = None) -> JSONResponse:
    target = body.symbol if body is not None and body.symbol else ALL
    return await _publish(producer, settings, StartSimulator(), target)


@router.post("/stop", operation_id="stopSimulator", status_code=202,
             summary="Stop the simulator (one instrument, or all)",
             response_model=CommandPublished, responses=ERRORS)
async def stop(producer: ProducerDep, settings: SettingsDep,
               body: TargetBody = None) -> JSONResponse:
    target = body.symbol if body is not None and body.symbol else ALL
    return await _publish(producer, settings, StopSimulator(), target)


@router.post("/regime", operation_id="overrideSimulatorRegime", status_code=202,
             summary="Force an instrument's volatility regime",
             response_model=CommandPublished, responses=ERRORS)
async def regime(body: RegimeRequest, producer: ProducerDep,
                 settings: SettingsDep) -> JSONResponse:
    return await _publish(producer, settings, OverrideRegime(regime=body.regime), body.symbol)


@router.post("/news", operation_id="injectSimulatorNews", status_code=202,
             summary="Inject a news item that jumps an instrument's price",
             response_model=CommandPublished, responses=ERRORS)
async def news(body: NewsRequest, producer: ProducerDep, settings: SettingsDep) -> JSONResponse:
    return await _publish(producer, settings, InjectNews(headline=body.headline, jump=body.jump),
                          body.symbol)
