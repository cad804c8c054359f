"""Market-data service configuration: the kernel Settings cover it for now."""

from __future__ import annotations

from kernel.settings import Settings

MarketSettings = Settings
