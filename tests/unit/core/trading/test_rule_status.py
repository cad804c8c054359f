"""`GET /assessments/{id}/rules`'s read model on the in-memory engine: the `rule_status` fold
(the account's events through the engine's own rule fold, no orders kept) reaches exactly the
engine's rule state, gives each rule's value, limit, headroom and status, skips what it has
folded, and the route shows it to the owner and admins only (another's is 404 as unknown)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.adapters.rule_status_projection import Row, RuleStatusProjection, fold_account
from core.domain import rules
from core.domain.rules.status import status
from core.entrypoints.http import assessments as routes
from core.views.rule_status import RuleStatusPublic
from kernel.auth import ROLE_SCOPES, Principal
from kernel.problems import Problem
from kernel.projection import Applied
from schemas.tier import RuleSet
from tests.unit.core.trading.rules_support import ACCOUNT, ASSESSMENT, MS, REGISTRY, T0, Desk, place

SPEC = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
               profit_target_pct=Decimal(8), min_trading_days=3, max_open_lots=Decimal(20))


async def _warned() -> Desk:
    """Ten bought at 100.02, then the bid at 59.00: 410.20 lost of the day's 500."""
    desk = Desk()
    await desk.open(SPEC)
    await desk.command(place("b1", "buy", "10"))
    await desk.run()
    await desk.tick("59.00", "59.02", at=T0 + 10 * MS)
    await desk.run()
    return desk


@pytest.fixture(scope="module")
def desk() -> Desk:
    return asyncio.run(_warned())


def _applied(desk: Desk) -> list[Applied]:
    return [Applied(e, REGISTRY.event_payload(e)) for e in desk.envelopes()]


def _by_rule(row: Row) -> dict[str, dict[str, Any]]:
    return {s["rule"]: s for s in json.loads(row.rules)}


def test_the_fold_reaches_the_engines_rule_state_and_its_statuses(desk: Desk) -> None:
    row = fold_account(None, _applied(desk))
    assert row is not None and (row.account_id, row.assessment_id) == (ACCOUNT, str(ASSESSMENT))
    assert row.version == desk.envelopes()[-1].sequence
    engine = desk.state().rule
    assert engine is not None
    folded = json.loads(row.state)["rule"]
    assert folded == rules.dump_state(engine)
    got = _by_rule(row)
    assert list(got) == ["daily-loss", "max-loss", "profit-target", "min-trading-days",
                         "max-open-lots"]
    daily = got["daily-loss"]
    assert daily["status"] == "warning"
    assert (Decimal(daily["value"]), Decimal(daily["limit"])) == (Decimal("410.2"), 500)
    assert (Decimal(daily["headroom"]), Decimal(daily["headroom_pct"])) == (
        Decimal("89.8"), Decimal("17.96"))
    assert got["max-loss"]["status"] == "ok"
    assert Decimal(got["max-loss"]["headroom"]) == Decimal("589.8")  # 1,000 - 410.20
    assert got["profit-target"]["status"] == "pending"
    assert Decimal(got["profit-target"]["limit"]) == 800
    assert (got["min-trading-days"]["value"], got["min-trading-days"]["status"]) == (
        "1", "pending")
    assert (Decimal(got["max-open-lots"]["value"]), got["max-open-lots"]["status"]) == (
        Decimal(10), "ok")


def test_the_status_equals_the_pure_status_of_the_engines_state(desk: Desk) -> None:
    row = fold_account(None, _applied(desk))
    state = desk.state()
    assert state.rule is not None and row is not None
    assert [s["status"] for s in json.loads(row.rules)] == \
        [s.status for s in status(SPEC, state.rule)]


def test_a_batch_cut_anywhere_and_a_replayed_batch_give_the_same_row(desk: Desk) -> None:
    events = _applied(desk)
    whole = fold_account(None, events)
    for cut in range(1, len(events)):
        first = fold_account(None, events[:cut])
        assert fold_account(first, events[cut:]) == whole
    assert fold_account(whole, events) is whole  # every event at or below the version


def test_the_projection_folds_a_batch_per_account_and_leaves_others_alone(desk: Desk) -> None:
    events = _applied(desk)
    projection = RuleStatusProjection()
    mine = [e for e in events if projection.key(e) is not None]
    assert len(mine) < len(events)  # orders and acceptances are not its business
    assert projection._fold({}, mine) == {ACCOUNT: fold_account(None, events)}


def test_a_violation_shows_violated(desk: Desk) -> None:
    async def breach() -> Desk:
        d = await _warned()
        await d.tick("50.00", "50.02", at=T0 + 20 * MS)
        await d.run()
        return d

    row = fold_account(None, _applied(asyncio.run(breach())))
    assert row is not None
    assert _by_rule(row)["daily-loss"]["status"] == "violated"


# The route, on fakes of its two reads.
OWNER = "0f3a9e51-7c2d-4b86-a1e4-5d9c8b7a6e02"


def _principal(user: str, role: str = "trader") -> Principal:
    return Principal(user_id=user, role=role, via="token",  # type: ignore[arg-type]
                     scopes=ROLE_SCOPES[role])  # type: ignore[index]


class _Assessment:
    user_id = uuid.UUID(OWNER)
    account_id = uuid.UUID(ACCOUNT)
    phase = "challenge"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stored: dict[str, Any] = {"status": (7, datetime(2026, 1, 2, tzinfo=UTC), [
        RuleStatusPublic(rule="daily-loss", status="ok", value=Decimal(1), limit=Decimal(500),
                         headroom=Decimal(499), headroom_pct=Decimal("99.8"))])}

    async def get_assessment(conn: Any, assessment_id: uuid.UUID) -> Any:
        return _Assessment() if assessment_id == ASSESSMENT else None

    async def get_rule_status(conn: Any, account_id: uuid.UUID) -> Any:
        assert account_id == uuid.UUID(ACCOUNT)
        return stored["status"]

    monkeypatch.setattr(routes, "get_assessment", get_assessment)
    monkeypatch.setattr(routes, "get_rule_status", get_rule_status)
    return stored


@pytest.mark.asyncio
async def test_the_owner_and_an_admin_read_the_rules(reads: dict[str, Any]) -> None:
    for who in (_principal(OWNER), _principal(str(uuid.uuid4()), "admin")):
        got = await routes.get_assessment_rules(ASSESSMENT, who, None)  # type: ignore[arg-type]
        assert (got.account_id, got.version) == (uuid.UUID(ACCOUNT), 7)
        assert [(r.rule, r.headroom) for r in got.rules] == [("daily-loss", Decimal(499))]


@pytest.mark.asyncio
async def test_another_traders_assessment_is_404_as_an_unknown_one(
        reads: dict[str, Any]) -> None:
    for assessment in (ASSESSMENT, uuid.uuid4()):
        with pytest.raises(Problem) as refused:
            await routes.get_assessment_rules(assessment, _principal(str(uuid.uuid4())),
                                              None)  # type: ignore[arg-type]
        assert (refused.value.status, refused.value.slug) == (404, "assessment-not-found")


@pytest.mark.asyncio
async def test_before_the_account_folds_its_opening_the_list_is_empty(
        reads: dict[str, Any]) -> None:
    reads["status"] = None
    got = await routes.get_assessment_rules(ASSESSMENT, _principal(OWNER), None)  # type: ignore[arg-type]
    assert (got.rules, got.version, got.marked_at) == ([], 0, None)


# The pushed form: `rules.status-changed` on the account's log.
def test_the_engine_records_the_standing_when_its_band_moves_and_not_on_every_mark() -> None:
    async def run() -> Desk:
        d = await _warned()
        for n in range(2, 7):  # the same price again: marks, but no band moves
            await d.tick("59.00", "59.02", at=T0 + n * 1_100 * MS)
        await d.run()
        return d

    d = asyncio.run(run())
    changes = d.of("rules.status-changed")
    assert len(d.of("account.equity-marked")) > len(changes) >= 2
    last = {i["rule"]: i for i in changes[-1]["rules"]}
    assert last["daily-loss"]["status"] == "warning"
    assert Decimal(last["daily-loss"]["headroom"]) == Decimal("89.8")
    # It is the read model's own standing, and it precedes the warning of its mark.
    row = fold_account(None, _applied(d))
    assert row is not None
    assert [(i["rule"], i["status"]) for i in changes[-1]["rules"]] == \
        [(s["rule"], s["status"]) for s in json.loads(row.rules)]
    types = d.types()
    assert types.index("rules.status-changed", types.index("trading.order-filled")) < \
        types.index("rules.warning-issued")
