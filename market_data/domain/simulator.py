"""The market simulator: GBM prices, logit-walk probabilities, volatility regimes and news.

Pure: no IO, no clock, no global randomness. The caller passes the time of each step and the
seed; the same configs, seed and sequence of calls give the same steps. Every instrument
advances one `dt_seconds` per `step()`; see `simulator_config` for units.

Prices: the log price follows the exact GBM discretisation
    x += (mu - sigma²/2)·dt + sigma·√dt·Z        (dt in years of SECONDS_PER_YEAR)
with sigma from the instrument's current regime, plus news jumps (S *= exp(jump)).
Probabilities: the logit follows x += sigma·√dt·Z plus news jumps; p = 1/(1 + e^-x).
The unquantised state carries the path; quantisation to the tick grid happens only on output,
so it does not bias the path. The state is clamped far outside any sane range (see
`simulator_config.MAX_MID_TICKS`) so every value stays finite and every tick count exact.

Quotes: bid and ask are whole ticks, at least `spread_ticks` apart, centred on the mid, with
bid >= one tick (and ask <= 1 - one tick for probabilities). The trade price is the ask when
the aggressor buys and the bid when it sells, so bid <= price <= ask and bid < ask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from market_data.domain.simulator_config import (
    MAX_MID_TICKS,
    REGIMES,
    SECONDS_PER_YEAR,
    InstrumentSimConfig,
    NewsConfig,
    RegimeConfig,
    RegimeName,
    check_together,
)
from market_data.domain.simulator_records import (
    InstrumentState,
    NewsEvent,
    RegimeChange,
    SimulationStep,
    Source,
)
from market_data.domain.ticks import Side, Tick
from market_data.exceptions import (
    InvalidControlError,
    SimulatorConfigError,
    UnknownInstrumentError,
)

VENUE = "simulator"
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# How far the state may wander beyond anything quotable before it is held: far enough that
# a sane path never touches it, near enough that exp() and tick counts stay finite and exact.
_LOG_FLOOR_BELOW_TICK = 30.0
_LOGIT_BOUND = 40.0
_MAX_ABS_INJECTED_JUMP = 50.0


@dataclass(frozen=True, slots=True)
class _PendingNews:
    index: int
    jump: float
    headline: str


def _ratio(value: Fraction) -> tuple[float, float]:
    return float(value.numerator), float(value.denominator)


class MarketSimulator:
    """Advance many instruments together, vectorised with numpy, from one PCG64 seed."""

    def __init__(self, configs: Iterable[InstrumentSimConfig], seed: int) -> None:
        self._configs = tuple(configs)
        if not self._configs:
            raise SimulatorConfigError("the simulator needs at least one instrument")
        check_together(self._configs)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SimulatorConfigError(f"seed must be an int >= 0, got {seed!r}")
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._symbols = tuple(c.symbol for c in self._configs)
        self._index = {symbol: i for i, symbol in enumerate(self._symbols)}
        self._dt_seconds = self._configs[0].dt_seconds
        self._dt_years = self._dt_seconds / SECONDS_PER_YEAR
        self._sequence = 0
        self._pending_regimes: dict[int, int] = {}
        self._pending_news: list[_PendingNews] = []
        self._build_arrays()

    def _build_arrays(self) -> None:
        configs = self._configs
        self._is_prob = np.array([c.kind == "probability" for c in configs], dtype=np.bool_)
        self._mu = np.array([c.mu for c in configs], dtype=np.float64)
        self._sigmas = np.array([c.regimes.sigma for c in configs], dtype=np.float64)
        cumulative = np.cumsum(
            np.array([c.regimes.transition_matrix for c in configs], dtype=np.float64), axis=2
        )
        # Rows sum to 1 within 1e-9; pinning the last column makes every draw land in a regime.
        cumulative[:, :, -1] = 1.0
        self._cumulative = cumulative
        self._regime: IntArray = np.array(
            [REGIMES.index(c.regimes.initial) for c in configs], dtype=np.int64
        )
        ticks = [_ratio(Fraction(c.tick_size)) for c in configs]
        self._tick_num = np.array([t[0] for t in ticks], dtype=np.float64)
        self._tick_den = np.array([t[1] for t in ticks], dtype=np.float64)
        lots = [_ratio(Fraction(c.lot_size)) for c in configs]
        self._lot_num = np.array([t[0] for t in lots], dtype=np.float64)
        self._lot_den = np.array([t[1] for t in lots], dtype=np.float64)
        self._spread_ticks = np.array([c.spread_ticks for c in configs], dtype=np.float64)
        self._spread_frac = np.array([c.spread_bps / 10_000 for c in configs], dtype=np.float64)
        self._log_size_median = np.log(np.array([c.size_median for c in configs]))
        self._size_log_stdev = np.array([c.size_log_stdev for c in configs], dtype=np.float64)
        self._news_per_step = np.array(
            [c.news.rate_per_hour * self._dt_seconds / 3600 for c in configs], dtype=np.float64
        )
        self._jump_mean = np.array([c.news.mean_abs_jump for c in configs], dtype=np.float64)
        self._jump_stdev = np.array([c.news.jump_stdev for c in configs], dtype=np.float64)
        self._bullish = np.array([c.news.bullish_probability for c in configs], dtype=np.float64)
        self._n_headlines = np.array([len(c.news.headlines) for c in configs], dtype=np.int64)

        self._ticks_per_unit = self._tick_den / self._tick_num
        self._lots_per_unit = self._lot_den / self._lot_num
        log_tick = np.log(self._tick_num / self._tick_den)
        # Probability grids have 1/tick points; the highest quotable bid leaves room for the
        # spread below 1 - tick. Price grids are bounded by MAX_MID_TICKS only.
        grid = np.where(self._is_prob, self._tick_den / self._tick_num, np.inf)
        self._max_spread = np.where(self._is_prob, grid - 2, float(MAX_MID_TICKS))
        self._top_tick = np.where(self._is_prob, grid - 1, float(4 * MAX_MID_TICKS))
        self._lo = np.where(self._is_prob, -_LOGIT_BOUND, log_tick - _LOG_FLOOR_BELOW_TICK)
        self._hi = np.where(self._is_prob, _LOGIT_BOUND, log_tick + math.log(MAX_MID_TICKS))
        initial = np.array([float(c.initial) for c in configs], dtype=np.float64)
        x = np.log(initial)
        prob = self._is_prob
        x[prob] -= np.log1p(-initial[prob])  # log(p / (1 - p)): the logit
        self._x: FloatArray = x
        self._arange = np.arange(len(configs))
        self._has_prob = bool(self._is_prob.any())
        self._has_bps = bool((self._spread_frac > 0).any())
        self._has_news = bool((self._news_per_step > 0).any())
        self._sqrt_dt = math.sqrt(self._dt_years)
        self._refresh_volatility()

    def _refresh_volatility(self) -> None:
        # Cached per regime change: the per-step drift and stdev of each instrument.
        sigma = self._sigmas[self._arange, self._regime]
        gbm_drift = (self._mu - 0.5 * sigma * sigma) * self._dt_years
        self._drift = np.where(self._is_prob, 0.0, gbm_drift)
        self._vol = sigma * self._sqrt_dt

    @property
    def instruments(self) -> tuple[str, ...]:
        return self._symbols

    @property
    def dt_seconds(self) -> float:
        """The simulated time one step advances; a real-time runner steps at this period."""
        return self._dt_seconds

    @property
    def sequence(self) -> int:
        """How many steps have been taken."""
        return self._sequence

    def state(self, symbol: str) -> InstrumentState:
        """The unquantised state of `symbol` after the last step."""
        i = self._lookup(symbol)
        regime = int(self._regime[i])
        return InstrumentState(
            instrument=symbol,
            regime=REGIMES[regime],
            sigma=float(self._sigmas[i, regime]),
            mid=float(self._mids(self._x[i : i + 1], self._is_prob[i : i + 1])[0]),
        )

    def override_regime(self, symbol: str, regime: RegimeName) -> None:
        """Put `symbol` into `regime` at the next step, instead of its Markov transition.

        Recorded in that step's `regime_changes` with source "admin"; nothing is recorded when
        the instrument is already in `regime`. The last override before a step wins.
        """
        i = self._lookup(symbol)
        if regime not in REGIMES:
            raise InvalidControlError(f"regime must be one of {REGIMES}, got {regime!r}")
        self._pending_regimes[i] = REGIMES.index(regime)

    def inject_news(self, symbol: str, *, jump: float, headline: str) -> None:
        """Apply a news jump to `symbol` at the next step, recorded with source "admin".

        A positive jump is bullish, a negative one bearish; units as for generated news.
        """
        i = self._lookup(symbol)
        if isinstance(jump, bool) or not isinstance(jump, int | float) or not math.isfinite(jump):
            raise InvalidControlError(f"jump must be a finite number, got {jump!r}")
        if jump == 0 or abs(jump) > _MAX_ABS_INJECTED_JUMP:
            raise InvalidControlError(
                f"jump must be non-zero and at most {_MAX_ABS_INJECTED_JUMP} in size, got {jump}"
            )
        if not headline.strip():
            raise InvalidControlError("headline must not be blank")
        self._pending_news.append(_PendingNews(index=i, jump=float(jump), headline=headline))

    def step(self, now_ns: int) -> SimulationStep:
        """Advance every instrument by one dt; `now_ns` stamps the ticks and the events."""
        n = len(self._symbols)
        rng = self._rng
        # Draw in a fixed order and amount, whatever the overrides, so a seed fixes the tape.
        # (Uniforms: regime, side. Normals: path, size. News draws follow, only when there is
        # news, which depends on earlier draws only.)
        u = rng.random((2, n))
        z = rng.standard_normal((2, n))
        news_counts = rng.poisson(self._news_per_step) if self._has_news else None

        regime_changes = self._advance_regimes(u[0], now_ns)
        x = self._x
        x += self._drift
        x += self._vol * z[0]
        news = self._apply_news(news_counts, now_ns)
        np.minimum(x, self._hi, out=x)
        np.maximum(x, self._lo, out=x)

        self._sequence += 1
        ticks = self._quote(u[1], z[1], now_ns)
        return SimulationStep(
            sequence=self._sequence, at_ns=now_ns, ticks=ticks,
            regime_changes=regime_changes, news=news,
        )

    def _lookup(self, symbol: str) -> int:
        try:
            return self._index[symbol]
        except KeyError:
            raise UnknownInstrumentError(f"the simulator does not run {symbol!r}") from None

    def _advance_regimes(self, u: FloatArray, now_ns: int) -> tuple[RegimeChange, ...]:
        old = self._regime
        rows = self._cumulative[self._arange, old]
        # The first regime whose cumulative probability exceeds u (the last column is 1).
        new: IntArray = (rows[:, 0] <= u).astype(np.int64) + (rows[:, 1] <= u)
        admin = set(self._pending_regimes)
        for i, regime in self._pending_regimes.items():
            new[i] = regime
        self._pending_regimes.clear()
        changed = np.flatnonzero(new != old)
        if changed.size == 0:
            return ()
        records = tuple(
            RegimeChange(
                instrument=self._symbols[i], at_ns=now_ns,
                from_regime=REGIMES[int(old[i])], to_regime=REGIMES[int(new[i])],
                sigma=float(self._sigmas[i, new[i]]),
                source="admin" if i in admin else "simulated",
            )
            for i in changed.tolist()
        )
        self._regime = new
        self._refresh_volatility()
        return records

    def _apply_news(self, counts: IntArray | None, now_ns: int) -> tuple[NewsEvent, ...]:
        if (counts is None or not counts.any()) and not self._pending_news:
            return ()
        index = self._arange[:0] if counts is None else np.repeat(self._arange, counts)
        k = len(index)
        magnitude = np.abs(self._rng.normal(self._jump_mean[index], self._jump_stdev[index], k))
        bullish = self._rng.random(k) < self._bullish[index]
        template = self._rng.integers(0, self._n_headlines[index], k)
        jumps = np.where(bullish, magnitude, -magnitude)
        np.add.at(self._x, index, jumps)
        records = [
            self._news_event(i, float(jump), self._headline(i, t, jump >= 0), now_ns, "simulated")
            for i, jump, t in zip(index.tolist(), jumps.tolist(), template.tolist(), strict=True)
        ]
        for pending in self._pending_news:
            self._x[pending.index] += pending.jump
            records.append(self._news_event(
                pending.index, pending.jump, pending.headline, now_ns, "admin"
            ))
        self._pending_news.clear()
        return tuple(records)

    def _headline(self, i: int, template: int, bullish: bool) -> str:
        news: NewsConfig = self._configs[i].news
        return news.headlines[template].format(
            symbol=self._symbols[i], signal="bullish" if bullish else "bearish"
        )

    def _news_event(self, i: int, jump: float, headline: str, now_ns: int,
                    source: Source) -> NewsEvent:
        return NewsEvent(
            instrument=self._symbols[i], at_ns=now_ns, headline=headline, jump=jump,
            signal="bullish" if jump >= 0 else "bearish",
            strength=abs(jump) / float(self._jump_mean[i]), source=source,
        )

    @staticmethod
    def _mids(x: FloatArray, is_prob: npt.NDArray[np.bool_], has_prob: bool = True) -> FloatArray:
        # e^x / (1 + e^x) is the logistic function; e^x is finite because x is clamped.
        mid = np.exp(x)
        return np.where(is_prob, mid / (1.0 + mid), mid) if has_prob else mid

    def _quote(self, u_side: FloatArray, z_size: FloatArray, now_ns: int) -> tuple[Tick, ...]:
        mid = self._mids(self._x, self._is_prob, self._has_prob)
        mid_ticks = mid * self._ticks_per_unit
        spread = self._spread_ticks
        if self._has_bps:
            # The epsilon keeps 10 bps of 60,000 at 6,000 ticks, not 6,001 from float noise.
            spread = np.maximum(spread, np.ceil(mid_ticks * self._spread_frac - 1e-9))
        if self._has_prob:
            spread = np.minimum(spread, self._max_spread)
        bid_n = np.floor(mid_ticks - 0.5 * spread + 0.5)
        np.minimum(bid_n, self._top_tick - spread, out=bid_n)
        np.maximum(bid_n, 1.0, out=bid_n)
        ask_n = bid_n + spread
        # n·num/den with exact integers n·num < 2**53: the nearest float to the decimal price.
        bid = bid_n * self._tick_num / self._tick_den
        ask = ask_n * self._tick_num / self._tick_den
        buy = u_side < 0.5
        price = np.where(buy, ask, bid)
        size_raw = np.exp(self._log_size_median + self._size_log_stdev * z_size)
        lots = np.rint(size_raw * self._lots_per_unit)
        np.minimum(lots, 2.0**38, out=lots)
        np.maximum(lots, 1.0, out=lots)
        size = lots * self._lot_num / self._lot_den
        sides: list[Side] = ["buy" if b else "sell" for b in buy.tolist()]
        seq = self._sequence
        return tuple(
            Tick(
                instrument=symbol, venue=VENUE, price=p, size=s, venue_ts_ns=now_ns,
                received_ts_ns=now_ns, bid=b, ask=a, side=side, trade_id=f"{symbol}-{seq}",
            )
            for symbol, p, s, b, a, side in zip(
                self._symbols, price.tolist(), size.tolist(), bid.tolist(), ask.tolist(), sides,
                strict=True,
            )
        )


__all__ = [
    "VENUE",
    "InstrumentSimConfig",
    "InstrumentState",
    "MarketSimulator",
    "NewsConfig",
    "NewsEvent",
    "RegimeChange",
    "RegimeConfig",
    "SimulationStep",
]
