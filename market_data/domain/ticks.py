"""The normalised tick every source produces (simulator, exchanges, prediction venues).

Floats here, as in every numeric path; prices become Decimal (quantised to the instrument's
tick size) at the edge where money is computed. Times are integer nanoseconds since the
epoch, UTC.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Side = Literal["buy", "sell"]


class Tick(msgspec.Struct, frozen=True):
    """Immutable, compared and hashed by value. A msgspec Struct rather than a frozen
    dataclass: one is built per venue trade, and the dataclass's `__init__` (ten
    `object.__setattr__` calls) cost ~10x the Struct's (4.3 vs 0.4 µs on a loaded machine),
    about a third of the ingest CPU per frame (bench/RESULTS.md, issue 10 second pass)."""

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
