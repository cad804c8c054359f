"""POST /tiers and PUT /tiers/{id}/terms refuse rule sets that are out of range or contradict
themselves with a 422 naming the field, and send nothing; sound terms still create the tier."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, get_args

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from core.domain.rules import contradictions, terms_contradictions
from core.domain.tiers import TierAggregate
from core.entrypoints.http import tiers
from core.entrypoints.http.deps import get_bus, get_registry
from core.handlers import tiers as handlers
from core.seeds import DEFAULT_TIERS
from kernel.auth import ROLE_SCOPES, Principal
from kernel.deps import get_pool
from kernel.http import install_conventions
from schemas.tier import RuleSet, TierTerms
from tests.support.deciding_bus import DecidingBus

TERMS: dict[str, Any] = DEFAULT_TIERS["standard-50k"].model_dump(mode="json")
ADMIN = Principal(user_id="9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", role="admin", via="token",
                  scopes=ROLE_SCOPES["admin"])
admin_gate = get_args(tiers.AdminDep)[1].dependency


def with_rules(phase: int, **rules: Any) -> dict[str, Any]:
    terms = copy.deepcopy(TERMS)
    terms["phases"][phase]["rules"].update(rules)
    return terms


@pytest_asyncio.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, DecidingBus]]:
    bus = DecidingBus({handlers.COMMANDS_TOPIC: TierAggregate()})
    app = FastAPI()
    install_conventions(app, cors_origins=(), max_body=65536)
    app.include_router(tiers.router)
    app.dependency_overrides.update({
        get_bus: lambda: bus, get_registry: lambda: bus.registry, get_pool: lambda: None,
        tiers.COMMAND_LIMIT[0].dependency: lambda: None, admin_gate: lambda: ADMIN,
    })
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        yield client, bus


def locations(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["type"].rsplit(":", 1)[-1] == "validation-failed"
    return [e["location"] for e in body["errors"]]


BAD = [
    ("daily loss above the maximum loss", with_rules(0, daily_loss_limit_pct="12"),
     "body.terms.phases.0.rules.daily_loss_limit_pct"),
    ("period shorter than the minimum days", with_rules(1, max_duration_days=3,
                                                        min_trading_days=4),
     "body.terms.phases.1.rules.max_duration_days"),
    ("one trade risking more than the maximum loss", with_rules(0, max_risk_per_trade_pct="15"),
     "body.terms.phases.0.rules.max_risk_per_trade_pct"),
    ("exposure beyond the leverage", with_rules(2, max_open_exposure_pct="3001"),
     "body.terms.phases.2.rules.max_open_exposure_pct"),
    ("an unlocked static maximum loss", with_rules(0, max_loss_trailing_lock=False),
     "body.terms.phases.0.rules.max_loss_trailing_lock"),
    ("unknown time zone", with_rules(0, day_boundary_tz="Mars/Olympus"),
     "body.terms.phases.0.rules.day_boundary_tz"),
    ("a boundary that is no time", with_rules(0, day_boundary_time="24:00"),
     "body.terms.phases.0.rules.day_boundary_time"),
    ("a warning at 100 %", with_rules(0, warning_threshold_pct="100"),
     "body.terms.phases.0.rules.warning_threshold_pct"),
    ("zero open lots", with_rules(0, max_open_lots="0"),
     "body.terms.phases.0.rules.max_open_lots"),
    ("an unknown daily loss base", with_rules(0, daily_loss_base="yesterday"),
     "body.terms.phases.0.rules.daily_loss_base"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("case", "terms", "location"), BAD, ids=[c for c, _, _ in BAD])
async def test_bad_rules_at_creation_are_a_422_naming_the_field_and_nothing_is_sent(
        api: tuple[httpx.AsyncClient, DecidingBus], case: str, terms: dict[str, Any],
        location: str) -> None:
    client, bus = api
    resp = await client.post("/tiers", json={"tier_id": "bad-tier", "terms": terms})
    assert location in locations(resp), case
    assert bus.events_of("bad-tier") == []


@pytest.mark.asyncio
async def test_a_revision_with_contradicting_rules_is_refused_the_same_way(
        api: tuple[httpx.AsyncClient, DecidingBus]) -> None:
    client, bus = api
    resp = await client.put("/tiers/standard-50k/terms",
                            json={"terms": with_rules(1, daily_loss_limit_pct="11")})
    assert locations(resp) == ["body.terms.phases.1.rules.daily_loss_limit_pct"]
    assert bus.events_of("standard-50k") == []


@pytest.mark.asyncio
async def test_sound_rules_with_every_new_parameter_create_the_tier(
        api: tuple[httpx.AsyncClient, DecidingBus]) -> None:
    client, bus = api
    terms = with_rules(0, day_boundary_tz="Europe/Prague", day_boundary_time="00:00",
                       daily_loss_base="day-start-higher", max_open_lots="20",
                       max_open_exposure_pct="1500", no_weekend_holding=True,
                       no_news_holding=True, warning_threshold_pct="75")
    resp = await client.post("/tiers", json={"tier_id": "prague-50k", "terms": terms})
    assert resp.status_code == 201, resp.text
    rules = resp.json()["terms"]["phases"][0]["rules"]
    assert (rules["day_boundary_tz"], rules["daily_loss_base"], rules["no_news_holding"]) == (
        "Europe/Prague", "day-start-higher", True)
    assert [e.type for e in bus.events_of("prague-50k")] == ["tier.created"]


def test_the_default_tiers_contradict_nothing() -> None:
    assert [terms_contradictions(t) for t in DEFAULT_TIERS.values()] == [[], [], []]


def test_terms_written_before_the_new_parameters_decode_with_their_old_meaning() -> None:
    old = {"schema_version": 1, "daily_loss_limit_pct": "5", "daily_loss_base":
           "day-start-balance", "max_loss_pct": "10", "max_loss_mode": "trailing",
           "profit_target_pct": "8", "min_trading_days": 4, "max_duration_days": None,
           "max_risk_per_trade_pct": "2", "consistency_limit_pct": "40", "max_leverage": "30",
           "allowed_instruments": []}
    rules = RuleSet.model_validate(old)
    assert (rules.day_boundary_tz, rules.day_boundary_time, rules.max_loss_trailing_lock,
            rules.max_open_lots, rules.max_open_exposure_pct, rules.no_weekend_holding,
            rules.no_news_holding, rules.warning_threshold_pct) == (
        "UTC", "00:00", True, None, None, False, False, Decimal(80))
    terms = TierTerms.model_validate({**TERMS, "phases": [{"name": "challenge", "rules": old}]})
    assert terms.phases[0].rules == rules


def test_a_contradiction_names_its_field_and_none_is_found_in_sound_rules() -> None:
    sound = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))
    assert contradictions(sound) == []
    bad = sound.model_copy(update={"daily_loss_limit_pct": Decimal(11)})
    assert [c.path for c in contradictions(bad, at=("phases", 0, "rules"))] == [
        ("phases", 0, "rules", "daily_loss_limit_pct")]
