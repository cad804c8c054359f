"""Tiers for real: HTTP -> tier.commands -> tier decider -> tier.events -> tiers projection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx
import pytest

from core.bootstrap import seed_tiers
from core.seeds import DEFAULT_TIERS
from kernel.pg import connect
from kernel.settings import Settings
from schemas.codec import decode_model
from schemas.envelope import CommandEnvelope
from tests.conftest import process_env
from tests.integration.helpers import assert_problem, bearer, read_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN_ID = "00000000-0000-4000-8000-00000000ad01"  # the `api` fixture's caller
TERMS: dict[str, Any] = DEFAULT_TIERS["standard-50k"].model_dump(mode="json")
CHEAPER: dict[str, Any] = {**TERMS, "price_minor": 27_900}


async def anonymous(api: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The same app, called without the admin's credentials."""
    request = api.build_request(method, url, **kwargs)
    del request.headers["authorization"]
    return await api.send(request)


def as_trader(settings: Settings) -> dict[str, str]:
    return bearer(settings, role="trader", user_id="00000000-0000-4000-8000-0000000000a1")


async def start_tiers(spawn: type) -> None:
    await spawn("decider", "tier").start().ready()
    await spawn("projection", "tiers").start().ready()


async def test_create_then_revise_keeps_every_revision_readable(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await start_tiers(spawn)
    created = await api.post("/tiers", json={"tier_id": "standard-50k", "terms": TERMS})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/tiers/standard-50k"
    assert (created.json()["status"], created.json()["revision"]) == ("active", 1)
    assert created.json()["terms"] == TERMS

    async def listed() -> bool:
        page = (await anonymous(api, "GET", "/tiers")).json()
        return [t["tier_id"] for t in page.get("items", [])] == ["standard-50k"]

    await wait_until(listed, timeout=30, what="the tier in the public list")
    public = await anonymous(api, "GET", "/tiers/standard-50k")
    assert public.status_code == 200 and public.json()["terms"] == TERMS

    key = {"Idempotency-Key": "cheaper-2026"}
    revised = await api.put("/tiers/standard-50k/terms", json={"terms": CHEAPER}, headers=key)
    assert revised.status_code == 200, revised.text
    assert (revised.json()["revision"], revised.json()["terms"]["price_minor"]) == (2, 27_900)
    retried = await api.put("/tiers/standard-50k/terms", json={"terms": CHEAPER}, headers=key)
    assert retried.status_code == 200, retried.text  # the same command: one revision event
    assert retried.json()["revision"] == 2
    assert retried.headers["idempotent-replayed"] == "true"
    other_body = await api.put("/tiers/standard-50k/terms", json={"terms": TERMS}, headers=key)
    assert_problem(other_body, 422, "idempotency-key-reused")

    async def read_model_at_revision_2() -> bool:  # reads are eventually consistent
        return (await api.get("/tiers/standard-50k")).json()["revision"] == 2

    await wait_until(read_model_at_revision_2, timeout=10, what="revision 2 in the read model")
    first = await api.get("/tiers/standard-50k/revisions/1")
    assert first.status_code == 200 and first.json()["terms"] == TERMS
    second = await api.get("/tiers/standard-50k/revisions/2")
    assert second.json()["terms"] == CHEAPER

    assert_problem(await api.put("/tiers/standard-50k/terms", json={"terms": CHEAPER}),
                   409, "terms-unchanged")
    assert_problem(await api.get("/tiers/standard-50k/revisions/3"), 404,
                   "tier-revision-not-found")
    assert_problem(await api.get("/tiers/standard-50k/revisions/1",
                                 headers=as_trader(settings)), 403, "forbidden")
    assert_problem(await anonymous(api, "GET", "/tiers/standard-50k/revisions/1"), 401,
                   "unauthenticated")
    assert_problem(await api.post("/tiers", json={"tier_id": "standard-50k", "terms": CHEAPER}),
                   409, "tier-exists")
    assert_problem(await api.put("/tiers/nope/terms", json={"terms": TERMS}), 404,
                   "tier-not-found")

    # Every admin action is on the log with its actor: the command, and the events it caused
    # (the events topic is kept forever, the commands topic 7 days).
    commands = [decode_model(r.value, CommandEnvelope)
                for r in await read_topic(settings, "tier.commands", raw=True)]
    assert [c.type for c in commands if c.aggregate_id == "standard-50k"] == [
        "tier.create", "tier.revise", "tier.revise", "tier.create"]
    assert len(commands) == 5 and {c.actor for c in commands} == {ADMIN_ID}
    events = await read_topic(settings, "tier.events")
    assert [e.type for e in events if e.aggregate_id == "standard-50k"] == [
        "tier.created", "tier.revised", "tier.command-rejected", "tier.command-rejected"]
    assert {e.actor for e in events} == {ADMIN_ID}


async def test_retire_hides_a_tier_from_everyone_but_admins(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await start_tiers(spawn)
    for tier_id in ("alpha-10k", "beta-25k", "gamma-50k"):
        response = await api.post("/tiers", json={"tier_id": tier_id, "terms": TERMS})
        assert response.status_code == 201, response.text

    retired = await api.post("/tiers/beta-25k/retire", json={"reason": "replaced"})
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired"

    async def hidden() -> bool:
        page = (await anonymous(api, "GET", "/tiers")).json()
        return [t["tier_id"] for t in page["items"]] == ["alpha-10k", "gamma-50k"]

    await wait_until(hidden, timeout=30, what="the retired tier gone from the public list")
    assert_problem(await anonymous(api, "GET", "/tiers/beta-25k"), 404, "tier-not-found")
    assert_problem(await api.get("/tiers/beta-25k", headers=as_trader(settings)), 404,
                   "tier-not-found")
    trader_list = (await api.get("/tiers", headers=as_trader(settings))).json()
    assert [t["tier_id"] for t in trader_list["items"]] == ["alpha-10k", "gamma-50k"]
    assert_problem(await anonymous(api, "GET", "/tiers", params={"status": "retired"}), 403,
                   "forbidden")
    assert (await api.get("/tiers/beta-25k")).json()["status"] == "retired"
    admin_retired = (await api.get("/tiers", params={"status": "retired"})).json()
    assert [t["tier_id"] for t in admin_retired["items"]] == ["beta-25k"]

    # Admins page through every tier with a cursor.
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/tiers", params=params)).json()
        seen += [t["tier_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["alpha-10k", "beta-25k", "gamma-50k"]

    assert_problem(await api.post("/tiers/beta-25k/retire", json={"reason": "again"}), 409,
                   "tier-retired")
    back = await api.post("/tiers/beta-25k/reactivate")
    assert back.status_code == 200 and back.json()["status"] == "active"
    assert_problem(await api.post("/tiers/beta-25k/reactivate"), 409, "tier-active")
    assert_problem(await api.post("/tiers/nope/retire", json={"reason": "x"}), 404,
                   "tier-not-found")
    assert (await anonymous(api, "GET", "/tiers/beta-25k")).status_code == 200


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """The example tier with one field of its terms replaced (None: removed)."""
    terms: Any = {**TERMS, "phases": [dict(p, rules=dict(p["rules"])) for p in TERMS["phases"]]}
    target = terms
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return {"tier_id": "bad-tier", "terms": terms}


BAD_BODIES = [
    ("unknown currency", _with(("currency",), "JPY"), "body.terms.currency"),
    ("negative price", _with(("price_minor",), -100), "body.terms.price_minor"),
    ("phases out of order",
     _with(("phases",), list(reversed(TERMS["phases"]))), "body.terms"),
    ("challenge without a profit target",
     _with(("phases", 0, "rules", "profit_target_pct"), None), "body.terms"),
    ("daily loss over 100 %", _with(("phases", 0, "rules", "daily_loss_limit_pct"), "150"),
     "body.terms.phases.0.rules.daily_loss_limit_pct"),
    ("max loss of 0 %", _with(("phases", 1, "rules", "max_loss_pct"), "0"),
     "body.terms.phases.1.rules.max_loss_pct"),
    ("unknown field in the rules", _with(("phases", 0, "rules", "max_lots"), 5),
     "body.terms.phases.0.rules.max_lots"),
    ("daily loss above the maximum loss",
     _with(("phases", 1, "rules", "daily_loss_limit_pct"), "12"),
     "body.terms.phases.1.rules.daily_loss_limit_pct"),
    ("unknown day-boundary zone", _with(("phases", 0, "rules", "day_boundary_tz"), "Mars/Base"),
     "body.terms.phases.0.rules.day_boundary_tz"),
    ("unknown top-level field", {"tier_id": "bad-tier", "terms": TERMS, "discount": 10},
     "body.discount"),
    ("bad tier id", {"tier_id": "Bad Tier!", "terms": TERMS}, "body.tier_id"),
    ("no terms", {"tier_id": "bad-tier"}, "body.terms"),
]


async def test_bad_input_is_a_422_naming_the_field_and_nothing_is_emitted(
    settings: Settings, api: httpx.AsyncClient
) -> None:
    for case, body, location in BAD_BODIES:
        response = await api.post("/tiers", json=body)
        problem = assert_problem(response, 422, "validation-failed")
        locations = [e["location"] for e in problem["errors"]]
        assert location in locations, (case, locations)
    bad_revision = await api.put("/tiers/standard-50k/terms",
                                 json={"terms": {**TERMS, "currency": "JPY"}})
    assert "body.terms.currency" in [
        e["location"] for e in assert_problem(bad_revision, 422, "validation-failed")["errors"]]
    assert_problem(await api.post("/tiers/standard-50k/retire", json={"reason": ""}), 422,
                   "validation-failed")
    assert_problem(await api.put("/tiers/Not%20A%20Tier/terms", json={"terms": TERMS}), 422,
                   "validation-failed")
    assert_problem(await api.post("/tiers", content=b"{not json",
                                  headers={"content-type": "application/json"}),
                   422, "validation-failed")

    good = {"tier_id": "standard-50k", "terms": TERMS}
    assert_problem(await api.post("/tiers", json=good, headers=as_trader(settings)), 403,
                   "forbidden")
    assert_problem(await api.put("/tiers/standard-50k/terms", json={"terms": TERMS},
                                 headers=as_trader(settings)), 403, "forbidden")
    assert_problem(await anonymous(api, "POST", "/tiers", json=good), 401, "unauthenticated")
    assert_problem(await anonymous(api, "POST", "/tiers/standard-50k/reactivate"), 401,
                   "unauthenticated")
    assert await read_topic(settings, "tier.commands", raw=True) == []


async def test_seeding_twice_creates_the_default_tiers_once(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await start_tiers(spawn)
    first = await seed_tiers(settings, wait_ms=30000)
    assert first == {tier_id: "accepted" for tier_id in DEFAULT_TIERS}
    again = await seed_tiers(settings, wait_ms=30000)
    assert again == {tier_id: "already seeded" for tier_id in DEFAULT_TIERS}

    async def listed() -> bool:
        page = (await anonymous(api, "GET", "/tiers")).json()
        return len(page.get("items", [])) == len(DEFAULT_TIERS)

    await wait_until(listed, timeout=30, what="the default tiers in the read model")
    pro = (await anonymous(api, "GET", "/tiers/pro-100k")).json()
    assert (pro["terms"]["price_minor"], pro["terms"]["currency"]) == (49_900, "USD")
    assert [p["name"] for p in pro["terms"]["phases"]] == ["challenge", "verification", "funded"]
    events = await read_topic(settings, "tier.events")
    assert sorted(e.aggregate_id for e in events) == sorted(DEFAULT_TIERS)


CHECKSUMS = (
    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY tier_id), '')) FROM tiers t",
    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY tier_id, revision), '')) "
    "FROM tier_revisions t",
)


async def _checksums(settings: Settings) -> list[tuple[Any, ...]]:
    conn = await connect(settings)
    try:
        out = []
        for query in CHECKSUMS:
            row = await (await conn.execute(query)).fetchone()
            assert row is not None
            out.append(tuple(row))
        return out
    finally:
        await conn.close()


async def test_replayed_tiers_projection_equals_the_live_one(
    settings: Settings, api: httpx.AsyncClient, spawn: type
) -> None:
    await spawn("decider", "tier").start().ready()
    live = await spawn("projection", "tiers").start().ready()
    await seed_tiers(settings, wait_ms=30000)
    for n in range(2, 5):
        revised = await api.put("/tiers/starter-10k/terms",
                                json={"terms": {**TERMS, "price_minor": 9_000 + n}})
        assert revised.status_code == 200, revised.text
    assert (await api.post("/tiers/pro-100k/retire", json={"reason": "paused"})).status_code \
        == 200
    assert (await api.post("/tiers/pro-100k/retire", json={"reason": "x"})).status_code == 409

    async def caught_up() -> bool:
        tier = await api.get("/tiers/pro-100k")
        return tier.status_code == 200 and tier.json()["version"] == 3

    await wait_until(caught_up, timeout=30, what="the live projection")
    before = await _checksums(settings)
    assert [c[0] for c in before] == [3, 6]  # 3 tiers; revisions 1-4 of one + 1 of two

    live.stop()  # a rebuild beside a running projection would race it
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "propstream", "replay", "tiers"],
        env=process_env(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rebuilt tiers: 8 events" in result.stdout
    assert await _checksums(settings) == before
