"""Trading days under a configured zone and boundary: named as docs/rules.md says, every
instant inside the day it is given, DST days 23 or 25 hours long."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.rules import day_start_ns, next_day_start_ns, trading_day
from tests.unit.core.rules.support import ns, rules

HOUR = 3_600_000_000_000


def test_midnight_in_prague_is_23_00_utc_in_winter_and_22_00_in_summer() -> None:
    prague = rules(day_boundary_tz="Europe/Prague")
    assert trading_day(ns("2026-01-14T22:59:59+00:00"), prague) == date(2026, 1, 14)
    assert trading_day(ns("2026-01-14T23:00:00+00:00"), prague) == date(2026, 1, 15)
    assert day_start_ns(date(2026, 7, 1), prague) == ns("2026-06-30T22:00:00+00:00")
    assert trading_day(ns("2026-01-14T23:00:00+00:00"), rules()) == date(2026, 1, 14)


def test_a_17_00_new_york_day_is_named_after_the_date_it_ends_on() -> None:
    ny = rules(day_boundary_tz="America/New_York", day_boundary_time="17:00")
    assert trading_day(ns("2026-01-11T22:00:00+00:00"), ny) == date(2026, 1, 12)  # Sun 17:00
    assert trading_day(ns("2026-01-12T21:59:59+00:00"), ny) == date(2026, 1, 12)
    assert day_start_ns(date(2026, 1, 12), ny) == ns("2026-01-11T22:00:00+00:00")


def test_the_days_around_a_dst_change_are_23_and_25_hours_long() -> None:
    prague = rules(day_boundary_tz="Europe/Prague")
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    assert day_start_ns(spring + timedelta(days=1), prague) - day_start_ns(spring, prague) \
        == 23 * HOUR
    assert day_start_ns(autumn + timedelta(days=1), prague) - day_start_ns(autumn, prague) \
        == 25 * HOUR


@settings(max_examples=200, deadline=None)
@given(st.integers(ns("2025-01-01T00:00:00+00:00"), ns("2028-01-01T00:00:00+00:00")),
       st.sampled_from(["UTC", "Europe/Prague", "America/New_York", "Asia/Tokyo"]),
       st.sampled_from(["00:00", "07:30", "12:00", "17:00", "22:00"]))
def test_every_instant_lies_in_the_day_it_is_given(at: int, zone: str, boundary: str) -> None:
    spec = rules(day_boundary_tz=zone, day_boundary_time=boundary)
    day = trading_day(at, spec)
    assert day_start_ns(day, spec) <= at < next_day_start_ns(at, spec)
    assert next_day_start_ns(at, spec) == day_start_ns(day + timedelta(days=1), spec)
