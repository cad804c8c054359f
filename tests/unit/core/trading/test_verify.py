"""`propstream verify` on the in-memory log: the engine's own log re-derives every verdict
(exit 0); a verdict's digest or a mark it rests on altered on the log is a MISMATCH, a verdict
deleted is missing and one forged is extra (exit 1); an assessment with no account is an error
(exit 2)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from core.adapters.rule_audit import UnknownAssessment, verify_assessment
from core.domain.trading.audit import all_match
from kernel.log import OutRecord
from kernel.memlog import MemoryLog
from propstream import cli
from propstream.settings import PlatformSettings
from schemas.codec import decode_event, encode
from tests.unit.core.trading.rules_support import ASSESSMENT, MS, REGISTRY, T0, Desk, place


async def _breached() -> Desk:
    """A warning on one tick, the daily-loss violation on the next (5 % of 10,000)."""
    desk = Desk()
    await desk.open()
    await desk.command(place("b1", "buy", "10"))
    await desk.run()
    await desk.tick("59.00", "59.02", at=T0 + 10 * MS)
    await desk.tick("50.00", "50.02", at=T0 + 20 * MS)
    await desk.run()
    return desk


@pytest.fixture(scope="module")
def desk() -> Desk:
    return asyncio.run(_breached())


def _copy(desk: Desk, change: Any = None) -> MemoryLog:
    """The account's log copied record by record; `change(payload, type)` may alter a
    payload (in place) or return False to drop the record."""
    log = MemoryLog({"account.events": desk.log.partition_count("account.events")})
    out = []
    for record in desk.log.records("account.events"):
        value = record.value or b""
        if change is not None:
            env = decode_event(value)
            payload = dict(env.payload)
            kept = change(payload, env.type)
            if kept is False:
                continue
            value = encode(env.model_copy(update={"payload": payload}))
        out.append(OutRecord(record.key, value, partition=record.partition))
    asyncio.run(log.producer(client_id="copy").send_many("account.events", out))
    return log


def _verify(log: MemoryLog, assessment: uuid.UUID = ASSESSMENT) -> list[Any]:
    accounts = asyncio.run(verify_assessment(log, topic=lambda name: name,
                                             assessment_id=str(assessment), registry=REGISTRY))
    return [c for a in accounts for c in a.checks]


def test_the_engines_own_log_re_derives_every_verdict_hash_for_hash(desk: Desk) -> None:
    checks = _verify(_copy(desk))
    assert [(c.type, c.rule, c.status) for c in checks] == [
        ("rules.warning-issued", "daily-loss", "match"),
        ("rules.violation-detected", "daily-loss", "match")]
    logged = [e.payload["digest"] for e in desk.envelopes()
              if e.type in ("rules.warning-issued", "rules.violation-detected")]
    assert [c.recorded for c in checks] == [c.recomputed for c in checks] == logged
    assert all_match(checks)


def test_a_tampered_verdict_digest_is_a_mismatch(desk: Desk) -> None:
    def forge(payload: dict[str, Any], type_: str) -> None:
        if type_ == "rules.violation-detected":
            payload["digest"] = "0" * 64

    checks = _verify(_copy(desk, forge))
    assert [c.status for c in checks] == ["match", "MISMATCH"]
    assert checks[1].recorded == "0" * 64 and checks[1].recomputed != "0" * 64
    assert not all_match(checks)


def test_a_verdicts_inputs_altered_with_its_digest_kept_is_a_mismatch(desk: Desk) -> None:
    def soften(payload: dict[str, Any], type_: str) -> None:
        if type_ == "rules.violation-detected":
            payload["inputs"] = {**payload["inputs"], "value": "400"}

    assert [c.status for c in _verify(_copy(desk, soften))] == ["match", "MISMATCH"]


def test_a_mark_altered_under_a_verdict_changes_the_recomputed_hash(desk: Desk) -> None:
    # The breaching mark's equity raised: the evaluator now finds no violation there, and the
    # recorded one is extra; the warning's mark is untouched.
    marks = [e for e in desk.envelopes() if e.type == "account.equity-marked"]
    breach_at = next(e.payload["at_ns"] for e in desk.envelopes()
                     if e.type == "rules.violation-detected")
    target = next(m.payload["equity"] for m in marks if m.payload["at_ns"] == breach_at)

    def lift(payload: dict[str, Any], type_: str) -> None:
        if type_ == "account.equity-marked" and payload["at_ns"] == breach_at \
                and payload["equity"] == target:
            payload["equity"] = str(Decimal(str(target)) + 200)

    statuses = {c.type: c.status for c in _verify(_copy(desk, lift))}
    assert statuses["rules.warning-issued"] == "match"
    assert statuses["rules.violation-detected"] != "match"


def test_a_deleted_verdict_is_missing_and_the_log_does_not_verify(desk: Desk) -> None:
    # The events after it shift down one sequence: the later verdict no longer re-derives
    # where it stands either (the hash covers the account's event range).
    checks = _verify(_copy(desk, lambda p, t: t != "rules.warning-issued"))
    [gone] = [c for c in checks if c.type == "rules.warning-issued"]
    assert gone.status == "missing" and gone.recorded is None and gone.recomputed is not None
    assert not all_match(checks)


def test_an_assessment_with_no_account_on_the_log_is_unknown(desk: Desk) -> None:
    with pytest.raises(UnknownAssessment):
        _verify(_copy(desk), uuid.UUID("00000000-0000-4000-8000-0000000000ff"))


def _cli(monkeypatch: pytest.MonkeyPatch, log: MemoryLog, *args: str) -> Any:
    monkeypatch.setattr(cli, "_settings", lambda: PlatformSettings(env="test", namespace=""))
    monkeypatch.setattr(cli, "_verify_log", lambda settings: log)
    return CliRunner().invoke(cli.app, ["verify", *args])


def test_cli_exits_0_on_a_clean_log_with_each_hash_shown(desk: Desk,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    got = _cli(monkeypatch, _copy(desk), str(ASSESSMENT))
    assert got.exit_code == 0, got.output
    assert "phase 0: reading account" in got.output  # progress
    assert "2 verdict(s): 2 match, 0 do not" in got.output
    for env in desk.envelopes():  # each full hash twice on its line: recorded, recomputed
        if env.type == "rules.violation-detected":
            line = next(x for x in got.output.splitlines() if "violation-detected" in x)
            assert line.count(env.payload["digest"]) == 2 and line.endswith("match")


def test_cli_exits_1_on_a_tampered_verdict(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    def forge(payload: dict[str, Any], type_: str) -> None:
        if type_ == "rules.warning-issued":
            payload["digest"] = "f" * 64

    got = _cli(monkeypatch, _copy(desk, forge), str(ASSESSMENT))
    assert got.exit_code == 1, got.output
    assert "MISMATCH" in got.output and "1 match, 1 do not" in got.output


def test_cli_exits_2_on_an_unknown_or_malformed_assessment(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _cli(monkeypatch, _copy(desk), str(uuid.uuid4()))
    assert got.exit_code == 2 and "no account of assessment" in got.output
    got = _cli(monkeypatch, _copy(desk), "not-a-uuid")
    assert got.exit_code == 2 and "not an assessment id" in got.output
