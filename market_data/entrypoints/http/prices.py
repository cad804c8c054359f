"""Live prices, recent ticks and levels, straight from Redis."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict

from kernel.http import PROBLEM_SCHEMA, Problem
from market_data.adapters.redis_prices import LatestPrice
from market_data.entrypoints.http.deps import MARKET_DATA, LevelsDep, PricesDep, SymbolPath

router = APIRouter(prefix="/market", tags=["market"], dependencies=[MARKET_DATA])

NO_STORE = "no-store"
SECOND_NS = 1_000_000_000


class PricePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "instrument": "BTC-USD", "price": 97012.5, "bid": 97011.0, "ask": 97014.0,
        "venue": "simulator", "time": 1772632800.25, "ts_ns": 1772632800250000000}]})

    instrument: str
    price: float
    bid: float | None
    ask: float | None
    venue: str
    time: float
    ts_ns: int

    @classmethod
    def of(cls, latest: LatestPrice) -> PricePublic:
        return cls(instrument=latest.instrument, price=latest.price, bid=latest.bid,
                   ask=latest.ask, venue=latest.venue, time=latest.ts_ns / SECOND_NS,
                   ts_ns=latest.ts_ns)


class TickPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "time": 1772632800.25, "ts_ns": 1772632800250000000, "price": 97012.5, "size": 0.042,
        "side": "buy", "trade_id": "sim-BTC-USD-884213", "venue": "simulator"}]})

    time: float
    ts_ns: int
    price: float
    size: float
    side: str | None = None
    trade_id: str | None = None
    venue: str | None = None


class LevelsPublic(BaseModel):
    """ATH/ATL, last price, the Enigma level (percent) and Fibonacci levels."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "instrument": "BTC-USD", "ath": 109350.0, "atl": 15460.0, "last": 97012.5,
        "enigma": 87.2, "fibonacci": [{"pct": 61.8, "price": 73490.7},
                                      {"pct": 78.6, "price": 89263.9}]}]})

    instrument: str
    ath: float | None
    atl: float | None
    last: float | None
    enigma: float | None
    fibonacci: list[Any]


def _example_of(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """A list answer's example: the items' own examples, since the array schema has none."""
    examples = model.model_config.get("json_schema_extra", {})["examples"]  # type: ignore[index]
    return {200: {"content": {"application/json": {"example": examples}}}}


def _no_price(symbol: str) -> Problem:
    return Problem(404, "price-not-found", "No price for this instrument",
                   f"no price has been seen for {symbol!r}")


@router.get("/prices", operation_id="listPrices", summary="Latest price of every instrument",
            response_model=list[PricePublic], responses=_example_of(PricePublic))
async def list_prices(prices: PricesDep, response: Response) -> list[PricePublic]:
    response.headers["Cache-Control"] = NO_STORE
    return [PricePublic.of(p) for p in await prices.all_latest()]


@router.get("/prices/{symbol}", operation_id="getPrice", summary="Latest price of one instrument",
            response_model=PricePublic, responses={404: PROBLEM_SCHEMA})
async def get_price(symbol: SymbolPath, prices: PricesDep, response: Response) -> PricePublic:
    latest = await prices.latest(symbol)
    if latest is None:
        raise _no_price(symbol)
    response.headers["Cache-Control"] = NO_STORE
    return PricePublic.of(latest)


@router.get("/prices/{symbol}/ticks", operation_id="listRecentTicks",
            summary="Most recent ticks of one instrument, oldest first",
            response_model=list[TickPublic],
            responses={**_example_of(TickPublic), 404: PROBLEM_SCHEMA, 422: PROBLEM_SCHEMA})
async def recent_ticks(symbol: SymbolPath, prices: PricesDep, response: Response,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[TickPublic]:
    ticks = await prices.recent(symbol, limit)
    if not ticks:
        raise _no_price(symbol)
    response.headers["Cache-Control"] = NO_STORE
    return [TickPublic(time=t["ts_ns"] / SECOND_NS, **t) for t in ticks]


@router.get("/levels/{symbol}", operation_id="getLevels", summary="Live levels of one instrument",
            response_model=LevelsPublic, responses={404: PROBLEM_SCHEMA})
async def get_levels(symbol: SymbolPath, levels: LevelsDep, response: Response) -> LevelsPublic:
    data = await levels.get(symbol)
    if data is None:
        raise Problem(404, "levels-not-found", "No levels for this instrument",
                      f"no levels have been computed for {symbol!r}")
    response.headers["Cache-Control"] = NO_STORE
    return LevelsPublic.model_validate({**data, "instrument": symbol})
