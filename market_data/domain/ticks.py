"""The normalised tick every source produces (simulator, exchanges, prediction venues).

Floats here, as in every numeric path; prices become Decimal (quantised to the instrument's
tick size) at the edge where money is computed. Times are integer nanoseconds since the
epoch, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class Tick:
    instrument: str
    venue: str
    price: float
    size: float
    venue_ts_ns: int
    received_ts_ns: int
    bid: float | None = None
    ask: float | None = None
    side: Side | None = None
    trade_id: str | None = None
