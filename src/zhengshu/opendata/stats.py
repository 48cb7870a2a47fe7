"""Usage statistics of the open-data portal (views, downloads, API calls, bytes) per day, per dataset and per
department, read from the portal core's daily counters (``OpenDatasetUsage``), plus the public side's own
figures (registered accounts, API keys, conditional-open applications) for the supervision reports.

The figures are aggregates of public activity and are public themselves (the portals of 浙江 and 上海 publish
them too); nothing here reveals data content, and only published datasets are named.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.core.errors import ValidationFailed
from zhengshu.core.timeutil import local_today
from zhengshu.opendata.models import OpenDataset, OpenDatasetUsage
from zhengshu.opendata.public_models import OpenAccessApplication, PublicAccount, PublicApiKey
from zhengshu.org.models import Organization

MAX_SPAN_DAYS = 3 * 366
METRICS = ("views", "downloads", "api_calls", "bytes")
METRIC_LABELS = {"views": "浏览", "downloads": "下载", "api_calls": "接口调用", "bytes": "下载流量（字节）"}


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period(*, days: int | None = None, start: date | None = None, end: date | None = None) -> Period:
    """The last ``days`` days up to today, or an explicit range; checked so a query stays bounded."""
    end = end or local_today()
    if start is None:
        span = 30 if days is None else days
        if span < 1 or span > MAX_SPAN_DAYS:
            raise ValidationFailed(f"统计天数应在 1 到 {MAX_SPAN_DAYS} 之间", code="opendata.bad_period")
        try:
            start = end - timedelta(days=span - 1)
        except OverflowError:  # an end in the first days of year 1: no date that early
            raise ValidationFailed("统计区间超出可表示的日期范围", code="opendata.bad_period") from None
    if start > end:
        raise ValidationFailed("开始日期不能晚于结束日期", code="opendata.bad_period")
    if (end - start).days + 1 > MAX_SPAN_DAYS:
        raise ValidationFailed(f"统计区间最长 {MAX_SPAN_DAYS} 天", code="opendata.bad_period")
    return Period(start, end)


def _sums() -> list[Any]:
    return [func.coalesce(func.sum(getattr(OpenDatasetUsage, m)), 0).label(m) for m in METRICS]


def _published_ids() -> Any:
    return select(OpenDataset.id).where(OpenDataset.status == "published")


def daily(
    session: Session, *, span: Period, dataset_id: str | None = None, provider_org_id: str | None = None
) -> list[dict[str, Any]]:
    """One row per day of the period (days without activity are zeros), oldest first."""
    stmt = (
        select(OpenDatasetUsage.day, *_sums())
        .where(OpenDatasetUsage.day >= span.start, OpenDatasetUsage.day <= span.end)
        .where(OpenDatasetUsage.dataset_id.in_(_published_ids()))
        .group_by(OpenDatasetUsage.day)
    )
    if dataset_id:
        stmt = stmt.where(OpenDatasetUsage.dataset_id == dataset_id)
    if provider_org_id:
        stmt = stmt.where(OpenDatasetUsage.provider_org_id == provider_org_id)
    found = {row.day: row for row in session.execute(stmt)}
    out = []
    for n in range(span.days):
        day = span.start + timedelta(days=n)
        row = found.get(day)
        out.append({"day": day, **{m: int(getattr(row, m)) if row is not None else 0 for m in METRICS}})
    return out


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {m: sum(int(r[m]) for r in rows) for m in METRICS}


def by_department(session: Session, *, span: Period) -> list[dict[str, Any]]:
    """Each providing department: open datasets, and its usage in the period (most viewed first)."""
    datasets = dict(
        session.execute(
            select(OpenDataset.provider_org_id, func.count())
            .where(OpenDataset.status == "published")
            .group_by(OpenDataset.provider_org_id)
        ).all()
    )
    usage = {
        row.provider_org_id: row
        for row in session.execute(
            select(OpenDatasetUsage.provider_org_id, *_sums())
            .where(OpenDatasetUsage.day >= span.start, OpenDatasetUsage.day <= span.end)
            .where(OpenDatasetUsage.dataset_id.in_(_published_ids()))
            .group_by(OpenDatasetUsage.provider_org_id)
        )
    }
    org_ids = set(datasets) | set(usage)
    names = dict(session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(org_ids))).all())
    rows = []
    for org_id in org_ids:
        u = usage.get(org_id)
        rows.append(
            {
                "org_id": org_id,
                "org_name": names.get(org_id, ""),
                "datasets": int(datasets.get(org_id, 0)),
                **{m: int(getattr(u, m)) if u is not None else 0 for m in METRICS},
            }
        )
    rows.sort(key=lambda r: (-r["views"], -r["downloads"], r["org_name"]))
    return rows


def top_datasets(
    session: Session,
    *,
    span: Period,
    metric: str = "views",
    provider_org_id: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    if metric not in METRICS:
        raise ValidationFailed(f"排序指标应为 {'、'.join(METRICS)} 之一", code="opendata.bad_metric")
    if limit < 1 or limit > 200:
        raise ValidationFailed("条数应在 1 到 200 之间", code="opendata.bad_limit")
    sums = _sums()
    order = next(s for s in sums if s.name == metric)
    stmt = (
        select(OpenDataset.id, OpenDataset.title, OpenDataset.slug, Organization.name.label("org_name"), *sums)
        .join(OpenDatasetUsage, OpenDatasetUsage.dataset_id == OpenDataset.id)
        .join(Organization, Organization.id == OpenDataset.provider_org_id)
        .where(OpenDataset.status == "published")
        .where(OpenDatasetUsage.day >= span.start, OpenDatasetUsage.day <= span.end)
        .group_by(OpenDataset.id, OpenDataset.title, OpenDataset.slug, Organization.name)
        .order_by(order.desc(), OpenDataset.title)
        .limit(limit)
    )
    if provider_org_id:
        stmt = stmt.where(OpenDataset.provider_org_id == provider_org_id)
    return [
        {
            "dataset_id": row.id,
            "title": row.title,
            "slug": row.slug,
            "org_name": row.org_name,
            **{m: int(getattr(row, m)) for m in METRICS},
        }
        for row in session.execute(stmt)
    ]


def overview(session: Session) -> dict[str, int]:
    """Portal-wide counts for the dashboard and the supervision reports."""
    published = OpenDataset.status == "published"
    return {
        "datasets": session.scalar(select(func.count()).select_from(OpenDataset).where(published)) or 0,
        "conditional_datasets": session.scalar(
            select(func.count()).select_from(OpenDataset).where(published, OpenDataset.opening_type == "有条件开放")
        )
        or 0,
        "departments": session.scalar(select(func.count(func.distinct(OpenDataset.provider_org_id))).where(published))
        or 0,
        "rows": int(session.scalar(select(func.coalesce(func.sum(OpenDataset.row_count), 0)).where(published)) or 0),
        "views": int(session.scalar(select(func.coalesce(func.sum(OpenDataset.view_count), 0)).where(published)) or 0),
        "downloads": int(
            session.scalar(select(func.coalesce(func.sum(OpenDataset.download_count), 0)).where(published)) or 0
        ),
        "api_calls": int(
            session.scalar(select(func.coalesce(func.sum(OpenDataset.api_call_count), 0)).where(published)) or 0
        ),
        "accounts": session.scalar(select(func.count()).select_from(PublicAccount)) or 0,
        "company_accounts": session.scalar(
            select(func.count()).select_from(PublicAccount).where(PublicAccount.kind == "company")
        )
        or 0,
        "api_keys": session.scalar(
            select(func.count()).select_from(PublicApiKey).where(PublicApiKey.revoked.is_(False))
        )
        or 0,
        "applications": session.scalar(select(func.count()).select_from(OpenAccessApplication)) or 0,
        "applications_approved": session.scalar(
            select(func.count()).select_from(OpenAccessApplication).where(OpenAccessApplication.state == "approved")
        )
        or 0,
    }


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()} for r in rows]
