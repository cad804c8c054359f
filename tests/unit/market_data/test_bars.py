"""The bar builder: its policies case by case, a restart at any point, and a 100k-tick tape
checked against an independent polars resampling at every resolution."""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.domain.bars import (
    RESOLUTION_NS,
    RESOLUTIONS,
    BarBuilder,
    BarOutcome,
    BarPolicy,
    ClosedBar,
    LateTick,
    Resolution,
    bucket_start,
)
from market_data.domain.ticks import Tick
from market_data.domain.validation import InvalidTick, TickPolicy
from market_data.exceptions import SnapshotError
from tests.unit.market_data.tape import TapeTick, Watermark, generate

S = 1_000_000_000
M = 60 * S
H = 60 * M
T0 = 1_704_067_200 * S  # 2024-01-01T00:00:00Z, a boundary of every resolution
FAR = T0 + 365 * 24 * H


def tick(at: int, price: float, size: float = 1.0, *, instrument: str = "BTC-USD",
         received: int | None = None) -> Tick:
    return Tick(instrument=instrument, venue="sim", price=price, size=size, venue_ts_ns=at,
                received_ts_ns=at if received is None else received)


def closed(outcomes: list[BarOutcome]) -> list[ClosedBar]:
    return [o for o in outcomes if isinstance(o, ClosedBar)]


def only(bars: list[ClosedBar], resolution: Resolution) -> list[ClosedBar]:
    return [b for b in bars if b.resolution == resolution]


def feed(builder: BarBuilder, *ticks: Tick) -> list[BarOutcome]:
    return [o for t in ticks for o in builder.on_tick(t)]


# Buckets


@pytest.mark.parametrize(("at", "resolution", "start"), [
    (T0 + 3 * H + 59 * M, "4h", T0),
    (T0 + 4 * H, "4h", T0 + 4 * H),
    (T0 + 23 * H + 59 * M + 59 * S, "1d", T0),
    (T0 + 24 * H, "1d", T0 + 24 * H),
    (T0 + 17 * M, "15m", T0 + 15 * M),
    (T0 + 7 * M + 1, "5m", T0 + 5 * M),
])
def test_buckets_are_aligned_to_the_utc_epoch(at: int, resolution: Resolution,
                                              start: int) -> None:
    assert bucket_start(at, resolution) == start


def test_tick_exactly_on_a_boundary_belongs_to_the_period_it_starts() -> None:
    b = BarBuilder("BTC-USD")
    bars = closed(feed(b, tick(T0 + 30 * S, 10.0), tick(T0 + M, 11.0)))
    [one_minute] = only(bars, "1m")
    assert (one_minute.open_time_ns, one_minute.close_time_ns) == (T0, T0 + M)
    assert one_minute.close == 10.0
    assert b.open_bars()[0].open_time_ns == T0 + M


# Empty periods and closing


def test_period_without_trades_produces_no_bar() -> None:
    b = BarBuilder("BTC-USD")
    bars = closed(feed(b, tick(T0 + 10 * S, 10.0), tick(T0 + 3 * M + 10 * S, 12.0)))
    bars += b.on_time(FAR)
    assert [x.open_time_ns for x in only(bars, "1m")] == [T0, T0 + 3 * M]
    assert [x.open_time_ns for x in only(bars, "5m")] == [T0]


def test_tick_of_a_later_period_closes_the_open_bar() -> None:
    b = BarBuilder("BTC-USD")
    assert feed(b, tick(T0 + 1 * S, 10.0), tick(T0 + 2 * S, 12.0), tick(T0 + 3 * S, 9.0)) == []
    [bar] = closed(feed(b, tick(T0 + M + 1, 11.0)))
    assert bar == ClosedBar(instrument="BTC-USD", resolution="1m", open_time_ns=T0,
                            close_time_ns=T0 + M, open=10.0, high=12.0, low=9.0, close=9.0,
                            volume=3.0, trades=3, vwap=31.0 / 3)


def test_watermark_closes_a_bar_only_after_its_end_plus_grace() -> None:
    b = BarBuilder("BTC-USD", policy=BarPolicy(grace_ns=2 * S))
    feed(b, tick(T0 + 5 * S, 10.0))
    assert b.on_time(T0 + M + 2 * S - 1) == []
    [bar] = b.on_time(T0 + M + 2 * S)
    assert (bar.resolution, bar.open_time_ns) == ("1m", T0)
    assert b.on_time(T0 + M + 3 * S) == []  # closes once
    assert [x.resolution for x in b.on_time(FAR)] == ["5m", "15m", "1h", "4h", "1d"]
    assert b.open_bars() == []


def test_bars_closed_together_come_finest_first() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + S, 10.0))
    bars = closed(feed(b, tick(T0 + 24 * H + S, 10.0)))
    assert [x.resolution for x in bars] == list(RESOLUTIONS)


# Late and out-of-order ticks


def test_tick_after_bar_closed_is_late_and_changes_nothing() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + 10 * S, 10.0), tick(T0 + M + 10 * S, 11.0))
    before = b.snapshot()
    late = tick(T0 + 50 * S, 99.0)
    assert b.on_tick(late) == [LateTick(late, T0 + M)]
    assert b.snapshot() == before
    # Not even the 5m bar, still open, takes it: every resolution folds the same ticks.
    [five] = only(b.on_time(FAR), "5m")
    assert (five.high, five.trades) == (11.0, 2)


def test_tick_in_an_empty_period_already_passed_is_late() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + 10 * S, 10.0), tick(T0 + 5 * M, 11.0))
    assert isinstance(b.on_tick(tick(T0 + 3 * M, 12.0))[0], LateTick)


def test_tick_in_a_period_closed_by_the_watermark_is_late() -> None:
    b = BarBuilder("BTC-USD", policy=BarPolicy(grace_ns=2 * S))
    feed(b, tick(T0 + 10 * S, 10.0))
    b.on_time(T0 + M + 2 * S)
    assert isinstance(b.on_tick(tick(T0 + 59 * S, 12.0))[0], LateTick)


def test_tick_within_grace_still_joins_its_bar() -> None:
    b = BarBuilder("BTC-USD", policy=BarPolicy(grace_ns=2 * S))
    feed(b, tick(T0 + 10 * S, 10.0))
    assert b.on_time(T0 + M + S) == []
    assert feed(b, tick(T0 + 59 * S, 12.0, received=T0 + M + S)) == []
    [bar] = only(b.on_time(T0 + M + 2 * S), "1m")
    assert (bar.close, bar.trades) == (12.0, 2)


def test_out_of_order_tick_within_the_open_bar_sets_open_and_close_by_venue_time() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + 30 * S, 10.0), tick(T0 + 40 * S, 11.0), tick(T0 + 5 * S, 8.0),
         tick(T0 + 35 * S, 13.0))
    [bar] = only(b.on_time(FAR), "1m")
    assert (bar.open, bar.high, bar.low, bar.close, bar.trades) == (8.0, 13.0, 8.0, 11.0, 4)


def test_equal_venue_times_open_is_first_received_and_close_last_received() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + 30 * S, 10.0), tick(T0 + 30 * S, 11.0), tick(T0 + 30 * S, 12.0))
    [bar] = only(b.on_time(FAR), "1m")
    assert (bar.open, bar.close) == (10.0, 12.0)


def test_zero_size_tick_counts_as_a_trade_with_no_vwap() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 + S, 10.0, 0.0))
    [bar] = only(b.on_time(FAR), "1m")
    assert (bar.volume, bar.trades, bar.vwap) == (0.0, 1, None)


# Invalid ticks


@pytest.mark.parametrize(("change", "reason"), [
    ({"price": math.nan}, "price-not-finite"),
    ({"price": math.inf}, "price-not-finite"),
    ({"price": -math.inf}, "price-not-finite"),
    ({"price": 0.0}, "price-not-positive"),
    ({"price": -5.0}, "price-not-positive"),
    ({"price": None}, "price-not-a-number"),
    ({"size": -1.0}, "size-negative"),
    ({"size": math.nan}, "size-not-finite"),
    ({"size": math.inf}, "size-not-finite"),
    ({"venue_ts_ns": T0 + 6 * S}, "timestamp-in-future"),
    ({"venue_ts_ns": T0 - 2 * H}, "timestamp-too-old"),
    ({"venue_ts_ns": 946_684_800 * S - 1}, "timestamp-before-minimum"),
    ({"venue_ts_ns": float(T0)}, "timestamp-not-an-integer"),
    ({"instrument": "ETH-USD"}, "instrument-mismatch"),
])
def test_invalid_tick_is_refused_with_its_reason_and_changes_nothing(
        change: dict[str, Any], reason: str) -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0 - M, 10.0))
    before = b.snapshot()
    values: dict[str, Any] = {"instrument": "BTC-USD", "venue": "sim", "price": 10.0,
                              "size": 1.0, "venue_ts_ns": T0, "received_ts_ns": T0} | change
    bad = Tick(**values)
    [outcome] = b.on_tick(bad)
    assert isinstance(outcome, InvalidTick)
    assert (outcome.tick, outcome.reason) == (bad, reason)
    assert b.snapshot() == before


def test_skews_are_configurable() -> None:
    b = BarBuilder("BTC-USD", policy=BarPolicy(ticks=TickPolicy(max_future_skew_ns=H,
                                                                max_past_skew_ns=None)))
    out = feed(b, tick(T0 + 30 * M, 10.0, received=T0),
               tick(T0 + 31 * M, 10.0, received=T0 + 5 * H))
    assert [type(o) for o in out] == [ClosedBar]


# Restart


_step = st.tuples(
    st.sampled_from(["tick", "tick", "tick", "tick", "time", "bad"]),
    st.integers(-90 * S, 20 * M),
    st.sampled_from([9.5, 10.0, 10.25, 11.0, 12.75]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
)


def _events(steps: list[tuple[str, int, float, float]]) -> list[Tick | int]:
    events: list[Tick | int] = []
    cursor = T0 + 17 * S
    for kind, delta, price, size in steps:
        cursor += delta
        if kind == "time":
            events.append(cursor)
        else:
            events.append(tick(cursor, price if kind == "tick" else -price, size))
    return events


def _run(builder: BarBuilder, events: list[Tick | int]) -> list[BarOutcome]:
    out: list[BarOutcome] = []
    for e in events:
        out += builder.on_time(e) if isinstance(e, int) else builder.on_tick(e)
    return out


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_step, max_size=80), data=st.data())
def test_restart_mid_bar_yields_the_same_bars_as_an_uninterrupted_run(
        steps: list[tuple[str, int, float, float]], data: st.DataObject) -> None:
    events = _events(steps)
    split = data.draw(st.integers(0, len(events)), label="split")
    whole = BarBuilder("BTC-USD")
    expected = [*_run(whole, events), *whole.on_time(FAR)]

    first = BarBuilder("BTC-USD")
    got = _run(first, events[:split])
    persisted = json.dumps(first.snapshot())  # what a processor stores with its offsets
    second = BarBuilder("BTC-USD")
    second.restore(json.loads(persisted))
    got += [*_run(second, events[split:]), *second.on_time(FAR)]
    assert got == expected


def test_restore_refuses_a_snapshot_of_another_instrument_or_version() -> None:
    b = BarBuilder("BTC-USD")
    feed(b, tick(T0, 10.0))
    snap = b.snapshot()
    with pytest.raises(SnapshotError):
        BarBuilder("ETH-USD").restore(snap)
    with pytest.raises(SnapshotError):
        BarBuilder("BTC-USD").restore(snap | {"version": 99})
    with pytest.raises(SnapshotError):
        BarBuilder("BTC-USD").restore(snap | {"open": {"1m": {"start": 1}}})


# The tape


@pytest.fixture(scope="module")
def tape_result() -> tuple[dict[Resolution, list[ClosedBar]], pl.DataFrame, int]:
    entries, instruments = generate()
    builders = {i: BarBuilder(i) for i in instruments}
    bars: list[ClosedBar] = []
    accepted: list[tuple[int, str, int, float, float]] = []
    n_ticks = 0
    for seq, entry in enumerate(entries):
        if isinstance(entry, Watermark):
            for builder in builders.values():
                bars += builder.on_time(entry.now_ns)
            continue
        assert isinstance(entry, TapeTick)
        n_ticks += 1
        out = builders[entry.tick.instrument].on_tick(entry.tick)
        refused = [o for o in out if not isinstance(o, ClosedBar)]
        kind = ("ok" if not refused else "late" if isinstance(refused[0], LateTick)
                else "invalid")
        assert kind == entry.expect, entry
        if kind == "ok":
            t = entry.tick
            accepted.append((seq, t.instrument, t.venue_ts_ns, t.price, t.size))
        bars += closed(out)
    for builder in builders.values():
        bars += builder.on_time(FAR)
    by_resolution: dict[Resolution, list[ClosedBar]] = defaultdict(list)
    for bar in bars:
        by_resolution[bar.resolution].append(bar)
    frame = pl.DataFrame(accepted, schema=["seq", "instrument", "ts", "price", "size"],
                         orient="row")
    return by_resolution, frame, n_ticks


def _polars_bars(frame: pl.DataFrame, resolution: Resolution) -> pl.DataFrame:
    every = {"1m": "1m", "5m": "5m", "15m": "15m", "1h": "1h", "4h": "4h", "1d": "1d"}
    return (
        frame.sort(["instrument", "ts", "seq"])
        .with_columns(pl.from_epoch("ts", time_unit="ns").alias("t"))
        .group_by_dynamic("t", every=every[resolution], group_by="instrument",
                          closed="left", label="left")
        .agg(pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
             pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
             pl.col("size").sum().alias("volume"), pl.len().alias("trades"),
             (pl.col("price") * pl.col("size")).sum().alias("notional"))
        .with_columns(pl.col("t").dt.epoch("ns").alias("open_time_ns"))
        .sort(["instrument", "open_time_ns"])
    )


def test_tape_has_at_least_100k_ticks_over_several_days(tape_result: Any) -> None:
    by_resolution, frame, n_ticks = tape_result
    assert n_ticks >= 100_000
    assert len(by_resolution["1d"]) >= 3 * 4
    assert frame.height < n_ticks  # some late and invalid ticks were refused


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_bars_equal_a_polars_resampling_of_the_accepted_ticks(
        tape_result: Any, resolution: Resolution) -> None:
    by_resolution, frame, _ = tape_result
    ours = sorted(by_resolution[resolution], key=lambda b: (b.instrument, b.open_time_ns))
    theirs = _polars_bars(frame, resolution).to_dicts()
    assert len(ours) == len(theirs)
    length = RESOLUTION_NS[resolution]
    for bar, row in zip(ours, theirs, strict=True):
        assert (bar.instrument, bar.open_time_ns, bar.close_time_ns - bar.open_time_ns,
                bar.open, bar.high, bar.low, bar.close, bar.trades) == (
            row["instrument"], row["open_time_ns"], length, row["open"], row["high"],
            row["low"], row["close"], row["trades"])
        assert bar.volume == pytest.approx(row["volume"], rel=1e-9, abs=1e-9)
        if row["volume"] > 0:
            assert bar.vwap == pytest.approx(row["notional"] / row["volume"], rel=1e-9)
    # The tape has gaps at every resolution, so the no-bar-for-an-empty-period rule is tested.
    starts = defaultdict(list)
    for bar in ours:
        starts[bar.instrument].append(bar.open_time_ns)
    assert any(b - a > length for s in starts.values() for a, b in itertools.pairwise(s))
