"""What every venue parser shares: results, reason codes, field checks and the time guard.

A parser turns one raw frame into a `ParseResult`:

* a list of `Tick` (possibly empty for control frames such as subscription acks), and of
  `Resolution` where the venue announces how a prediction market ended,
* a `ParseError` with a stable reason code (the frame is dead-lettered, the feed goes on), or
* a `GapDetected` (a sequenced venue skipped a number; the client resyncs).

Quote-only updates (book tops) become a `Tick` too, so one callback carries everything:
`price` is the mid, `size` is 0.0, `bid`/`ask` are set, `side` and `trade_id` are None. A
size of zero is what marks a quote tick; trade ticks always have size > 0, a side and a
venue trade id. A quote is emitted only when both sides of the book exist (no mid otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import orjson

from market_data.domain.ticks import Side, Tick

Reason = Literal[
    "malformed-json",
    "not-an-object",
    "unknown-event",
    "missing-field",
    "invalid-field",
    "invalid-price",
    "invalid-size",
    "crossed-quote",
    "stale-timestamp",
    "future-timestamp",
    "unknown-symbol",
    "no-snapshot",
    "venue-error",
    "internal-error",
]


@dataclass(frozen=True, slots=True)
class ParseError:
    """A frame we refuse, with a reason code that never changes and a human detail."""

    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GapDetected:
    """A sequenced subscription skipped numbers: its book is void until a resync."""

    sid: int
    expected: int
    received: int
    market: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """A venue says a binary market ended: its contract pays `outcome` (1 or 0) per unit."""

    instrument: str
    outcome: Literal[0, 1]
    venue: str
    venue_ts_ns: int


# A Sequence, not a list: a parser's list of ticks is one (lists do not widen in typing).
ParseResult: TypeAlias = Sequence[Tick | Resolution] | ParseError | GapDetected


class Reject(Exception):
    """Raised inside a parser to stop at the first bad field; turned into a ParseError."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.error = ParseError(reason, detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeGuard:
    """Refuse venue timestamps too far behind or ahead of our receive time."""

    max_age_ns: int = 300 * 1_000_000_000
    max_ahead_ns: int = 10 * 1_000_000_000

    def check(self, venue_ts_ns: int, received_ts_ns: int) -> None:
        if venue_ts_ns < received_ts_ns - self.max_age_ns:
            raise Reject("stale-timestamp", f"{venue_ts_ns} is older than allowed")
        if venue_ts_ns > received_ts_ns + self.max_ahead_ns:
            raise Reject("future-timestamp", f"{venue_ts_ns} is ahead of {received_ts_ns}")


def load_json(raw: bytes | str) -> Any:
    """Decode a frame; anything that is not JSON is `malformed-json`."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Reject("malformed-json", str(exc)[:120]) from None


def require(obj: dict[str, Any], key: str) -> Any:
    if not isinstance(obj, dict):
        raise Reject("not-an-object", f"expected an object holding {key!r}")
    if key not in obj or obj[key] is None:
        raise Reject("missing-field", key)
    return obj[key]


def as_str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise Reject("invalid-field", f"{field} is not a non-empty string")
    return value


def as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise Reject("invalid-field", f"{field} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise Reject("invalid-field", f"{field} is not an integer")


def as_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Reject("invalid-field", f"{field} is not a boolean")
    return value


def _as_float(value: Any, field: str, reason: Reason) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Reject(reason, f"{field}={value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise Reject(reason, f"{field}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise Reject(reason, f"{field}={value!r} is not finite")
    return number


def price(value: Any, field: str, *, upper: float | None = None) -> float:
    """A finite, strictly positive price (at most `upper` where the venue bounds it)."""
    number = _as_float(value, field, "invalid-price")
    if number <= 0.0:
        raise Reject("invalid-price", f"{field}={value!r} is not positive")
    if upper is not None and number > upper:
        raise Reject("invalid-price", f"{field}={value!r} is above {upper}")
    return number


def size(value: Any, field: str, *, allow_zero: bool = False) -> float:
    """A finite quantity, strictly positive unless zero is meaningful (a removed level)."""
    number = _as_float(value, field, "invalid-size")
    if number < 0.0 or (number == 0.0 and not allow_zero):
        raise Reject("invalid-size", f"{field}={value!r} is not positive")
    return number


def quote_tick(
    *, instrument: str, venue: str, bid: float, ask: float, venue_ts_ns: int, received_ts_ns: int
) -> Tick:
    """A book-top update as a Tick: mid price, zero size, bid and ask set."""
    if bid > ask:
        raise Reject("crossed-quote", f"bid {bid} above ask {ask}")
    return Tick(
        instrument=instrument, venue=venue, price=(bid + ask) / 2.0, size=0.0,
        venue_ts_ns=venue_ts_ns, received_ts_ns=received_ts_ns, bid=bid, ask=ask,
    )


def trade_tick(
    *, instrument: str, venue: str, price: float, size: float, side: Side, trade_id: str,
    venue_ts_ns: int, received_ts_ns: int,
) -> Tick:
    return Tick(
        instrument=instrument, venue=venue, price=price, size=size, venue_ts_ns=venue_ts_ns,
        received_ts_ns=received_ts_ns, side=side, trade_id=trade_id,
    )


def ms_to_ns(ms: int) -> int:
    return ms * 1_000_000
