"""Issue 12 point 3 on the real broker: `propstream verify` re-derives every verdict of a
failed assessment (a warning and the violation) and of a passed one (its pass, and its next
phase's account) from `account.events` and exits 0; a verdict forged onto the log makes it
exit 1; an unknown assessment exits 2."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest

from core.adapters.rule_audit import verify_assessment
from kernel.kafkalog import KafkaLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import account_id_for
from schemas.assessment import CreateAssessment, assessment_id_for, phase_account_id
from schemas.codec import encode
from schemas.envelope import make_event
from schemas.instrument import InstrumentRegistered
from schemas.rules import RuleWarningIssued
from tests.conftest import process_env
from tests.integration.helpers import read_topic, spec, wait_until
from tests.integration.test_rule_enforcement import DAY_NS, Feed, events_of, market, terms

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REGISTRY = default_registry()


async def _cli(settings: Settings, assessment: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "propstream", "verify", assessment,
        env=process_env(settings),  # type: ignore[arg-type]  # the fixture gives kernel settings
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_verify_re_derives_a_failed_and_a_passed_assessment_and_catches_a_forgery(
        settings: Settings, spawn: type) -> None:
    feed = Feed(settings)
    await feed.producer.start()
    try:
        for symbol in ("VLOSE-USD", "VWIN-USD"):
            await feed.event("instrument.events", symbol, InstrumentRegistered(spec=spec(symbol)))
        purchases = {"lose": uuid.uuid4(), "win": uuid.uuid4()}
        assessments = {k: assessment_id_for(str(p)) for k, p in purchases.items()}
        accounts = {k: account_id_for(a) for k, a in assessments.items()}
        for key, purchase in purchases.items():
            await feed.command("assessment.commands", assessments[key], CreateAssessment(
                purchase_id=purchase, user_id=uuid.uuid4(), tier_id="rules-10k",
                tier_revision=1, terms=terms(), source="grant"))
        procs = [spawn("decider", "account").start(), spawn("decider", "assessment").start(),
                 spawn("policy", "assessment").start()]
        for proc in procs:
            await proc.ready()

        async def opened() -> bool:
            events = await read_topic(settings, "account.events")
            return {e.aggregate_id for e in events if e.type == "account.opened"} >= \
                set(accounts.values())

        await wait_until(opened, timeout=30, what="both accounts opened")
        await feed.tick("VLOSE-USD", "100.00")
        await feed.tick("VWIN-USD", "100.00")
        await feed.command("account.commands", accounts["lose"],
                           market("b1", "VLOSE-USD", "buy", "10"))
        await feed.command("account.commands", accounts["win"],
                           market("b1", "VWIN-USD", "buy", "10"))

        async def filled(key: str) -> bool:
            got = await events_of(settings, "account.events", accounts[key])
            return any(e.type == "trading.order-filled" for e in got)

        await wait_until(lambda: filled("lose"), timeout=20, what="the loser's fill")
        await wait_until(lambda: filled("win"), timeout=20, what="the winner's fill")
        await feed.tick("VLOSE-USD", "60.00")  # a warning
        await feed.tick("VLOSE-USD", "50.00")  # the violation

        async def failed() -> bool:
            lost = await events_of(settings, "account.events", accounts["lose"])
            return any(e.type == "rules.violation-detected" for e in lost)

        # Before the winner's next-day tick, which starts a new day for the loser too.
        await wait_until(failed, timeout=20, what="the loser failed")
        await feed.tick("VWIN-USD", "112.00", at=time.time_ns() + DAY_NS)
        await feed.command("account.commands", accounts["win"],
                           market("s1", "VWIN-USD", "sell", "10"))
        nxt = phase_account_id(assessments["win"], 1)

        async def settled() -> bool:
            won = await events_of(settings, "account.events", nxt)
            return any(e.type == "account.opened" for e in won)

        await wait_until(settled, timeout=30, what="the winner's next phase opened")

        log = KafkaLog(settings)
        lose = await verify_assessment(log, topic=settings.topic, registry=REGISTRY,
                                       assessment_id=assessments["lose"])
        assert [(c.type, c.rule, c.status) for a in lose for c in a.checks] == [
            ("rules.warning-issued", "daily-loss", "match"),
            ("rules.violation-detected", "daily-loss", "match")]
        win = await verify_assessment(log, topic=settings.topic, registry=REGISTRY,
                                      assessment_id=assessments["win"])
        assert [a.account_id for a in win] == [accounts["win"], nxt]
        assert [(c.type, c.status) for c in win[0].checks] == [("rules.phase-passed", "match")]
        assert win[1].checks == []  # the funded phase: nothing judged yet

        code, out = await _cli(settings, assessments["lose"])
        assert code == 0, out
        assert "2 verdict(s): 2 match, 0 do not" in out

        # A warning nobody judged, appended to the loser's account with a made-up digest.
        [last] = [e for e in await events_of(settings, "account.events", accounts["lose"])][-1:]
        forged = RuleWarningIssued(rule="max-loss", value=1, limit=1000, headroom=999,
                                   headroom_pct=99, at_ns=time.time_ns(), first_sequence=1,
                                   last_sequence=last.sequence + 1, inputs={},
                                   digest="a" * 64)
        env = make_event(forged, aggregate_id=accounts["lose"], sequence=last.sequence + 1,
                         event_id=uuid.uuid4(), occurred_at=datetime.now(UTC),
                         correlation_id=uuid.uuid4(), causation_id=None)
        await feed.send("account.events", accounts["lose"], encode(env))
        code, out = await _cli(settings, assessments["lose"])
        assert code == 1, out
        assert "extra" in out and "2 match, 1 do not" in out

        code, out = await _cli(settings, str(uuid.uuid4()))
        assert code == 2 and "no account of assessment" in out, out
    finally:
        await feed.producer.stop()
