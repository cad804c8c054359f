"""No route holds a pooled PostgreSQL connection while it waits for a decision.

A route that sends a command waits for the decider (up to the command timeout); a connection
taken for the whole request (`kernel.deps.ConnDep`) is held through that wait, and ten such
requests took the pool's ten connections while every later request queued behind them
(bench.command_round_trip). Those routes borrow a connection per read (`PoolDep`).
"""

from __future__ import annotations

from core.entrypoints.http.app import create_app
from core.entrypoints.http.deps import get_bus
from kernel.deps import get_conn
from propstream.settings import PlatformSettings as Settings
from tests.support.routes import api_routes, dependency_calls


def test_no_route_that_sends_a_command_holds_a_connection_for_the_request() -> None:
    senders = [r for r in api_routes(create_app(Settings()).routes)
               if get_bus in dependency_calls(r.dependant)]
    assert len(senders) >= 10  # the guard sees the command routes at all
    holding = sorted(f"{sorted(r.methods)[0]} {r.path}" for r in senders
                     if get_conn in dependency_calls(r.dependant))
    assert holding == []
