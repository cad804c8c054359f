"""Issue 12 point 2 on the real broker: the account engine, the assessment decider and the
policy as processes. A trader whose market order loses past the daily limit is failed on the
tick that breaches it (flat, halted, further orders refused, the assessment completed
failed); a trader who reaches the target on a second trading day (the day boundary met in
tick time) passes the phase, and the next phase's account is opened."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kernel.kafka import make_producer
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import account_id_for
from schemas.assessment import CreateAssessment, assessment_id_for, phase_account_id
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventEnvelope, make_command, make_event
from schemas.instrument import InstrumentRegistered
from schemas.market import MarketTicksPublished, TickRow
from schemas.tier import RuleSet, TierPhase, TierTerms
from schemas.trading import PlaceOrder
from tests.integration.helpers import read_topic, spec, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REGISTRY = default_registry()
DAY_NS = 86_400 * 1_000_000_000


def terms() -> TierTerms:
    challenge = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
                        profit_target_pct=Decimal(1), min_trading_days=2)
    funded = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10))
    return TierTerms.model_validate({
        "name": "Rules 10k", "account_size": 10_000, "price_minor": 9_900, "currency": "USD",
        "phases": [TierPhase(name="challenge", rules=challenge),
                   TierPhase(name="funded", rules=funded)]})


class Feed:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = make_producer(settings, client_id="rules-feed")
        self.n = 0

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await (await self.producer.send(self.settings.topic(topic), value=value,
                                        key=key.encode()))

    async def event(self, topic: str, key: str, payload: Any) -> None:
        self.n += 1
        event_id = uuid.uuid4()
        env = make_event(payload, aggregate_id=key, sequence=self.n, event_id=event_id,
                         occurred_at=datetime.now(UTC), correlation_id=event_id,
                         causation_id=None)
        await self.send(topic, key, encode(env))

    async def tick(self, symbol: str, bid: str, *, at: int | None = None) -> int:
        at = time.time_ns() if at is None else at
        row = TickRow(venue_ts_ns=at, received_ts_ns=at, price=float(bid), size=1_000.0,
                      bid=float(bid), ask=float(Decimal(bid) + Decimal("0.02")))
        await self.event("market.ticks", symbol, MarketTicksPublished(
            instrument=symbol, venue="simulator", ticks=(row,)))
        return at

    async def command(self, topic: str, key: str, payload: CommandPayload) -> uuid.UUID:
        command_id = uuid.uuid4()
        env = make_command(payload, aggregate_id=key, command_id=command_id,
                           issued_at=datetime.now(UTC), actor="user:trader")
        await self.send(topic, key, encode(env))
        return command_id


def market(client: str, symbol: str, side: str, qty: str) -> PlaceOrder:
    return PlaceOrder(client_order_id=client, instrument=symbol, side=side,  # type: ignore[arg-type]
                      type="market", quantity=Decimal(qty))


async def events_of(settings: Settings, topic: str, key: str) -> list[EventEnvelope]:
    return [e for e in await read_topic(settings, topic) if e.aggregate_id == key]


async def test_a_loser_fails_on_the_breaching_tick_and_a_winner_passes_on_day_two(
        settings: Settings, spawn: type) -> None:
    feed = Feed(settings)
    await feed.producer.start()
    try:
        for symbol in ("LOSE-USD", "WIN-USD"):
            await feed.event("instrument.events", symbol, InstrumentRegistered(spec=spec(symbol)))
        purchases = {"lose": uuid.uuid4(), "win": uuid.uuid4()}
        assessments = {k: assessment_id_for(str(p)) for k, p in purchases.items()}
        accounts = {k: account_id_for(a) for k, a in assessments.items()}
        for key, purchase in purchases.items():
            await feed.command("assessment.commands", assessments[key], CreateAssessment(
                purchase_id=purchase, user_id=uuid.uuid4(), tier_id="rules-10k",
                tier_revision=1, terms=terms(), source="grant"))
        engine = spawn("decider", "account").start()
        deciders = [spawn("decider", "assessment").start(), spawn("policy", "assessment").start()]
        await engine.ready()
        for proc in deciders:
            await proc.ready()

        async def opened() -> bool:
            events = await read_topic(settings, "account.events")
            return {e.aggregate_id for e in events if e.type == "account.opened"} >= \
                set(accounts.values())

        await wait_until(opened, timeout=30, what="both accounts opened")
        for symbol in ("LOSE-USD", "WIN-USD"):
            await feed.tick(symbol, "100.00")
        await feed.command("account.commands", accounts["lose"], market("b1", "LOSE-USD",
                                                                        "buy", "10"))
        await feed.command("account.commands", accounts["win"], market("b1", "WIN-USD",
                                                                       "buy", "10"))

        async def filled(key: str, n: int) -> bool:
            got = await events_of(settings, "account.events", accounts[key])
            return sum(e.type == "trading.order-filled" for e in got) >= n

        await wait_until(lambda: filled("lose", 1), timeout=20, what="the loser's fill")
        await wait_until(lambda: filled("win", 1), timeout=20, what="the winner's fill")

        # The loser: 10 bought at 100.02; 5 % of 10,000 is 500; a bid of 50.00 loses 500.20.
        await feed.tick("LOSE-USD", "60.00")  # -400.20: a warning, not yet a breach
        breach_at = await feed.tick("LOSE-USD", "50.00")

        async def failed() -> bool:
            got = await events_of(settings, "assessment.events", assessments["lose"])
            return any(e.type == "assessment.completed" for e in got)

        await wait_until(failed, timeout=20, what="the loser's assessment completed")
        lost = await events_of(settings, "account.events", accounts["lose"])
        types = [e.type for e in lost]
        assert types.count("rules.warning-issued") == 1
        [violation] = [e for e in lost if e.type == "rules.violation-detected"]
        assert violation.payload["rule"] == "daily-loss"
        assert violation.payload["at_ns"] == breach_at  # decided on the tick that caused it
        after = [e for e in lost if e.sequence > violation.sequence]
        assert {e.correlation_id for e in after} == {violation.correlation_id}
        assert [e.type for e in after][:1] == ["account.halted"]
        [closing] = [e.payload for e in after if e.type == "trading.order-filled"]
        assert (closing["side"], Decimal(closing["price"])) == ("sell", Decimal(50))
        assert "position.closed" in [e.type for e in after]
        [completed] = [e for e in await events_of(settings, "assessment.events",
                                                  assessments["lose"])
                       if e.type == "assessment.completed"]
        assert (completed.payload["outcome"], completed.payload["final"]) == ("failed", True)
        assert completed.payload["digest"] == violation.payload["digest"]
        await feed.tick("LOSE-USD", "50.00")
        refused = await feed.command("account.commands", accounts["lose"],
                                     market("b2", "LOSE-USD", "buy", "1"))

        async def answered() -> bool:
            got = await events_of(settings, "account.events", accounts["lose"])
            return any(e.causation_id == refused for e in got)

        await wait_until(answered, timeout=20, what="the refused order")
        [rejection] = [e.payload for e in await events_of(settings, "account.events",
                                                          accounts["lose"])
                       if e.causation_id == refused]
        assert rejection["reason"] == "account-halted"

        # The winner: the next trading day starts with a tick a day later (log time), then a
        # fill on that day closes the position 1.19 % up: two trading days, target 1 %.
        await feed.tick("WIN-USD", "112.00", at=time.time_ns() + DAY_NS)
        await feed.command("account.commands", accounts["win"], market("s1", "WIN-USD",
                                                                       "sell", "10"))
        nxt = phase_account_id(assessments["win"], 1)

        async def next_phase_opened() -> bool:
            got = await events_of(settings, "account.events", nxt)
            return any(e.type == "account.opened" for e in got)

        await wait_until(next_phase_opened, timeout=30, what="the next phase's account")
        won = await events_of(settings, "account.events", accounts["win"])
        assert [e.type for e in won].count("rules.day-started") == 1
        [passed] = [e.payload for e in won if e.type == "rules.phase-passed"]
        assert passed["inputs"]["trading_days"] == "2"
        outcome = [e for e in await events_of(settings, "assessment.events",
                                              assessments["win"])
                   if e.type in ("assessment.completed", "assessment.phase-started")]
        assert [(e.type, e.payload.get("outcome")) for e in outcome] == [
            ("assessment.completed", "passed"), ("assessment.phase-started", None)]
        opened_next = [e for e in await events_of(settings, "account.events", nxt)
                       if e.type == "account.opened"]
        assert opened_next[0].payload["rules"]["profit_target_pct"] is None  # the funded phase
    finally:
        await feed.producer.stop()
