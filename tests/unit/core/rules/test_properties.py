"""Properties of the evaluator over random account histories: a replay gives the same verdicts
and hashes, duplicates and late redeliveries give nothing, a rule is violated at most once, and
every hash re-derives from what the verdict says it compared."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.rules import (
    DayRolled,
    Filled,
    Input,
    Marked,
    NewsFlagged,
    OrderIntent,
    Verdict,
    initial,
    replay,
    step,
    trading_day,
    verdict_digest,
)
from core.domain.rules.state import Folded, RuleState
from schemas.tier import RuleSet

D = Decimal
T0 = 1_767_600_000_000_000_000  # 2026-01-05T08:00:00Z
HOUR = 3_600_000_000_000
START = D(100_000)

specs = st.builds(
    lambda daily, base, max_pct, mode, lock, target, days, consistency, warn, tz, weekend,
    news: RuleSet(
        daily_loss_limit_pct=D(daily), daily_loss_base=base, max_loss_pct=D(max_pct),
        max_loss_mode=mode, max_loss_trailing_lock=lock or mode == "static",
        profit_target_pct=target, min_trading_days=days, consistency_limit_pct=consistency,
        warning_threshold_pct=D(warn), day_boundary_tz=tz, no_weekend_holding=weekend,
        no_news_holding=news, max_open_lots=D(3)),
    st.sampled_from([2, 5]),
    st.sampled_from(["starting-balance", "day-start-balance", "day-start-equity",
                     "day-start-higher"]),
    st.sampled_from([6, 10]), st.sampled_from(["static", "trailing"]), st.booleans(),
    st.sampled_from([None, D(3), D(8)]), st.integers(0, 3), st.sampled_from([None, D(40)]),
    st.sampled_from([50, 80]), st.sampled_from(["UTC", "Europe/Prague"]), st.booleans(),
    st.booleans())

moves = st.lists(st.one_of(
    st.tuples(st.just("fill"), st.integers(-3000, 3000), st.integers(-3000, 3000),
              st.integers(0, 4)),
    st.tuples(st.just("mark"), st.integers(-4000, 4000), st.just(0), st.just(0)),
    st.tuples(st.just("roll"), st.integers(1, 3), st.just(0), st.just(0)),
    st.tuples(st.just("news"), st.integers(0, 1), st.just(0), st.just(0)),
), max_size=40)


def history(spec: RuleSet, plan: list[tuple[str, int, int, int]]) -> list[Folded]:
    """Inputs as an engine would make them: sequences and times increasing."""
    events: list[Folded] = []
    balance, lots, equity = START, 0, START
    day = trading_day(T0, spec)
    for seq, (kind, a, b, c) in enumerate(plan, start=1):
        at = T0 + seq * HOUR
        if kind == "fill":
            balance += a
            lots = c
            equity = balance + (b if lots else 0)
            held = frozenset({"BTC-USD"}) if lots else frozenset()
            events.append(Filled(seq, at, balance, equity, D(lots), D(lots * 1000), held))
        elif kind == "mark":
            equity = balance + (a if lots else 0)
            held = frozenset({"BTC-USD"}) if lots else frozenset()
            events.append(Marked(seq, at, balance, equity, D(lots), D(lots * 1000), held))
        elif kind == "roll":
            day += timedelta(days=a)
            events.append(DayRolled(seq, at, day))
        else:
            events.append(NewsFlagged(seq, at, ("BTC-USD", "ETH-USD")[a]))
    return events


def start(spec: RuleSet) -> RuleState:
    return initial("acc-1", balance=START, started_ns=T0, rules=spec)


@settings(max_examples=150, deadline=None)
@given(specs, moves)
def test_replaying_the_same_inputs_gives_the_same_verdicts_and_hashes(
        spec: RuleSet, plan: list[tuple[str, int, int, int]]) -> None:
    events = history(spec, plan)
    first = replay(spec, start(spec), events)
    second = replay(spec, start(spec), list(events))
    assert first == second


@settings(max_examples=150, deadline=None)
@given(specs, moves, st.data())
def test_duplicates_and_late_redeliveries_produce_nothing(
        spec: RuleSet, plan: list[tuple[str, int, int, int]], data: st.DataObject) -> None:
    events = history(spec, plan)
    clean_state, clean = replay(spec, start(spec), events)
    # Each input may come again later (a redelivery), possibly several times.
    noisy: list[Input] = []
    for i, event in enumerate(events):
        noisy.append(event)
        again = data.draw(st.lists(st.integers(0, i), max_size=2), label=f"again after {i}")
        noisy += [events[j] for j in again]
    state, verdicts = replay(spec, start(spec), noisy)
    assert verdicts == clean and state == clean_state


@settings(max_examples=150, deadline=None)
@given(specs, moves)
def test_a_rule_is_violated_once_and_nothing_follows_a_settled_phase(
        spec: RuleSet, plan: list[tuple[str, int, int, int]]) -> None:
    state = start(spec)
    settled_at: int | None = None
    seen: list[Verdict] = []
    for event in history(spec, plan):
        state, found = step(spec, state, event)
        if settled_at is not None:
            assert found == (), "nothing after a pass or a failure"
        if any(v.kind in ("violation", "passed") for v in found):
            settled_at = event.sequence
        seen += found
    violated = [v.rule for v in seen if v.kind == "violation"]
    assert len(violated) == len(set(violated))
    assert [v.kind for v in seen].count("passed") <= 1
    assert not ({"passed"} <= {v.kind for v in seen} and violated), "never both"


@settings(max_examples=100, deadline=None)
@given(specs, moves)
def test_every_hash_re_derives_from_what_its_verdict_says_it_compared(
        spec: RuleSet, plan: list[tuple[str, int, int, int]]) -> None:
    _, verdicts = replay(spec, start(spec), history(spec, plan))
    for v in verdicts:
        assert v.digest == verdict_digest(
            spec, account_id="acc-1", kind=v.kind, rule=v.rule, at_ns=v.at_ns,
            first_sequence=v.first_sequence, last_sequence=v.last_sequence, inputs=v.inputs)
        assert 1 <= v.first_sequence <= v.last_sequence
        assert v.headroom is None or v.headroom == v.limit - (v.value or 0)


@settings(max_examples=100, deadline=None)
@given(specs, moves)
def test_a_state_folded_in_two_runs_judges_the_rest_as_one_run(
        spec: RuleSet, plan: list[tuple[str, int, int, int]]) -> None:
    """An heir that folds a prefix, then carries on, says what one run says (no verdict
    depends on how the history was cut)."""
    events = history(spec, plan)
    cut = len(events) // 2
    _, whole = replay(spec, start(spec), events)
    middle, head = replay(spec, start(spec), events[:cut])
    _, tail = replay(spec, middle, events[cut:])
    assert head + tail == whole


@settings(max_examples=100, deadline=None)
@given(specs, moves, st.integers(1, 5), st.integers(90, 110), st.one_of(st.none(),
                                                                          st.integers(0, 120)))
def test_an_order_is_only_checked_never_folded(
        spec: RuleSet, plan: list[tuple[str, int, int, int]], quantity: int, entry: int,
        stop: int | None) -> None:
    state, _ = replay(spec, start(spec), history(spec, plan))
    intent = OrderIntent(at_ns=T0, instrument="BTC-USD", quantity=D(quantity), entry=D(entry),
                         stop=None if stop is None else D(stop),
                         lots_after=state.open_lots + quantity,
                         exposure_after=state.open_exposure + quantity * entry)
    after, found = step(spec, state, intent)
    assert after is state
    assert {v.kind for v in found} <= {"refused"}
    assert {v.rule for v in found} <= {"risk-per-trade", "max-open-lots", "max-open-exposure"}
    assert ("max-open-lots" in {v.rule for v in found}) == (
        not state.settled and intent.lots_after > D(3))
