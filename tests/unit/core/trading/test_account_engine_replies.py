"""The account engine answers every command, those that change nothing too: halting an
account already halted is decided (accepted, no event), not parked as a poison command."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.processors.account_engine import AccountEngine
from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from kernel.settings import Settings
from schemas import default_registry
from schemas.account import OpenAccount, account_id_for
from schemas.codec import decode_model, encode
from schemas.envelope import CommandPayload, make_command
from schemas.replies import CommandReply
from schemas.topics import CATALOGUE
from schemas.trading import HaltAccount, ResumeAccount

pytestmark = pytest.mark.asyncio(loop_scope="session")

ASSESSMENT = uuid.UUID("00000000-0000-4000-8000-0000000c0de5")
ACCOUNT = account_id_for(str(ASSESSMENT))
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


async def _send(log: MemoryLog, payload: CommandPayload) -> uuid.UUID:
    command_id = uuid.uuid4()
    env = make_command(payload, aggregate_id=ACCOUNT, command_id=command_id, issued_at=NOW,
                       actor="admin-1")
    await log.producer(client_id="api").send_many(
        "account.commands", [OutRecord(ACCOUNT.encode(), encode(env))])
    return command_id


async def test_a_halt_of_a_halted_account_is_answered_accepted_without_events() -> None:
    log = MemoryLog({s.name: s.partitions for s in CATALOGUE})
    engine = AccountEngine(Settings(env="test"), default_registry(), log=log, clock=lambda: NOW)
    await engine.start()
    await _send(log, OpenAccount(assessment_id=ASSESSMENT, user_id=uuid.uuid4(),
                                 starting_balance=Decimal(10_000), currency="USD"))
    sent = [await _send(log, HaltAccount(reason="review")),
            await _send(log, HaltAccount(reason="review again")),
            await _send(log, ResumeAccount(reason="ok")),
            await _send(log, ResumeAccount(reason="ok again"))]
    await engine.run(until_idle=True)
    replies = {r.command_id: r for r in (decode_model(rec.value or b"", CommandReply)
                                         for rec in log.records("propstream.replies"))}
    assert [replies[c].status for c in sent] == ["accepted"] * 4
    assert [len(replies[c].events) for c in sent] == [1, 0, 1, 0]
    assert all(replies[c].actor == "admin-1" for c in sent)
    assert log.records("account.commands.dlq") == []
    await engine.stop()
