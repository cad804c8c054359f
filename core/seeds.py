"""The default instruments `make run` registers: crypto, FX, index and prediction markets."""

from __future__ import annotations

from decimal import Decimal

from schemas.instrument import InstrumentSpec, TradingHours, TradingSession

_FX_HOURS = TradingHours(timezone="America/New_York", sessions=(
    TradingSession(days=(6,), open="17:00", close="23:59"),  # type: ignore[arg-type]
    TradingSession(days=(0, 1, 2, 3), open="00:00", close="23:59"),  # type: ignore[arg-type]
    TradingSession(days=(4,), open="00:00", close="17:00"),  # type: ignore[arg-type]
))
_US_INDEX_HOURS = TradingHours(timezone="America/New_York", sessions=(
    TradingSession(days=(0, 1, 2, 3, 4), open="09:30", close="16:00"),  # type: ignore[arg-type]
))


def _spec(symbol: str, asset_class: str, tick: str, lot: str, quote: str, desc: str,
          hours: TradingHours | None = None, venue: str = "simulator") -> InstrumentSpec:
    return InstrumentSpec(symbol=symbol, venue=venue, asset_class=asset_class,  # type: ignore[arg-type]
                          tick_size=Decimal(tick), lot_size=Decimal(lot), quote_currency=quote,
                          trading_hours=hours or TradingHours(), description=desc)


DEFAULT_INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    _spec("BTC-USD", "crypto", "0.01", "0.0001", "USD", "Bitcoin / US dollar"),
    _spec("ETH-USD", "crypto", "0.01", "0.001", "USD", "Ether / US dollar"),
    _spec("SOL-USD", "crypto", "0.001", "0.01", "USD", "Solana / US dollar"),
    _spec("EUR-USD", "fx", "0.00001", "1000", "USD", "Euro / US dollar", _FX_HOURS),
    _spec("GBP-USD", "fx", "0.00001", "1000", "USD", "Pound sterling / US dollar", _FX_HOURS),
    _spec("USD-JPY", "fx", "0.001", "1000", "JPY", "US dollar / Japanese yen", _FX_HOURS),
    _spec("US500", "index", "0.25", "1", "USD", "US 500 index CFD", _US_INDEX_HOURS),
    _spec("NAS100", "index", "0.25", "1", "USD", "US tech 100 index CFD", _US_INDEX_HOURS),
    _spec("PM-FED-CUT-DEC", "prediction", "0.01", "1", "USD",
          "Will the Fed cut rates at the December meeting? (YES share, 0-1 USD)"),
    _spec("PM-BTC-100K", "prediction", "0.01", "1", "USD",
          "Will BTC trade above 100k USD by year end? (YES share, 0-1 USD)"),
)
