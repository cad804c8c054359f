"""SIGKILL the account engine while a falling market breaches one account after another, on
the real broker: every account is failed exactly once, on exactly the tick that breached it
(whether the engine was up, down or just restarted when that tick was published), with one
assessment command each; nothing is written twice and no sequence has a gap."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from decimal import Decimal

import pytest

from kernel.settings import Settings
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_command
from schemas.instrument import InstrumentRegistered
from schemas.tier import RuleSet
from tests.integration.helpers import read_topic, spec, wait_until
from tests.integration.test_rule_enforcement import Feed, market

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]

SYMBOL = "FALL-USD"
RULES = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))
SIZES = [Decimal(20 + 2 * i) for i in range(12)]  # each breaches at its own price
STEP = Decimal("0.10")
TICKS = 300  # 100.00 down to 70.00
KILL_AT, RESTART_AT = 140, 200  # four breach before, five while down, three after


async def test_engine_killed_while_breaches_happen_fails_each_account_once_on_its_tick(
        settings: Settings, spawn: type) -> None:
    feed = Feed(settings)
    await feed.producer.start()
    try:
        await feed.event("instrument.events", SYMBOL, InstrumentRegistered(spec=spec(SYMBOL)))
        assessments = [str(uuid.UUID(int=1000 + i)) for i in range(len(SIZES))]
        accounts = [account_id_for(a) for a in assessments]
        for assessment, account in zip(assessments, accounts, strict=True):
            await feed.command("account.commands", account, OpenAccount(
                assessment_id=uuid.UUID(assessment), user_id=uuid.uuid4(),
                starting_balance=Decimal(10_000), currency="USD", rules=RULES))
        engine = await spawn("decider", "account").start().ready()
        await feed.tick(SYMBOL, "100.00")
        for account, size in zip(accounts, SIZES, strict=True):
            await feed.command("account.commands", account, market("b", SYMBOL, "buy",
                                                                   str(size)))

        async def all_filled() -> bool:
            events = await read_topic(settings, "account.events")
            return len({e.aggregate_id for e in events
                        if e.type == "trading.order-filled"}) == len(accounts)

        await wait_until(all_filled, timeout=30, what="every account's position")
        ticks: list[tuple[int, Decimal]] = []
        bid = Decimal("100.00")
        for n in range(TICKS):
            bid -= STEP
            ticks.append((await feed.tick(SYMBOL, f"{bid:.2f}"), bid))
            await asyncio.sleep(0.02)
            if n == KILL_AT:
                engine.kill9()
            if n == RESTART_AT:
                engine = spawn("decider", "account").start()
        await engine.ready()

        async def all_failed() -> bool:
            events = await read_topic(settings, "account.events")
            return len({e.aggregate_id for e in events
                        if e.type == "rules.violation-detected"}) == len(accounts)

        await wait_until(all_failed, timeout=60, what="every account failed")
        await asyncio.sleep(1)  # anything a duplicate would add has time to show
        engine.kill9()
        events = [e for e in await read_topic(settings, "account.events")
                  if e.aggregate_id in accounts]
        assert not [i for i, n in Counter(e.event_id for e in events).items() if n > 1]
        late: list[object] = []
        for account, size in zip(accounts, SIZES, strict=True):
            mine = sorted((e for e in events if e.aggregate_id == account),
                          key=lambda e: e.sequence)
            assert [e.sequence for e in mine] == list(range(1, len(mine) + 1)), account
            violations = [e for e in mine if e.type == "rules.violation-detected"]
            assert violations[0].payload["rule"] == "daily-loss", account
            entry = Decimal(next(e.payload["price"] for e in mine
                                 if e.type == "trading.order-filled"))
            first = next(at for at, b in ticks if size * (entry - b) >= 500)
            late.extend([] if violations[0].payload["at_ns"] == first else [
                (str(size), [i for i, (at, _) in enumerate(ticks) if at == first],
                 [i for i, (at, _) in enumerate(ticks) if at == violations[0].payload["at_ns"]],
                 [(e.sequence, e.type, e.payload.get("at_ns")) for e in mine])])
            assert mine[-1].type == "account.equity-marked"  # flat after the closing fill
            assert [e.type for e in mine].count("position.closed") == 1
        assert not late, "\n".join(map(repr, late))
        commands = [decode_command(r.value) for r in
                    await read_topic(settings, "assessment.commands", raw=True)]
        assert Counter(c.aggregate_id for c in commands) == Counter(assessments)
        assert {c.payload["outcome"] for c in commands} == {"failed"}
        # Breaches before the kill, while no engine ran, and after the restart.
        kill_at, restart_at = ticks[KILL_AT][0], ticks[RESTART_AT][0]
        breached = [v.payload["at_ns"] for v in events if v.type == "rules.violation-detected"]
        assert any(at < kill_at for at in breached), "no breach before the kill"
        assert any(kill_at < at < restart_at for at in breached), "none while down"
        assert any(at > restart_at for at in breached), "none after the restart"
    finally:
        await feed.producer.stop()
