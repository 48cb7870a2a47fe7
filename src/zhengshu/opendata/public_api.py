"""HTTP API of the open portal's public side, under /api/v1/open: registered accounts and API keys, conditional-
open applications (the applicant's and the provider's side), the showcase, the responsibility lists, problem
reports and usage statistics.

The router is public (mounted without the government login): routes for registered users take the account from
an API key or the portal's login session; routes for government users take ``CurrentActor`` explicitly.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from zhengshu.core.errors import NotFound, Unauthenticated
from zhengshu.core.timeutil import local_today
from zhengshu.opendata import access, accounts, conditional, report, responsibility, showcase, stats
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.opendata.public_schemas import (
    AccessApplicationIn,
    AccessApplicationRead,
    AccountIn,
    AccountRead,
    ApiKeyIn,
    ApiKeyIssued,
    ApiKeyRead,
    DecisionIn,
    GrantRead,
    ModerateIn,
    QuotaIn,
    QuotaRead,
    ReportIn,
    ResponsibilityIn,
    ShowcaseIn,
    ShowcaseRead,
)
from zhengshu.web.deps import CurrentActor, DbSession, client_ip
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

public_api_router = APIRouter(prefix="/api/v1/open", tags=["opendata-public"])
Year = Annotated[int | None, Query(ge=2000, le=2100, description="年度，默认今年")]


def current_account(request: Request, session: DbSession) -> PublicAccount:
    account = access.account_from_request(session, request)
    if account is None:
        raise Unauthenticated("请登录开放平台账号，或在请求头 X-API-Key 中提供 API Key", code="opendata.login_required")
    if getattr(request.state, "actor", None) is None:
        # the audit record of the request names the public account
        request.state.actor = conditional.account_actor(account, source_ip=client_ip(request), via="api")
    return account


CurrentAccount = Annotated[PublicAccount, Depends(current_account)]


# ---- accounts and keys ------------------------------------------------------------------------------------


class AccountMe(AccountRead):
    quota: QuotaRead


def _quota(account: PublicAccount, request: Request) -> QuotaRead:
    status = access.quota_status(account, key=access.api_key_of(account), settings=request.app.state.settings)
    return QuotaRead(limit=status.limit, used=status.used, remaining=status.remaining)


@public_api_router.post(
    "/accounts", response_model=AccountRead, status_code=201, summary="注册开放平台账号（个人或法人）"
)
def register_account(session: DbSession, account_in: AccountIn) -> Any:
    return accounts.register(session, account_in=account_in)


@public_api_router.get("/accounts/me", response_model=AccountMe, summary="当前账号与今日剩余调用额度")
def me(request: Request, account: CurrentAccount) -> Any:
    return AccountMe.model_validate(
        {**AccountRead.model_validate(account).model_dump(), "quota": _quota(account, request)}
    )


class KeyRequest(ApiKeyIn):
    username: str | None = Field(default=None, max_length=60, description="未登录时：登录名")
    password: str | None = Field(default=None, max_length=200, description="未登录时：密码")


@public_api_router.post(
    "/accounts/me/keys", response_model=ApiKeyIssued, status_code=201, summary="签发 API Key（明文仅返回这一次）"
)
def issue_key(request: Request, session: DbSession, key_in: KeyRequest) -> Any:
    if key_in.username and key_in.password:
        account = accounts.authenticate(session, username=key_in.username, password=key_in.password)
    else:
        account = current_account(request, session)
    raw, key = accounts.issue_key(session, account=account, name=key_in.name, expires_days=key_in.expires_days)
    return ApiKeyIssued.model_validate({**ApiKeyRead.model_validate(key).model_dump(), "key": raw})


@public_api_router.get("/accounts/me/keys", response_model=list[ApiKeyRead], summary="我的 API Key")
def list_keys(session: DbSession, account: CurrentAccount) -> Any:
    return accounts.list_keys(session, account=account)


@public_api_router.post("/accounts/me/keys/{key_id}/revoke", response_model=ApiKeyRead, summary="吊销 API Key")
def revoke_key(session: DbSession, account: CurrentAccount, key_id: str) -> Any:
    return accounts.revoke_key(session, account=account, key_id=key_id)


@public_api_router.get("/accounts/me/grants", response_model=list[GrantRead], summary="我获得的有条件开放授权")
def my_grants(session: DbSession, account: CurrentAccount) -> Any:
    return conditional.grants_for_account(session, account=account)


@public_api_router.get(
    "/accounts/me/applications", response_model=list[AccessApplicationRead], summary="我的有条件开放申请"
)
def my_applications(session: DbSession, account: CurrentAccount) -> Any:
    return [conditional.to_read(session, a) for a in conditional.list_for_account(session, account=account)]


# ---- conditional-open applications: the applicant ---------------------------------------------------------


@public_api_router.post(
    "/applications", response_model=AccessApplicationRead, status_code=201, summary="申请使用有条件开放数据集"
)
def apply(request: Request, session: DbSession, account: CurrentAccount, application_in: AccessApplicationIn) -> Any:
    app = conditional.apply(
        session, account=account, application_in=application_in, settings=request.app.state.settings
    )
    return conditional.to_read(session, app)


@public_api_router.get("/applications/{application_id}", response_model=AccessApplicationRead, summary="我的申请详情")
def my_application(session: DbSession, account: CurrentAccount, application_id: str) -> Any:
    return conditional.to_read(
        session, conditional.get_for_account(session, account=account, application_id=application_id)
    )


@public_api_router.post(
    "/applications/{application_id}/withdraw", response_model=AccessApplicationRead, summary="撤回申请"
)
def withdraw(session: DbSession, account: CurrentAccount, application_id: str) -> Any:
    return conditional.to_read(session, conditional.withdraw(session, account=account, application_id=application_id))


# ---- conditional-open applications: the provider (government users) ---------------------------------------


@public_api_router.get(
    "/access-applications", response_model=Page[AccessApplicationRead], summary="有条件开放申请（提供部门审核）"
)
def list_access_applications(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    state: str | None = None,
    dataset_id: str | None = None,
) -> Any:
    stmt = conditional.list_query(actor, state=state, dataset_id=dataset_id)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [conditional.to_read(session, a) for a in rows], "next_cursor": next_cursor, "total": total}


@public_api_router.get(
    "/access-applications/{application_id}", response_model=AccessApplicationRead, summary="有条件开放申请详情"
)
def get_access_application(session: DbSession, actor: CurrentActor, application_id: str) -> Any:
    return conditional.to_read(session, conditional.get(session, actor=actor, application_id=application_id))


@public_api_router.post(
    "/access-applications/{application_id}/approve", response_model=AccessApplicationRead, summary="同意（生成授权）"
)
def approve(
    request: Request, session: DbSession, actor: CurrentActor, application_id: str, decision_in: DecisionIn
) -> Any:
    app = conditional.approve(
        session,
        actor=actor,
        application_id=application_id,
        decision_in=decision_in,
        settings=request.app.state.settings,
    )
    return conditional.to_read(session, app)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="理由（必填）")


@public_api_router.post(
    "/access-applications/{application_id}/refuse", response_model=AccessApplicationRead, summary="不同意（须说明理由）"
)
def refuse(session: DbSession, actor: CurrentActor, application_id: str, reason_in: ReasonIn) -> Any:
    app = conditional.refuse(session, actor=actor, application_id=application_id, reason=reason_in.reason)
    return conditional.to_read(session, app)


@public_api_router.post("/access-grants/{grant_id}/revoke", response_model=GrantRead, summary="撤销有条件开放授权")
def revoke_grant(session: DbSession, actor: CurrentActor, grant_id: str, reason_in: ReasonIn) -> Any:
    return conditional.revoke_grant(session, actor=actor, grant_id=grant_id, reason=reason_in.reason)


# ---- account administration -------------------------------------------------------------------------------


@public_api_router.get("/admin/accounts", response_model=list[AccountRead], summary="开放平台注册账号（管理员）")
def admin_accounts(session: DbSession, actor: CurrentActor, q: str | None = None) -> Any:
    return accounts.list_accounts(session, actor=actor, q=q)


@public_api_router.post(
    "/admin/accounts/{account_id}/quota", response_model=AccountRead, summary="设置账号（或其某个 Key）的每日额度"
)
def set_quota(
    session: DbSession, actor: CurrentActor, account_id: str, quota_in: QuotaIn, key_id: str | None = None
) -> Any:
    return accounts.set_quota(
        session, actor=actor, account_id=account_id, daily_quota=quota_in.daily_quota, key_id=key_id
    )


@public_api_router.post("/admin/accounts/{account_id}/{verb}", response_model=AccountRead, summary="停用或启用账号")
def set_active(session: DbSession, actor: CurrentActor, account_id: str, verb: str) -> Any:
    if verb not in ("disable", "enable"):
        raise NotFound("不支持的操作", code="http.404")
    return accounts.set_active(session, actor=actor, account_id=account_id, active=verb == "enable")


# ---- showcase ---------------------------------------------------------------------------------------------


@public_api_router.get("/showcase", response_model=Page[ShowcaseRead], summary="优秀应用（已审核展示）")
def list_showcase(session: DbSession, limit: Limit = 20, cursor: Cursor = None, count: Count = False) -> Any:
    rows, next_cursor, total = paginate(session, showcase.public_query(), limit=limit, cursor=cursor, count=count)
    return {"items": [showcase.to_read(session, a) for a in rows], "next_cursor": next_cursor, "total": total}


@public_api_router.post("/showcase", response_model=ShowcaseRead, status_code=201, summary="提交优秀应用（待审核）")
def submit_showcase(request: Request, session: DbSession, account: CurrentAccount, showcase_in: ShowcaseIn) -> Any:
    app = showcase.submit(
        session, account=account, showcase_in=showcase_in, data_dir=Path(request.app.state.settings.data_dir)
    )
    return showcase.to_read(session, app)


@public_api_router.get("/showcase/moderation", response_model=Page[ShowcaseRead], summary="待审核的优秀应用")
def moderation_queue(
    session: DbSession,
    actor: CurrentActor,
    status: str | None = "pending",
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> Any:
    stmt = showcase.moderation_query(actor, status=status or None)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [showcase.to_read(session, a) for a in rows], "next_cursor": next_cursor, "total": total}


@public_api_router.get("/showcase/{showcase_id}", response_model=ShowcaseRead, summary="优秀应用详情")
def get_showcase(session: DbSession, showcase_id: str) -> Any:
    return showcase.to_read(session, showcase.get_public(session, showcase_id=showcase_id))


@public_api_router.get("/showcase/{showcase_id}/screenshot", summary="优秀应用截图")
def screenshot(request: Request, session: DbSession, showcase_id: str) -> Response:
    app = showcase.get_public(session, showcase_id=showcase_id)
    if not app.screenshot_path:
        raise NotFound("该应用没有截图", code="opendata.showcase_no_screenshot")
    path = showcase.screenshot_dir(Path(request.app.state.settings.data_dir)) / app.screenshot_path
    media = "image/png" if app.screenshot_path.endswith(".png") else "image/jpeg"
    return FileResponse(path, media_type=media)


@public_api_router.post("/showcase/{showcase_id}/{verb}", response_model=ShowcaseRead, summary="审核优秀应用")
def moderate(session: DbSession, actor: CurrentActor, showcase_id: str, verb: str, moderate_in: ModerateIn) -> Any:
    if verb == "approve":
        app = showcase.approve(session, actor=actor, showcase_id=showcase_id, reason=moderate_in.reason)
    elif verb == "reject":
        app = showcase.reject(session, actor=actor, showcase_id=showcase_id, reason=moderate_in.reason)
    else:
        raise NotFound("不支持的操作", code="http.404")
    return showcase.to_read(session, app)


# ---- responsibility lists ---------------------------------------------------------------------------------


@public_api_router.get("/responsibility", summary="年度开放责任清单及各部门完成进度")
def responsibility_progress(session: DbSession, year: Year = None) -> Any:
    return responsibility.progress(session, year=year or local_today().year)


@public_api_router.get("/responsibility.xlsx", summary="年度开放责任清单（Excel）")
def responsibility_xlsx(session: DbSession, year: Year = None) -> Response:
    data = responsibility.progress(session, year=year or local_today().year)
    name = quote(f"{data['year']}年度开放责任清单.xlsx")
    return Response(
        responsibility.to_xlsx(data),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


@public_api_router.post("/responsibility", status_code=201, summary="新增责任清单条目（数据主管部门）")
def add_responsibility(session: DbSession, actor: CurrentActor, item_in: ResponsibilityIn) -> Any:
    item = responsibility.add(session, actor=actor, item_in=item_in)
    return {"id": item.id, "year": item.year, "org_id": item.org_id, "title": item.title}


@public_api_router.delete("/responsibility/{item_id}", status_code=204, summary="删除责任清单条目")
def delete_responsibility(session: DbSession, actor: CurrentActor, item_id: str) -> Response:
    responsibility.delete(session, actor=actor, item_id=item_id)
    return Response(status_code=204)


# ---- problem reports --------------------------------------------------------------------------------------


class ReportRead(BaseModel):
    id: str
    dataset_id: str
    message: str


@public_api_router.post(
    "/reports", response_model=ReportRead, status_code=201, summary="报告数据问题（转提供部门处理）"
)
def submit_report(request: Request, session: DbSession, report_in: ReportIn) -> Any:
    account = access.account_from_request(session, request)
    item = report.submit(
        session,
        report_in=report_in,
        account=account,
        source_ip=client_ip(request),
        settings=request.app.state.settings,
    )
    return ReportRead(id=item.id, dataset_id=item.dataset_id, message="已转提供部门核实处理")


# ---- statistics -------------------------------------------------------------------------------------------

Days = Annotated[int, Query(ge=1, le=stats.MAX_SPAN_DAYS, description="最近多少天")]


@public_api_router.get("/stats/overview", summary="开放平台总体数据")
def stats_overview(session: DbSession) -> Any:
    return stats.overview(session)


@public_api_router.get("/stats/daily", summary="逐日浏览、下载、接口调用")
def stats_daily(
    session: DbSession,
    days: Days = 30,
    start: date | None = None,
    end: date | None = None,
    org_id: str | None = None,
    dataset_id: str | None = None,
) -> Any:
    span = stats.period(days=days, start=start, end=end)
    rows = stats.daily(session, span=span, dataset_id=dataset_id, provider_org_id=org_id)
    return {"start": span.start, "end": span.end, "totals": stats.totals(rows), "days": stats.as_json(rows)}


@public_api_router.get("/stats/departments", summary="各部门开放数据集与使用量")
def stats_departments(session: DbSession, days: Days = 30, start: date | None = None, end: date | None = None) -> Any:
    span = stats.period(days=days, start=start, end=end)
    return {"start": span.start, "end": span.end, "items": stats.by_department(session, span=span)}


@public_api_router.get("/stats/departments.csv", summary="各部门开放数据集与使用量（CSV，督查报表用）")
def stats_departments_csv(
    session: DbSession, days: Days = 30, start: date | None = None, end: date | None = None
) -> Response:
    import csv
    import io

    span = stats.period(days=days, start=start, end=end)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["部门", "开放数据集", "浏览", "下载", "接口调用", "下载流量（字节）", "起始日期", "截止日期"])
    for row in stats.by_department(session, span=span):
        writer.writerow(
            [
                row["org_name"],
                row["datasets"],
                row["views"],
                row["downloads"],
                row["api_calls"],
                row["bytes"],
                span.start.isoformat(),
                span.end.isoformat(),
            ]
        )
    name = quote(f"开放数据使用统计_{span.start.isoformat()}_{span.end.isoformat()}.csv")
    return Response(
        "\ufeff" + out.getvalue(),  # BOM: Excel opens it as UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
    )


@public_api_router.get("/stats/datasets", summary="使用量最高的数据集")
def stats_datasets(
    session: DbSession,
    days: Days = 30,
    start: date | None = None,
    end: date | None = None,
    metric: str = "views",
    org_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    span = stats.period(days=days, start=start, end=end)
    rows = stats.top_datasets(session, span=span, metric=metric, provider_org_id=org_id, limit=limit)
    return {"start": span.start, "end": span.end, "items": rows}
