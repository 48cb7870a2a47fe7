"""API shapes of the holiday schedule table."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DayKind = Literal["holiday", "workday"]
YearStatus = Literal["official", "library", "provisional"]


class HolidayDayIn(BaseModel):
    date: dt.date
    kind: DayKind
    name: str = Field(max_length=64)


class HolidayDayRead(HolidayDayIn):
    model_config = ConfigDict(from_attributes=True)


class HolidayYearIn(BaseModel):
    year: int
    source: str = ""
    note: str = ""
    days: list[HolidayDayIn] = Field(default_factory=list)


class HolidayYearRead(BaseModel):
    """One year as the admin page shows it; for non-official years the days are the library's or computed."""

    year: int
    status: YearStatus
    days: list[HolidayDayRead]
    source: str = ""
    note: str = ""
    imported_at: dt.datetime | None = None
    imported_by: str | None = None


class HolidayYearSummary(BaseModel):
    year: int
    status: YearStatus
    holiday_count: int
    workday_count: int
    source: str = ""
    imported_at: dt.datetime | None = None
    imported_by: str | None = None
