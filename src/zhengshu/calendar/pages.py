"""Admin pages of the holiday schedule: the years and their source, one year as a month grid with its days."""

from __future__ import annotations

import calendar as std_calendar
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from zhengshu.calendar import service as calendar_service
from zhengshu.calendar.api import parse_upload
from zhengshu.calendar.schemas import HolidayDayIn, HolidayYearIn, HolidayYearRead
from zhengshu.core import clock
from zhengshu.core.errors import FieldError, ValidationFailed, ZhengshuError
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, redirect
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {"official": "正式", "library": "内置", "provisional": "暂定"}
STATUS_NOTES = {
    "official": "已导入国务院办公厅公布的节假日安排",
    "library": "采用内置的官方节假日数据（chinese-calendar）",
    "provisional": "暂定，待国务院办公厅公布后导入",
}
STATUS_BADGES = {"official": "ok", "library": "ok", "provisional": "provisional"}
KIND_LABELS = {"holiday": "放假", "workday": "调休上班"}
WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")
Year = Annotated[int, Path(ge=calendar_service.MIN_YEAR, le=calendar_service.MAX_YEAR)]


def _ensure(actor: Actor) -> None:
    authz.ensure(actor, "calendar.manage")


def _months(year_read: HolidayYearRead) -> list[dict[str, Any]]:
    """Twelve month grids (weeks of 7 cells, Monday first); each cell knows how the day is treated."""
    by_date = {d.date: d for d in year_read.days}
    cal = std_calendar.Calendar(firstweekday=0)
    months = []
    for month in range(1, 13):
        weeks = []
        for week in cal.monthdatescalendar(year_read.year, month):
            cells = []
            for day in week:
                entry = by_date.get(day)
                if day.month != month:
                    kind = "outside"
                elif entry is not None:
                    kind = entry.kind
                elif day.weekday() >= 5:
                    kind = "weekend"
                else:
                    kind = "working"
                cells.append({"date": day, "kind": kind, "name": entry.name if entry else ""})
            weeks.append(cells)
        months.append({"month": month, "weeks": weeks})
    return months


def _year_page(
    request: Request,
    session: DbSession,
    year: int,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    import_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    year_read = calendar_service.get_year(session, year=year)
    return render(
        request,
        "calendar/year.html",
        {
            "year": year_read,
            "months": _months(year_read),
            "weekdays": WEEKDAYS,
            "status_label": STATUS_LABELS[year_read.status],
            "status_note": STATUS_NOTES[year_read.status],
            "status_badge": STATUS_BADGES[year_read.status],
            "kind_labels": KIND_LABELS,
            "form": form or {},
            "errors": errors or {},
            "import_errors": import_errors or {},
            "holiday_count": sum(1 for d in year_read.days if d.kind == "holiday"),
            "workday_count": sum(1 for d in year_read.days if d.kind == "workday"),
        },
        status_code=status_code,
    )


@router.get("/admin/calendar", response_class=HTMLResponse)
def years_page(request: Request, session: DbSession, actor: CurrentActor, year: int | None = None) -> Response:
    _ensure(actor)
    if year is not None and calendar_service.MIN_YEAR <= year <= calendar_service.MAX_YEAR:
        return redirect(f"/admin/calendar/{year}")
    years = calendar_service.list_years(session)
    return render(
        request,
        "calendar/years.html",
        {
            "years": years,
            "status_labels": STATUS_LABELS,
            "status_notes": STATUS_NOTES,
            "status_badges": STATUS_BADGES,
            "this_year": clock.today().year,
            "min_year": calendar_service.MIN_YEAR,
            "max_year": calendar_service.MAX_YEAR,
        },
    )


@router.get("/admin/calendar/{year}", response_class=HTMLResponse)
def year_page(
    request: Request, session: DbSession, actor: CurrentActor, year: Year, date: dt.date | None = None
) -> Response:
    _ensure(actor)
    form: dict[str, Any] = {}
    if date is not None:
        day = next((d for d in calendar_service.get_year(session, year=year).days if d.date == date), None)
        form = {
            "date": date.isoformat(),
            "kind": day.kind if day else "holiday",
            "name": day.name if day else "",
        }
    return _year_page(request, session, year, form=form)


@router.post("/admin/calendar/{year}/days", dependencies=[Csrf])
def save_day(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    year: Year,
    date: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    _ensure(actor)
    form = {"date": date.strip(), "kind": kind, "name": name.strip()}
    try:
        day_in = HolidayDayIn.model_validate(form)
        day = calendar_service.upsert_day(session, actor=actor, year=year, day_in=day_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _year_page(request, session, year, form=form, errors=form_errors(exc), status_code=422)
    flash(
        request,
        f"已保存 {day.date.isoformat()}：{KIND_LABELS[day.kind]}（{day.name}）。相关办理期限将按新的安排重新计算。",
        link=f"/admin/calendar/{year}?date={day.date.isoformat()}",
    )
    return redirect(f"/admin/calendar/{year}")


@router.post("/admin/calendar/{year}/days/{day}/delete", dependencies=[Csrf])
def delete_day(request: Request, session: DbSession, actor: CurrentActor, year: Year, day: dt.date) -> Response:
    _ensure(actor)
    calendar_service.delete_day(session, actor=actor, day=day)
    flash(
        request,
        f"已删除 {day.isoformat()} 的安排，该日按平常的周一至周五上班计算。",
        link=f"/admin/calendar/{year}",
    )
    return redirect(f"/admin/calendar/{year}")


@router.post("/admin/calendar/{year}/import", dependencies=[Csrf])
def import_year(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    year: Year,
    file: Annotated[UploadFile | None, File()] = None,
    source: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    _ensure(actor)
    try:
        if file is None or not file.filename:
            raise ValidationFailed("请选择文件", errors=[FieldError("file", "请选择要导入的 CSV 文件")])
        days = parse_upload(file)
        year_in = HolidayYearIn(year=year, source=source.strip(), note=note.strip(), days=days)
        row = calendar_service.import_schedule(session, actor=actor, year_in=year_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _year_page(request, session, year, import_errors=form_errors(exc), status_code=422)
    flash(
        request,
        f"已导入 {year} 年节假日安排，共 {len(row.days)} 天。相关办理期限将按新的安排重新计算。",
        link=f"/admin/calendar/{year}",
    )
    return redirect(f"/admin/calendar/{year}")


@router.post("/admin/calendar/{year}/delete", dependencies=[Csrf])
def delete_year(request: Request, session: DbSession, actor: CurrentActor, year: Year) -> Response:
    _ensure(actor)
    calendar_service.delete_year(session, actor=actor, year=year)
    status = STATUS_LABELS[clock.year_status(year)]
    flash(request, f"已删除 {year} 年导入的安排，该年恢复使用{status}日历。", link=f"/admin/calendar/{year}")
    return redirect(f"/admin/calendar/{year}")
