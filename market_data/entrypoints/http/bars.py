"""Closed OHLCV bars from the `market_bars` read model, with HTTP caching."""

from __future__ import annotations

import hashlib
import time
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kernel.deps import ConnDep
from kernel.http import PROBLEM_SCHEMA, Problem
from market_data.domain.ranges import SECOND_NS, check_range
from market_data.domain.udf import resolution_seconds
from market_data.entrypoints.http.deps import MARKET_DATA, SymbolPath, limit_reads
from market_data.views.bars import BarPublic, list_bars
from schemas.market import Resolution

router = APIRouter(prefix="/market", tags=["market"], dependencies=[MARKET_DATA])

CLOSED_MAX_AGE_S = 3600  # a range wholly in the past no longer changes


class BarOut(BaseModel):
    time: int = Field(description="open time, unix seconds")
    close_time: int = Field(description="close time, unix seconds")
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int

    @classmethod
    def of(cls, bar: BarPublic) -> BarOut:
        return cls(time=bar.open_time_ns // SECOND_NS, close_time=bar.close_time_ns // SECOND_NS,
                   open=bar.open, high=bar.high, low=bar.low, close=bar.close,
                   volume=bar.volume, trades=bar.trades)


class BarsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "instrument": "BTC-USD", "resolution": "1m", "from": 1772632680, "to": 1772632800,
        "bars": [{"time": 1772632680, "close_time": 1772632740, "open": 96980.0,
                  "high": 97025.5, "low": 96970.0, "close": 97010.0, "volume": 3.1842,
                  "trades": 212},
                 {"time": 1772632740, "close_time": 1772632800, "open": 97010.0,
                  "high": 97040.0, "low": 96995.5, "close": 97012.5, "volume": 2.7719,
                  "trades": 187}]}]})

    instrument: str
    resolution: Resolution
    from_: int = Field(serialization_alias="from", description="unix seconds, inclusive")
    to: int = Field(description="unix seconds, exclusive")
    bars: list[BarOut]


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.get("/bars/{symbol}", operation_id="listBars",
            summary="Closed bars opening in [from, to), oldest first (times in unix seconds)",
            response_model=BarsPage,
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"},
                       422: PROBLEM_SCHEMA})
async def bars(
    request: Request,
    symbol: SymbolPath,
    conn: ConnDep,
    resolution: Resolution = "1m",
    from_: Annotated[int | None, Query(alias="from", ge=0, description="unix seconds")] = None,
    to: Annotated[int | None, Query(ge=0, description="unix seconds, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    await limit_reads(request)
    now_s = int(time.time())
    res_s = resolution_seconds(resolution)
    to_s = now_s if to is None else to
    from_s = max(0, to_s - limit * res_s) if from_ is None else from_
    refused = check_range(from_s, to_s, resolution)
    if refused is not None:
        raise Problem(422, refused.reason, "The time range is not valid", refused.detail)
    rows = await list_bars(conn, instrument=symbol, resolution=resolution,
                           from_ns=from_s * SECOND_NS, to_ns=to_s * SECOND_NS, limit=limit)
    page = BarsPage(instrument=symbol, resolution=resolution, from_=from_s, to=to_s,
                    bars=[BarOut.of(b) for b in rows])
    body = page.model_dump_json(by_alias=True).encode()
    etag = etag_of(body)
    closed = to_s < now_s - res_s
    headers = {"ETag": etag,
               "Cache-Control": f"public, max-age={CLOSED_MAX_AGE_S}" if closed else "no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
