"""Issue 9.3 against the real platform: every operation of both OpenAPI documents, called by
every kind of caller, answers as its declared rule (`x-access`) says.

One request per cell. A caller the rule excludes gets 401 (anonymous) or 403 (role, scope,
or an API key where a login is needed) as problem+json, and the refused sweep leaves every
`*.commands` topic as it was. An admitted caller never gets an access refusal; so that no
admitted request changes the shared platform, an admitted write is sent with a body or path
parameter that fails validation (422 comes only after the access rule passed). Public
routes whose body is itself a credential (login, refresh) may answer 401 for a bad one: that
is the credential's answer, not an access refusal, so cells are judged by problem type.
The market API keeps no API keys, so its token-only operations refuse a key already at
authentication (401 api-key-invalid) rather than at the rule (403): a refusal either way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kernel.auth import ACCESS_REFUSALS
from schemas.account import OpenAccount, account_id_for
from schemas.codec import encode
from schemas.envelope import make_command
from schemas.topics import CATALOGUE
from tests.integration.helpers import end_offsets, produce
from tests.security.conftest import Platform, Who
from tests.support.openapi import resolve

pytestmark = pytest.mark.integration

CALLERS = ("anonymous", "trader", "analyst", "admin", "admin-key[reports:read]",
           "admin-key[market:read]", "analyst-key[reports:read]")
SAFE = {"get", "head", "options"}
METHODS = SAFE | {"post", "put", "patch", "delete"}
COMMAND_TOPICS = [t.name for t in CATALOGUE if t.kind == "commands"]
INVALID = {"uuid": "not-a-uuid", "integer": "not-a-number"}


def _example(node: dict[str, Any], doc: dict[str, Any]) -> Any:
    """The first documented example of a parameter or media type, wherever it is."""
    if "example" in node:
        return node["example"]
    if isinstance(node.get("examples"), dict):
        return next(iter(node["examples"].values()))["value"]
    schema = node.get("schema", {})
    for where in (schema, resolve(schema, doc)):
        if where.get("examples"):
            return where["examples"][0]
        if "example" in where:
            return where["example"]
    for variant in schema.get("anyOf", []):
        found = _example({"schema": variant}, doc)
        if found is not None:
            return found
    return None


def _path_value(param: dict[str, Any], doc: dict[str, Any]) -> str:
    found = _example(param, doc)
    assert found is not None, f"path parameter {param['name']} has no example"
    return str(found)


def _invalid_path_value(param: dict[str, Any]) -> str:
    schema = param.get("schema", {})
    if "pattern" in schema:
        return "!"
    return INVALID[schema.get("format") or schema.get("type")]


class Cell:
    def __init__(self, app: str, method: str, path: str, op: dict[str, Any],
                 doc: dict[str, Any]) -> None:
        self.app, self.method, self.path, self.op, self.doc = app, method, path, op, doc
        self.rule: dict[str, Any] = op["x-access"]
        self.params = [p for p in op.get("parameters", []) if p["in"] == "path"]
        self.body = op.get("requestBody", {}).get("content", {}).get("application/json")

    @property
    def name(self) -> str:
        return f"{self.app} {self.method.upper()} {self.path}"

    def refusal(self, who: Who) -> int | None:
        """401 or 403 when the rule excludes `who`, None when it admits them."""
        if self.rule["public"]:
            return None
        if who.role is None:
            return 401
        grant = self.rule["roles"].get(who.role)
        if grant is None:
            return 403
        is_key = "X-API-Key" in who.headers
        if is_key and self.rule["token_only"]:
            return 403
        if is_key and grant["scope"] is not None and grant["scope"] not in who.scopes:
            return 403
        return None

    def request(self, *, harmless: bool) -> tuple[str, Any]:
        """The URL and JSON body: the documented examples, or (harmless) a request that
        fails validation after the access rule, for an admitted write."""
        path = self.path
        broken = False
        for param in self.params:
            value = _path_value(param, self.doc)
            if harmless and self.body is None and not broken:
                value, broken = _invalid_path_value(param), True
            path = path.replace("{" + param["name"] + "}", value)
        if self.body is None:
            assert not harmless or broken or not self.params, self.name
            return path, None
        if harmless:
            return path, ["not", "the", "documented", "body"]
        example = _example(self.body, self.doc)
        assert example is not None, f"{self.name}: the body has no example"
        return path, example


def _cells(platform: Platform) -> list[Cell]:
    cells = []
    for app, base in (("core", platform.core), ("market", platform.market)):
        doc = httpx.get(f"{base}/openapi.json", timeout=10).json()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in METHODS:
                    assert "x-access" in op, f"{app} {method} {path}: no declared rule"
                    cells.append(Cell(app, method, path, op, doc))
    return cells


def _send(platform: Platform, cell: Cell, who: Who, *, harmless: bool) -> httpx.Response:
    base = platform.core if cell.app == "core" else platform.market
    url, body = cell.request(harmless=harmless)
    with platform.client(who, base=base) as c:
        return c.request(cell.method.upper(), url, json=body)


def _problem_type(resp: httpx.Response) -> str:
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    return str(resp.json().get("type", "")).rsplit(":", 1)[-1]


def _offsets(platform: Platform) -> dict[str, dict[int, int]]:
    async def all_ends() -> dict[str, dict[int, int]]:
        return {t: await end_offsets(platform.settings, t) for t in COMMAND_TOPICS}

    return asyncio.run(all_ends())


def test_every_operation_answers_every_caller_as_its_declared_rule_says(
        platform: Platform, people: dict[str, Who]) -> None:
    cells = _cells(platform)
    assert len(cells) > 50
    # The trading reads (issue 11) are among the cells: trader and admin admitted, the
    # analyst and every key without `account:read` / `admin` refused.
    assert {c.op["operationId"] for c in cells} >= {
        "listAccountOrders", "getAccountOrder", "listAccountFills", "listAccountPositions",
        "getAccountEquity",
        # issue 12: the rule status, read as assessments are (trader and admin only)
        "getAssessmentRules"}
    callers = [people[name] for name in CALLERS]
    wrong: list[str] = []
    before = _offsets(platform)
    refused_cells = 0
    for cell in cells:
        for who in callers:
            expected = cell.refusal(who)
            if expected is None:
                continue
            refused_cells += 1
            resp = _send(platform, cell, who, harmless=False)
            if (cell.app == "market" and cell.rule["token_only"] and "X-API-Key" in who.headers
                    and _problem_type(resp) == "api-key-invalid"):
                expected = 401
            if resp.status_code != expected or _problem_type(resp) not in ACCESS_REFUSALS:
                wrong.append(f"{cell.name} as {who.name}: expected {expected}, got "
                             f"{resp.status_code} {resp.text[:160]}")
    assert _offsets(platform) == before, "a refused request put a command on the log"
    for cell in cells:
        for who in callers:
            if cell.refusal(who) is not None:
                continue
            resp = _send(platform, cell, who, harmless=cell.method not in SAFE)
            if resp.status_code in (401, 403) and _problem_type(resp) in ACCESS_REFUSALS:
                wrong.append(f"{cell.name} as {who.name}: admitted by its rule, refused "
                             f"{resp.status_code} {resp.text[:160]}")
    assert refused_cells > 100
    assert not wrong, "\n".join(wrong)


def test_a_narrow_admin_key_cannot_change_roles_tiers_instruments_or_grants(
        platform: Platform, people: dict[str, Who]) -> None:
    key, victim = people["admin-key[reports:read]"], people["trader"]
    with platform.client(key) as c:
        answers = [
            c.post(f"/users/{victim.user_id}/role", json={"role": "admin"}),
            c.post("/tiers/starter-10k/retire", json={"reason": "key abuse"}),
            c.post("/instruments/BTC-USD/halt", json={"reason": "key abuse"}),
            c.post("/instruments/BTC-USD/resolve", json={"outcome": 1}),
            c.post("/admin/grants", json={"user_id": victim.user_id,
                                          "tier_id": "starter-10k", "reason": "key abuse"}),
        ]
    for resp in answers:
        assert resp.status_code == 403, resp.text
        assert _problem_type(resp) == "scope-missing"
    with platform.client(victim) as c:
        assert c.get("/me").json()["role"] == "trader"


def test_orders_are_only_on_the_traders_own_account(
        platform: Platform, people: dict[str, Who]) -> None:
    """Another trader's account is 404 `account-not-found` on every order route, exactly as
    an unknown one, and a trader may not halt it; nothing is sent. (Traders hold no API keys
    today, so a trader key without `account:trade` is proven on the rule itself:
    tests/unit/core/trading/test_order_routes.py.)"""
    trader = people["trader"]
    assessment = uuid.uuid4()
    theirs = account_id_for(str(assessment))
    env = make_command(OpenAccount(assessment_id=assessment, user_id=uuid.uuid4(),
                                   starting_balance=Decimal(10_000), currency="USD"),
                       aggregate_id=theirs, command_id=uuid.uuid4(),
                       issued_at=datetime.now(UTC), actor="policy:assessment")
    asyncio.run(produce(platform.settings, "account.commands", [(theirs.encode(), encode(env))]))
    with platform.client(people["admin"]) as c:
        deadline = time.monotonic() + 30
        while c.get(f"/accounts/{theirs}").status_code != 200:
            assert time.monotonic() < deadline, "the account never showed in the read model"
            time.sleep(0.2)
    order = {"client_order_id": "probe-1", "instrument": "BTC-USD", "side": "buy",
             "type": "market", "quantity": "1"}
    before = _offsets(platform)
    with platform.client(trader) as c:
        mine = c.get(f"/accounts/{theirs}")
        assert mine.status_code == 404 and _problem_type(mine) == "account-not-found"
        answers = [c.post(f"/accounts/{theirs}/orders", json=order),
                   c.post(f"/accounts/{uuid.uuid4()}/orders", json=order),
                   c.delete(f"/accounts/{theirs}/orders/{uuid.uuid4()}"),
                   c.patch(f"/accounts/{theirs}/orders/{uuid.uuid4()}", json={"quantity": "2"}),
                   # the kill switch is a trader's on their own account only
                   c.post(f"/accounts/{theirs}/kill", json={"reason": "not mine to stop"})]
        for resp in answers:
            assert resp.status_code == 404, resp.text
            assert _problem_type(resp) == "account-not-found"
        for path in (f"/accounts/{theirs}/halt", f"/accounts/{theirs}/resume"):
            resp = c.post(path, json={"reason": "not mine to halt"})
            assert resp.status_code == 403 and _problem_type(resp) == "forbidden"
    assert _offsets(platform) == before, "a refused order put a command on the log"
