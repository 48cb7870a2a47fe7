"""HTTP API of applications and authorizations: /api/v1/applications/…, /api/v1/authorizations/…"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from zhengshu.core.errors import NotFound, ValidationFailed
from zhengshu.demand import applications, authorizations
from zhengshu.demand.models import Authorization, DataApplication
from zhengshu.demand.schemas import (
    ApplicationIn,
    ApplicationRead,
    ApplicationSummary,
    AuthorizationRead,
    AuthorizationSummary,
    CommentIn,
    DecisionIn,
    ReasonIn,
    RenewIn,
    StateCountRow,
    SupplementIn,
    TimelinessRow,
    WhoCanSeeRow,
)
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

router = APIRouter()

ListFilter = Annotated[list[str] | None, Query()]
Sort = Annotated[str, Query(description="排序字段，前缀 - 为降序")]


def _order(sort: str, sorts: dict[str, Any], tie: Any) -> tuple[Any, Any]:
    field = sort.lstrip("-")
    if field not in sorts:
        raise ValidationFailed(f"不支持按 {field} 排序", code="pagination.bad_sort")
    column = sorts[field]
    return (column.desc() if sort.startswith("-") else column.asc()), tie


# ---- applications -----------------------------------------------------------------------------------------


@router.get("/applications", response_model=Page[ApplicationSummary], tags=["applications"], summary="共享申请列表")
def list_applications(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    sort: Sort = "-created_at",
    q: str | None = None,
    state: ListFilter = None,
    entry_id: str | None = None,
    consumer_org_id: str | None = None,
    provider_org_id: str | None = None,
    box: Annotated[
        str | None, Query(description="applied 我申请的；provider 申请我部门数据的；authority 合规审查与协调")
    ] = None,
) -> dict[str, Any]:
    if box is not None and box not in applications.BOXES:
        raise ValidationFailed(f"不支持的分组 {box}", code="application.bad_box")
    filters = applications.ApplicationFilters(
        q=q,
        state=state,
        entry_id=entry_id,
        consumer_org_id=consumer_org_id,
        provider_org_id=provider_org_id,
        box=box,
    )
    stmt = applications.list_query(actor, filters).order_by(*_order(sort, applications.SORTS, DataApplication.id))
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    tickets = applications.tickets_for(session, rows)
    items = [applications.to_summary(a, tickets.get(a.ticket_id or "")) for a in rows]
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.post(
    "/applications",
    response_model=ApplicationRead,
    status_code=201,
    tags=["applications"],
    summary="提交共享申请（进入数据主管部门合规审查）",
)
def create_application(session: DbSession, actor: CurrentActor, body: ApplicationIn) -> dict[str, Any]:
    app = applications.create(session, actor=actor, application_in=body)
    # a new application has no authorizations yet (they come with compliance and the provider's decision)
    return applications.to_read(session, app, actor=actor, authorization_ids=[])


@router.get(
    "/applications/stats/counts",
    response_model=list[StateCountRow],
    tags=["applications"],
    summary="督查：按提供部门、月份和状态统计申请数",
)
def stats_counts(
    session: DbSession, actor: CurrentActor, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, Any]]:
    return applications.counts_by_state(session, actor=actor, date_from=date_from, date_to=date_to)


@router.get(
    "/applications/stats/timeliness",
    response_model=list[TimelinessRow],
    tags=["applications"],
    summary="督查：按提供部门和月份统计按时办结率与平均办理工作日",
)
def stats_timeliness(
    session: DbSession, actor: CurrentActor, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, Any]]:
    return applications.timeliness(session, actor=actor, date_from=date_from, date_to=date_to)


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="共享申请详情（含办理时间线）",
)
def get_application(session: DbSession, actor: CurrentActor, application_id: str) -> dict[str, Any]:
    app = applications.get(session, actor=actor, application_id=application_id)
    return applications.to_read(session, app, actor=actor)


def _done(session: DbSession, actor: CurrentActor, app: DataApplication) -> dict[str, Any]:
    return applications.to_read(session, app, actor=actor)


@router.post(
    "/applications/{application_id}/comply",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="合规审查通过（无条件共享信息项按规则自动授权）",
)
def comply(session: DbSession, actor: CurrentActor, application_id: str, body: CommentIn | None = None) -> Any:
    app = applications.comply(session, actor=actor, application_id=application_id, comment=body.comment if body else "")
    return _done(session, actor, app)


@router.post(
    "/applications/{application_id}/reject",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="合规审查不通过（须说明理由）",
)
def reject(session: DbSession, actor: CurrentActor, application_id: str, body: ReasonIn) -> Any:
    return _done(
        session, actor, applications.reject(session, actor=actor, application_id=application_id, reason=body.reason)
    )


@router.post(
    "/applications/{application_id}/decide",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="提供方逐项答复（同意的信息项生成共享授权）",
)
def decide(session: DbSession, actor: CurrentActor, application_id: str, body: DecisionIn) -> Any:
    return _done(
        session, actor, applications.decide(session, actor=actor, application_id=application_id, decision_in=body)
    )


@router.post(
    "/applications/{application_id}/request-supplement",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="要求申请方补充材料",
)
def request_supplement(session: DbSession, actor: CurrentActor, application_id: str, body: ReasonIn) -> Any:
    return _done(
        session,
        actor,
        applications.request_supplement(session, actor=actor, application_id=application_id, reason=body.reason),
    )


@router.post(
    "/applications/{application_id}/supplement",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="补充材料（回到提供方审核）",
)
def supplement(session: DbSession, actor: CurrentActor, application_id: str, body: SupplementIn) -> Any:
    return _done(
        session,
        actor,
        applications.supplement(session, actor=actor, application_id=application_id, material=body.material),
    )


@router.post(
    "/applications/{application_id}/withdraw",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="撤回申请（答复前）",
)
def withdraw(session: DbSession, actor: CurrentActor, application_id: str, body: CommentIn | None = None) -> Any:
    return _done(
        session,
        actor,
        applications.withdraw(session, actor=actor, application_id=application_id, reason=body.comment if body else ""),
    )


@router.post(
    "/applications/{application_id}/appeal",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="对不同意的答复申诉（提请数据主管部门协调）",
)
def appeal(session: DbSession, actor: CurrentActor, application_id: str, body: ReasonIn) -> Any:
    return _done(
        session, actor, applications.appeal(session, actor=actor, application_id=application_id, reason=body.reason)
    )


@router.post(
    "/applications/{application_id}/accept",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="接受答复并办结",
)
def accept(session: DbSession, actor: CurrentActor, application_id: str, body: CommentIn | None = None) -> Any:
    return _done(
        session,
        actor,
        applications.accept(session, actor=actor, application_id=application_id, comment=body.comment if body else ""),
    )


@router.post(
    "/applications/{application_id}/coordinate",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="数据主管部门协调决定（逐项）",
)
def coordinate(session: DbSession, actor: CurrentActor, application_id: str, body: DecisionIn) -> Any:
    return _done(
        session, actor, applications.coordinate(session, actor=actor, application_id=application_id, decision_in=body)
    )


@router.post(
    "/applications/{application_id}/remand",
    response_model=ApplicationRead,
    tags=["applications"],
    summary="退回提供方重新审核",
)
def remand(session: DbSession, actor: CurrentActor, application_id: str, body: ReasonIn) -> Any:
    return _done(
        session, actor, applications.remand(session, actor=actor, application_id=application_id, reason=body.reason)
    )


# ---- authorizations ---------------------------------------------------------------------------------------


@router.get(
    "/authorizations", response_model=Page[AuthorizationSummary], tags=["authorizations"], summary="共享授权列表"
)
def list_authorizations(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    sort: Sort = "-created_at",
    q: str | None = None,
    status: Annotated[list[str] | None, Query(description="active, suspended, revoked, expired")] = None,
    entry_id: str | None = None,
    consumer_org_id: str | None = None,
    provider_org_id: str | None = None,
    application_id: str | None = None,
    item_key: str | None = None,
) -> dict[str, Any]:
    unknown = set(status or []) - set(authorizations.STATUS_LABELS)
    if unknown:
        raise ValidationFailed(f"不支持的授权状态 {'、'.join(sorted(unknown))}", code="authorization.bad_status")
    filters = authorizations.AuthorizationFilters(
        status=status,
        entry_id=entry_id,
        consumer_org_id=consumer_org_id,
        provider_org_id=provider_org_id,
        application_id=application_id,
        item_key=item_key,
        q=q,
    )
    stmt = authorizations.list_query(actor, filters).order_by(*_order(sort, authorizations.SORTS, Authorization.id))
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [authorizations.to_summary(a) for a in rows], "next_cursor": next_cursor, "total": total}


@router.get(
    "/authorizations/who-can-see",
    response_model=list[WhoCanSeeRow],
    tags=["authorizations"],
    summary="某目录某信息项当前授权给了哪些部门及其系统",
)
def who_can_see(
    session: DbSession, actor: CurrentActor, entry_id: str, item_key: str, on: date | None = None
) -> list[Any]:
    rows = authorizations.who_can_see(session, actor=actor, entry_id=entry_id, item_key=item_key, on=on)
    return [r.__dict__ for r in rows]


@router.get(
    "/authorizations/{authorization_id}",
    response_model=AuthorizationRead,
    tags=["authorizations"],
    summary="共享授权详情（含变更记录）",
)
def get_authorization(session: DbSession, actor: CurrentActor, authorization_id: str) -> dict[str, Any]:
    auth = authorizations.get(session, actor=actor, authorization_id=authorization_id)
    return authorizations.to_read(auth, actor=actor)


AUTH_VERBS = {"suspend": authorizations.suspend, "resume": authorizations.resume, "revoke": authorizations.revoke}


@router.post(
    "/authorizations/{authorization_id}/renew",
    response_model=AuthorizationRead,
    tags=["authorizations"],
    summary="续期（新的到期日，须说明理由）",
)
def renew_authorization(
    session: DbSession, actor: CurrentActor, authorization_id: str, body: RenewIn
) -> dict[str, Any]:
    auth = authorizations.renew(
        session, actor=actor, authorization_id=authorization_id, end_on=body.end_on, reason=body.reason
    )
    return authorizations.to_read(auth, actor=actor)


@router.post(
    "/authorizations/{authorization_id}/{verb}",
    response_model=AuthorizationRead,
    tags=["authorizations"],
    summary="暂停（suspend）、恢复（resume）或撤销（revoke），须说明理由",
)
def change_authorization(
    session: DbSession, actor: CurrentActor, authorization_id: str, verb: str, body: ReasonIn
) -> dict[str, Any]:
    fn = AUTH_VERBS.get(verb)
    if fn is None:
        raise NotFound("不支持的操作", code="authorization.unknown_action")
    auth = fn(session, actor=actor, authorization_id=authorization_id, reason=body.reason)
    return authorizations.to_read(auth, actor=actor)
