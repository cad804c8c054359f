"""Scalar == vectorized: each kernel on a float array equals the same kernel called per
element, and the paths' codes equal the live evaluator's verdicts for the same figures."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.domain.rules import Marked, initial, step
from core.domain.rules import kernels as k
from core.domain.rules.paths import Limits, Paths, judge
from schemas.tier import RuleSet

N = 32
money = hnp.arrays(np.float64, N, elements=st.floats(1_000, 200_000, allow_nan=False))
pcts = st.floats(0.5, 100, allow_nan=False)
BASES: tuple[k.DailyBase, ...] = ("starting-balance", "day-start-balance", "day-start-equity",
                                  "day-start-higher")


def per_element(kernel: Any, arrays: list[Any], *scalars: Any, **options: Any) -> Any:
    """The kernel called with plain floats, one path at a time."""
    rows = [kernel(*(float(a[i]) for a in arrays), *scalars, **options)
            for i in range(len(arrays[0]))]
    return tuple(np.array(col) for col in zip(*rows, strict=True))


@settings(max_examples=60, deadline=None)
@given(money, money, money, money, pcts, st.sampled_from(BASES))
def test_daily_loss_on_paths_equals_it_per_path(equity: Any, dsb: Any, dse: Any,
                                                initial_: Any, pct: float,
                                                base: k.DailyBase) -> None:
    vector = k.daily_loss(equity, dsb, dse, initial_, pct, base)
    scalar = per_element(k.daily_loss, [equity, dsb, dse, initial_], pct, base)
    for v, s in zip(vector, scalar, strict=True):
        assert np.array_equal(v, s)


@settings(max_examples=60, deadline=None)
@given(money, money, money, pcts, st.booleans(), st.booleans())
def test_max_loss_on_paths_equals_it_per_path(equity: Any, hwm: Any, initial_: Any,
                                              pct: float, trailing: bool, lock: bool) -> None:
    vector = k.max_loss(equity, hwm, initial_, pct, trailing=trailing, lock=lock)
    scalar = per_element(k.max_loss, [equity, hwm, initial_], pct, trailing=trailing,
                         lock=lock)
    for v, s in zip(vector, scalar, strict=True):
        assert np.array_equal(v, s)


@settings(max_examples=60, deadline=None)
@given(money, money, money, money, pcts, pcts)
def test_the_other_kernels_and_classify_on_paths_equal_them_per_path(
        a: Any, b: Any, c: Any, d: Any, pct: float, threshold: float) -> None:
    assume(threshold < 100)
    cases: list[tuple[Any, list[Any]]] = [
        (k.profit_target, [a, b]), (k.consistency, [a, b]), (k.open_exposure, [a, b]),
        (k.risk_per_trade, [a, b, c, d])]
    for kernel, arrays in cases:
        vector = kernel(*arrays, pct)
        scalar = per_element(kernel, arrays, pct)
        for v, s in zip(vector, scalar, strict=True):
            assert np.array_equal(v, s), kernel.__name__
    codes = k.classify(a, b, threshold)
    assert np.array_equal(codes, np.array([k.classify(float(x), float(y), threshold)
                                           for x, y in zip(a, b, strict=True)]))


cents = st.integers(80_000_00, 120_000_00).map(lambda c: Decimal(c) / 100)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(cents, cents, cents), min_size=1, max_size=16),
       st.sampled_from(BASES), st.sampled_from(["static", "trailing"]), st.booleans(),
       st.sampled_from([Decimal(3), Decimal(5)]), st.sampled_from([Decimal(50), Decimal(80)]))
def test_paths_give_the_codes_the_live_evaluator_gives_for_the_same_figures(
        figures: list[tuple[Decimal, Decimal, Decimal]], base: Any, mode: Any, lock: bool,
        daily: Decimal, threshold: Decimal) -> None:
    spec = RuleSet(daily_loss_limit_pct=daily, daily_loss_base=base, max_loss_pct=Decimal(8),
                   max_loss_mode=mode, max_loss_trailing_lock=lock or mode == "static",
                   warning_threshold_pct=threshold)
    start = Decimal(100_000)
    paths = Paths.start(len(figures), float(start))
    paths.day_start_equity = np.array([float(e0) for _, e0, _ in figures])
    paths.high_water = np.maximum(paths.high_water, paths.day_start_equity)
    paths.mark(np.array([float(b) for b, _, _ in figures]),
               np.array([float(e) for _, _, e in figures]))
    judged = judge(Limits.of(spec), paths)
    for i, (balance, day_equity, equity) in enumerate(figures):
        state = initial("acc", balance=start, started_ns=0, rules=spec)
        state = replace(state, day_start_equity=day_equity,
                        high_water=max(start, day_equity))
        _, verdicts = step(spec, state, Marked(1, 1, balance, equity, Decimal(1)))
        live: dict[str, int] = {v.rule: {"warning": 1, "violation": 2}[v.kind] for v in verdicts}
        for rule, value, limit, code in (
                ("daily-loss", *k.daily_loss(equity, start, day_equity, start, daily, base),
                 judged.daily_loss[i]),
                ("max-loss", *k.max_loss(equity, max(start, day_equity, equity), start,
                                         Decimal(8), trailing=mode == "trailing", lock=lock),
                 judged.max_loss[i])):
            # floats and Decimals may round apart right at a boundary: compare away from it
            assume(abs(value - limit) > Decimal("0.01"))
            assume(abs(value - limit * threshold / 100) > Decimal("0.01"))
            assert live.get(rule, 0) == int(code), (rule, value, limit)
