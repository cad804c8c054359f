"""An account trades under the rules of the phase it was opened for: they ride on the opening,
land in the trading state and survive a snapshot; marks record when they were taken."""

from __future__ import annotations

import uuid
from decimal import Decimal

from core.domain.trading import dump, evolve, initial, load
from schemas.account import AccountOpened, OpenAccount
from schemas.tier import RuleSet
from schemas.trading import AccountEquityMarked

RULES = RuleSet(daily_loss_limit_pct=Decimal(5), max_loss_pct=Decimal(10),
                max_leverage=Decimal(20), allowed_instruments=("BTC-USD",))


def _opened(rules: RuleSet | None) -> AccountOpened:
    return AccountOpened(assessment_id=uuid.uuid4(), user_id=uuid.uuid4(),
                         starting_balance=Decimal(25_000), currency="USD", rules=rules)


def test_the_opening_carries_the_rules_into_the_state_and_a_snapshot_keeps_them() -> None:
    state = evolve(initial("a1"), _opened(RULES))
    assert state.rules == RULES
    state = evolve(state, AccountEquityMarked(
        equity=Decimal(25_000), unrealized=Decimal(0), margin_used=Decimal(0),
        margin_free=Decimal(25_000), marks={}, at_ns=1_796_000_000_000_000_000))
    back = load(dump(state))
    assert back.rules == RULES and back.marked_at_ns == 1_796_000_000_000_000_000


def test_an_opening_of_before_the_rules_field_reads_as_no_rules() -> None:
    legacy = {k: v for k, v in _opened(None).model_dump(mode="json").items() if k != "rules"}
    assert AccountOpened.model_validate(legacy).rules is None
    assert evolve(initial("a1"), AccountOpened.model_validate(legacy)).rules is None
    command = OpenAccount(assessment_id=uuid.uuid4(), user_id=uuid.uuid4(),
                          starting_balance=Decimal(1000), currency="USD", rules=RULES)
    assert command.rules == RULES
