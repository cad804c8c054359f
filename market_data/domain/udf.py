"""TradingView UDF (Universal Data Feed) translations. Pure: no IO, no clock.

What the UDF protocol expects, and so what these helpers produce:
- resolutions are TradingView strings: "1", "5", "15", "60", "240" (minutes) and "1D"/"D";
- `pricescale` is 10^decimals of the tick size and `minmov` the tick size in those units
  (tick 0.25 -> pricescale 100, minmov 25);
- a session is "24x7", or "HHMM-HHMM" ranges (comma-separated within a day) with a
  ":<days>" suffix, days numbered 1 = Sunday ... 7 = Saturday, "|" between groups of days;
  a range whose start is after its end is overnight and belongs to the day it ends;
- /history answers `{"s": "ok", "t": [...], "o", "h", "l", "c", "v"}` with `t` in unix
  seconds, oldest first; `{"s": "no_data", "nextTime": <s>}` when the range is empty but
  older data exists, `{"s": "no_data"}` when nothing older exists; with `countback`, the
  bars of [from, to) plus as many earlier bars as it takes to reach `countback` bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

from market_data.domain.bars import RESOLUTION_NS
from schemas.instrument import TradingHours
from schemas.market import Resolution

SECOND_NS = 1_000_000_000

UDF_RESOLUTIONS: dict[str, Resolution] = {
    "1": "1m", "5": "5m", "15": "15m", "60": "1h", "240": "4h", "1D": "1d", "D": "1d",
}
SUPPORTED_RESOLUTIONS: tuple[str, ...] = ("1", "5", "15", "60", "240", "1D")


def to_resolution(udf: str) -> Resolution | None:
    """Our resolution for a TradingView resolution string, or None when unsupported."""
    return UDF_RESOLUTIONS.get(udf)


def resolution_seconds(resolution: Resolution) -> int:
    return RESOLUTION_NS[resolution] // SECOND_NS


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int), "tick and lot sizes are finite"
    return max(0, -exponent)


def price_format(tick_size: Decimal) -> tuple[int, int]:
    """(pricescale, minmov) for a tick size: 0.01 -> (100, 1), 0.25 -> (100, 25), 5 -> (1, 5)."""
    pricescale = 10 ** _decimals(tick_size)
    return pricescale, int(tick_size * pricescale)


def volume_precision(lot_size: Decimal) -> int:
    return _decimals(lot_size)


def _tv_day(day: int) -> int:
    """Our weekday (0 = Monday ... 6 = Sunday) as TradingView's (1 = Sunday ... 7 = Saturday)."""
    return (day + 1) % 7 + 1


def session_string(hours: TradingHours) -> str:
    """The UDF `session` of our trading hours; no sessions means around the clock: "24x7"."""
    if not hours.sessions:
        return "24x7"
    per_day: dict[int, list[str]] = {}
    for session in hours.sessions:
        span = f"{session.open:%H%M}-{session.close:%H%M}"
        overnight = session.close < session.open
        for day in session.days:
            # An overnight range belongs, for TradingView, to the day on which it ends.
            tv_day = _tv_day((day + 1) % 7 if overnight else day)
            per_day.setdefault(tv_day, []).append(span)
    by_spans: dict[str, list[int]] = {}
    for tv_day in sorted(per_day):
        spans = ",".join(sorted(set(per_day[tv_day])))
        by_spans.setdefault(spans, []).append(tv_day)
    return "|".join(f"{spans}:{''.join(str(d) for d in days)}"
                     for spans, days in by_spans.items())


def timezone_name(name: str) -> str:
    """TradingView names UTC "Etc/UTC"; IANA names pass through."""
    return "Etc/UTC" if name.upper() in ("UTC", "Z", "GMT") else name


class BarLike(Protocol):
    @property
    def open_time_ns(self) -> int: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...


def earlier_needed(in_range: int, countback: int | None) -> int:
    """How many bars before `from` complete a countback request (0 without countback)."""
    return 0 if countback is None else max(0, countback - in_range)


def history_payload(in_range: Sequence[BarLike], *, earlier: Sequence[BarLike] = (),
                    countback: int | None = None,
                    next_time_ns: int | None = None) -> dict[str, Any]:
    """The /history answer: the range's bars, topped up from `earlier` to `countback`.

    `earlier` are bars before `from`, oldest first; `next_time_ns` is the open time of the
    newest bar before `from`, used only when nothing is returned.
    """
    need = earlier_needed(len(in_range), countback)
    bars = [*(earlier[-need:] if need else ()), *in_range]
    if not bars:
        if next_time_ns is None:
            return {"s": "no_data"}
        return {"s": "no_data", "nextTime": next_time_ns // SECOND_NS}
    return {
        "s": "ok",
        "t": [b.open_time_ns // SECOND_NS for b in bars],
        "o": [b.open for b in bars],
        "h": [b.high for b in bars],
        "l": [b.low for b in bars],
        "c": [b.close for b in bars],
        "v": [b.volume for b in bars],
    }


def udf_error(message: str) -> dict[str, str]:
    return {"s": "error", "errmsg": message}
