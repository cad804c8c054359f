"""What the rules make of an account's new events, in the account engine's transaction.

After the engine records events for an account (`AccountEngine.append`), `enforce_rules`:

1. marks equity if money or positions moved (a fill, a settlement): the mark is the rule
   input, so every fill is judged with its floating P&L;
2. records `rules.status-changed` when the account's standing against its rules moved to
   another band (`core.domain.rules.status.band`), then judges the rule inputs those events
   folded (`core.domain.trading.enforce.judge`) and records the verdicts
   (`rules.warning-issued`, `rules.violation-detected`, `rules.phase-passed`);
3. on a violation, a pass, an abandonment (no fill for `max_inactive_days` trading days) or
   the kill switch, ends trading: the account halts, its open orders are cancelled and its
   positions closed at the touch (fills as events); and sends the assessment its command
   (`assessment.complete` failed/passed, `assessment.abandon`) in the same transaction.

Every event is numbered after the account's last and its id derives from the id function of
the events that caused it, so the same input against the same state gives the same events,
and a replay folds them instead of deciding them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.domain.trading import enforce
from kernel.decider_state import PartitionState
from kernel.runner import Emit
from schemas.assessment import AbandonAssessment, CompleteAssessment
from schemas.codec import encode
from schemas.envelope import CommandPayload, EventEnvelope, EventPayload, make_command
from schemas.rules import AccountKillSwitched

if TYPE_CHECKING:
    from core.domain.trading import TradingAccount
    from core.processors.account_engine import AccountEngine

# Fixed forever: the ids of the commands a verdict sends the assessment.
VERDICT_CAUSE = uuid.UUID("71c2e5a8-94d3-4b6f-8a0e-5d2c7f1b3e96")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def enforce_rules(engine: AccountEngine, pstate: PartitionState[TradingAccount],
                  partition: int, account_id: str, payloads: Sequence[EventPayload], *,
                  first: int, **kw: Any) -> tuple[list[EventEnvelope], list[Emit]]:
    """The events and commands that follow `payloads` (already recorded) under the rules."""
    event_id: Callable[[int], uuid.UUID] = kw["event_id"]
    occurred: datetime = kw["occurred_at"]
    now_ns = (occurred - EPOCH) // timedelta(microseconds=1) * 1_000
    events: list[EventEnvelope] = []
    emits: list[Emit] = []
    count = first

    def state() -> TradingAccount:
        return engine.current(pstate, account_id).value

    def record(more: Sequence[EventPayload]) -> list[EventEnvelope]:
        nonlocal count
        if not more:
            return []
        base = count
        got, sent = engine._record(pstate, partition, account_id, more,
                                   **{**kw, "event_id": lambda i: event_id(base + i)})
        count += len(more)
        events.extend(got)
        emits.extend(sent)
        return got

    def mark() -> None:
        s = state()
        if s.moved and s.status == "open":
            marked = engine._mark(s, now_ns)
            if marked is not None:
                record([marked])

    s = state()
    if s.rule is not None:
        mark()
    s = state()
    ending: tuple[str, CommandPayload | None] | None = None
    if s.rule is not None and s.rules is not None and s.rule_inputs:
        # The standing first, for the dashboard (before the verdicts: what follows a
        # violation starts with it); it folds no rule input.
        moved = enforce.status_event(s, s.rule_inputs[-1][1].at_ns)
        if moved is not None:
            record([moved])
        verdicts = enforce.judge(s.rules, s, list(s.rule_inputs))
        s.rule_inputs.clear()
        for v in verdicts:
            recorded = enforce.verdict_event(v)
            if recorded is not None:
                record([recorded])
            if v.kind in ("violation", "passed") and ending is None:
                outcome = "failed" if v.kind == "violation" else "passed"
                ending = (f"rule {v.rule} violated" if outcome == "failed" else "phase passed",
                          CompleteAssessment(account_id=uuid.UUID(account_id), outcome=outcome,
                                             rule=v.rule, digest=v.digest, at_ns=v.at_ns))
        days = enforce.inactive_days(state())
        if ending is None and days is not None and not state().halted:
            ending = (f"abandoned: no fill for {days} trading days",
                      AbandonAssessment(account_id=uuid.UUID(account_id), inactive_days=days,
                                        at_ns=now_ns))
    killed = [p for p in payloads if isinstance(p, AccountKillSwitched)]
    if ending is None and killed:
        ending = (f"kill switch by {killed[0].by}: {killed[0].reason}", None)
    if ending is None:
        return events, emits
    reason, command = ending
    for _ in range(3):  # a cancelled entry may put its exit legs to work: cancel them too
        record(enforce.halt_and_cancel(state(), reason, now_ns))
        if not state().orders:
            break
    s = state()
    markets = {sym: m for sym in s.positions if (m := engine.market(sym)) is not None}
    quotes = {sym: engine.quote(sym) for sym in s.positions}
    if engine._tick_quote is not None:
        quotes[engine._tick_quote.instrument] = engine._tick_quote
    from core.processors.account_engine import terms_of
    for closing in enforce.flatten(s, tag=f"{account_id}/{s.seq}", quotes=quotes,
                                   markets=markets, terms=terms_of(s), now_ns=now_ns):
        record(closing)
    mark()
    state().rule_inputs.clear()  # the phase is settled: nothing more to judge
    if command is not None and s.assessment_id is not None and events:
        env = make_command(command, aggregate_id=s.assessment_id,
                           command_id=uuid.uuid5(VERDICT_CAUSE, f"{events[0].event_id}"),
                           issued_at=occurred, correlation_id=kw["correlation_id"],
                           actor=f"account:{account_id}")
        emits.append(Emit(engine.assessment_commands, s.assessment_id.encode(), encode(env)))
    return events, emits
