"""All-time high and low, the Enigma level and its Fibonacci levels for one instrument. Pure.

Definitions
    ATH / ATL: the highest / lowest price of every valid tick folded, whenever it arrives: a
    trade that happened counts however late we hear of it (lateness matters for bars only).
    last: the price of the tick with the latest venue time; on equal venue times the last
    received. A tick older than the current last updates ATH/ATL but not last.
    Enigma level: where last sits between ATL and ATH, in percent:
    (last - ATL) / (ATH - ATL) * 100, so 0 at the ATL and 100 at the ATH. When ATH == ATL
    the range is empty and the level is undefined: None.
    Fibonacci levels: prices at 0, 23.6, 38.2, 50, 61.8, 78.6 and 100 % of the range
    measured up from the ATL: ATL + pct/100 * (ATH - ATL), so 0 % is the ATL and 100 % the
    ATH exactly. When ATH == ATL every level is that price.
    Invalid ticks (see `validation.check_tick`) are refused and change nothing. Before the
    first valid tick every value is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from market_data.domain.ticks import Tick
from market_data.domain.validation import InvalidTick, TickPolicy, check_tick
from market_data.exceptions import SnapshotError

FIBONACCI_PCTS: tuple[float, ...] = (0.0, 23.6, 38.2, 50.0, 61.8, 78.6, 100.0)
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class FibLevel:
    pct: float
    price: float


class Levels:
    """Keep ATH, ATL and last price of one instrument up to date, tick by tick."""

    def __init__(self, instrument: str, *, policy: TickPolicy | None = None) -> None:
        self.instrument = instrument
        self.policy = policy if policy is not None else TickPolicy()
        self.ath: float | None = None
        self.atl: float | None = None
        self.last: float | None = None
        self.last_ts_ns: int | None = None

    def on_tick(self, tick: Tick) -> InvalidTick | None:
        """Fold `tick`; return it refused with its reason when it is invalid."""
        invalid = check_tick(tick, self.policy, instrument=self.instrument)
        if invalid is not None:
            return invalid
        price, ts = tick.price, tick.venue_ts_ns
        if self.ath is None or price > self.ath:
            self.ath = price
        if self.atl is None or price < self.atl:
            self.atl = price
        if self.last_ts_ns is None or ts >= self.last_ts_ns:
            self.last, self.last_ts_ns = price, ts
        return None

    @property
    def enigma(self) -> float | None:
        """Return the position of last between ATL (0) and ATH (100), or None if undefined."""
        if self.ath is None or self.atl is None or self.last is None or self.ath == self.atl:
            return None
        pct = (self.last - self.atl) / (self.ath - self.atl) * 100.0
        # Rounding must not carry the level outside [0, 100].
        return min(100.0, max(0.0, pct))

    def fibonacci(self) -> list[FibLevel]:
        """Return the Fibonacci levels from ATL (0 %) to ATH (100 %); empty before any tick."""
        ath, atl = self.ath, self.atl
        if ath is None or atl is None:
            return []
        span = ath - atl
        levels = [FibLevel(0.0, atl)]
        levels += [FibLevel(pct, min(ath, atl + pct / 100.0 * span))
                   for pct in FIBONACCI_PCTS[1:-1]]
        levels.append(FibLevel(100.0, ath))
        return levels

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as a JSON-serialisable dict."""
        return {"version": SNAPSHOT_VERSION, "instrument": self.instrument, "ath": self.ath,
                "atl": self.atl, "last": self.last, "last_ts_ns": self.last_ts_ns}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the state with one taken by `snapshot()`."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"levels snapshot version {snapshot.get('version')!r} is not "
                                f"{SNAPSHOT_VERSION}")
        if snapshot.get("instrument") != self.instrument:
            raise SnapshotError(f"levels snapshot of {snapshot.get('instrument')!r} restored "
                                f"into the levels of {self.instrument!r}")
        try:
            values = (snapshot["ath"], snapshot["atl"], snapshot["last"], snapshot["last_ts_ns"])
        except KeyError as e:
            raise SnapshotError(f"malformed levels snapshot: {e!r}") from e
        self.ath, self.atl, self.last, self.last_ts_ns = values
