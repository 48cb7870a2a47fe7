"""The working-day clock against the chinese_calendar data, the lunar calendar and installed schedules."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import chinese_calendar
import pytest
from chinese_calendar.constants import Holiday
from hypothesis import given, settings
from hypothesis import strategies as st
from lunar_python import Solar

from zhengshu.core import clock

D = dt.date
LIB_CHINESE = {h.value: h.chinese for h in Holiday}


def library_knows(year: int) -> bool:
    try:
        chinese_calendar.is_workday(D(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# The first year past the library's data: 2027 with chinese_calendar 1.11, later with newer releases.
FUTURE = next(y for y in range(2027, 2100) if not library_knows(y))


@pytest.fixture(autouse=True)
def _clean_clock() -> Iterator[None]:
    clock.clear_schedules()
    yield
    clock.clear_schedules()


def reference_add(start: dt.date, n: int) -> dt.date:
    """Day-by-day walk over chinese_calendar, independent of the clock's bisect tables."""
    d = start
    if n == 0:
        while not chinese_calendar.is_workday(d):
            d += dt.timedelta(days=1)
        return d
    while n:
        d += dt.timedelta(days=1)
        if chinese_calendar.is_workday(d):
            n -= 1
    return d


# --- library years ----------------------------------------------------------------------------------------


def test_library_calendar_matches_chinese_calendar_day_by_day() -> None:
    d = D(2025, 1, 1)
    while d <= D(2026, 12, 31):
        assert clock.is_working_day(d) is chinese_calendar.is_workday(d), d
        d += dt.timedelta(days=1)
    assert clock.year_status(2026) == "library"
    assert not clock.is_provisional(D(2026, 5, 1))


def test_2026_national_day() -> None:
    # From the library's data: 1–7 Oct off, Sun 20 Sep and Sat 10 Oct worked.
    for day in range(1, 8):
        assert chinese_calendar.is_holiday(D(2026, 10, day))
    assert D(2026, 10, 10) in chinese_calendar.workdays
    assert not clock.is_working_day(D(2026, 10, 1))
    assert clock.holiday_name(D(2026, 10, 3)) == "国庆节"
    # Wed 30 Sep + 5: Thu 8, Fri 9, Sat 10 (swapped), Mon 12, Tue 13.
    assert clock.add_working_days(D(2026, 9, 30), 5) == D(2026, 10, 13)
    assert clock.add_working_days(D(2026, 9, 30), 5) == reference_add(D(2026, 9, 30), 5)
    assert clock.add_working_days(D(2026, 9, 30), 1) == D(2026, 10, 8)
    assert clock.add_working_days(D(2026, 10, 1), 0) == D(2026, 10, 8)
    assert clock.working_days_between(D(2026, 9, 30), D(2026, 10, 13)) == 5
    assert clock.working_days_between(D(2026, 10, 13), D(2026, 9, 30)) == -5
    assert clock.working_days_between(D(2026, 10, 1), D(2026, 10, 7)) == 0


def test_swapped_weekend_workday_2026() -> None:
    saturday = D(2026, 10, 10)
    assert saturday.weekday() == 5
    assert clock.is_working_day(saturday)
    assert clock.holiday_name(saturday) is None
    assert clock.is_working_day(D(2026, 9, 20))  # a Sunday worked for National Day
    # Friday + 1 is normally Monday, but here the swapped Saturday comes first.
    assert clock.add_working_days(D(2026, 10, 9), 1) == saturday
    assert clock.add_working_days(D(2026, 10, 10), 0) == saturday


def test_ordinary_week() -> None:
    assert clock.add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 9)  # Friday + 1 = Monday
    assert clock.add_working_days(D(2026, 3, 7), 0) == D(2026, 3, 9)  # Saturday, n=0 → Monday
    assert clock.add_working_days(D(2026, 3, 9), 0) == D(2026, 3, 9)
    assert clock.add_working_days(D(2026, 3, 2), 10) == D(2026, 3, 16)
    with pytest.raises(ValueError):
        clock.add_working_days(D(2026, 3, 2), -1)


def test_datetime_is_taken_in_shanghai_time() -> None:
    # 17:00 UTC on 30 Sep is 01:00 on 1 Oct in Shanghai: a holiday.
    late = dt.datetime(2026, 9, 30, 17, 0, tzinfo=dt.UTC)
    early = dt.datetime(2026, 9, 30, 15, 0, tzinfo=dt.UTC)
    assert clock.to_local_date(late) == D(2026, 10, 1)
    assert clock.add_working_days(late, 0) == D(2026, 10, 8)
    assert clock.add_working_days(early, 0) == D(2026, 9, 30)
    assert clock.add_working_days(early, 1) == D(2026, 10, 8)


@settings(max_examples=200, deadline=None)
@given(start=st.dates(min_value=D(2024, 1, 1), max_value=D(2026, 11, 30)), n=st.integers(0, 30))
def test_add_working_days_agrees_with_reference(start: dt.date, n: int) -> None:
    result = clock.add_working_days(start, n)
    assert result.year > 2026 or result == reference_add(start, n)
    assert clock.is_working_day(result)
    if n > 0:
        assert clock.working_days_between(start, result) == n
        assert clock.working_days_between(start, result - dt.timedelta(days=1)) == n - 1


# --- provisional years ------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2025, 2026])
def test_provisional_rules_agree_with_library(year: int) -> None:
    statutory = clock.statutory_holidays(year)
    assert len(statutory) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3 days under the 2024 rules
    for day, name in statutory.items():
        assert chinese_calendar.is_holiday(day), day
        _on_holiday, lib_name = chinese_calendar.get_holiday_detail(day)
        assert LIB_CHINESE[lib_name] == name, day


def test_chuxi_can_be_the_29th() -> None:
    # 2025's 除夕 is 腊月廿九 (the twelfth month had 29 days).
    eve = D(2025, 1, 28)
    lunar = Solar.fromYmd(eve.year, eve.month, eve.day).getLunar()
    assert (lunar.getMonth(), lunar.getDay()) == (12, 29)
    assert clock.provisional_schedule(2025).holidays[eve] == "春节"


def test_future_year_is_provisional() -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(D(FUTURE, 1, 4))
    assert clock.year_status(FUTURE) == "provisional"
    assert clock.is_provisional(D(FUTURE, 3, 1))
    info = clock.due_info(D(FUTURE, 3, 1))
    assert info == {"date": D(FUTURE, 3, 1), "provisional": True}
    assert clock.due_info(D(2026, 3, 2)) == {"date": D(2026, 3, 2), "provisional": False}
    schedule = clock.provisional_schedule(FUTURE)
    assert not schedule.official
    assert schedule.workdays == {}
    # Weekends are off; National Day 1–3 Oct and New Year are off.
    assert all(not clock.is_working_day(D(FUTURE, 10, d)) for d in (1, 2, 3))
    assert not clock.is_working_day(D(FUTURE, 1, 1))
    assert clock.holiday_name(D(FUTURE, 5, 2)) == "劳动节"


def test_2027_spring_festival_is_computed_from_the_lunar_calendar() -> None:
    if FUTURE != 2027:
        pytest.skip("chinese_calendar now knows 2027")
    spring = [d for d, name in clock.provisional_schedule(2027).holidays.items() if name == "春节"]
    assert spring == [D(2027, 2, 5), D(2027, 2, 6), D(2027, 2, 7), D(2027, 2, 8)]
    first = Solar.fromYmd(2027, 2, 6).getLunar()
    assert (first.getMonth(), first.getDay()) == (1, 1)
    assert clock.holiday_name(D(2027, 6, 9)) == "端午"
    assert clock.holiday_name(D(2027, 9, 15)) == "中秋"
    assert clock.holiday_name(D(2027, 4, 5)) == "清明"
    # Thu 4 Feb + 1: Fri 5 (除夕), weekend, Mon 8 (初三) are off → Tue 9.
    assert clock.add_working_days(D(2027, 2, 4), 1) == D(2027, 2, 9)
    # No swapped workdays: Sat 20 Feb 2027 stays a day off.
    assert not clock.is_working_day(D(2027, 2, 20))


def test_year_boundary_into_provisional_year() -> None:
    last = D(FUTURE - 1, 12, 31)
    result = clock.add_working_days(last, 1)
    expected = D(FUTURE, 1, 2)
    while expected.weekday() >= 5:
        expected += dt.timedelta(days=1)
    assert result == expected
    assert clock.working_days_between(last, result) == 1


# --- installed official schedules -------------------------------------------------------------------------


def test_installed_schedule_takes_priority_and_uninstall_restores() -> None:
    assert clock.add_working_days(D(2027, 2, 4), 1) == D(2027, 2, 9)
    schedule = clock.YearSchedule(
        year=2027,
        holidays={D(2027, 2, 5) + dt.timedelta(days=i): "春节" for i in range(7)},
        workdays={D(2027, 2, 20): "春节"},
        official=True,
    )
    clock.install_schedule(schedule)
    assert clock.year_status(2027) == "official"
    assert not clock.is_provisional(D(2027, 2, 4))
    assert clock.add_working_days(D(2027, 2, 4), 1) == D(2027, 2, 12)
    assert clock.is_working_day(D(2027, 2, 20))
    # Days the official notice does not list are ordinary: 1 Oct 2027 is a Friday at work.
    assert clock.is_working_day(D(2027, 10, 1))
    assert clock.installed_schedule(2027) is schedule
    clock.uninstall_schedule(2027)
    assert clock.year_status(2027) == ("provisional" if FUTURE == 2027 else "library")
    assert not clock.is_working_day(D(2027, 10, 1))


def test_installed_schedule_overrides_library_year() -> None:
    clock.install_schedule(clock.YearSchedule(year=2026, holidays={D(2026, 3, 10): "测试"}, official=True))
    assert clock.year_status(2026) == "official"
    assert not clock.is_working_day(D(2026, 3, 10))
    assert clock.is_working_day(D(2026, 10, 1))  # the library's data no longer applies
    clock.clear_schedules()
    assert clock.year_status(2026) == "library"
    assert not clock.is_working_day(D(2026, 10, 1))


def test_many_calls_are_cheap() -> None:
    clock.add_working_days(D(2026, 1, 1), 1)  # warm the cache
    begin = time.perf_counter()
    for i in range(5000):
        clock.add_working_days(D(2026, 1, 1) + dt.timedelta(days=i % 700), 30)
    assert time.perf_counter() - begin < 2.0
