"""Times are stored in UTC and shown in Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from zhengshu.core.db import utcnow

SHANGHAI = ZoneInfo("Asia/Shanghai")


def to_local(moment: datetime) -> datetime:
    return moment.astimezone(SHANGHAI)


def local_today() -> date:
    return to_local(utcnow()).date()


def format_date_cn(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"
