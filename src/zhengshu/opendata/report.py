"""问题反馈: a member of the public reports a problem with an open dataset; it becomes a data objection routed to
the provider through :func:`zhengshu.objection.service.raise_system_objection` (the reporter is not a
government user, so the platform raises it and records the reporter's contact in the description)."""

from __future__ import annotations

from functools import lru_cache

from limits import RateLimitItemPerHour
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.errors import FieldError, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.objection import service as objection_service
from zhengshu.objection.schemas import KIND_LABELS
from zhengshu.opendata import accounts
from zhengshu.opendata.access import QuotaExceeded, published_dataset, quota_storage_uri
from zhengshu.opendata.public_models import ProblemReport, PublicAccount
from zhengshu.opendata.public_schemas import ReportIn

SOURCE = "opendata.public_report"
REPORTS_PER_HOUR = 10  # per source address: enough for a person, not for a flood


@lru_cache(maxsize=4)
def _limiter(uri: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(uri))


def submit(
    session: Session,
    *,
    report_in: ReportIn,
    account: PublicAccount | None,
    source_ip: str | None,
    settings: Settings | None = None,
) -> ProblemReport:
    settings = settings or get_settings()
    dataset = published_dataset(session, ref=report_in.dataset_id)
    item = None
    if report_in.item:
        item = next((i for i in dataset.items if i.column_name == report_in.item), None)
        if item is None:
            raise ValidationFailed(
                "该数据集没有这个信息项",
                code="opendata.report_invalid",
                errors=[FieldError("item", "请选择数据集中的信息项")],
            )
    if account is None and not report_in.contact:
        raise ValidationFailed(
            "未登录时请留下联系方式，以便提供部门答复",
            code="opendata.report_invalid",
            errors=[FieldError("contact", "请填写邮箱或电话")],
        )
    limiter = _limiter(quota_storage_uri(settings))
    if not limiter.hit(RateLimitItemPerHour(REPORTS_PER_HOUR), "zhengshu-open-report", source_ip or "unknown"):
        raise QuotaExceeded("提交过于频繁，请稍后再试", code="opendata.report_rate_limited")
    who = accounts.label(account) if account is not None else (report_in.contact_name or "匿名公众")
    contact = report_in.contact or (account.email or account.phone if account is not None else "")
    description = (
        f"开放门户公众反馈（{KIND_LABELS.get(report_in.kind, report_in.kind)}）\n"
        f"数据集：{dataset.title}\n"
        + (f"信息项：{item.name}\n" if item is not None else "")
        + f"反馈人：{who}；联系方式：{contact or '未留'}\n\n{report_in.description}"
    )
    objection = objection_service.raise_system_objection(
        session,
        source=SOURCE,
        entry_id=dataset.entry_id,
        kind=report_in.kind,
        description=description[:4000],
        item_key=item.item_key if item is not None else None,
        settings=settings,
    )
    report = ProblemReport(
        dataset_id=dataset.id,
        account_id=account.id if account is not None else None,
        kind=report_in.kind,
        description=report_in.description,
        contact_name=report_in.contact_name or (account.display_name if account is not None else ""),
        contact=contact,
        objection_id=objection.id,
        source_ip=source_ip,
    )
    session.add(report)
    session.flush()
    emit(session, "opendata.problem_reported", report_id=report.id, dataset_id=dataset.id, objection_id=objection.id)
    return report
