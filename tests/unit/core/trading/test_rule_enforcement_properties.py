"""Hypothesis: whatever the ticks and orders, the account's log alone re-derives every verdict
the engine recorded, hash for hash, and folds to the engine's own state (rule state too);
no rule is violated twice, and the phase fails on one input only."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain import rules, trading
from schemas.tier import RuleSet
from tests.unit.core.trading.rules_support import ACCOUNT, DAY, MS, T0, Desk, place

SPEC = RuleSet(daily_loss_limit_pct=Decimal(3), max_loss_pct=Decimal(6),
               max_loss_mode="trailing", profit_target_pct=Decimal(2), min_trading_days=1,
               max_inactive_days=3)
LOGGED = {"warning": "rules.warning-issued", "violation": "rules.violation-detected",
          "passed": "rules.phase-passed"}

steps = st.lists(st.tuples(
    st.integers(min_value=-800, max_value=800),  # price move, in cents x 10
    st.integers(min_value=1, max_value=30_000),  # ms to the next tick (some days long)
    st.sampled_from(["none", "none", "buy", "sell"]),
    st.integers(min_value=1, max_value=40)), min_size=1, max_size=25)


async def _run(path: list[tuple[int, int, str, int]]) -> Desk:
    desk = Desk()
    await desk.open(SPEC)
    price, at = Decimal(100), T0
    for n, (move, gap, action, qty) in enumerate(path):
        price = max(Decimal("1.00"), price + Decimal(move) / 100)
        at += gap * MS if gap < 29_000 else DAY  # now and then a day passes
        await desk.tick(f"{price:.2f}", f"{price + Decimal('0.02'):.2f}", at=at)
        if action != "none":
            await desk.command(place(f"o{n}", action, str(qty)))
        await desk.run()
    return desk


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_the_log_re_derives_every_verdict_and_hash_and_the_engines_state(
        path: list[tuple[int, int, str, int]]) -> None:
    desk = asyncio.run(_run(path))
    logged = [(e.type, e.payload["rule"], e.payload["digest"]) for e in desk.envelopes()
              if e.type in LOGGED.values()]
    state, inputs = desk.replayed()
    start = rules.initial(ACCOUNT, balance=Decimal(10_000), started_ns=T0, rules=SPEC)
    _, verdicts = rules.replay(SPEC, start, inputs)
    assert [(LOGGED[v.kind], v.rule, v.digest) for v in verdicts if v.kind in LOGGED] == logged
    assert trading.dump(state) == trading.dump(desk.state())
    # One violation per rule, all on the input that failed the phase; one verdict sent.
    violations = [e.payload for e in desk.envelopes() if e.type == "rules.violation-detected"]
    assert len({v["rule"] for v in violations}) == len(violations)
    assert len({v["last_sequence"] for v in violations}) <= 1
    assert len(desk.assessment_commands()) <= 1
