"""Simulation parameters for an instrument of the registry: by symbol where we know a
realistic level, by asset class otherwise."""

from __future__ import annotations

from decimal import Decimal

from market_data.domain.simulator_config import InstrumentSimConfig, NewsConfig, RegimeConfig

INITIAL: dict[str, Decimal] = {
    "BTC-USD": Decimal("95000"), "ETH-USD": Decimal("3500"), "SOL-USD": Decimal("180"),
    "EUR-USD": Decimal("1.08"), "GBP-USD": Decimal("1.27"), "USD-JPY": Decimal("150"),
    "US500": Decimal("5800"), "NAS100": Decimal("20500"),
}
BY_CLASS: dict[str, tuple[Decimal, tuple[float, float, float]]] = {
    # initial level, annualised sigma per regime (low, medium, high)
    "crypto": (Decimal("100"), (0.35, 0.65, 1.3)),
    "fx": (Decimal("1"), (0.05, 0.09, 0.2)),
    "index": (Decimal("1000"), (0.1, 0.18, 0.4)),
    "equity": (Decimal("100"), (0.2, 0.35, 0.8)),
    "commodity": (Decimal("50"), (0.2, 0.35, 0.8)),
    "prediction": (Decimal("0.5"), (2.0, 4.0, 8.0)),  # logit units
}


def sim_config(*, symbol: str, asset_class: str, tick_size: Decimal, lot_size: Decimal,
               initial: Decimal | None = None, dt_seconds: float = 0.1) -> InstrumentSimConfig:
    level, sigmas = BY_CLASS.get(asset_class, BY_CLASS["equity"])
    start = initial if initial is not None else INITIAL.get(symbol, level)
    if asset_class == "prediction":
        tick = tick_size if (1 / tick_size) % 1 == 0 else Decimal("0.01")
        start = min(max(start.quantize(tick), tick), 1 - tick)
        return InstrumentSimConfig(
            symbol=symbol, kind="probability", initial=start, tick_size=tick,
            lot_size=lot_size, dt_seconds=dt_seconds,
            regimes=RegimeConfig(sigma=sigmas), news=NewsConfig(mean_abs_jump=0.3,
                                                                  jump_stdev=0.1))
    start = max(start.quantize(tick_size), tick_size)
    return InstrumentSimConfig(
        symbol=symbol, kind="price", initial=start, tick_size=tick_size, lot_size=lot_size,
        spread_ticks=1, spread_bps=1.0, dt_seconds=dt_seconds, regimes=RegimeConfig(sigma=sigmas))
