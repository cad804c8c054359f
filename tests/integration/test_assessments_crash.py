"""SIGKILL the assessment policy mid-stream of 200 purchases, restart it: exactly 200
assessments and 200 accounts; then the rebuilt read models equal the live ones."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable

import pytest

from kernel.pg import connect
from kernel.settings import Settings
from schemas.assessment import assessment_id_for
from tests.conftest import process_env
from tests.integration.helpers import produce, read_topic, record_counts, wait_until
from tests.support.purchases import completed, payment_record, refunded

pytestmark = [pytest.mark.integration, pytest.mark.crash,
              pytest.mark.asyncio(loop_scope="session")]

PURCHASES = 200
REFUNDED_EVERY = 10  # every 10th purchase is refunded afterwards: cancelled rows too
CHECKSUMS = {
    "assessments": "SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                   "ORDER BY assessment_id), '')) FROM assessments t",
    "accounts": "SELECT count(*), md5(coalesce(string_agg(t::text, '|' "
                "ORDER BY account_id), '')) FROM accounts t",
}


async def commands_sent(settings: Settings) -> int:
    return sum((await record_counts(settings, "assessment.commands")).values())


async def checksums(settings: Settings) -> dict[str, tuple[int, str]]:
    conn = await connect(settings)
    try:
        out = {}
        for table, query in CHECKSUMS.items():
            row = await (await conn.execute(query)).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
        return out
    finally:
        await conn.close()


async def test_policy_killed_mid_stream_gives_exactly_one_assessment_and_account_each(
    settings: Settings, spawn: type
) -> None:
    users = [uuid.uuid4() for _ in range(20)]
    records = []
    for i in range(PURCHASES):
        purchase, user = uuid.uuid4(), users[i % len(users)]
        records.append(payment_record(purchase, completed(user)))
        if i % REFUNDED_EVERY == 0:
            records.append(payment_record(purchase, refunded(user), sequence=2))
    spawn("decider", "assessment").start()
    spawn("decider", "account").start()
    projections = [spawn("projection", name).start() for name in CHECKSUMS]
    first = await spawn("policy", "assessment").start().ready()

    # Feed the stream in small slices so the kill lands while it flows.
    chunks = [records[i:i + 10] for i in range(0, len(records), 10)]
    fed = 0
    while fed < len(chunks) and await commands_sent(settings) < 40:
        await produce(settings, "payment.events", chunks[fed])
        fed += 1
        await asyncio.sleep(0.15)
    first.kill9()
    at_kill = await commands_sent(settings)
    for chunk in chunks[fed:]:
        await produce(settings, "payment.events", chunk)
    assert 0 < at_kill < len(records), "the kill must land mid-stream"
    await spawn("policy", "assessment").start().ready()

    conn = await connect(settings)
    try:
        async def all_visible() -> bool:
            try:
                a = await (await conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'cancelled'), count(*) "
                    "FROM assessments")).fetchone()
                b = await (await conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'closed'), count(*) "
                    "FROM accounts")).fetchone()
            except Exception:
                await conn.rollback()
                return False
            await conn.rollback()
            cancelled = PURCHASES // REFUNDED_EVERY
            return a == (cancelled, PURCHASES) and b == (cancelled, PURCHASES)

        await wait_until(all_visible, timeout=180, what="200 assessments and 200 accounts")
    finally:
        await conn.close()

    created = [e for e in await read_topic(settings, "assessment.events")
               if e.type == "assessment.created"]
    opened = [e for e in await read_topic(settings, "account.events")
              if e.type == "account.opened"]
    assert len(created) == len({e.aggregate_id for e in created}) == PURCHASES
    assert len(opened) == len({e.aggregate_id for e in opened}) == PURCHASES
    purchases = {str(e.payload["purchase_id"]) for e in created}
    assert {assessment_id_for(p) for p in purchases} == {e.aggregate_id for e in created}
    rejected = [e for e in await read_topic(settings, "assessment.events")
                if e.type == "assessment.command-rejected"]
    assert rejected == [], "a re-emitted command must be recognised, not refused"
    sent = await commands_sent(settings)
    print(f"policy killed after {at_kill} commands; {sent} assessment commands on the log "
          f"for {len(records)} events ({sent - len(records)} re-emitted duplicates)")

    # Replay == live: stop the projections (a rebuild beside them would race), rebuild both
    # from the log, compare every row.
    live = await checksums(settings)
    for proc in projections:
        proc.stop()
    for name in CHECKSUMS:
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "propstream", "replay", name],
            env=process_env(settings), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    assert await checksums(settings) == live
    assert live["assessments"][0] == live["accounts"][0] == PURCHASES


async def test_every_event_redelivered_after_lost_offsets_has_no_second_effect(
    settings: Settings, spawn: type
) -> None:
    """The widest crash window: commands acknowledged, offsets never committed. A second
    policy in a fresh consumer group re-reads the whole stream and re-emits every command."""
    from core.processors.assessment_policy import AssessmentPolicy
    from schemas import default_registry

    users = [uuid.uuid4() for _ in range(5)]
    records = [payment_record(uuid.uuid4(), completed(users[i % 5])) for i in range(50)]
    await produce(settings, "payment.events", records)
    spawn("decider", "assessment").start()
    spawn("decider", "account").start()

    async def run_policy(group: str, done: Callable[[], Awaitable[bool]], what: str) -> None:
        policy = AssessmentPolicy(settings, default_registry(), group=group)
        await policy.start()
        try:
            async def step() -> bool:
                await policy.run(timeout=0.5)
                return await done()

            await wait_until(step, timeout=120, what=what)
        finally:
            await policy.stop()

    async def all_opened() -> bool:
        opened = [e for e in await read_topic(settings, "account.events")
                  if e.type == "account.opened"]
        return len(opened) >= len(records)

    await run_policy("propstream.assessment-policy", all_opened, "every account opened")
    first_pass = await commands_sent(settings)

    # The accounts are already open, so the second pass runs until its commands are out (it
    # used to stop at "every account opened", true before it had re-sent anything).
    async def all_resent() -> bool:
        return await commands_sent(settings) >= 2 * first_pass

    await run_policy("propstream.assessment-policy-lost-offsets", all_resent,
                     "every command sent again")
    await asyncio.sleep(1)  # a command sent a third time would be on the log by now
    assert await commands_sent(settings) == 2 * first_pass  # every command sent again

    async def duplicates_decided() -> bool:
        # Each duplicate is answered on the replies topic; wait until all were handled.
        replies = await read_topic(settings, "propstream.replies", raw=True)
        return len(replies) >= 4 * len(records)

    await wait_until(duplicates_decided, timeout=60, what="the duplicates to be decided")
    assessment_events = await read_topic(settings, "assessment.events")
    account_events = await read_topic(settings, "account.events")
    assert [e.type for e in assessment_events] == ["assessment.created"] * len(records)
    assert [e.type for e in account_events] == ["account.opened"] * len(records)
