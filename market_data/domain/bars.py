"""OHLCV bars for one instrument at 1m, 5m, 15m, 1h, 4h and 1d, built from ticks. Pure, no IO.

Policies (each one has a test named after it in tests/unit/market_data/test_bars.py):

Buckets
    Periods are aligned to the UTC epoch: a bar covers [open_time_ns, close_time_ns), the end
    exclusive. A 4h bar opens at 00:00, 04:00, ... UTC; a 1d bar at 00:00 UTC. A tick exactly
    on a boundary belongs to the period that starts there. Every coarser length is a multiple
    of every finer one, so periods nest.

Empty periods
    A period with no valid tick produces no bar (the TradingView UDF convention: gaps are
    absent, never flat bars carrying the last close).

Closing
    A bar closes when a valid tick of a later period of the same resolution arrives, or when
    `on_time(now_ns)` is called with `now_ns >= close_time_ns + grace_ns` (the watermark has
    passed the end plus the allowed lateness; `grace_ns` defaults to 2 s). A bar closes once
    and is final; the closing call returns it as a `ClosedBar`, finest resolution first.

Late ticks
    Lateness is judged at the finest resolution (1m) for every resolution at once: a tick
    whose venue time falls in a 1m period that is already closed - by a tick of a later
    period or by the watermark, including periods that had no trades - is refused whole as a
    `LateTick`. It changes no bar, not even a coarser bar still open, so every resolution
    folds the same ticks and a coarse bar always equals the aggregate of its finer bars.

Order within the open bar
    Ticks of the open period may arrive out of venue-time order. high, low, volume, trades
    and vwap do not depend on order. open is the price of the tick with the earliest venue
    time, close the price of the tick with the latest venue time; on equal venue times open
    keeps the first received and close takes the last received. The result equals a stable
    sort by venue time followed by first/last.

Invalid ticks
    Refused before anything else as `InvalidTick` (see `validation.check_tick`): a price that
    is NaN, infinite or <= 0, a size that is NaN, infinite or negative (zero is accepted and
    counts as a trade), a venue time before 2000-01-01, more than `max_future_skew_ns` after
    or more than `max_past_skew_ns` before the receive time, or a tick of another
    instrument. They change nothing.

Restart
    `snapshot()` is a small JSON-serialisable dict (the open bars and the lateness horizon);
    a processor persists it in the transaction that stores its consumed offsets, and
    `restore()` into a fresh builder continues exactly as if it had never stopped.

Prices are floats here (a numeric kernel); they become Decimal at the edge where money is
computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from market_data.domain.ticks import Tick
from market_data.domain.validation import SECOND_NS, InvalidTick, TickPolicy, check_tick
from market_data.exceptions import MarketDataError, SnapshotError

Resolution = Literal["1m", "5m", "15m", "1h", "4h", "1d"]

MINUTE_NS = 60 * SECOND_NS
RESOLUTION_NS: dict[Resolution, int] = {
    "1m": MINUTE_NS,
    "5m": 5 * MINUTE_NS,
    "15m": 15 * MINUTE_NS,
    "1h": 60 * MINUTE_NS,
    "4h": 240 * MINUTE_NS,
    "1d": 1440 * MINUTE_NS,
}
RESOLUTIONS: tuple[Resolution, ...] = tuple(RESOLUTION_NS)

SNAPSHOT_VERSION = 1
_NO_HORIZON = -(1 << 63)


def bucket_start(ts_ns: int, resolution: Resolution) -> int:
    """Return the start of the epoch-aligned period of `resolution` that contains `ts_ns`."""
    return ts_ns - ts_ns % RESOLUTION_NS[resolution]


@dataclass(frozen=True, slots=True, kw_only=True)
class BarPolicy:
    """How long a bar waits for stragglers after its end, and which ticks are valid."""

    grace_ns: int = 2 * SECOND_NS
    ticks: TickPolicy = field(default_factory=TickPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """A bar as it stands; the open bar of a period still running."""

    instrument: str
    resolution: Resolution
    open_time_ns: int
    close_time_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    vwap: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedBar(Bar):
    """A final bar: its period is over and no tick will change it (`market.bar-closed`)."""


@dataclass(frozen=True, slots=True)
class LateTick:
    """A valid tick refused because its 1m period is already closed."""

    tick: Tick
    closed_until_ns: int
    reason: Literal["period-closed"] = "period-closed"

    @property
    def detail(self) -> str:
        return (f"venue time {self.tick.venue_ts_ns} is before {self.closed_until_ns}, "
                "the end of the last closed 1m period")


BarOutcome = ClosedBar | LateTick | InvalidTick
_B = TypeVar("_B", bound=Bar)


class _OpenBar:
    __slots__ = ("close", "close_ts", "high", "low", "notional", "open", "open_ts", "start",
                 "trades", "volume")

    def __init__(self, start: int, ts: int, price: float, size: float) -> None:
        self.start = start
        self.open_ts = ts
        self.open = price
        self.high = price
        self.low = price
        self.close_ts = ts
        self.close = price
        self.volume = size
        self.notional = price * size
        self.trades = 1


def _fold(bar: _OpenBar, ts: int, price: float, size: float) -> None:
    if ts < bar.open_ts:
        bar.open_ts, bar.open = ts, price
    if ts >= bar.close_ts:
        bar.close_ts, bar.close = ts, price
    if price > bar.high:
        bar.high = price
    elif price < bar.low:
        bar.low = price
    bar.volume += size
    bar.notional += price * size
    bar.trades += 1


class BarBuilder:
    """Fold one instrument's ticks into bars of every resolution."""

    def __init__(self, instrument: str, *, policy: BarPolicy | None = None) -> None:
        self.instrument = instrument
        self.policy = policy if policy is not None else BarPolicy()
        self._lengths = tuple(RESOLUTION_NS[r] for r in RESOLUTIONS)
        self._open: list[_OpenBar | None] = [None] * len(RESOLUTIONS)
        # Venue times before it lie in a closed 1m period: such ticks are late.
        self._horizon_ns = _NO_HORIZON

    def on_tick(self, tick: Tick) -> list[BarOutcome]:
        """Fold `tick`; return the bars it closed, or the tick refused with its reason."""
        invalid = check_tick(tick, self.policy.ticks, instrument=self.instrument)
        if invalid is not None:
            return [invalid]
        ts = tick.venue_ts_ns
        if ts < self._horizon_ns:
            return [LateTick(tick, self._horizon_ns)]
        price, size = tick.price, tick.size
        open_bars = self._open
        minute = open_bars[0]
        if minute is not None and 0 <= ts - minute.start < MINUTE_NS:
            # Same minute as the open 1m bar, hence (periods nest) the same period at every
            # resolution, and every coarser bar is open: fold without bucketing, inlined
            # because this is nearly every tick.
            for bar in open_bars:
                assert bar is not None
                if ts < bar.open_ts:
                    bar.open_ts, bar.open = ts, price
                if ts >= bar.close_ts:
                    bar.close_ts, bar.close = ts, price
                if price > bar.high:
                    bar.high = price
                elif price < bar.low:
                    bar.low = price
                bar.volume += size
                bar.notional += price * size
                bar.trades += 1
            return []
        closed: list[BarOutcome] = []
        for i, length in enumerate(self._lengths):
            start = ts - ts % length
            bar = open_bars[i]
            if bar is not None and start == bar.start:
                _fold(bar, ts, price, size)
            elif bar is None or start > bar.start:
                if bar is not None:
                    closed.append(self._final(i, bar))
                open_bars[i] = _OpenBar(start, ts, price, size)
            else:  # the horizon check above makes this unreachable
                raise MarketDataError(f"tick at {ts} precedes the open {RESOLUTIONS[i]} bar")
        minute_start = ts - ts % MINUTE_NS
        if minute_start > self._horizon_ns:
            self._horizon_ns = minute_start
        return closed

    def on_time(self, now_ns: int) -> list[ClosedBar]:
        """Close every bar whose end plus the grace lies at or before the watermark `now_ns`."""
        cutoff = now_ns - self.policy.grace_ns
        closed: list[ClosedBar] = []
        for i, length in enumerate(self._lengths):
            bar = self._open[i]
            if bar is not None and bar.start + length <= cutoff:
                closed.append(self._final(i, bar))
                self._open[i] = None
        minute_start = cutoff - cutoff % MINUTE_NS
        if minute_start > self._horizon_ns:
            self._horizon_ns = minute_start
        return closed

    def open_bars(self) -> list[Bar]:
        """Return the bars still open, finest resolution first (for live, partial display)."""
        return [self._view(Bar, i, bar) for i, bar in enumerate(self._open) if bar is not None]

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as a JSON-serialisable dict."""
        return {
            "version": SNAPSHOT_VERSION,
            "instrument": self.instrument,
            "horizon_ns": self._horizon_ns,
            "open": {
                RESOLUTIONS[i]: {name: getattr(bar, name) for name in _OpenBar.__slots__}
                for i, bar in enumerate(self._open) if bar is not None
            },
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace the state with one taken by `snapshot()`."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"bar snapshot version {snapshot.get('version')!r} is not "
                                f"{SNAPSHOT_VERSION}")
        if snapshot.get("instrument") != self.instrument:
            raise SnapshotError(f"bar snapshot of {snapshot.get('instrument')!r} restored into "
                                f"the builder of {self.instrument!r}")
        try:
            horizon = int(snapshot["horizon_ns"])
            open_bars: list[_OpenBar | None] = [None] * len(RESOLUTIONS)
            for resolution, values in snapshot["open"].items():
                i = RESOLUTIONS.index(resolution)
                bar = _OpenBar.__new__(_OpenBar)
                for name in _OpenBar.__slots__:
                    setattr(bar, name, values[name])
                if bar.start % self._lengths[i]:
                    raise SnapshotError(f"{resolution} bar start {bar.start} is not aligned")
                open_bars[i] = bar
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SnapshotError(f"malformed bar snapshot: {e!r}") from e
        self._horizon_ns = horizon
        self._open = open_bars

    def _view(self, cls: type[_B], i: int, bar: _OpenBar) -> _B:
        return cls(instrument=self.instrument, resolution=RESOLUTIONS[i],
                   open_time_ns=bar.start, close_time_ns=bar.start + self._lengths[i],
                   open=bar.open, high=bar.high, low=bar.low, close=bar.close,
                   volume=bar.volume, trades=bar.trades,
                   vwap=bar.notional / bar.volume if bar.volume > 0 else None)

    def _final(self, i: int, bar: _OpenBar) -> ClosedBar:
        return self._view(ClosedBar, i, bar)
