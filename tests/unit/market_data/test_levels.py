"""ATH, ATL, last, the Enigma level and its Fibonacci levels: worked examples and invariants."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_data.domain.levels import FIBONACCI_PCTS, FibLevel, Levels
from market_data.domain.ticks import Tick
from market_data.domain.validation import InvalidTick
from market_data.exceptions import SnapshotError

S = 1_000_000_000
T0 = 1_704_067_200 * S


def tick(at_s: int, price: float) -> Tick:
    at = T0 + at_s * S
    return Tick(instrument="BTC-USD", venue="sim", price=price, size=1.0, venue_ts_ns=at,
                received_ts_ns=at)


def levels_of(*ticks: Tick) -> Levels:
    levels = Levels("BTC-USD")
    for t in ticks:
        assert levels.on_tick(t) is None
    return levels


def test_levels_before_any_tick_are_undefined() -> None:
    levels = Levels("BTC-USD")
    assert (levels.ath, levels.atl, levels.last, levels.enigma) == (None, None, None, None)
    assert levels.fibonacci() == []


def test_levels_of_a_worked_example() -> None:
    levels = levels_of(tick(1, 100.0), tick(2, 120.0), tick(3, 90.0), tick(4, 105.0))
    assert (levels.ath, levels.atl, levels.last) == (120.0, 90.0, 105.0)
    assert levels.enigma == pytest.approx(50.0)
    expected = [90.0, 97.08, 101.46, 105.0, 108.54, 113.58, 120.0]
    got = levels.fibonacci()
    assert [f.pct for f in got] == list(FIBONACCI_PCTS)
    assert [f.price for f in got] == pytest.approx(expected)
    assert (got[0], got[-1]) == (FibLevel(0.0, 90.0), FibLevel(100.0, 120.0))


def test_enigma_is_0_at_the_atl_and_100_at_the_ath() -> None:
    assert levels_of(tick(1, 120.0), tick(2, 80.0)).enigma == 0.0
    assert levels_of(tick(1, 80.0), tick(2, 120.0)).enigma == 100.0


def test_enigma_is_undefined_when_ath_equals_atl() -> None:
    levels = levels_of(tick(1, 100.0), tick(2, 100.0))
    assert levels.enigma is None
    assert {f.price for f in levels.fibonacci()} == {100.0}


def test_late_tick_moves_ath_but_not_last() -> None:
    levels = levels_of(tick(10, 100.0), tick(20, 105.0), tick(5, 130.0))
    assert (levels.ath, levels.last) == (130.0, 105.0)
    assert levels.enigma == pytest.approx(500 / 30)


@pytest.mark.parametrize("price", [math.nan, math.inf, 0.0, -1.0])
def test_invalid_tick_is_refused_and_changes_no_level(price: float) -> None:
    levels = levels_of(tick(1, 100.0))
    before = levels.snapshot()
    outcome = levels.on_tick(tick(2, price))
    assert isinstance(outcome, InvalidTick)
    assert levels.snapshot() == before


def test_snapshot_restores_the_same_levels() -> None:
    levels = levels_of(tick(1, 100.0), tick(2, 120.0), tick(3, 90.0))
    restored = Levels("BTC-USD")
    restored.restore(json.loads(json.dumps(levels.snapshot())))
    assert restored.on_tick(tick(4, 95.0)) is None
    assert levels.on_tick(tick(4, 95.0)) is None
    assert restored.snapshot() == levels.snapshot()
    with pytest.raises(SnapshotError):
        Levels("ETH-USD").restore(levels.snapshot())


_prices = st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(steps=st.lists(st.tuples(st.integers(-3600, 3600), _prices), min_size=1, max_size=60))
def test_levels_invariants_hold_for_any_tape(steps: list[tuple[int, float]]) -> None:
    levels = Levels("BTC-USD")
    for at_s, price in steps:
        assert levels.on_tick(tick(at_s + 7200, price)) is None
        assert levels.atl is not None and levels.ath is not None and levels.last is not None
        assert levels.atl <= levels.last <= levels.ath
        enigma = levels.enigma
        if levels.ath == levels.atl:
            assert enigma is None
        else:
            assert enigma is not None and 0.0 <= enigma <= 100.0
        prices = [f.price for f in levels.fibonacci()]
        assert all(a <= b for a, b in itertools.pairwise(prices))
        assert (prices[0], prices[-1]) == (levels.atl, levels.ath)
    assert levels.ath == max(p for _, p in steps)
    assert levels.atl == min(p for _, p in steps)
    latest = max(at_s for at_s, _ in steps)
    assert levels.last == [p for at_s, p in steps if at_s == latest][-1]
