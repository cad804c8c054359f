"""Every operation of both HTTP apps declares who may call it, exactly once: a new route
without `access(...)` or `public(...)` fails here, before it can ship open by accident."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from core.entrypoints.http.app import create_app as create_core_app
from kernel.auth import ROLE_SCOPES, AccessRule, api_routes, rules_of
from market_data.entrypoints.http.app import create_app as create_market_app
from propstream.settings import PlatformSettings as Settings

SETTINGS = Settings()
APPS: dict[str, FastAPI] = {"core": create_core_app(SETTINGS),
                            "market": create_market_app(SETTINGS)}
ROUTES = [(f"{name} {sorted(route.methods or ())} {route.path}", route)
          for name, app in APPS.items() for route in api_routes(app)]
# Operations that write what only an admin may change: the issue names them.
ADMIN_WRITES = {"registerInstrument", "updateInstrument", "haltInstrument", "resumeInstrument",
                "resolveInstrument",
                "createTier", "reviseTier", "retireTier", "reactivateTier", "grantPurchase",
                "changeUserRole", "listUsers", "startSimulator", "stopSimulator",
                "overrideSimulatorRegime", "injectSimulatorNews", "getTierRevision"}


def _rule(route: Any) -> AccessRule:
    rules = rules_of(route)
    assert len(rules) == 1, f"{route.path}: {len(rules)} access declarations"
    return rules[0]


@pytest.mark.parametrize("route", [r for _, r in ROUTES], ids=[n for n, _ in ROUTES])
def test_every_operation_declares_exactly_one_access_rule(route: Any) -> None:
    _rule(route)


def test_an_undeclared_route_is_caught() -> None:
    app = FastAPI()

    @app.get("/open-by-accident")
    async def handler() -> None:
        return None

    (route,) = api_routes(app)
    assert rules_of(route) == []


@pytest.mark.parametrize("route", [r for _, r in ROUTES if r.operation_id in ADMIN_WRITES],
                         ids=[n for n, r in ROUTES if r.operation_id in ADMIN_WRITES])
def test_admin_operations_need_the_admin_scope_so_a_narrow_admin_key_cannot(
        route: Any) -> None:
    assert dict(_rule(route).grants) == {"admin": "admin"}


def test_every_declared_scope_is_one_its_role_can_hold() -> None:
    for _, route in ROUTES:
        for role, scope in _rule(route).grants.items():
            assert scope is None or scope in ROLE_SCOPES[role], route.path


@pytest.mark.parametrize("name", list(APPS))
def test_every_path_parameter_has_an_example_for_the_authorization_matrix(name: str) -> None:
    doc: dict[str, Any] = APPS[name].openapi()
    missing = [f"{method.upper()} {path} {p['name']}"
               for path, item in doc["paths"].items() for method, op in item.items()
               for p in op.get("parameters", []) if p["in"] == "path"
               and not (p.get("example") or p.get("examples") or p["schema"].get("examples"))]
    assert not missing


@pytest.mark.parametrize("name", list(APPS))
def test_the_openapi_document_states_every_operations_rule(name: str) -> None:
    doc: dict[str, Any] = APPS[name].openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "x-access" in op, f"{method.upper()} {path} has no x-access"
            assert isinstance(op["x-access"]["public"], bool)
