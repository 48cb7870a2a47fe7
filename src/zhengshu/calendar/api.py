"""HTTP API of the holiday schedule and the working-day clock: /api/v1/calendar/…"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhengshu.calendar import service as calendar_service
from zhengshu.calendar.schemas import (
    DayKind,
    HolidayDayIn,
    HolidayDayRead,
    HolidayYearIn,
    HolidayYearRead,
    HolidayYearSummary,
)
from zhengshu.core import clock
from zhengshu.core.errors import ErrorCollector, FieldError, ValidationFailed
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, page_of

router = APIRouter(prefix="/calendar", tags=["calendar"])

MAX_CSV_BYTES = 1024 * 1024
Year = Annotated[int, Path(ge=calendar_service.MIN_YEAR, le=calendar_service.MAX_YEAR, description="年份，如 2027")]


class DayBody(BaseModel):
    kind: DayKind = Field(description="holiday（放假）或 workday（调休上班）")
    name: str = Field(max_length=64, description="节日名称，如 春节")


class DueRead(BaseModel):
    start: dt.date
    n: int
    due_on: dt.date = Field(description="第 n 个工作日")
    provisional: bool = Field(description="期间涉及尚未公布节假日安排的年份（按暂定日历计算）")


class BetweenRead(BaseModel):
    start: dt.date
    end: dt.date
    working_days: int = Field(description="(start, end] 之间的工作日数；end 早于 start 时为负数")
    provisional: bool


def _check_dates(**dates: dt.date) -> None:
    errors = ErrorCollector()
    for name, value in dates.items():
        if not calendar_service.MIN_YEAR <= value.year <= calendar_service.MAX_YEAR:
            errors.add(name, f"日期应在 {calendar_service.MIN_YEAR} 至 {calendar_service.MAX_YEAR} 年之间")
    errors.raise_if_any()


def _span_provisional(a: dt.date, b: dt.date) -> bool:
    lo, hi = sorted((a.year, b.year))
    return any(clock.year_status(y) == "provisional" for y in range(lo, hi + 1))


@router.get("/years", response_model=Page[HolidayYearSummary], summary="各年度节假日安排及其来源")
def list_years(
    session: DbSession, actor: CurrentActor, limit: Limit = 20, cursor: Cursor = None, count: Count = False
) -> dict[str, Any]:
    return page_of(calendar_service.list_years(session), limit=limit, cursor=cursor, count=count)


@router.get("/years/{year}", response_model=HolidayYearRead, summary="某年的放假与调休日")
def get_year(session: DbSession, actor: CurrentActor, year: Year) -> Any:
    return calendar_service.get_year(session, year=year)


@router.put("/years/{year}", response_model=HolidayYearRead, summary="导入某年的正式安排（整年替换，管理员）")
def put_year(session: DbSession, actor: CurrentActor, year: Year, year_in: HolidayYearIn) -> Any:
    if year_in.year != year:
        errors = ErrorCollector()
        errors.add("year", f"请求体中的年份 {year_in.year} 与地址中的 {year} 不一致")
        errors.raise_if_any()
    calendar_service.import_schedule(session, actor=actor, year_in=year_in)
    return calendar_service.get_year(session, year=year)


@router.post(
    "/years/{year}/import",
    response_model=HolidayYearRead,
    summary="上传 CSV（date,kind,name）导入某年的正式安排（管理员）",
)
def import_year(
    session: DbSession,
    actor: CurrentActor,
    year: Year,
    file: Annotated[UploadFile, File()],
    source: Annotated[str, Form(max_length=500, description="依据，如 国办发明电〔2026〕1号")] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    days = parse_upload(file)
    year_in = HolidayYearIn(year=year, source=source, note=note, days=days)
    calendar_service.import_schedule(session, actor=actor, year_in=year_in)
    return calendar_service.get_year(session, year=year)


def parse_upload(file: UploadFile) -> list[HolidayDayIn]:
    """The uploaded CSV's days (UTF-8, with or without BOM, or GB18030 as saved by Excel)."""
    content = file.file.read(MAX_CSV_BYTES + 1)
    if len(content) > MAX_CSV_BYTES:
        raise ValidationFailed("CSV 文件超过 1 MB", code="calendar.csv_too_large")
    for encoding in ("utf-8", "gb18030"):
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        return calendar_service.parse_schedule_csv(text)
    raise ValidationFailed(
        "节假日CSV文件有错误", errors=[FieldError("file", "无法识别文件编码，请另存为 UTF-8 编码的 CSV")]
    )


@router.get("/years/{year}/export", summary="导出某年的安排为 CSV")
def export_year(session: DbSession, actor: CurrentActor, year: Year) -> Response:
    body = calendar_service.export_csv(session, year=year)
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''holidays-{year}.csv"},
    )


@router.put("/days/{date}", response_model=HolidayDayRead, summary="新增或修改一天（管理员）")
def put_day(session: DbSession, actor: CurrentActor, date: dt.date, body: DayBody) -> Any:
    day_in = HolidayDayIn(date=date, kind=body.kind, name=body.name)
    return calendar_service.upsert_day(session, actor=actor, year=date.year, day_in=day_in)


@router.delete("/days/{date}", status_code=204, summary="删除已导入安排中的一天（管理员）")
def delete_day(session: DbSession, actor: CurrentActor, date: dt.date) -> Response:
    calendar_service.delete_day(session, actor=actor, day=date)
    return Response(status_code=204)


@router.get("/working-days", response_model=DueRead, summary="某日之后第 n 个工作日（办理期限）")
def working_days(
    actor: CurrentActor,
    start: dt.date,
    n: Annotated[int, Query(ge=0, le=3650, description="工作日数；0 表示当天或其后第一个工作日")],
) -> DueRead:
    _check_dates(start=start)
    due = clock.add_working_days(start, n)
    return DueRead(start=start, n=n, due_on=due, provisional=_span_provisional(start, due))


@router.get("/working-days/between", response_model=BetweenRead, summary="两日之间的工作日数")
def working_days_between(actor: CurrentActor, start: dt.date, end: dt.date) -> BetweenRead:
    _check_dates(start=start, end=end)
    return BetweenRead(
        start=start,
        end=end,
        working_days=clock.working_days_between(start, end),
        provisional=_span_provisional(start, end),
    )
