"""The market simulator: statistics match the configuration, invariants hold, a seed fixes the tape.

Statistical tests use a fixed seed, so they are deterministic; their tolerances are still
derived from the sampling distribution (5 standard errors, a two-sided false-alarm chance of
about 6e-7 per check for a random seed), so they are not tuned to the one seed they run.
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.domain.simulator import (
    InstrumentSimConfig,
    MarketSimulator,
    NewsConfig,
    RegimeConfig,
    SimulationStep,
)
from market_data.domain.simulator_config import REGIMES, SECONDS_PER_YEAR
from market_data.exceptions import (
    InvalidControlError,
    SimulatorConfigError,
    UnknownInstrumentError,
)

STEP_NS = 100_000_000
NO_NEWS = NewsConfig(rate_per_hour=0.0)
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def single_regime(sigma: float) -> RegimeConfig:
    return RegimeConfig(sigma=(sigma, sigma, sigma), transition_matrix=IDENTITY)


def price(symbol: str = "BTC-USD", **overrides: object) -> InstrumentSimConfig:
    fields: dict[str, object] = {
        "symbol": symbol, "initial": Decimal("60000"), "tick_size": Decimal("0.01"),
    }
    fields.update(overrides)
    return InstrumentSimConfig(**fields)  # type: ignore[arg-type]


def probability(symbol: str = "ELECTION-2028", **overrides: object) -> InstrumentSimConfig:
    fields: dict[str, object] = {
        "symbol": symbol, "kind": "probability", "initial": Decimal("0.4"),
        "tick_size": Decimal("0.01"),
    }
    fields.update(overrides)
    return InstrumentSimConfig(**fields)  # type: ignore[arg-type]


def run(sim: MarketSimulator, steps: int) -> list[SimulationStep]:
    return [sim.step(k * STEP_NS) for k in range(steps)]


def mids(steps: list[SimulationStep], instrument: int = 0) -> np.ndarray:
    return np.array([(s.ticks[instrument].bid or 0.0) + (s.ticks[instrument].ask or 0.0)
                     for s in steps]) / 2


# GBM statistics -------------------------------------------------------------------------------


def test_log_returns_match_mu_and_sigma_for_a_fixed_seed() -> None:
    # Given price instruments in a single regime, no news, and a tick so fine (1e-8 on 100)
    # that quantisation adds nothing measurable to returns whose stdev is ~5e-5. Eight
    # instruments x 25,000 steps give 200,000 iid returns in an eighth of the wall time of
    # one instrument x 200,000 steps; every path is still 25,000 steps (42 min) long.
    mu, sigma, dt_s, k, steps = 0.5, 0.8, 0.1, 8, 25_000
    configs = [price(f"I{i}", initial=Decimal("100"), tick_size=Decimal("0.00000001"), mu=mu,
                     regimes=single_regime(sigma), news=NO_NEWS, dt_seconds=dt_s)
               for i in range(k)]
    # When they run
    tape = run(MarketSimulator(configs, seed=7), steps + 1)
    returns = np.diff(np.log(np.column_stack([mids(tape, i) for i in range(k)])), axis=0).ravel()
    n = returns.size
    # Then: increments are iid N((mu - sigma²/2)dt, sigma²dt), so the sample mean has standard
    # error sigma·sqrt(dt/n) and the sample variance sigma²dt·sqrt(2/(n-1)).
    dt = dt_s / SECONDS_PER_YEAR
    expected_mean, expected_var = (mu - sigma**2 / 2) * dt, sigma**2 * dt
    assert n == 200_000
    assert abs(returns.mean() - expected_mean) <= 5 * sigma * math.sqrt(dt / n)
    assert abs(returns.var(ddof=1) - expected_var) <= 5 * expected_var * math.sqrt(2 / (n - 1))


def test_log_return_drift_includes_the_ito_correction() -> None:
    # Given daily steps with sigma=2, where -sigma²/2·dt is ~23 standard errors of the mean
    # (at 100 ms the drift is far below one standard error and cannot be checked), and 2,000
    # instruments x 100 steps so that no path wanders near the state's bounds.
    mu, sigma, dt_s, k, steps = 1.0, 2.0, 86_400.0, 2_000, 100
    configs = [price(f"I{i}", initial=Decimal("100"), tick_size=Decimal("0.000001"), mu=mu,
                     regimes=single_regime(sigma), news=NO_NEWS, dt_seconds=dt_s)
               for i in range(k)]
    # When
    tape = run(MarketSimulator(configs, seed=11), steps + 1)
    levels = np.array([[(t.bid or 0.0) + (t.ask or 0.0) for t in s.ticks] for s in tape]) / 2
    returns = np.diff(np.log(levels), axis=0).ravel()
    # Then the mean is (mu - sigma²/2)dt within 5 standard errors, not mu·dt.
    dt = dt_s / SECONDS_PER_YEAR
    standard_error = sigma * math.sqrt(dt / returns.size)
    assert abs(returns.mean() - (mu - sigma**2 / 2) * dt) <= 5 * standard_error
    assert abs(returns.mean() - mu * dt) > 10 * standard_error


# Regimes --------------------------------------------------------------------------------------

MATRIX = ((0.95, 0.04, 0.01), (0.03, 0.94, 0.03), (0.02, 0.08, 0.90))
SIGMAS = (0.2, 0.5, 1.5)


def test_regime_transitions_and_occupancy_match_the_matrix() -> None:
    # Given 20 instruments whose regimes switch every ~15 steps
    regimes = RegimeConfig(sigma=SIGMAS, transition_matrix=MATRIX, initial="medium")
    k, steps = 20, 5_000
    sim = MarketSimulator([price(f"I{i}", regimes=regimes, news=NO_NEWS) for i in range(k)],
                          seed=3)
    # When they run, and each regime path is rebuilt from the RegimeChange records alone
    paths = {f"I{i}": [REGIMES.index("medium")] for i in range(k)}
    for step in run(sim, steps):
        for path in paths.values():
            path.append(path[-1])
        for change in step.regime_changes:
            path = paths[change.instrument]
            assert REGIMES.index(change.from_regime) == path[-2]
            assert change.sigma == SIGMAS[REGIMES.index(change.to_regime)]
            assert change.source == "simulated" and change.at_ns == step.at_ns
            path[-1] = REGIMES.index(change.to_regime)
    # Then each visit to regime i is followed by regime j with probability P[i][j]: given N_i
    # visits, the count is Binomial(N_i, P_ij) (Markov property), checked to 5 standard errors.
    counts: Counter[tuple[int, int]] = Counter()
    for path in paths.values():
        counts.update(pairwise(path))
    for i in range(3):
        visits = sum(counts[(i, j)] for j in range(3))
        for j in range(3):
            p = MATRIX[i][j]
            assert abs(counts[(i, j)] - visits * p) <= 5 * math.sqrt(visits * p * (1 - p)) + 1
    # and the time spent in each regime matches the stationary distribution; occupancy is
    # autocorrelated in time, so its standard error comes from the 20 independent instruments.
    stationary = _stationary(np.array(MATRIX))
    per_instrument = np.array([np.eye(3)[np.array(path[1:])].mean(axis=0)
                               for path in paths.values()])
    standard_error = per_instrument.std(axis=0, ddof=1) / math.sqrt(k)
    assert np.all(np.abs(per_instrument.mean(axis=0) - stationary) <= 5 * standard_error)


def _stationary(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(matrix.T)
    vector = np.real(vectors[:, np.argmin(np.abs(values - 1))]).astype(np.float64)
    return np.asarray(vector / vector.sum(), dtype=np.float64)


def test_override_regime_is_recorded_at_the_next_step_as_admin() -> None:
    sim = MarketSimulator([price(regimes=RegimeConfig(transition_matrix=IDENTITY))], seed=1)
    sim.step(0)
    # When an operator forces the high regime
    sim.override_regime("BTC-USD", "high")
    step = sim.step(STEP_NS)
    # Then the change is a record like a generated one, and the new sigma applies
    assert [(c.from_regime, c.to_regime, c.sigma, c.source, c.at_ns)
            for c in step.regime_changes] == [("medium", "high", 1.2, "admin", STEP_NS)]
    assert sim.state("BTC-USD").regime == "high"


def test_override_to_the_current_regime_records_nothing() -> None:
    sim = MarketSimulator([price(regimes=RegimeConfig(transition_matrix=IDENTITY))], seed=1)
    sim.override_regime("BTC-USD", "medium")
    assert sim.step(0).regime_changes == ()


def test_override_of_an_unknown_instrument_or_regime_is_refused() -> None:
    sim = MarketSimulator([price()], seed=1)
    with pytest.raises(UnknownInstrumentError, match="does not run 'ETH-USD'"):
        sim.override_regime("ETH-USD", "high")
    with pytest.raises(InvalidControlError, match="regime must be one of"):
        sim.override_regime("BTC-USD", "extreme")  # type: ignore[arg-type]


# News -----------------------------------------------------------------------------------------


def test_news_arrives_at_the_configured_rate_with_the_configured_direction() -> None:
    # Given 50 instruments with 360 news per hour (0.01 per 100 ms step), 70 % bullish
    news = NewsConfig(rate_per_hour=360.0, mean_abs_jump=0.01, jump_stdev=0.001,
                      bullish_probability=0.7)
    configs = [price(f"I{i}", news=news) for i in range(50)]
    steps = 2_000
    # When they run for 2,000 steps (200 s each, 10,000 instrument-seconds)
    events = [e for s in run(MarketSimulator(configs, seed=5), steps) for e in s.news]
    # Then the count is Poisson(λT = 1,000): within 5 standard deviations of sqrt(1,000)
    expected = 360.0 / 3600 * 0.1 * steps * len(configs)
    assert abs(len(events) - expected) <= 5 * math.sqrt(expected)
    # and the bullish share is Binomial(count, 0.7) within 5 standard errors
    bullish = sum(e.signal == "bullish" for e in events)
    assert abs(bullish - 0.7 * len(events)) <= 5 * math.sqrt(len(events) * 0.7 * 0.3)
    # and every record is consistent: sign matches signal, strength is |jump| / mean jump
    for e in events:
        assert (e.jump > 0) == (e.signal == "bullish")
        assert e.strength == pytest.approx(abs(e.jump) / 0.01)
        assert e.instrument in e.headline and e.signal in e.headline
        assert e.source == "simulated"
    assert abs(np.mean([abs(e.jump) for e in events]) - 0.01) <= 5 * 0.001 / math.sqrt(
        len(events))


def test_injected_news_multiplies_the_price_by_exp_jump() -> None:
    # Given a price that does not move on its own
    flat = price(mu=0.0, regimes=single_regime(0.0), news=NO_NEWS)
    sim = MarketSimulator([flat], seed=1)
    sim.step(0)
    before = sim.state("BTC-USD").mid
    # When an operator injects bearish news
    sim.inject_news("BTC-USD", jump=-0.1, headline="exchange hacked")
    step = sim.step(STEP_NS)
    # Then the mid drops by exactly exp(-0.1) and the event is recorded like a generated one
    assert sim.state("BTC-USD").mid == pytest.approx(before * math.exp(-0.1), rel=1e-12)
    [event] = step.news
    assert (event.instrument, event.headline, event.jump, event.signal, event.source) == (
        "BTC-USD", "exchange hacked", -0.1, "bearish", "admin")
    assert event.strength == pytest.approx(0.1 / NO_NEWS.mean_abs_jump)


@pytest.mark.parametrize("jump", [0.0, math.nan, math.inf, 51.0])
def test_injected_news_with_an_invalid_jump_is_refused(jump: float) -> None:
    sim = MarketSimulator([price()], seed=1)
    with pytest.raises(InvalidControlError, match="jump must be"):
        sim.inject_news("BTC-USD", jump=jump, headline="x")


# Probabilities, quotes, determinism -----------------------------------------------------------


def test_probability_stays_strictly_inside_zero_one_under_huge_sigma_and_many_jumps() -> None:
    # Given a prediction market with the largest sigma and a jump of ~10 logits every step
    wild = probability(
        regimes=single_regime(1_000.0),
        news=NewsConfig(rate_per_hour=36_000.0, mean_abs_jump=10.0, jump_stdev=5.0),
    )
    # When it runs
    ticks = [s.ticks[0] for s in run(MarketSimulator([wild], seed=2), 5_000)]
    # Then every quote is on the grid strictly inside (0, 1), and the bounds are reached
    for t in ticks:
        assert t.bid is not None and t.ask is not None
        assert 0.01 <= t.bid < t.ask <= 0.99 and 0 < t.price < 1
    assert max(t.ask or 0 for t in ticks) == 0.99
    assert min(t.bid or 1 for t in ticks) == 0.01


def test_quotes_are_on_the_tick_grid_and_the_trade_is_at_the_aggressors_touch() -> None:
    configs = [price(regimes=RegimeConfig(sigma=(5.0, 5.0, 5.0))),
               price("ETH-USD", initial=Decimal("3000"), tick_size=Decimal("0.05"),
                     spread_ticks=3),
               probability()]
    ticks = Decimal("0.01"), Decimal("0.05"), Decimal("0.01")
    for step in run(MarketSimulator(configs, seed=9), 2_000):
        for t, tick, config in zip(step.ticks, ticks, configs, strict=True):
            assert t.bid is not None and t.ask is not None
            assert 0 < t.bid < t.ask
            assert Decimal(repr(t.bid)) % tick == 0 and Decimal(repr(t.ask)) % tick == 0
            assert Decimal(repr(t.ask)) - Decimal(repr(t.bid)) == config.spread_ticks * tick
            assert t.price == (t.ask if t.side == "buy" else t.bid)
            assert t.size > 0 and Decimal(repr(t.size)) % Decimal("0.001") == 0
            assert t.trade_id == f"{t.instrument}-{step.sequence}"
            assert t.venue == "simulator" and t.venue_ts_ns == t.received_ts_ns == step.at_ns


def test_spread_in_bps_widens_the_quote_to_whole_ticks() -> None:
    sim = MarketSimulator([price(spread_bps=10.0, regimes=single_regime(0.0))], seed=1)
    t = sim.step(0).ticks[0]
    assert t.bid is not None and t.ask is not None
    assert Decimal(repr(t.ask)) - Decimal(repr(t.bid)) == Decimal("60.00")  # 10 bps of 60,000


def test_same_seed_gives_the_same_tape_and_another_seed_does_not() -> None:
    def tape(seed: int) -> list[SimulationStep]:
        sim = MarketSimulator([price(news=NewsConfig(rate_per_hour=3_600.0)), probability()],
                              seed=seed)
        first = run(sim, 500)
        sim.override_regime("ELECTION-2028", "high")
        sim.inject_news("BTC-USD", jump=0.02, headline="ETF approved")
        return first + run(sim, 500)

    assert tape(42) == tape(42)
    assert tape(42) != tape(43)
    assert any(s.news for s in tape(42))


def test_quantisation_does_not_feed_back_into_the_path() -> None:
    # Given the same seed and path parameters but tick sizes 0.01 and 100
    fine = MarketSimulator([price(tick_size=Decimal("0.01"))], seed=8)
    coarse = MarketSimulator([price(tick_size=Decimal("100"))], seed=8)
    # When both run, then the unquantised paths are identical
    run(fine, 1_000)
    run(coarse, 1_000)
    assert fine.state("BTC-USD").mid == coarse.state("BTC-USD").mid


# Configuration --------------------------------------------------------------------------------

BAD_CONFIGS = [
    (lambda: RegimeConfig(transition_matrix=((0.5, 0.4, 0.0), *IDENTITY[1:])),
     r"RegimeConfig.transition_matrix\[low\] must sum to 1 \(within 1e-9\), sums to 0.9"),
    (lambda: RegimeConfig(transition_matrix=((1.1, -0.1, 0.0), *IDENTITY[1:])),
     r"transition_matrix\[low\]\[low\] must be in \[0.0, 1.0\], got 1.1"),
    (lambda: RegimeConfig(sigma=(-0.1, 0.5, 1.0)),
     r"RegimeConfig.sigma\[low\] must be in \[0.0, 1000.0\], got -0.1"),
    (lambda: RegimeConfig(sigma=(0.1, math.nan, 1.0)), r"sigma\[medium\] must be finite"),
    (lambda: price(initial=Decimal("0")), r"'BTC-USD'\)\.initial must be > 0, got 0"),
    (lambda: price(initial=Decimal("-5")), r"initial must be > 0, got -5"),
    (lambda: price(initial=Decimal("NaN")), r"initial must be a finite Decimal"),
    (lambda: price(tick_size=Decimal("0")), r"tick_size must be a finite Decimal > 0, got 0"),
    (lambda: price(tick_size=Decimal("-0.01")), r"tick_size must be a finite Decimal > 0"),
    (lambda: price(tick_size=0.01), r"tick_size must be a Decimal, got float"),
    (lambda: price(mu=math.inf), r"mu must be finite"),
    (lambda: price(dt_seconds=0.0), r"dt_seconds must be > 0"),
    (lambda: price(spread_ticks=0), r"spread_ticks must be >= 1"),
    (lambda: price(symbol="btc usd"), r"symbol must match"),
    (lambda: probability(initial=Decimal("1")), r"must be in \[tick_size, 1 - tick_size\]"),
    (lambda: probability(tick_size=Decimal("0.03")), r"tick_size of a probability instrument"),
    (lambda: probability(mu=0.1), r"mu must be 0 for a probability instrument"),
    (lambda: NewsConfig(rate_per_hour=-1.0), r"NewsConfig.rate_per_hour must be in"),
    (lambda: NewsConfig(headlines=("{ticker} up",)), r"headlines\[0\] uses unknown fields"),
    (lambda: MarketSimulator([price(), price()], seed=1), r"'BTC-USD' is configured twice"),
    (lambda: MarketSimulator([price(), price("ETH-USD", dt_seconds=1.0)], seed=1),
     r"must share dt_seconds"),
    (lambda: MarketSimulator([], seed=1), r"at least one instrument"),
    (lambda: MarketSimulator([price()], seed=-1), r"seed must be an int >= 0"),
]


@pytest.mark.parametrize(("build", "message"), BAD_CONFIGS,
                         ids=[m.split(" must")[0][-40:] for _, m in BAD_CONFIGS])
def test_invalid_config_is_refused_with_a_message_naming_the_field(build: object,
                                                                    message: str) -> None:
    with pytest.raises(SimulatorConfigError, match=message):
        build()  # type: ignore[operator]


# Properties -----------------------------------------------------------------------------------

PRICE_TICKS = [Decimal(t) for t in ("0.00001", "0.01", "0.25", "1", "25")]
PROBABILITY_TICKS = [Decimal(t) for t in ("0.001", "0.01", "0.05")]


@st.composite
def regime_configs(draw: st.DrawFn) -> RegimeConfig:
    sigma = st.floats(0.0, 1_000.0)
    rows = []
    for _ in range(3):
        weights = draw(st.tuples(*[st.floats(0.0, 1.0)] * 3).filter(lambda w: sum(w) > 0.01))
        rows.append(tuple(w / math.fsum(weights) for w in weights))
    return RegimeConfig(sigma=draw(st.tuples(sigma, sigma, sigma)),
                        transition_matrix=tuple(rows),  # type: ignore[arg-type]
                        initial=draw(st.sampled_from(REGIMES)))


@st.composite
def instrument_configs(draw: st.DrawFn, symbol: str) -> InstrumentSimConfig:
    news = NewsConfig(rate_per_hour=draw(st.floats(0.0, 100_000.0)),
                      mean_abs_jump=draw(st.floats(1e-6, 20.0)),
                      jump_stdev=draw(st.floats(0.0, 20.0)),
                      bullish_probability=draw(st.floats(0.0, 1.0)))
    common = {"symbol": symbol, "regimes": draw(regime_configs()), "news": news,
              "spread_ticks": draw(st.integers(1, 5)), "spread_bps": draw(st.floats(0.0, 500.0)),
              "size_median": draw(st.floats(1e-3, 1e6)),
              "size_log_stdev": draw(st.floats(0.0, 5.0)), "dt_seconds": 0.1}
    if draw(st.booleans()):
        tick = draw(st.sampled_from(PROBABILITY_TICKS))
        grid = int(1 / tick)
        return InstrumentSimConfig(kind="probability", tick_size=tick,
                                   initial=tick * draw(st.integers(1, grid - 1)),
                                   **common)  # type: ignore[arg-type]
    tick = draw(st.sampled_from(PRICE_TICKS))
    return InstrumentSimConfig(kind="price", tick_size=tick,
                               initial=tick * draw(st.integers(1, 10**9)),
                               mu=draw(st.floats(-1_000.0, 1_000.0)),
                               **common)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(configs=st.tuples(instrument_configs("A"), instrument_configs("B"),
                         instrument_configs("C")),
       seed=st.integers(0, 2**63))
def test_any_valid_config_yields_finite_positive_uncrossed_quotes(
    configs: tuple[InstrumentSimConfig, ...], seed: int
) -> None:
    sim = MarketSimulator(configs, seed=seed)
    for step in run(sim, 100):
        for t, config in zip(step.ticks, configs, strict=True):
            assert t.bid is not None and t.ask is not None
            assert all(math.isfinite(v) for v in (t.price, t.bid, t.ask, t.size))
            assert 0 < t.bid < t.ask and t.bid <= t.price <= t.ask and t.size > 0
            if config.kind == "probability":
                assert t.ask < 1
    for symbol in sim.instruments:
        state = sim.state(symbol)
        assert math.isfinite(state.mid) and state.mid > 0
