"""No route dependency runs in the thread pool.

FastAPI runs a plain `def` dependency through `run_in_threadpool`: a thread hand-off per
dependency per request (queue put, condition notify, the GIL back). On the order route five
such one-line getters (bus, registry, pool, settings, reads) were 12 % of the API's samples
under py-spy at 100 orders/s (bench.order_round_trip). Every dependency is `async def` (or
an object with an async `__call__`), so it runs on the event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from core.entrypoints.http.app import create_app as core_app
from market_data.config import MarketSettings
from market_data.entrypoints.http.app import create_app as market_app
from propstream.settings import PlatformSettings
from tests.support.routes import api_routes, dependency_calls


def _on_the_loop(call: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    dunder = getattr(call, "__call__", None)  # noqa: B004 - a dependency object
    return dunder is not None and not inspect.isfunction(call) and (
        inspect.iscoroutinefunction(dunder) or inspect.isasyncgenfunction(dunder))


def _threaded(app: FastAPI) -> list[str]:
    out = set()
    for route in api_routes(app.routes):
        for call in dependency_calls(route.dependant):
            if not _on_the_loop(call):
                out.add(f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', call)}")
    return sorted(out)


def test_every_dependency_of_the_core_api_runs_on_the_event_loop() -> None:
    app = core_app(PlatformSettings())
    assert len(api_routes(app.routes)) > 30  # the walk sees the routes at all
    assert _threaded(app) == []


def test_every_dependency_of_the_market_api_runs_on_the_event_loop() -> None:
    app = market_app(MarketSettings())
    assert len(api_routes(app.routes)) > 5
    assert _threaded(app) == []
