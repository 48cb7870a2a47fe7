"""The holiday schedule table: administrators import each year's official notice, the clock follows it.

Every change re-installs the year in :mod:`zhengshu.core.clock` at once (so due dates computed later in the
same transaction see it) and records ``calendar.schedule_changed``; should the transaction roll back, the
clock is put back as it was.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from zhengshu.calendar.models import KIND_HOLIDAY, KIND_WORKDAY, HolidayDay, HolidayYear
from zhengshu.calendar.schemas import (
    HolidayDayIn,
    HolidayDayRead,
    HolidayYearIn,
    HolidayYearRead,
    HolidayYearSummary,
)
from zhengshu.core import clock
from zhengshu.core.db import after_transaction, utcnow
from zhengshu.core.errors import ErrorCollector, Forbidden, NotFound
from zhengshu.core.events import emit
from zhengshu.security.actor import Actor

EVENT_SCHEDULE_CHANGED = "calendar.schedule_changed"
MIN_YEAR, MAX_YEAR = 2000, 2100
CSV_HEADER = ("date", "kind", "name")
_CSV_HEADER_ZH = ("日期", "类型", "名称")
_KIND_WORDS = {"holiday": KIND_HOLIDAY, "休": KIND_HOLIDAY, "workday": KIND_WORKDAY, "班": KIND_WORKDAY}
_DATE_RE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_STATUS_LABELS = {"official": "正式", "library": "内置", "provisional": "暂定"}


def _ensure_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("只有平台管理员可以维护节假日安排", code="calendar.forbidden")


# --- validation -----------------------------------------------------------------------------------------


def _check_year(year: int, errors: ErrorCollector, field_name: str = "year") -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        errors.add(field_name, f"年份应在 {MIN_YEAR} 至 {MAX_YEAR} 之间")


def _check_day(year: int, day: HolidayDayIn, errors: ErrorCollector, prefix: str) -> None:
    if day.date.year != year:
        errors.add(f"{prefix}date", f"日期 {day.date.isoformat()} 不在 {year} 年内")
    if day.kind == KIND_WORKDAY and day.date.weekday() < 5:
        errors.add(f"{prefix}kind", f"{day.date.isoformat()} 不是周六或周日，不能设为调休上班日")
    if not day.name.strip():
        errors.add(f"{prefix}name", "请填写节日名称")


def _validate_year_in(year_in: HolidayYearIn) -> None:
    errors = ErrorCollector()
    _check_year(year_in.year, errors)
    if not year_in.days:
        errors.add("days", "请至少填写一天")
    first_index: dict[dt.date, int] = {}
    for i, day in enumerate(year_in.days):
        _check_day(year_in.year, day, errors, f"days[{i}].")
        if day.date in first_index:
            errors.add(f"days[{i}].date", f"日期 {day.date.isoformat()} 与第 {first_index[day.date] + 1} 条重复")
        else:
            first_index[day.date] = i
    errors.raise_if_any("节假日安排未通过校验")


# --- keeping the clock in step --------------------------------------------------------------------------


def _schedule_from_row(row: HolidayYear) -> clock.YearSchedule:
    return clock.YearSchedule(
        year=row.year,
        holidays={d.date: d.name for d in row.days if d.kind == KIND_HOLIDAY},
        workdays={d.date: d.name for d in row.days if d.kind == KIND_WORKDAY},
        official=True,
    )


def _set_clock(session: Session, year: int, schedule: clock.YearSchedule | None) -> None:
    """Install (or, with None, uninstall) ``year`` now; a rollback (of the transaction, or of the savepoint the
    change was made in) puts back what was installed before."""
    previous = clock.installed_schedule(year)

    def undo() -> None:
        if previous is None:
            clock.uninstall_schedule(year)
        else:
            clock.install_schedule(previous)

    after_transaction(session, rolled_back=undo)
    if schedule is None:
        clock.uninstall_schedule(year)
    else:
        clock.install_schedule(schedule)


def _changed(session: Session, row: HolidayYear | None, year: int) -> None:
    _set_clock(session, year, _schedule_from_row(row) if row is not None else None)
    emit(session, EVENT_SCHEDULE_CHANGED, year=year)


# --- writes ---------------------------------------------------------------------------------------------


def import_schedule(session: Session, *, actor: Actor, year_in: HolidayYearIn) -> HolidayYear:
    """Replace the whole official schedule of ``year_in.year`` with ``year_in.days``."""
    _ensure_admin(actor)
    _validate_year_in(year_in)
    row = session.get(HolidayYear, year_in.year)
    if row is None:
        row = HolidayYear(year=year_in.year)
        session.add(row)
    else:
        # Delete the old days first: a re-imported date keeps its primary key.
        row.days.clear()
        session.flush()
    row.source = year_in.source.strip()
    row.note = year_in.note.strip()
    row.imported_at = utcnow()
    row.imported_by = actor.username
    row.days = [
        HolidayDay(date=d.date, year=year_in.year, kind=d.kind, name=d.name.strip())
        for d in sorted(year_in.days, key=lambda d: d.date)
    ]
    session.flush()
    _changed(session, row, row.year)
    return row


def _seeded_year(session: Session, *, actor: Actor, year: int) -> HolidayYear:
    """The stored year, or a new one seeded with the calendar currently in effect for it."""
    row = session.get(HolidayYear, year)
    if row is not None:
        return row
    status = clock.year_status(year)
    schedule = clock.schedule_for(year)
    row = HolidayYear(
        year=year,
        source="",
        note=f"由{_STATUS_LABELS[status]}日历生成后修改",
        imported_at=utcnow(),
        imported_by=actor.username,
    )
    row.days = [HolidayDay(date=d, year=year, kind=KIND_HOLIDAY, name=n) for d, n in schedule.holidays.items()]
    row.days += [HolidayDay(date=d, year=year, kind=KIND_WORKDAY, name=n) for d, n in schedule.workdays.items()]
    session.add(row)
    session.flush()
    return row


def upsert_day(session: Session, *, actor: Actor, year: int, day_in: HolidayDayIn) -> HolidayDay:
    """Add or change one day. A year not stored yet starts from the calendar shown for it."""
    _ensure_admin(actor)
    errors = ErrorCollector()
    _check_year(year, errors)
    _check_day(year, day_in, errors, "")
    errors.raise_if_any()
    row = _seeded_year(session, actor=actor, year=year)
    day = next((d for d in row.days if d.date == day_in.date), None)
    if day is None:
        day = HolidayDay(date=day_in.date, year=year, kind=day_in.kind, name=day_in.name.strip())
        row.days.append(day)
    else:
        day.kind = day_in.kind
        day.name = day_in.name.strip()
    session.flush()
    _changed(session, row, year)
    return day


def delete_day(session: Session, *, actor: Actor, day: dt.date) -> None:
    _ensure_admin(actor)
    found = session.get(HolidayDay, day)
    if found is None:
        raise NotFound(f"{day.isoformat()} 不在已导入的节假日安排中", code="calendar.day_not_found")
    row = found.holiday_year
    row.days.remove(found)
    session.flush()
    _changed(session, row, row.year)


def delete_year(session: Session, *, actor: Actor, year: int) -> None:
    """Drop an imported year; the library's or the provisional calendar applies again."""
    _ensure_admin(actor)
    row = session.get(HolidayYear, year)
    if row is None:
        raise NotFound(f"{year} 年没有已导入的节假日安排", code="calendar.year_not_found")
    session.delete(row)
    session.flush()
    _changed(session, None, year)


# --- reads ----------------------------------------------------------------------------------------------


def load_schedules(session: Session) -> int:
    """Install every stored year into the clock (at start-up); the clock then mirrors the table exactly."""
    rows = session.scalars(select(HolidayYear).options(selectinload(HolidayYear.days))).all()
    clock.clear_schedules()
    for row in rows:
        clock.install_schedule(_schedule_from_row(row))
    return len(rows)


def _schedule_days(schedule: clock.YearSchedule) -> list[HolidayDayRead]:
    days = [HolidayDayRead(date=d, kind=KIND_HOLIDAY, name=n) for d, n in schedule.holidays.items()]
    days += [HolidayDayRead(date=d, kind=KIND_WORKDAY, name=n) for d, n in schedule.workdays.items()]
    return sorted(days, key=lambda d: d.date)


def get_year(session: Session, *, year: int) -> HolidayYearRead:
    """The year as stored, or else what the clock uses for it (the library's data or the computed days)."""
    row = session.get(HolidayYear, year)
    if row is not None:
        return HolidayYearRead(
            year=year,
            status="official",
            days=[HolidayDayRead.model_validate(d) for d in row.days],
            source=row.source,
            note=row.note,
            imported_at=row.imported_at,
            imported_by=row.imported_by,
        )
    return HolidayYearRead(year=year, status=clock.year_status(year), days=_schedule_days(clock.schedule_for(year)))


def list_years(session: Session) -> list[HolidayYearSummary]:
    """Stored years plus the current and the next year (the ones whose due dates matter now)."""
    rows = {r.year: r for r in session.scalars(select(HolidayYear).options(selectinload(HolidayYear.days))).all()}
    this_year = clock.today().year
    summaries: list[HolidayYearSummary] = []
    for year in sorted(set(rows) | {this_year, this_year + 1}):
        row = rows.get(year)
        if row is not None:
            holidays = sum(1 for d in row.days if d.kind == KIND_HOLIDAY)
            summaries.append(
                HolidayYearSummary(
                    year=year,
                    status="official",
                    holiday_count=holidays,
                    workday_count=len(row.days) - holidays,
                    source=row.source,
                    imported_at=row.imported_at,
                    imported_by=row.imported_by,
                )
            )
        else:
            schedule = clock.schedule_for(year)
            summaries.append(
                HolidayYearSummary(
                    year=year,
                    status=clock.year_status(year),
                    holiday_count=len(schedule.holidays),
                    workday_count=len(schedule.workdays),
                )
            )
    return summaries


def export_csv(session: Session, *, year: int) -> str:
    """The year's days as the CSV that :func:`parse_schedule_csv` reads back."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for day in get_year(session, year=year).days:
        writer.writerow((day.date.isoformat(), day.kind, day.name))
    return out.getvalue()


# --- CSV ------------------------------------------------------------------------------------------------


def _parse_date(text: str) -> dt.date | None:
    text = text.strip()
    m = _DATE_RE.match(text)
    if m is None and re.fullmatch(r"\d{8}", text):
        m = re.match(r"(\d{4})(\d{2})(\d{2})", text)
    if m is None:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def parse_schedule_csv(text: str) -> list[HolidayDayIn]:
    """Read ``date,kind,name`` rows (kind: holiday/workday or 休/班).

    Errors name the line they are on: ``line[3].date``.
    """
    errors = ErrorCollector()
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header_seen = False
    days: list[HolidayDayIn] = []
    seen: dict[dt.date, int] = {}
    for cells in reader:
        line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if not header_seen:
            header_seen = True
            if tuple(c.lower() for c in cells[:3]) not in (CSV_HEADER, _CSV_HEADER_ZH) or any(cells[3:]):
                errors.add(f"line[{line}]", f"第{line}行：表头应为 date,kind,name")
                break
            continue
        if len(cells) < 3 or any(cells[3:]):
            errors.add(f"line[{line}]", f"第{line}行：应有 3 列（date,kind,name），实有 {len(cells)} 列")
            continue
        raw_date, raw_kind, name = cells[:3]
        row_errors = len(errors.errors)
        day = _parse_date(raw_date)
        if day is None:
            errors.add(f"line[{line}].date", f"第{line}行：日期“{raw_date}”格式不正确，应为 YYYY-MM-DD")
        elif day in seen:
            errors.add(f"line[{line}].date", f"第{line}行：日期 {day.isoformat()} 与第{seen[day]}行重复")
        kind = _KIND_WORDS.get(raw_kind.lower())
        if kind is None:
            errors.add(f"line[{line}].kind", f"第{line}行：类型“{raw_kind}”无效，应为 holiday/workday 或 休/班")
        if not name:
            errors.add(f"line[{line}].name", f"第{line}行：请填写节日名称")
        if len(errors.errors) > row_errors or day is None or kind is None:
            continue
        try:
            days.append(HolidayDayIn(date=day, kind=kind, name=name))  # type: ignore[arg-type]
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                errors.add(f"line[{line}].{loc}", f"第{line}行：{_pydantic_message(err)}")
            continue
        seen[day] = line
    if not header_seen:
        errors.add("line[1]", "文件为空：第1行应为表头 date,kind,name")
    elif not days and not errors.errors:
        errors.add("line[2]", "文件中没有数据行")
    errors.raise_if_any("节假日CSV文件有错误")
    return days


def _pydantic_message(err: Any) -> str:
    if err.get("type") == "string_too_long":
        return "名称过长（最多 64 个字符）"
    return "内容无效"
