"""Schedules of sync jobs: cron expressions read in Beijing time, optionally on working days only."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from zhengshu.core import clock
from zhengshu.core.timeutil import SHANGHAI

# a working-day schedule skips at most a long holiday plus weekends; a year of tries is plenty
_MAX_TRIES = 800


def is_valid(expression: str) -> bool:
    return bool(expression.strip()) and croniter.is_valid(expression.strip())


def next_run_after(expression: str, after: datetime, *, working_days_only: bool = False) -> datetime | None:
    """The first time strictly after ``after`` the expression fires (UTC), or None if it never does."""
    local = after.astimezone(SHANGHAI)
    it = croniter(expression.strip(), local)
    for _ in range(_MAX_TRIES):
        candidate: datetime = it.get_next(datetime)
        if candidate.tzinfo is None:
            candidate = candidate.replace(tzinfo=SHANGHAI)
        if not working_days_only or clock.is_working_day(candidate.astimezone(SHANGHAI).date()):
            return candidate.astimezone(UTC)
    return None


def describe(expression: str | None, working_days_only: bool) -> str:
    if not expression:
        return "手动运行"
    return f"{expression}（北京时间{'，仅工作日' if working_days_only else ''}）"
