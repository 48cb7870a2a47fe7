"""The working-day clock: every due date in the platform is computed here.

Sources, in priority order, for one calendar year:

1. an official schedule an administrator imported (installed with :func:`install_schedule`);
2. the ``chinese_calendar`` library, for the years it ships data for;
3. a *provisional* calendar: weekends plus the statutory holidays under the current rules (《全国年节及纪念日
   放假办法》, 2024 revision, in force 2025), without swapped workdays, since those are only known once the
   State Council publishes the year's notice.

This module is pure (no database); ``zhengshu.calendar.service`` loads the stored schedules into it.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar.constants import Holiday as _LibHoliday
from lunar_python import Lunar, Solar

TZ = ZoneInfo("Asia/Shanghai")

YearStatus = Literal["official", "library", "provisional"]

# Holiday names, the same words chinese_calendar uses, so every source reads alike.
NEW_YEAR = "元旦"
SPRING_FESTIVAL = "春节"
QINGMING = "清明"
LABOUR_DAY = "劳动节"
DRAGON_BOAT = "端午"
MID_AUTUMN = "中秋"
NATIONAL_DAY = "国庆节"

_LIB_NAMES: dict[str, str] = {h.value: h.chinese for h in _LibHoliday}


@dataclass(frozen=True)
class YearSchedule:
    """One year's exceptions to the Monday–Friday week.

    ``holidays``: days off (including the weekend days inside a holiday period) → holiday name;
    ``workdays``: swapped Saturdays/Sundays that are working days → name of the holiday they pay for.
    """

    year: int
    holidays: dict[dt.date, str] = field(default_factory=dict)
    workdays: dict[dt.date, str] = field(default_factory=dict)
    official: bool = False

    def is_working_day(self, d: dt.date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays


@dataclass(frozen=True)
class _YearData:
    status: YearStatus
    schedule: YearSchedule
    working: list[int]  # sorted ordinals of the year's working days, for bisect


_lock = threading.RLock()
_installed: dict[int, YearSchedule] = {}
_cache: dict[int, _YearData] = {}


# --- registry -------------------------------------------------------------------------------------------


def install_schedule(schedule: YearSchedule) -> None:
    """Make ``schedule`` the official calendar for its year (replaces any installed before)."""
    with _lock:
        _installed[schedule.year] = schedule
        _cache.pop(schedule.year, None)


def uninstall_schedule(year: int) -> None:
    """Drop the official schedule of ``year``; the library or provisional calendar applies again."""
    with _lock:
        _installed.pop(year, None)
        _cache.pop(year, None)


def clear_schedules() -> None:
    with _lock:
        _installed.clear()
        _cache.clear()


def installed_schedule(year: int) -> YearSchedule | None:
    return _installed.get(year)


def installed_years() -> list[int]:
    return sorted(_installed)


# --- sources --------------------------------------------------------------------------------------------


def _library_knows(year: int) -> bool:
    # Ask the library rather than hard-coding its range: a newer release ships newer years.
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def library_schedule(year: int) -> YearSchedule | None:
    """The ``chinese_calendar`` data for ``year``, or None when the library has none."""
    if not _library_knows(year):
        return None
    holidays = {d: _LIB_NAMES.get(v, v) for d, v in chinese_calendar.holidays.items() if d.year == year}
    workdays = {d: _LIB_NAMES.get(v, v) for d, v in chinese_calendar.workdays.items() if d.year == year}
    return YearSchedule(year=year, holidays=holidays, workdays=workdays, official=True)


def _solar_to_date(s: Solar) -> dt.date:
    return dt.date(s.getYear(), s.getMonth(), s.getDay())


def _lunar_date(year: int, month: int, day: int) -> dt.date:
    return _solar_to_date(Lunar.fromYmd(year, month, day).getSolar())


def statutory_holidays(year: int) -> dict[dt.date, str]:
    """The statutory days off of ``year`` under the 2024 rules (the days themselves, no bridging)."""
    days: dict[dt.date, str] = {dt.date(year, 1, 1): NEW_YEAR}
    # 除夕 is the last day of the twelfth lunar month (29th or 30th): simply the day before 正月初一.
    new_year = _lunar_date(year, 1, 1)
    for offset in range(-1, 3):
        days[new_year + dt.timedelta(days=offset)] = SPRING_FESTIVAL
    qingming = Solar.fromYmd(year, 4, 1).getLunar().getJieQiTable()["清明"]
    days[_solar_to_date(qingming)] = QINGMING
    days[dt.date(year, 5, 1)] = LABOUR_DAY
    days[dt.date(year, 5, 2)] = LABOUR_DAY
    days[_lunar_date(year, 5, 5)] = DRAGON_BOAT
    days[_lunar_date(year, 8, 15)] = MID_AUTUMN
    for day in (1, 2, 3):
        days[dt.date(year, 10, day)] = NATIONAL_DAY
    return days


def provisional_schedule(year: int) -> YearSchedule:
    """Weekends plus the statutory holidays; no swapped workdays (they are unknown until announced)."""
    holidays = {d: name for d, name in statutory_holidays(year).items() if d.year == year}
    return YearSchedule(year=year, holidays=dict(sorted(holidays.items())), workdays={}, official=False)


def _build(year: int) -> _YearData:
    status: YearStatus
    schedule = _installed.get(year)
    if schedule is not None:
        status = "official"
    else:
        schedule = library_schedule(year)
        if schedule is not None:
            status = "library"
        else:
            schedule, status = provisional_schedule(year), "provisional"
    first = dt.date(year, 1, 1).toordinal()
    last = dt.date(year, 12, 31).toordinal()
    working = [o for o in range(first, last + 1) if schedule.is_working_day(dt.date.fromordinal(o))]
    return _YearData(status=status, schedule=schedule, working=working)


def _year(year: int) -> _YearData:
    data = _cache.get(year)
    if data is None:
        with _lock:
            data = _cache.get(year)
            if data is None:
                data = _build(year)
                _cache[year] = data
    return data


# --- queries --------------------------------------------------------------------------------------------


def to_local_date(value: dt.date | dt.datetime) -> dt.date:
    """A datetime becomes its Asia/Shanghai date (a naive one is taken as Shanghai wall time)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(TZ)
        return value.date()
    return value


def today() -> dt.date:
    return dt.datetime.now(TZ).date()


def schedule_for(year: int) -> YearSchedule:
    """The schedule in effect for ``year``, whichever source it comes from."""
    return _year(year).schedule


def year_status(year: int) -> YearStatus:
    return _year(year).status


def is_provisional(d: dt.date | dt.datetime) -> bool:
    return _year(to_local_date(d).year).status == "provisional"


def is_working_day(d: dt.date | dt.datetime) -> bool:
    d = to_local_date(d)
    return _year(d.year).schedule.is_working_day(d)


def holiday_name(d: dt.date | dt.datetime) -> str | None:
    """The holiday ``d`` belongs to, or None (ordinary weekends and swapped workdays give None)."""
    d = to_local_date(d)
    return _year(d.year).schedule.holidays.get(d)


def add_working_days(start: dt.date | dt.datetime, n: int) -> dt.date:
    """The ``n``-th working day after ``start`` (``start`` itself not counted).

    ``n == 0`` gives ``start`` when it is a working day, else the next working day.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    ordinal = to_local_date(start).toordinal()
    year = dt.date.fromordinal(ordinal).year
    working = _year(year).working
    if n == 0:
        idx, n = bisect_left(working, ordinal), 1
    else:
        idx = bisect_right(working, ordinal)
    while idx + n > len(working):
        n -= len(working) - idx
        year += 1
        working = _year(year).working
        idx = 0
    return dt.date.fromordinal(working[idx + n - 1])


def working_days_between(start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> int:
    """Working days in ``(start, end]``; negative when ``end`` is before ``start``."""
    lo, hi = to_local_date(start).toordinal(), to_local_date(end).toordinal()
    sign = 1
    if hi < lo:
        lo, hi, sign = hi, lo, -1
    total = 0
    for year in range(dt.date.fromordinal(lo).year, dt.date.fromordinal(hi).year + 1):
        working = _year(year).working
        total += bisect_right(working, hi) - bisect_right(working, lo)
    return sign * total


def due_info(d: dt.date | dt.datetime) -> dict[str, Any]:
    """A due date with its reliability: ``provisional`` is True when the year's calendar is not yet known."""
    d = to_local_date(d)
    return {"date": d, "provisional": is_provisional(d)}
