from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal

import pytest

from market_data.domain.ranges import check_range
from market_data.domain.udf import (
    earlier_needed,
    history_payload,
    price_format,
    session_string,
    timezone_name,
    to_resolution,
    volume_precision,
)
from schemas.instrument import TradingHours, TradingSession

S = 1_000_000_000


@dataclass(frozen=True)
class Bar:
    open_time_ns: int
    open: float = 1.0
    high: float = 2.0
    low: float = 0.5
    close: float = 1.5
    volume: float = 10.0


@pytest.mark.parametrize(("udf", "ours"), [
    ("1", "1m"), ("5", "5m"), ("15", "15m"), ("60", "1h"), ("240", "4h"), ("1D", "1d"),
    ("D", "1d"),
])
def test_resolution_maps_tradingview_strings(udf: str, ours: str) -> None:
    assert to_resolution(udf) == ours


@pytest.mark.parametrize("udf", ["30", "1W", "1M", "", "1m", "d"])
def test_resolution_unsupported_is_none(udf: str) -> None:
    assert to_resolution(udf) is None


@pytest.mark.parametrize(("tick", "scale", "minmov"), [
    ("0.01", 100, 1), ("0.25", 100, 25), ("0.0001", 10000, 1), ("1", 1, 1), ("5", 1, 5),
    ("0.50", 10, 5), ("0.001000", 1000, 1),
])
def test_price_format_from_tick_size(tick: str, scale: int, minmov: int) -> None:
    assert price_format(Decimal(tick)) == (scale, minmov)


def test_volume_precision_is_lot_decimals() -> None:
    assert volume_precision(Decimal("0.0001")) == 4
    assert volume_precision(Decimal("1")) == 0


def test_session_without_sessions_is_24x7() -> None:
    assert session_string(TradingHours()) == "24x7"


def test_session_weekdays_use_tradingview_day_numbers() -> None:
    hours = TradingHours(timezone="America/New_York", sessions=(
        TradingSession(days=(0, 1, 2, 3, 4), open=time(9, 30), close=time(16, 0)),))
    assert session_string(hours) == "0930-1600:23456"


def test_session_days_with_different_hours_are_grouped() -> None:
    hours = TradingHours(sessions=(
        TradingSession(days=(6,), open=time(17, 0), close=time(23, 59)),
        TradingSession(days=(0, 1, 2, 3), open=time(0, 0), close=time(23, 59)),
        TradingSession(days=(4,), open=time(0, 0), close=time(17, 0)),
    ))
    assert session_string(hours) == "1700-2359:1|0000-2359:2345|0000-1700:6"


def test_session_overnight_belongs_to_the_day_it_ends() -> None:
    # Opens Sunday 17:00, closes Monday 09:00: TradingView files it under Monday (2).
    hours = TradingHours(sessions=(
        TradingSession(days=(6,), open=time(17, 0), close=time(9, 0)),))
    assert session_string(hours) == "1700-0900:2"


def test_session_two_ranges_in_a_day_are_comma_separated() -> None:
    hours = TradingHours(sessions=(
        TradingSession(days=(0,), open=time(14, 30), close=time(17, 0)),
        TradingSession(days=(0,), open=time(9, 30), close=time(14, 0)),
    ))
    assert session_string(hours) == "0930-1400,1430-1700:2"


def test_timezone_utc_is_etc_utc() -> None:
    assert timezone_name("UTC") == "Etc/UTC"
    assert timezone_name("America/New_York") == "America/New_York"


def test_history_with_bars_is_ok_in_seconds_oldest_first() -> None:
    payload = history_payload([Bar(60 * S), Bar(120 * S, close=3.0)])
    assert payload == {"s": "ok", "t": [60, 120], "o": [1.0, 1.0], "h": [2.0, 2.0],
                       "l": [0.5, 0.5], "c": [1.5, 3.0], "v": [10.0, 10.0]}


def test_history_empty_with_older_data_is_no_data_with_next_time() -> None:
    assert history_payload([], next_time_ns=1_700_000_000 * S + 5) == {
        "s": "no_data", "nextTime": 1_700_000_000}


def test_history_empty_without_older_data_is_plain_no_data() -> None:
    assert history_payload([]) == {"s": "no_data"}


def test_history_countback_tops_up_with_the_newest_earlier_bars() -> None:
    earlier = [Bar(t * S) for t in (60, 120, 180)]
    payload = history_payload([Bar(240 * S)], earlier=earlier, countback=3)
    assert payload["t"] == [120, 180, 240]


def test_history_countback_never_truncates_the_range() -> None:
    in_range = [Bar(t * S) for t in (60, 120, 180)]
    assert history_payload(in_range, earlier=[Bar(0)], countback=2)["t"] == [60, 120, 180]


def test_history_countback_only_earlier_bars_is_ok() -> None:
    payload = history_payload([], earlier=[Bar(60 * S)], countback=5, next_time_ns=60 * S)
    assert payload["s"] == "ok" and payload["t"] == [60]


def test_earlier_needed() -> None:
    assert earlier_needed(3, None) == 0
    assert earlier_needed(3, 10) == 7
    assert earlier_needed(12, 10) == 0


def test_range_from_after_to_is_refused() -> None:
    refused = check_range(200, 100, "1m")
    assert refused is not None and refused.reason == "invalid-range"
    assert "`from` (200) is after `to` (100)" in refused.detail


def test_range_over_ten_thousand_bars_is_too_large() -> None:
    assert check_range(0, 10_000 * 60, "1m") is None
    refused = check_range(0, 10_001 * 60, "1m")
    assert refused is not None and refused.reason == "range-too-large"
    assert check_range(0, 10_001 * 60, "1h") is None
