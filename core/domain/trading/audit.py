"""Re-deriving an account's verdicts from its own events, pure: what `propstream verify` runs.

The account's events are folded as the engine folds them (`trading.evolve`), which gives the
rule inputs (marks, day starts, news) in order; the pure evaluator then replays them from the
rule state the opening gave, and each verdict it finds is paired with the verdict event the
engine recorded for the same kind, rule and account event (`last_sequence`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from core.domain import rules as r
from core.domain.trading.state import evolve, initial
from schemas.envelope import EventPayload
from schemas.rules import PhasePassed, RuleViolationDetected, RuleWarningIssued

CheckStatus = Literal["match", "MISMATCH", "missing", "extra"]
RECORDED = {"warning": RuleWarningIssued.TYPE, "violation": RuleViolationDetected.TYPE,
            "passed": PhasePassed.TYPE}
_VERDICTS = (RuleWarningIssued, RuleViolationDetected, PhasePassed)


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: the digest on the log beside the one the evaluator re-derives.

    `missing`: the evaluator finds a verdict the log lacks; `extra`: the log holds one the
    evaluator does not find; `MISMATCH`: both exist and differ (digest or compared inputs).
    """

    account_id: str
    type: str
    rule: str
    at_ns: int
    last_sequence: int
    recorded: str | None
    recomputed: str | None
    status: CheckStatus


def audit(account_id: str, events: Iterable[EventPayload]) -> list[Check]:
    """Every verdict of one account's events (in log order), recorded and re-derived."""
    state = initial(account_id)
    start: r.RuleState | None = None
    inputs: list[r.Input] = []
    recorded: list[RuleWarningIssued | RuleViolationDetected | PhasePassed] = []
    for event in events:
        state = evolve(state, event)
        if start is None and state.rule is not None:
            start = state.rule  # the opening's rule state: replay starts from it
        inputs += [given for _, given in state.rule_inputs]
        state.rule_inputs.clear()
        if isinstance(event, _VERDICTS):
            recorded.append(event)
    found: list[r.Verdict] = []
    if start is not None and state.rules is not None:
        _, verdicts = r.replay(state.rules, start, inputs)
        found = [v for v in verdicts if v.kind in RECORDED]
    derived = {(RECORDED[v.kind], v.rule, v.last_sequence): v for v in found}
    checks: list[Check] = []
    for event in recorded:
        key = (event.TYPE, event.rule, event.last_sequence)
        v = derived.pop(key, None)
        if v is None:
            checks.append(Check(account_id, event.TYPE, event.rule, event.at_ns,
                                event.last_sequence, event.digest, None, "extra"))
            continue
        same = v.digest == event.digest and dict(v.inputs) == event.inputs \
            and v.at_ns == event.at_ns and v.first_sequence == event.first_sequence
        checks.append(Check(account_id, event.TYPE, event.rule, event.at_ns,
                            event.last_sequence, event.digest, v.digest,
                            "match" if same else "MISMATCH"))
    for (type_, rule, last), v in derived.items():
        checks.append(Check(account_id, type_, rule, v.at_ns, last, None, v.digest, "missing"))
    return checks


def all_match(checks: Iterable[Check]) -> bool:
    """True when every verdict re-derives and none is missing or extra."""
    return all(c.status == "match" for c in checks)


__all__ = ["Check", "CheckStatus", "all_match", "audit"]
