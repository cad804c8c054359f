"""Issue 12 point 4 on the real broker and database: the engine, the assessment decider and
the policy as processes; the `assessments` and `accounts` projections folded live (small
batches); `GET /assessments/{id}/rules` shows the owner and an admin each rule's value, limit,
headroom and status as the account moves (ok, then a warning, then violated), 404 to another
trader as for an unknown id, 403 to an analyst; the rebuild equals the live table."""

from __future__ import annotations

import functools
import uuid
from decimal import Decimal
from typing import Any

import pytest

from kernel.rebuild import rebuild
from kernel.settings import Settings
from propstream.processes import projection_runner
from schemas.account import account_id_for
from schemas.assessment import CreateAssessment, assessment_id_for
from schemas.instrument import InstrumentRegistered
from tests.integration.helpers import (
    asgi_client,
    assert_problem,
    bearer,
    read_topic,
    spec,
    wait_until,
)
from tests.integration.test_rule_enforcement import Feed, events_of, market, terms
from tests.integration.test_trading_read_models import fold_live

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _rows(settings: Settings) -> list[tuple[Any, ...]]:
    from kernel.pg import connect

    conn = await connect(settings)
    try:
        cur = await conn.execute("SELECT account_id, version, rules::text FROM rule_status "
                                 "ORDER BY account_id")
        return list(await cur.fetchall())
    finally:
        await conn.close()


async def test_rule_status_follows_the_account_for_its_owner_only(
        settings: Settings, spawn: type) -> None:
    owner = uuid.uuid4()
    purchase = uuid.uuid4()
    assessment = assessment_id_for(str(purchase))
    account = account_id_for(assessment)
    feed = Feed(settings)
    await feed.producer.start()
    try:
        await feed.event("instrument.events", "RS-USD", InstrumentRegistered(spec=spec("RS-USD")))
        await feed.command("assessment.commands", assessment, CreateAssessment(
            purchase_id=purchase, user_id=owner, tier_id="rules-10k", tier_revision=1,
            terms=terms(), source="grant"))
        for proc in [spawn("decider", "account").start(), spawn("decider", "assessment").start(),
                     spawn("policy", "assessment").start()]:
            await proc.ready()

        async def count(type_: str) -> int:
            return sum(e.type == type_
                       for e in await events_of(settings, "account.events", account))

        async def opened() -> bool:
            return any(e.type == "account.opened" and e.aggregate_id == account
                       for e in await read_topic(settings, "account.events"))

        await wait_until(opened, timeout=30, what="the account opened")
        await feed.tick("RS-USD", "100.00")
        await feed.command("account.commands", account, market("b1", "RS-USD", "buy", "10"))
        await wait_until(lambda: _ge(count("account.equity-marked"), 1), timeout=20,
                         what="the fill's mark")
        await feed.tick("RS-USD", "60.00")  # 10 x (100.02 - 60) = 400.20 of 500: a warning
        await wait_until(lambda: _ge(count("rules.warning-issued"), 1), timeout=20,
                         what="the warning")
        for name in ("assessments", "accounts"):
            await fold_live(settings, name)

        from core.bootstrap import api as make_api

        me = bearer(settings, role="trader", user_id=str(owner))
        path = f"/assessments/{assessment}/rules"
        async with asgi_client(make_api(settings)) as client:
            resp = await client.get(path, headers=me)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert (body["account_id"], body["phase"]) == (account, "challenge")
            got = {r["rule"]: r for r in body["rules"]}
            daily = got["daily-loss"]
            assert daily["status"] == "warning"
            assert [Decimal(daily[k]) for k in ("value", "limit", "headroom", "headroom_pct")] \
                == [Decimal("400.2"), Decimal(500), Decimal("99.8"), Decimal("19.96")]
            assert got["max-loss"]["status"] == "ok"
            assert got["profit-target"]["status"] == "pending"
            assert got["min-trading-days"]["status"] == "pending"
            admin = await client.get(path, headers=bearer(settings, role="admin"))
            assert admin.status_code == 200 and admin.json() == body
            for who in (str(uuid.uuid4()),):
                other = await client.get(path, headers=bearer(settings, role="trader",
                                                              user_id=who))
                assert_problem(other, 404, "assessment-not-found")
            unknown = await client.get(f"/assessments/{uuid.uuid4()}/rules", headers=me)
            assert_problem(unknown, 404, "assessment-not-found")
            analyst = await client.get(path, headers=bearer(settings, role="analyst",
                                                            user_id=str(owner)))
            assert_problem(analyst, 403, "forbidden")

            await feed.tick("RS-USD", "50.00")  # 500.20: the violation
            await wait_until(lambda: _ge(count("rules.violation-detected"), 1), timeout=20,
                             what="the violation")
            await fold_live(settings, "accounts")
            after = (await client.get(path, headers=me)).json()
            assert after["version"] > body["version"]
            assert {r["rule"]: r["status"] for r in after["rules"]}["daily-loss"] == "violated"

        live = await _rows(settings)
        await rebuild(functools.partial(projection_runner, settings, "accounts"), workers=1)
        assert await _rows(settings) == live
    finally:
        await feed.producer.stop()


async def _ge(value: Any, n: int) -> bool:
    return bool(await value >= n)
