"""Market-data service configuration: the kernel's settings plus venues, simulator, API."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kernel.settings import KernelSettings


class MarketSettings(KernelSettings):
    """Everything a market-data process (API, simulator, processors, venues) is configured
    with."""

    market_api_port: int = Field(default=8001, ge=1, le=65535,
                                 description="port of the market-data HTTP API")
    binance_url: str = "wss://stream.binance.com:9443/stream"
    binance_symbols: dict[str, str] = Field(
        default={"BTCUSDT": "BTC-USD", "ETHUSDT": "ETH-USD", "SOLUSDT": "SOL-USD"},
        description="Binance symbol -> our instrument, as JSON in PROPSTREAM_BINANCE_SYMBOLS")
    polymarket_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    polymarket_assets: dict[str, str] = Field(
        default={}, description="Polymarket asset id -> our instrument (JSON)")
    kalshi_url: str = "wss://api.elections.kalshi.com/trade-api/ws/v2"
    kalshi_markets: dict[str, str] = Field(
        default={}, description="Kalshi market ticker -> our instrument (JSON)")
    kalshi_key_id: str | None = None
    kalshi_private_key_file: Path | None = None
    simulator_seed: int = Field(default=42, ge=0, description="same seed, same tape")
    udf_quotes_rate_per_s: float = Field(default=2.0, gt=0, le=100_000)
    udf_quotes_burst: int = Field(default=20, ge=1, le=1_000_000)
