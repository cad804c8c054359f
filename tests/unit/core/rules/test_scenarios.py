"""A table of scenarios per rule, written from the published definitions (docs/rules.md):
each asserts the exact verdicts, their times and what they compared."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from core.domain.rules import next_day_start_ns
from tests.unit.core.rules.support import Account, D, brief, ns, rules

# Daily loss ------------------------------------------------------------------------------------


def test_daily_loss_hit_only_by_floating_pnl_warns_at_80_percent_then_breaches() -> None:
    a = Account(rules(daily_loss_limit_pct=D(5)))
    assert a.fill("2026-01-05T09:00:00+00:00", lots=1, exposure=50_000) == ()
    warned = a.mark("2026-01-05T10:00:00+00:00", equity=96_000)
    breached = a.mark("2026-01-05T11:00:00+00:00", equity=95_000)

    assert brief(warned) == [("warning", "daily-loss", ns("2026-01-05T10:00:00+00:00"))]
    assert (warned[0].value, warned[0].limit, warned[0].headroom,
            warned[0].headroom_pct) == (D(4000), D(5000), D(1000), D(20))
    assert brief(breached) == [("violation", "daily-loss", ns("2026-01-05T11:00:00+00:00"))]
    assert (breached[0].value, breached[0].headroom) == (D(5000), D(0))
    assert a.state.balance == D(100_000), "no loss was realized: only the floating P&L moved"


def test_daily_loss_just_inside_the_limit_is_a_warning_not_a_violation() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    assert brief(a.mark("2026-01-05T10:00:00+00:00", equity=D("95000.01"))) == [
        ("warning", "daily-loss", ns("2026-01-05T10:00:00+00:00"))]


def test_daily_loss_from_the_higher_of_day_start_balance_and_equity() -> None:
    # The day starts with 2,000 of floating profit: the5ers-style base is 102,000.
    higher = Account(rules(daily_loss_base="day-start-higher"))
    balance_based = Account(rules(daily_loss_base="day-start-balance"))
    for a in (higher, balance_based):
        a.fill("2026-01-05T09:00:00+00:00", lots=1)
        a.mark("2026-01-05T20:00:00+00:00", equity=102_000)
        a.roll("2026-01-06T00:00:00+00:00")

    found = higher.mark("2026-01-06T09:00:00+00:00", equity=96_900)
    assert brief(found) == [("violation", "daily-loss", ns("2026-01-06T09:00:00+00:00"))]
    assert (found[0].value, found[0].limit) == (D(5100), D(5100))
    assert balance_based.mark("2026-01-06T09:00:00+00:00", equity=96_900) == ()


def test_daily_loss_sized_on_the_starting_balance_measured_from_the_day_start() -> None:
    # FTMO-style: 5 % of the initial 100,000 below the day's starting balance of 110,000.
    a = Account(rules(daily_loss_base="starting-balance"))
    a.fill("2026-01-05T09:00:00+00:00", balance=110_000, lots=0)
    a.roll("2026-01-06T00:00:00+00:00")
    a.fill("2026-01-06T09:00:00+00:00", lots=1)
    assert a.mark("2026-01-06T10:00:00+00:00", equity=D("105000.01")) != ()
    found = a.mark("2026-01-06T11:00:00+00:00", equity=105_000)
    assert brief(found) == [("violation", "daily-loss", ns("2026-01-06T11:00:00+00:00"))]
    assert (found[0].value, found[0].limit) == (D(5000), D(5000))


def test_a_floating_loss_carried_over_the_boundary_counts_on_the_new_day_for_its_equity_base(
) -> None:
    a = Account(rules(daily_loss_base="day-start-balance"))
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    a.mark("2026-01-05T23:00:00+00:00", equity=96_500)  # 3,500: under the 4,000 warning
    found = a.roll("2026-01-06T00:00:00+00:00")
    assert brief(found) == [], "3,500 below the day-start balance is not yet 80 % of 5,000"
    assert brief(a.mark("2026-01-06T01:00:00+00:00", equity=95_000)) == [
        ("violation", "daily-loss", ns("2026-01-06T01:00:00+00:00"))]


def test_day_rollover_in_prague_starts_a_new_day_an_hour_before_utc() -> None:
    # 2026-01-14: Prague is UTC+1, so its day starts at 23:00 UTC.
    opened = "2026-01-14T08:00:00+00:00"
    prague = Account(rules(day_boundary_tz="Europe/Prague"), opened=opened)
    utc = Account(rules(day_boundary_tz="UTC"), opened=opened)
    assert next_day_start_ns(ns("2026-01-14T12:00:00+00:00"), prague.spec) == ns(
        "2026-01-14T23:00:00+00:00")
    assert next_day_start_ns(ns("2026-01-14T12:00:00+00:00"), utc.spec) == ns(
        "2026-01-15T00:00:00+00:00")
    for a in (prague, utc):
        a.fill("2026-01-14T12:00:00+00:00", lots=1)
        a.fill("2026-01-14T22:30:00+00:00", balance=97_000, lots=1)  # 3,000 lost, realized
    prague.roll("2026-01-14T23:00:00+00:00")

    assert prague.state.day == date(2026, 1, 15) and utc.state.day == date(2026, 1, 14)
    assert prague.mark("2026-01-14T23:30:00+00:00", equity=94_000) == ()
    found = utc.mark("2026-01-14T23:30:00+00:00", equity=94_000)
    assert brief(found) == [("violation", "daily-loss", ns("2026-01-14T23:30:00+00:00"))]
    assert found[0].value == D(6000)


def test_a_daily_loss_warning_is_given_once_a_day() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    assert a.mark("2026-01-05T10:00:00+00:00", equity=96_000) != ()
    assert a.mark("2026-01-05T10:01:00+00:00", equity=95_800) == ()
    a.mark("2026-01-05T23:00:00+00:00", equity=100_000)
    a.roll("2026-01-06T00:00:00+00:00")
    assert brief(a.mark("2026-01-06T10:00:00+00:00", equity=96_000)) == [
        ("warning", "daily-loss", ns("2026-01-06T10:00:00+00:00"))]


# Maximum loss ----------------------------------------------------------------------------------


def test_static_max_loss_breaches_at_the_floor_under_the_starting_balance() -> None:
    a = Account(rules(daily_loss_limit_pct=D(10), max_loss_pct=D(10)))
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    a.mark("2026-01-05T12:00:00+00:00", equity=120_000)  # a high-water mark does not matter
    found = a.mark("2026-01-05T13:00:00+00:00", equity=90_000)
    assert [(v.kind, v.rule) for v in found] == [("violation", "daily-loss"),
                                                 ("violation", "max-loss")]
    assert (found[1].value, found[1].limit) == (D(10_000), D(10_000))


def test_trailing_drawdown_locks_at_the_initial_balance() -> None:
    spec = dict(daily_loss_limit_pct=D(5), max_loss_pct=D(5), max_loss_mode="trailing")
    locked = Account(rules(**spec))
    unlocked = Account(rules(**spec, max_loss_trailing_lock=False))
    for a in (locked, unlocked):
        a.fill("2026-01-05T09:00:00+00:00", lots=1)
        a.mark("2026-01-05T10:00:00+00:00", equity=103_000)  # floor 98,000
        a.mark("2026-01-05T11:00:00+00:00", equity=107_000)  # floor 102,000, locked: 100,000

    found = unlocked.mark("2026-01-05T12:00:00+00:00", equity=102_000)
    assert ("violation", "max-loss") in [(v.kind, v.rule) for v in found]
    assert [(v.kind, v.rule) for v in locked.mark("2026-01-05T12:00:00+00:00",
                                                  equity=102_000)] == [], \
        "locked: 102,000 is 2,000 above the floor (and today's loss is under 80 % of 5,000)"
    locked.roll("2026-01-06T00:00:00+00:00")  # a new day, so only the maximum loss speaks
    warned = locked.mark("2026-01-06T09:00:00+00:00", equity=100_900)
    assert [(v.kind, v.rule, v.value, v.limit) for v in warned if v.rule == "max-loss"] == [
        ("warning", "max-loss", D(4100), D(5000))]
    found = locked.mark("2026-01-06T10:00:00+00:00", equity=100_000)
    assert [(v.kind, v.rule, v.at_ns, v.headroom) for v in found if v.rule == "max-loss"] == [
        ("violation", "max-loss", ns("2026-01-06T10:00:00+00:00"), D(0))]


def test_trailing_drawdown_follows_the_high_water_mark_below_the_lock() -> None:
    a = Account(rules(daily_loss_limit_pct=D(5), max_loss_pct=D(5), max_loss_mode="trailing"))
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    a.mark("2026-01-05T10:00:00+00:00", equity=103_000)
    a.roll("2026-01-06T00:00:00+00:00")
    found = a.mark("2026-01-06T10:00:00+00:00", equity=98_000)
    assert [(v.kind, v.rule, v.value) for v in found] == [("violation", "max-loss", D(5000))]


# Profit target, minimum days, consistency --------------------------------------------------------


def test_target_after_the_minimum_days_passes_once_flat() -> None:
    a = Account(rules(profit_target_pct=D(8), min_trading_days=3))
    a.fill("2026-01-05T09:00:00+00:00", balance=109_000, lots=0)  # target on day 1
    a.roll("2026-01-06T00:00:00+00:00")
    a.fill("2026-01-06T09:00:00+00:00", lots=1)
    a.roll("2026-01-07T00:00:00+00:00")
    assert a.fill("2026-01-07T09:00:00+00:00", lots=2) == (), "not flat: no pass yet"
    found = a.fill("2026-01-07T10:00:00+00:00", lots=0, balance=109_050)
    assert brief(found) == [("passed", "profit-target", ns("2026-01-07T10:00:00+00:00"))]
    assert (found[0].value, found[0].limit, found[0].headroom) == (D(9050), D(8000), D(-1050))
    assert dict(found[0].inputs)["trading_days"] == "3"
    assert a.fill("2026-01-07T11:00:00+00:00", lots=0, balance=111_000) == ()


def test_a_consistency_breach_on_the_day_the_target_is_reached_withholds_the_pass() -> None:
    a = Account(rules(profit_target_pct=D(8), consistency_limit_pct=D(40)))
    a.fill("2026-01-05T09:00:00+00:00", balance=101_000, lots=0)
    a.roll("2026-01-06T00:00:00+00:00")
    a.fill("2026-01-06T09:00:00+00:00", balance=102_000, lots=0)
    a.roll("2026-01-07T00:00:00+00:00")
    found = a.fill("2026-01-07T15:00:00+00:00", balance=108_000, lots=0)  # best day 6,000

    assert brief(found) == [("withheld", "consistency", ns("2026-01-07T15:00:00+00:00"))]
    assert (found[0].value, found[0].limit, found[0].headroom) == (D(6000), D(3200), D(-2800))
    assert a.fill("2026-01-07T16:00:00+00:00", balance=108_100, lots=0) == (), "once a day"
    a.roll("2026-01-08T00:00:00+00:00")
    a.fill("2026-01-08T09:00:00+00:00", balance=111_100, lots=0)  # total 11,100: still > 40 %
    a.roll("2026-01-09T00:00:00+00:00")
    found = a.fill("2026-01-09T09:00:00+00:00", balance=115_100, lots=0)  # 6,100 <= 6,040? no
    assert brief(found) == [("withheld", "consistency", ns("2026-01-09T09:00:00+00:00"))]
    found = a.fill("2026-01-09T10:00:00+00:00", balance=115_250, lots=0)  # 6,100 <= 6,100
    assert brief(found) == [("passed", "profit-target", ns("2026-01-09T10:00:00+00:00"))]



def test_a_close_that_reaches_the_target_but_breaches_the_daily_loss_fails_and_never_passes(
) -> None:
    # The day starts with 15,000 floating profit; closing at +9,000 reaches the 8 % target but
    # gives back 6,000 of a day-start equity of 115,000 (limit 5 %: 5,750).
    a = Account(rules(profit_target_pct=D(8), daily_loss_base="day-start-equity"))
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    a.mark("2026-01-05T20:00:00+00:00", equity=115_000)
    a.roll("2026-01-06T00:00:00+00:00")
    a.roll("2026-01-07T00:00:00+00:00")
    found = a.fill("2026-01-07T09:00:00+00:00", balance=109_000, lots=0)
    assert [(v.kind, v.rule, v.value, v.limit) for v in found] == [
        ("violation", "daily-loss", D(6000), D(5750))]
    assert not a.state.passed and a.state.failed

# Maximum trading period ------------------------------------------------------------------------


def test_the_trading_period_ends_at_the_boundary_max_duration_days_after_the_start_day() -> None:
    a = Account(rules(profit_target_pct=D(8), max_duration_days=10))
    warned = violated = None
    for offset in range(1, 11):
        at = f"2026-01-{5 + offset:02d}T00:00:00+00:00"
        found = a.roll(at)
        if offset == 8:
            warned = found
        if offset == 10:
            violated = found
    assert brief(warned or ()) == [("warning", "max-duration", ns("2026-01-13T00:00:00+00:00"))]
    assert brief(violated or ()) == [
        ("violation", "max-duration", ns("2026-01-15T00:00:00+00:00"))]
    assert violated is not None and (violated[0].value, violated[0].limit) == (D(10), D(10))


# Risk per trade, open lots and exposure -------------------------------------------------------


def test_risk_per_trade_refuses_an_order_without_a_stop_and_one_risking_too_much() -> None:
    a = Account(rules(max_risk_per_trade_pct=D(1)))  # 1,000 of 100,000
    no_stop = a.order("2026-01-05T09:00:00+00:00", quantity=2, entry=500, stop=None)
    assert brief(no_stop) == [("refused", "risk-per-trade", ns("2026-01-05T09:00:00+00:00"))]
    assert no_stop[0].value is None and no_stop[0].limit == D(1000)
    assert a.order("2026-01-05T09:00:00+00:00", quantity=2, entry=1000, stop=500) == (), \
        "exactly 1,000 at risk is allowed"
    found = a.order("2026-01-05T09:00:00+00:00", quantity=2, entry=1000, stop=D("499.99"))
    assert [(v.rule, v.value, v.limit, v.headroom) for v in found] == [
        ("risk-per-trade", D("1000.02"), D(1000), D("-0.02"))]
    short = a.order("2026-01-05T09:00:00+00:00", quantity=2, entry=1000, stop=D("1500.01"))
    assert [v.value for v in short] == [D("1000.02")], "a sell's stop is above the entry"
    assert a.state.sequence == 0, "an order is checked, never folded"


def test_open_lots_and_exposure_refuse_an_order_that_would_exceed_them() -> None:
    a = Account(rules(max_open_lots=D(5), max_open_exposure_pct=D(200)))
    assert a.order("2026-01-05T09:00:00+00:00", quantity=5, entry=40_000, stop=None) == ()
    found = a.order("2026-01-05T09:00:00+00:00", quantity=6, entry=40_000, stop=None)
    assert [(v.rule, v.value, v.limit) for v in found] == [
        ("max-open-lots", D(6), D(5)), ("max-open-exposure", D(240_000), D(200_000))]
    a.fill("2026-01-05T09:00:00+00:00", lots=5, exposure=200_000)
    assert a.order("2026-01-05T09:30:00+00:00", quantity=1, entry=40_000, stop=None,
                   lots_after=4, exposure_after=160_000) == (), "reducing is always allowed"


def test_a_fill_beyond_the_open_lots_is_a_violation_and_near_it_a_warning() -> None:
    a = Account(rules(max_open_lots=D(5)))
    assert brief(a.fill("2026-01-05T09:00:00+00:00", lots=4)) == [
        ("warning", "max-open-lots", ns("2026-01-05T09:00:00+00:00"))]
    assert brief(a.fill("2026-01-05T09:01:00+00:00", lots=6)) == [
        ("violation", "max-open-lots", ns("2026-01-05T09:01:00+00:00"))]


# Weekend and news holding ----------------------------------------------------------------------


def test_a_position_held_when_fridays_trading_day_ends_breaches_no_weekend_holding() -> None:
    a = Account(rules(no_weekend_holding=True), opened="2026-01-08T08:00:00+00:00")  # Thu
    a.fill("2026-01-08T09:00:00+00:00", lots=1)
    assert a.roll("2026-01-09T00:00:00+00:00") == (), "Thursday's end: allowed"
    assert brief(a.roll("2026-01-10T00:00:00+00:00")) == [
        ("violation", "weekend-holding", ns("2026-01-10T00:00:00+00:00"))]


def test_a_new_york_17_00_day_named_by_its_end_is_judged_when_friday_ends_at_17_00() -> None:
    spec = rules(no_weekend_holding=True, day_boundary_tz="America/New_York",
                 day_boundary_time="17:00")
    assert next_day_start_ns(ns("2026-01-09T12:00:00+00:00"), spec) == ns(
        "2026-01-09T22:00:00+00:00"), "Friday's session ends at 17:00 EST"
    flat, holding = (Account(spec, opened="2026-01-08T15:00:00+00:00") for _ in range(2))
    for a in (flat, holding):
        assert a.state.day == date(2026, 1, 8), "Thursday 10:00 in New York"
        assert a.roll("2026-01-08T22:00:00+00:00") == ()  # Thursday 17:00: Friday's session
        assert a.state.day == date(2026, 1, 9)
        a.fill("2026-01-09T15:00:00+00:00", lots=1)
    flat.fill("2026-01-09T21:00:00+00:00", lots=0)

    assert flat.roll("2026-01-09T22:00:00+00:00") == ()
    assert brief(holding.roll("2026-01-09T22:00:00+00:00")) == [
        ("violation", "weekend-holding", ns("2026-01-09T22:00:00+00:00"))]
    assert flat.state.day == date(2026, 1, 10)


def test_a_rollover_to_a_day_not_after_the_current_one_changes_no_day() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    assert a.roll_to(date(2026, 1, 5), "2026-01-05T10:00:00+00:00") == ()
    assert a.state.day == date(2026, 1, 5) and a.state.traded_today


def test_holding_an_instrument_through_its_flagged_news_is_a_breach() -> None:
    a = Account(rules(no_news_holding=True))
    a.fill("2026-01-05T09:00:00+00:00", lots=1, held=frozenset({"BTC-USD"}))
    assert a.news("2026-01-05T09:30:00+00:00", "ETH-USD") == ()
    found = a.news("2026-01-05T10:00:00+00:00", "BTC-USD")
    assert brief(found) == [("violation", "news-holding", ns("2026-01-05T10:00:00+00:00"))]
    assert found[0].value == D(1)


def test_news_holding_is_off_by_default() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    assert a.news("2026-01-05T10:00:00+00:00", "BTC-USD") == ()


# Once only -------------------------------------------------------------------------------------


def test_a_violated_phase_gives_nothing_more_and_a_duplicate_input_nothing_at_all() -> None:
    a = Account(rules())
    a.fill("2026-01-05T09:00:00+00:00", lots=1)
    a.mark("2026-01-05T10:00:00+00:00", equity=94_000)
    assert a.state.violated == {"daily-loss"}
    assert a.mark("2026-01-05T11:00:00+00:00", equity=80_000) == ()
    assert a.state.equity == D(80_000), "inputs still fold after the verdict"
    count = len(a.log)
    from core.domain.rules import Marked, step
    again = Marked(2, ns("2026-01-05T10:00:00+00:00"), D(100_000), D(94_000), D(1), D(0),
                   frozenset({"BTC-USD"}))
    state, found = step(a.spec, a.state, again)
    assert found == () and state is a.state and len(a.log) == count


def test_each_verdict_hashes_its_inputs_and_the_same_inputs_hash_the_same() -> None:
    def run(equity: int) -> tuple[str, ...]:
        a = Account(rules())
        a.fill("2026-01-05T09:00:00+00:00", lots=1)
        return tuple(v.digest for v in a.mark("2026-01-05T10:00:00+00:00", equity=equity))

    assert run(94_000) == run(94_000)
    assert run(94_000) != run(93_999)
    assert len(run(94_000)[0]) == 64
    other = Account(rules(daily_loss_limit_pct=D(6)))
    other.fill("2026-01-05T09:00:00+00:00", lots=1)
    assert tuple(v.digest for v in other.mark("2026-01-05T10:00:00+00:00",
                                              equity=94_000)) != run(94_000)


def test_a_decimal_of_another_scale_hashes_as_the_same_number() -> None:
    a, b = Account(rules()), Account(rules())
    for acc, eq in ((a, Decimal("94000")), (b, Decimal("94000.000"))):
        acc.fill("2026-01-05T09:00:00+00:00", lots=1)
        acc.mark("2026-01-05T10:00:00+00:00", equity=eq)
    assert [v.digest for v in a.log] == [v.digest for v in b.log]
