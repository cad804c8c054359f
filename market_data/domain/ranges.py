"""Checks on a requested time range of bars, shared by the REST and UDF APIs. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from market_data.domain.bars import RESOLUTION_NS
from schemas.market import Resolution

MAX_RANGE_BARS = 10_000  # the widest range one request may span, in bars of its resolution
SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class RangeRefused:
    reason: str  # "invalid-range" | "range-too-large"
    detail: str


def check_range(from_s: int, to_s: int, resolution: Resolution) -> RangeRefused | None:
    """Refuse a range that runs backwards or spans more than MAX_RANGE_BARS bars."""
    if from_s > to_s:
        return RangeRefused("invalid-range",
                            f"`from` ({from_s}) is after `to` ({to_s}); both are unix seconds")
    bars = (to_s - from_s) * SECOND_NS // RESOLUTION_NS[resolution]
    if bars > MAX_RANGE_BARS:
        return RangeRefused("range-too-large",
                            f"the range spans {bars} bars of {resolution}; at most "
                            f"{MAX_RANGE_BARS} per request")
    return None
