"""TradingView UDF datafeed: /config, /symbols, /search, /history, /time, /quotes.

UDF errors are bodies, not statuses: TradingView's UDF client branches on the `s` field
of a parsed JSON body (`ok`, `no_data`, `error` with `errmsg`), so every answer here is
HTTP 200 in UDF's shape — invalid query parameters included — and never problem+json.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from kernel.deps import ConnDep
from market_data.domain.ranges import MAX_RANGE_BARS, SECOND_NS, check_range
from market_data.domain.udf import (
    SUPPORTED_RESOLUTIONS,
    earlier_needed,
    history_payload,
    price_format,
    session_string,
    timezone_name,
    to_resolution,
    udf_error,
    volume_precision,
)
from market_data.entrypoints.http.deps import MARKET_DATA, PricesDep, limit_reads
from market_data.views.bars import last_open_before, list_bars
from market_data.views.instruments import (
    InstrumentInfo,
    get_instrument,
    get_instruments,
    search_instruments,
    venues_and_classes,
)

DAY_NS = 86_400 * SECOND_NS
# Each quoted symbol costs a Redis read and two queries: a call asks for a bounded few.
MAX_QUOTE_SYMBOLS = 20
INTRADAY = [r for r in SUPPORTED_RESOLUTIONS if r[-1].isdigit()]
# Our asset classes as TradingView symbol types.
TYPES = {"crypto": "crypto", "fx": "forex", "index": "index", "equity": "stock",
         "commodity": "commodity", "prediction": "prediction"}
CLASSES = {v: k for k, v in TYPES.items()}

# The clock that decides which UTC day "today" is (a test pins it across midnight).
now_ns = time.time_ns


class UdfRoute(APIRoute):
    """Answer invalid query parameters in UDF's error shape instead of problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p != "query")
                return JSONResponse(udf_error(f"{where}: {first.get('msg', 'invalid')}"))

        return route


# PostgreSQL text cannot hold NUL: such a query was a 500 from the database driver.
NO_NUL = r"^[^\x00]*$"

router = APIRouter(prefix="/udf", tags=["udf"], route_class=UdfRoute,
                   dependencies=[MARKET_DATA])

BTC_INFO = {
    "name": "BTC-USD", "ticker": "BTC-USD", "full_name": "simulator:BTC-USD",
    "description": "Bitcoin / US dollar", "type": "crypto", "session": "24x7",
    "timezone": "Etc/UTC", "exchange": "simulator", "listed_exchange": "simulator",
    "format": "price", "minmov": 1, "minmov2": 0, "pointvalue": 1, "pricescale": 100,
    "has_intraday": True, "has_daily": True, "has_weekly_and_monthly": False,
    "intraday_multipliers": ["1", "5", "15", "60", "240"],
    "supported_resolutions": ["1", "5", "15", "60", "240", "1D"], "volume_precision": 4,
    "visible_plots_set": "ohlcv", "currency_code": "USD", "data_status": "streaming",
}


def _answers(example: Any, media_type: str = "application/json") -> dict[int | str, Any]:
    """UDF answers are plain dicts, not models: their example is given on the route."""
    return {200: {"content": {media_type: {"example": example}}}}


async def _resolve(conn: ConnDep, symbol: str) -> InstrumentInfo | None:
    """An instrument by ticker, or by `EXCHANGE:TICKER` as TradingView may send it."""
    found = await get_instrument(conn, symbol)
    if found is None and ":" in symbol:
        found = await get_instrument(conn, symbol.split(":", 1)[1])
    return found


def _symbol_info(inst: InstrumentInfo) -> dict[str, Any]:
    pricescale, minmov = price_format(inst.tick_size)
    return {
        "name": inst.symbol,
        "ticker": inst.symbol,
        "full_name": f"{inst.venue}:{inst.symbol}",
        "description": inst.description or inst.symbol,
        "type": TYPES.get(inst.asset_class, inst.asset_class),
        "session": session_string(inst.trading_hours),
        "timezone": timezone_name(inst.trading_hours.timezone),
        "exchange": inst.venue,
        "listed_exchange": inst.venue,
        "format": "price",
        "minmov": minmov,
        "minmov2": 0,
        "pointvalue": 1,
        "pricescale": pricescale,
        "has_intraday": True,
        "has_daily": True,
        "has_weekly_and_monthly": False,
        "intraday_multipliers": INTRADAY,
        "supported_resolutions": list(SUPPORTED_RESOLUTIONS),
        "volume_precision": volume_precision(inst.lot_size),
        "visible_plots_set": "ohlcv",
        "currency_code": inst.quote_currency,
        "data_status": "streaming",
    }


@router.get("/config", operation_id="udfConfig", summary="UDF datafeed configuration",
            responses=_answers({
                "supported_resolutions": ["1", "5", "15", "60", "240", "1D"],
                "supports_search": True, "supports_group_request": False,
                "supports_marks": False, "supports_timescale_marks": False,
                "supports_time": True,
                "exchanges": [{"value": "", "name": "All Exchanges", "desc": ""},
                              {"value": "simulator", "name": "simulator", "desc": "simulator"}],
                "symbols_types": [{"name": "All types", "value": ""},
                                  {"name": "crypto", "value": "crypto"}]}))
async def config(conn: ConnDep) -> dict[str, Any]:
    venues, classes = await venues_and_classes(conn)
    return {
        "supported_resolutions": list(SUPPORTED_RESOLUTIONS),
        "supports_search": True,
        "supports_group_request": False,
        "supports_marks": False,
        "supports_timescale_marks": False,
        "supports_time": True,
        "exchanges": [{"value": "", "name": "All Exchanges", "desc": ""}]
        + [{"value": v, "name": v, "desc": v} for v in venues],
        "symbols_types": [{"name": "All types", "value": ""}]
        + [{"name": TYPES.get(c, c), "value": TYPES.get(c, c)} for c in classes],
    }


@router.get("/symbols", operation_id="udfSymbol", summary="UDF symbol information",
            responses=_answers(BTC_INFO))
async def symbols(conn: ConnDep, symbol: Annotated[
        str, Query(min_length=1, max_length=100, pattern=NO_NUL)]) -> dict[str, Any]:
    inst = await _resolve(conn, symbol)
    if inst is None:
        return udf_error("unknown symbol")
    return _symbol_info(inst)


@router.get("/search", operation_id="udfSearch", summary="UDF symbol search",
            responses=_answers([{"symbol": "BTC-USD", "full_name": "simulator:BTC-USD",
                                 "description": "Bitcoin / US dollar", "exchange": "simulator",
                                 "ticker": "BTC-USD", "type": "crypto"}]))
async def search(
    conn: ConnDep,
    query: Annotated[str, Query(max_length=100, pattern=NO_NUL)] = "",
    type: Annotated[str, Query(max_length=40, pattern=NO_NUL)] = "",  # UDF names it so
    exchange: Annotated[str, Query(max_length=40, pattern=NO_NUL)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
) -> list[dict[str, Any]] | dict[str, str]:  # the list, or UDF's error object (UdfRoute)
    found = await search_instruments(conn, query=query, asset_class=CLASSES.get(type, type),
                                     venue=exchange, limit=limit)
    return [{"symbol": i.symbol, "full_name": f"{i.venue}:{i.symbol}",
             "description": i.description or i.symbol, "exchange": i.venue,
             "ticker": i.symbol, "type": TYPES.get(i.asset_class, i.asset_class)}
            for i in found]


@router.get("/history", operation_id="udfHistory",
            summary="UDF bars in [from, to), topped up to `countback` bars with earlier ones",
            responses=_answers({"s": "ok", "t": [1772632680, 1772632740],
                                "o": [96980.0, 97010.0], "h": [97025.5, 97040.0],
                                "l": [96970.0, 96995.5], "c": [97010.0, 97012.5],
                                "v": [3.1842, 2.7719]}))
async def history(
    request: Request,
    conn: ConnDep,
    symbol: Annotated[str, Query(min_length=1, max_length=100, pattern=NO_NUL)],
    resolution: Annotated[str, Query(min_length=1, max_length=10, pattern=NO_NUL)],
    from_: Annotated[int, Query(alias="from", ge=0)],
    to: Annotated[int, Query(ge=0)],
    countback: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    await limit_reads(request)
    res = to_resolution(resolution)
    if res is None:
        return udf_error(f"unsupported resolution {resolution!r}; supported: "
                         + ", ".join(SUPPORTED_RESOLUTIONS))
    refused = check_range(from_, to, res)
    if refused is not None:
        return udf_error(refused.detail)
    if countback is not None and countback > MAX_RANGE_BARS:
        return udf_error(f"countback {countback} is above {MAX_RANGE_BARS}")
    inst = await _resolve(conn, symbol)
    if inst is None:
        return udf_error("unknown symbol")
    from_ns, to_ns = from_ * SECOND_NS, to * SECOND_NS
    in_range = await list_bars(conn, instrument=inst.symbol, resolution=res, from_ns=from_ns,
                               to_ns=to_ns, limit=MAX_RANGE_BARS)
    need = earlier_needed(len(in_range), countback)
    earlier = await list_bars(conn, instrument=inst.symbol, resolution=res, from_ns=0,
                              to_ns=from_ns, limit=need) if need else []
    next_time = None
    if not in_range and not earlier:
        # Nothing here: tell the chart where the newest older bar is, if any.
        next_time = await last_open_before(conn, instrument=inst.symbol, resolution=res,
                                           before_ns=from_ns)
    return history_payload(in_range, earlier=earlier, countback=countback,
                           next_time_ns=next_time)


@router.get("/time", operation_id="udfTime", summary="Server time, unix seconds, plain text",
            response_class=PlainTextResponse, responses=_answers("1772632800", "text/plain"))
async def server_time() -> PlainTextResponse:
    return PlainTextResponse(str(int(time.time())))


@router.get("/quotes", operation_id="udfQuotes", summary="UDF quotes of several symbols",
            responses=_answers({"s": "ok", "d": [{"s": "ok", "n": "BTC-USD", "v": {
                "ch": 1212.5, "chp": 1.27, "short_name": "BTC-USD", "exchange": "simulator",
                "description": "Bitcoin / US dollar", "lp": 97012.5, "ask": 97014.0,
                "bid": 97011.0, "open_price": 95800.0, "high_price": 97350.0,
                "low_price": 95410.0, "prev_close_price": 95800.0, "volume": 1843.2}}]}))
async def quotes(request: Request, conn: ConnDep, prices: PricesDep, symbols: Annotated[
        str, Query(min_length=1, max_length=2000, pattern=NO_NUL)]) -> dict[str, Any]:
    await limit_reads(request, "udf-quotes", rate="udf_quotes_rate_per_s",
                      burst="udf_quotes_burst")
    names = list(dict.fromkeys(s.strip() for s in symbols.split(",") if s.strip()))
    if len(names) > MAX_QUOTE_SYMBOLS:
        return udf_error(f"{len(names)} symbols asked; at most {MAX_QUOTE_SYMBOLS} per call")
    known = await get_instruments(conn, [n.split(":", 1)[-1] for n in names])
    day_ns = now_ns() // DAY_NS * DAY_NS
    out: list[dict[str, Any]] = []
    for name in names:
        inst = known.get(name.split(":", 1)[-1])
        latest = await prices.latest(inst.symbol) if inst is not None else None
        if inst is None or latest is None:
            out.append({"s": "error", "n": name, "v": {}})
            continue
        day = await list_bars(conn, instrument=inst.symbol, resolution="1d", from_ns=day_ns,
                              to_ns=day_ns + DAY_NS, limit=1)
        prev = await list_bars(conn, instrument=inst.symbol, resolution="1d", from_ns=0,
                               to_ns=day_ns, limit=1)
        lp = latest.price
        prev_close = prev[-1].close if prev else None
        reference = prev_close if prev_close is not None else (day[0].open if day else None)
        ch = lp - reference if reference is not None else 0.0
        chp = ch / reference * 100 if reference else 0.0
        out.append({"s": "ok", "n": name, "v": {
            "ch": ch, "chp": chp, "short_name": inst.symbol, "exchange": inst.venue,
            "description": inst.description or inst.symbol, "lp": lp,
            "ask": latest.ask if latest.ask is not None else lp,
            "bid": latest.bid if latest.bid is not None else lp,
            "open_price": day[0].open if day else None,
            "high_price": day[0].high if day else None,
            "low_price": day[0].low if day else None,
            "prev_close_price": prev_close,
            "volume": day[0].volume if day else None,
        }})
    return {"s": "ok", "d": out}
