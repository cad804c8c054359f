"""Assessment rules, pure: the spec's calendar and contradictions, the rule state folded from
an account's inputs, the one evaluator, and the same arithmetic over simulated paths.

No IO, no clock: times come in on the inputs. docs/rules.md defines every rule.
"""

from __future__ import annotations

from core.domain.rules.evaluate import (
    RuleName,
    Verdict,
    VerdictKind,
    evaluate,
    replay,
    spec_digest,
    step,
    verdict_digest,
)
from core.domain.rules.spec import (
    Contradiction,
    contradictions,
    day_start_ns,
    next_day_start_ns,
    terms_contradictions,
    trading_day,
)
from core.domain.rules.state import (
    DayRolled,
    Filled,
    Input,
    Marked,
    NewsFlagged,
    OrderIntent,
    RuleState,
    dump_state,
    fold,
    initial,
    load_state,
)

__all__ = [
    "Contradiction",
    "DayRolled",
    "Filled",
    "Input",
    "Marked",
    "NewsFlagged",
    "OrderIntent",
    "RuleName",
    "RuleState",
    "Verdict",
    "VerdictKind",
    "contradictions",
    "day_start_ns",
    "dump_state",
    "evaluate",
    "fold",
    "initial",
    "load_state",
    "next_day_start_ns",
    "replay",
    "spec_digest",
    "step",
    "terms_contradictions",
    "trading_day",
    "verdict_digest",
]
