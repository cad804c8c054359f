"""The market-data service, declared once: what `propstream up`, the Helm chart and the docs
run. Factories are imported lazily (`Lazy`): reading the manifest costs no runtime import."""

from __future__ import annotations

from kernel.manifest import Api, Lazy, ServiceManifest, Worker, projection
from market_data.config import MarketSettings
from schemas import market

_BOOT = "market_data.bootstrap"


def _process(name: str, description: str, *, platform: bool = True) -> Worker:
    return Worker(kind="market", name=name, factory=Lazy(_BOOT, name), description=description,
                  platform=platform)


MANIFEST = ServiceManifest(
    name="market_data",
    settings=MarketSettings,
    families=(market.FAMILY,),
    api=Api(process="market-api", argv=("market", "api"), factory=Lazy(_BOOT, "api"),
            port_setting="market_api_port",
            description="the market-data HTTP API: /market prices, bars, levels, simulator "
                        "control; /udf for charts"),
    projections=(
        projection("bars", Lazy("market_data.adapters.bars_projection", "BarsProjection"),
                   "`bars` from market.bars"),
        projection("market-instruments",
                   Lazy("market_data.adapters.instruments_projection",
                        "MarketInstrumentsProjection"),
                   "`market_instruments` from instrument.events (market data's own copy)"),
    ),
    processors=(
        _process("simulator", "the simulated venue: ticks to market.ticks"),
        _process("prices", "latest prices and levels in Redis from market.ticks"),
        _process("bars", "OHLCV bars from market.ticks to market.bars"),
        _process("binance", "live Binance trades and book tops (needs the network)",
                 platform=False),
        _process("polymarket", "live Polymarket market channel", platform=False),
        _process("kalshi", "live Kalshi order books and trades", platform=False),
    ),
)
