"""Rules enforced by the account engine on the in-memory log: a breach on the tick that
causes it (violation, halt, cancel, flatten and the assessment's command in that tick's
transaction), a warning once, a pass, an abandonment, the kill switch, order-time refusals,
and duplicates or an heir never giving a second violation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.domain import rules
from schemas.market import MarketNewsPublished
from schemas.platform import TradingHalted, TradingResumed
from schemas.rules import KillAccount
from schemas.tier import RuleSet
from schemas.trading import ResumeAccount
from tests.unit.core.trading.rules_support import ACCOUNT, DAY, MS, RULES, T0, Desk, place

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _long_ten(desk: Desk) -> None:
    """Ten BTC bought at the ask 100.02 (cost 1,000.20) and a resting buy limit at 30."""
    await desk.command(place("b1", "buy", "10"))
    await desk.command(place("l1", "buy", "1", kind="limit", limit="30.00"))
    await desk.run()


async def test_breach_by_floating_pnl_on_a_tick_fails_halts_and_flattens_in_that_tick() -> None:
    desk = Desk()
    await desk.open()
    await _long_ten(desk)
    # 5 % daily loss of 10,000 = 500: the bid at 50.00 marks the ten at -500.20.
    await desk.tick("50.00", "50.02", at=T0 + 10 * MS)
    await desk.run()
    envs = desk.envelopes()
    violation = next(e for e in envs if e.type == "rules.violation-detected")
    assert violation.payload["rule"] == "daily-loss"
    assert Decimal(str(violation.payload["value"])) == Decimal("500.2")
    assert Decimal(str(violation.payload["limit"])) == Decimal("500")
    assert violation.payload["at_ns"] == T0 + 10 * MS
    # Everything that follows the breach was recorded by that tick (one correlation id).
    after = [e for e in envs if e.sequence >= violation.sequence]
    assert {e.correlation_id for e in after} == {violation.correlation_id}
    types = [e.type for e in after]
    assert types[:2] == ["rules.violation-detected", "account.halted"]
    assert "trading.order-cancelled" in types  # the resting limit
    fills = [e.payload for e in after if e.type == "trading.order-filled"]
    assert [(f["side"], Decimal(str(f["price"]))) for f in fills] == [("sell", Decimal("50"))]
    assert "position.closed" in types
    state = desk.state()
    assert state.halted and not state.positions and not state.orders
    assert state.rule is not None and state.rule.violated == {"daily-loss"}
    [command] = desk.assessment_commands()
    assert command.type == "assessment.complete"
    assert command.payload["outcome"] == "failed"
    assert command.payload["digest"] == violation.payload["digest"]

    # Further orders are refused; a resume does not reopen a failed phase.
    await desk.command(ResumeAccount(reason="please"))
    await desk.command(place("b2", "buy", "1"))
    await desk.run()
    assert desk.of("trading.order-rejected")[-1]["reason"] == "account-halted"
    assert "account.resumed" not in desk.types()


async def test_a_warning_is_issued_once_however_many_ticks_stay_past_it() -> None:
    desk = Desk()
    await desk.open()
    await _long_ten(desk)
    # 80 % of the 500 allowance is 400: the bid at 59.00 loses 410.20.
    for n in range(1, 6):
        await desk.tick("59.00", "59.02", at=T0 + n * 10 * MS)
    await desk.run()
    warnings = desk.of("rules.warning-issued")
    assert [w["rule"] for w in warnings] == ["daily-loss"]
    assert warnings[0]["at_ns"] == T0 + 10 * MS  # the first tick past it, not a later mark
    assert "rules.violation-detected" not in desk.types()
    assert not desk.state().halted


async def test_a_tick_inside_the_band_records_nothing_until_the_mark_is_due() -> None:
    desk = Desk()
    await desk.open()
    await _long_ten(desk)
    before = len(desk.types())
    await desk.tick("99.00", "99.02", at=T0 + 10 * MS)  # -10.20: nothing to decide
    await desk.run()
    assert len(desk.types()) == before


async def test_target_reached_flat_after_the_minimum_days_passes_the_phase() -> None:
    desk = Desk()
    spec = RULES.model_copy(update={"profit_target_pct": Decimal(1), "min_trading_days": 2})
    await desk.open(spec)
    await desk.command(place("b1", "buy", "10"))
    await desk.run()
    await desk.tick("111.00", "111.02", at=T0 + DAY)  # the next trading day starts
    await desk.command(place("s1", "sell", "5"))  # a fill on the second trading day
    await desk.run()
    assert "rules.phase-passed" not in desk.types()  # still open: not flat
    await desk.command(place("s2", "sell", "5"))
    await desk.run()
    assert desk.of("rules.day-started")[0]["day"] == "2026-12-01"
    [passed] = desk.of("rules.phase-passed")
    assert passed["rule"] == "profit-target"
    assert Decimal(str(passed["value"])) == Decimal("109.80")
    assert passed["inputs"]["trading_days"] == "2"
    [command] = desk.assessment_commands()
    assert command.payload["outcome"] == "passed"
    assert desk.state().halted  # the phase is over: this account trades no more


async def test_no_fill_for_the_configured_days_abandons_the_assessment() -> None:
    desk = Desk()
    await desk.open(RULES.model_copy(update={"max_inactive_days": 2}))
    await desk.tick("100.00", "100.02", at=T0 + DAY)  # an idle account: the day still starts
    await desk.run()
    assert not desk.assessment_commands()
    await desk.tick("100.00", "100.02", at=T0 + 2 * DAY)
    await desk.run()
    assert [d["day"] for d in desk.of("rules.day-started")] == ["2026-12-01", "2026-12-02"]
    [command] = desk.assessment_commands()
    assert command.type == "assessment.abandon"
    assert command.payload["inactive_days"] == 2
    assert desk.state().halted
    await desk.tick("100.00", "100.02", at=T0 + 3 * DAY)
    await desk.run()
    assert len(desk.assessment_commands()) == 1


async def test_the_kill_switch_halts_cancels_and_flattens_naming_who_and_why() -> None:
    desk = Desk()
    await desk.open(RULES)
    await _long_ten(desk)
    await desk.command(KillAccount(reason="runaway bot"), actor="user:trader-1")
    await desk.run()
    [killed] = desk.of("account.kill-switched")
    assert killed == {"by": "user:trader-1", "reason": "runaway bot"}
    state = desk.state()
    assert state.halted and not state.orders and not state.positions
    assert not desk.assessment_commands()  # a kill is no verdict


async def test_orders_the_rules_forbid_are_refused_at_placement_with_a_reason() -> None:
    desk = Desk()
    spec = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
                   max_risk_per_trade_pct=Decimal(1), max_open_lots=Decimal(5))
    await desk.open(spec)
    await desk.command(place("no-stop", "buy", "1"))
    await desk.command(place("too-many", "buy", "6", stop_loss="99.90"))
    await desk.command(place("fine", "buy", "5", stop_loss="99.90"))
    await desk.run()
    refusals = {r["client_order_id"]: r["reason"] for r in desk.of("trading.order-rejected")}
    assert refusals == {"no-stop": "risk-limit", "too-many": "lots-limit"}
    accepted = desk.of("trading.order-accepted")  # the entry and its stop-loss leg
    assert {a["order"]["client_order_id"] for a in accepted} == {"fine"}
    assert "rules.violation-detected" not in desk.types()  # holding the limit is allowed


async def test_duplicate_ticks_and_an_heir_never_give_a_second_violation() -> None:
    desk = Desk()
    await desk.open()
    await _long_ten(desk)
    await desk.tick("50.00", "50.02", at=T0 + 10 * MS)
    await desk.tick("50.00", "50.02", at=T0 + 10 * MS, again=True)  # the same record twice
    await desk.tick("49.00", "49.02", at=T0 + 5 * MS)  # late: an earlier venue time
    await desk.run()
    await desk.crash_and_heir()
    await desk.tick("40.00", "40.02", at=T0 + 20 * MS)
    await desk.run()
    assert desk.types().count("rules.violation-detected") == 1
    assert len(desk.assessment_commands()) == 1
    replayed, _ = desk.replayed()
    assert replayed.rule == desk.state().rule


async def test_replaying_the_log_re_derives_every_verdict_and_hash() -> None:
    desk = Desk()
    await desk.open(RULES.model_copy(update={"max_loss_mode": "trailing"}))
    await _long_ten(desk)
    for n, bid in enumerate(["101", "104", "97", "61", "58", "50"], start=1):
        await desk.tick(f"{bid}.00", f"{bid}.02", at=T0 + n * 700 * MS)
    await desk.run()
    logged = [(e.type, e.payload["rule"], e.payload["digest"]) for e in desk.envelopes()
              if e.type.startswith("rules.") and "digest" in e.payload]
    assert [t for t, _, _ in logged] == ["rules.warning-issued", "rules.violation-detected"]
    state, inputs = desk.replayed()
    assert state.rules is not None and state.rule is not None
    start = rules.initial(ACCOUNT, balance=Decimal(10_000), started_ns=T0, rules=state.rules)
    _, verdicts = rules.replay(state.rules, start, inputs)
    kinds = {"warning": "rules.warning-issued", "violation": "rules.violation-detected"}
    assert [(kinds[v.kind], v.rule, v.digest) for v in verdicts if v.kind in kinds] == logged


async def test_a_platform_wide_halt_refuses_new_exposure_and_fills_nothing_until_resumed(
        ) -> None:
    desk = Desk()
    await desk.open(RULES)
    await desk.command(place("b1", "buy", "10"))
    await desk.command(place("rest", "buy", "1", kind="limit", limit="95.00"))
    await desk.run()
    await desk.event("platform.events", "trading", TradingHalted(reason="outage", by="admin-1"),
                     1)
    await desk.run()  # (no order across topics: the halt is met before what follows)
    await desk.command(place("b2", "buy", "1"))
    await desk.command(place("s1", "sell", "4"))  # reducing is still taken
    await desk.tick("94.00", "94.02", at=T0 + 10 * MS)  # crosses the resting limit
    await desk.run()
    refused = {r["client_order_id"]: r["reason"] for r in desk.of("trading.order-rejected")}
    assert refused == {"b2": "trading-halted"}
    assert desk.state().positions["BTC-USD"].quantity == Decimal(6)
    assert len(desk.state().orders) == 1  # the limit still rests
    await desk.event("platform.events", "trading", TradingResumed(reason="back", by="admin-1"),
                     2)
    await desk.run()
    await desk.tick("94.00", "94.02", at=T0 + 20 * MS)
    await desk.run()
    assert not desk.state().orders and desk.state().positions["BTC-USD"].quantity == Decimal(7)


async def test_an_heir_decides_a_breach_while_it_was_down_on_the_tick_that_caused_it() -> None:
    desk = Desk()
    await desk.open()
    await _long_ten(desk)
    await desk.tick("90.00", "90.02", at=T0 + 1_500 * MS)
    await desk.run()
    engine = desk.engine
    desk.log.crash(*([engine.runner.consumer] if engine.runner.consumer else []),  # type: ignore[list-item]
                   *engine.runner.txn.values())  # type: ignore[arg-type]
    for n, bid in enumerate(range(80, 40, -2)):  # published while no engine runs
        await desk.tick(f"{bid}.00", f"{bid}.02", at=T0 + (2_000 + n * 10) * MS)
    desk.engine = desk.new_engine()
    await desk.engine.start()
    await desk.run()
    [warning] = desk.of("rules.warning-issued")
    [violation] = desk.of("rules.violation-detected")
    assert warning["at_ns"] == T0 + 2_100 * MS  # bid 60.00: -400.20
    assert violation["at_ns"] == T0 + 2_150 * MS  # bid 50.00: -500.20
    closing = desk.of("trading.order-filled")[-1]
    assert (closing["side"], Decimal(str(closing["price"]))) == ("sell", Decimal(50))


async def test_news_on_a_held_instrument_fails_an_account_that_may_not_hold_through_it(
        ) -> None:
    desk = Desk()
    await desk.open(RULES.model_copy(update={"no_news_holding": True}))
    await _long_ten(desk)
    news = MarketNewsPublished(instrument="BTC-USD", at_ns=T0 + 10 * MS, headline="CPI",
                               jump=-0.01, signal="bearish", strength=1.0)
    await desk.event("market.events", "BTC-USD", news, 1)
    await desk.event("market.events", "ETH-USD", news.model_copy(
        update={"instrument": "ETH-USD"}), 2)  # not held: nothing
    await desk.run()
    [met] = desk.of("rules.news-met")
    assert met == {"instrument": "BTC-USD", "at_ns": T0 + 10 * MS}
    [violation] = desk.of("rules.violation-detected")
    assert (violation["rule"], violation["at_ns"]) == ("news-holding", T0 + 10 * MS)
    state = desk.state()
    assert state.halted and not state.positions
    [command] = desk.assessment_commands()
    assert command.payload["rule"] == "news-holding"
