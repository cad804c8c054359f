"""Wires the market-data service's processes."""

from __future__ import annotations

from fastapi import FastAPI

from kernel.settings import Settings
from market_data.entrypoints.http.app import create_app


def api(settings: Settings) -> FastAPI:
    """The market-data HTTP API; served on `settings.market_api_port`."""
    return create_app(settings)
