"""Check a tick before anything folds it: bad input is refused with a reason, never folded.

A refusal is a value (`InvalidTick`), not an exception, so a processor can count it and
dead-letter the message instead of crashing or writing a wrong bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from market_data.domain.ticks import Tick

InvalidReason = Literal[
    "instrument-mismatch",
    "price-not-a-number",
    "price-not-finite",
    "price-not-positive",
    "size-not-a-number",
    "size-not-finite",
    "size-negative",
    "timestamp-not-an-integer",
    "timestamp-before-minimum",
    "timestamp-in-future",
    "timestamp-too-old",
]

SECOND_NS = 1_000_000_000
# 2000-01-01T00:00:00Z: no venue we read has trades before it; older means a broken clock.
MIN_VENUE_TS_NS = 946_684_800 * SECOND_NS
_INF = math.inf


@dataclass(frozen=True, slots=True, kw_only=True)
class TickPolicy:
    """What counts as a valid tick.

    `max_future_skew_ns`: how far venue time may run ahead of our receive time (clock skew).
    `max_past_skew_ns`: how far venue time may lag our receive time; None disables it.
    `min_venue_ts_ns`: venue times before it are refused outright.
    """

    max_future_skew_ns: int = 5 * SECOND_NS
    max_past_skew_ns: int | None = 3600 * SECOND_NS
    min_venue_ts_ns: int = MIN_VENUE_TS_NS


@dataclass(frozen=True, slots=True)
class InvalidTick:
    """A tick refused before folding, with a machine-readable reason."""

    tick: Tick
    reason: InvalidReason
    detail: str


def _is_number(value: object) -> bool:
    return (type(value) is float or type(value) is int)


def check_tick(tick: Tick, policy: TickPolicy, *, instrument: str | None = None) -> (
        InvalidTick | None):
    """Return why `tick` must not be folded, or None when it is valid."""
    price, size = tick.price, tick.size
    # The common case in one expression: every tick pays for it, so it must be cheap.
    if (type(price) is float and 0.0 < price < _INF and type(size) is float
            and 0.0 <= size < _INF and (instrument is None or tick.instrument == instrument)):
        venue_ts, received_ts = tick.venue_ts_ns, tick.received_ts_ns
        if (type(venue_ts) is int and type(received_ts) is int
                and venue_ts >= policy.min_venue_ts_ns
                and venue_ts - received_ts <= policy.max_future_skew_ns
                and (policy.max_past_skew_ns is None
                     or received_ts - venue_ts <= policy.max_past_skew_ns)):
            return None
    if instrument is not None and tick.instrument != instrument:
        return InvalidTick(tick, "instrument-mismatch",
                           f"tick for {tick.instrument!r} sent to {instrument!r}")
    if not _is_number(price):
        return InvalidTick(tick, "price-not-a-number", f"price is {type(price).__name__}")
    if not math.isfinite(price):
        return InvalidTick(tick, "price-not-finite", f"price is {price}")
    if price <= 0:
        return InvalidTick(tick, "price-not-positive", f"price is {price}")
    if not _is_number(size):
        return InvalidTick(tick, "size-not-a-number", f"size is {type(size).__name__}")
    if not math.isfinite(size):
        return InvalidTick(tick, "size-not-finite", f"size is {size}")
    if size < 0:
        return InvalidTick(tick, "size-negative", f"size is {size}")
    venue_ts, received_ts = tick.venue_ts_ns, tick.received_ts_ns
    if type(venue_ts) is not int or type(received_ts) is not int:
        return InvalidTick(tick, "timestamp-not-an-integer",
                           f"venue_ts_ns is {type(venue_ts).__name__}, "
                           f"received_ts_ns is {type(received_ts).__name__}")
    if venue_ts < policy.min_venue_ts_ns:
        return InvalidTick(tick, "timestamp-before-minimum",
                           f"venue_ts_ns {venue_ts} < {policy.min_venue_ts_ns}")
    skew = venue_ts - received_ts
    if skew > policy.max_future_skew_ns:
        return InvalidTick(tick, "timestamp-in-future",
                           f"venue time is {skew} ns after receive time "
                           f"(allowed {policy.max_future_skew_ns})")
    if policy.max_past_skew_ns is not None and -skew > policy.max_past_skew_ns:
        return InvalidTick(tick, "timestamp-too-old",
                           f"venue time is {-skew} ns before receive time "
                           f"(allowed {policy.max_past_skew_ns})")
    return None
