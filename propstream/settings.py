"""The whole platform's settings, for commands that span services (`up`, `seed`, tests)."""

from __future__ import annotations

from core.config import CoreSettings
from market_data.config import MarketSettings
from ws_gateway.config import GatewaySettings


class PlatformSettings(CoreSettings, MarketSettings, GatewaySettings):
    """Every service's settings at once: what `propstream up` and `seed` read."""
