"""The administrator-maintained holiday table: one row per officially announced year and its days."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, utcnow

KIND_HOLIDAY = "holiday"  # 休
KIND_WORKDAY = "workday"  # 班: a swapped Saturday/Sunday that is a working day


class HolidayYear(Base):
    """A year whose schedule was imported from the State Council's notice (国办发明电)."""

    __tablename__ = "holiday_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(String(64), default="")

    days: Mapped[list[HolidayDay]] = relationship(
        back_populates="holiday_year",
        cascade="all, delete-orphan",
        order_by="HolidayDay.date",
    )


class HolidayDay(Base):
    __tablename__ = "holiday_day"

    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    year: Mapped[int] = mapped_column(ForeignKey("holiday_year.year", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # holiday | workday
    name: Mapped[str] = mapped_column(String(64))

    holiday_year: Mapped[HolidayYear] = relationship(back_populates="days")
