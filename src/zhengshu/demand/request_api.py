"""HTTP API of data requests (数据需求): /api/v1/requests/…"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from zhengshu.core.errors import ValidationFailed
from zhengshu.demand import requests as request_service
from zhengshu.demand.models import DataRequest
from zhengshu.demand.request_schemas import (
    CommentIn,
    CompileIn,
    DataRequestIn,
    DataRequestRead,
    LinkEntryIn,
    ProviderIn,
    ProviderSuggestionRead,
    ReasonIn,
    RefuseIn,
    RequestStatsRead,
    TimelineItemRead,
)
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

router = APIRouter(prefix="/requests", tags=["requests"])

ListFilter = Annotated[list[str] | None, Query()]


@router.get("", response_model=Page[DataRequestRead], summary="数据需求列表")
def list_requests(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    box: Annotated[
        str | None, Query(description="mine 本部门提出的；todo 待本部门答复的；coordination 待本数据主管部门协调的")
    ] = None,
    q: Annotated[str | None, Query(description="按需求名称或描述查找")] = None,
    state: ListFilter = None,
    urgency: ListFilter = None,
    provider_org_id: ListFilter = None,
    requester_org_id: ListFilter = None,
    sort: Annotated[
        str, Query(description="created_at, updated_at, reply_due_on, title；前缀 - 为降序")
    ] = "-created_at",
) -> dict[str, Any]:
    if box is not None and box not in request_service.BOXES:
        raise ValidationFailed(f"不支持的列表：{box}", code="data_request.bad_box")
    field = sort.lstrip("-")
    if field not in request_service.SORTS:
        raise ValidationFailed(f"不支持按 {field} 排序", code="data_request.bad_sort")
    column = request_service.SORTS[field]
    filters = request_service.RequestFilters(
        box=box,
        state=state,
        urgency=urgency,
        provider_org_id=provider_org_id,
        requester_org_id=requester_org_id,
        q=q,
    )
    stmt = request_service.list_query(actor, filters).order_by(
        column.desc() if sort.startswith("-") else column.asc(), DataRequest.id
    )
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {
        "items": [request_service.to_read(session, r, actor=actor) for r in rows],
        "next_cursor": next_cursor,
        "total": total,
    }


@router.post("", response_model=DataRequestRead, status_code=201, summary="提出数据需求")
def create_request(session: DbSession, actor: CurrentActor, request_in: DataRequestIn) -> dict[str, Any]:
    req = request_service.create(session, actor=actor, request_in=request_in)
    return request_service.to_read(session, req, actor=actor)


@router.get("/suggest-providers", response_model=list[ProviderSuggestionRead], summary="根据需求描述推荐可能的提供部门")
def suggest_providers(
    session: DbSession,
    actor: CurrentActor,
    text: Annotated[str, Query(min_length=1, max_length=2000, description="需求名称、描述或所需信息项")],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[dict[str, Any]]:
    return [
        {
            "org_id": s.org.id,
            "org_name": s.org.name,
            "score": s.score,
            "matches": s.matches,
            "entries": [{"id": e.id, "code": e.code, "name": e.name} for e in s.entries],
        }
        for s in request_service.suggest_providers(session, actor=actor, text=text, limit=limit)
    ]


@router.get("/stats", response_model=RequestStatsRead, summary="督查统计：按提供部门和月份的状态数、按期率、平均用时")
def request_stats(
    session: DbSession,
    actor: CurrentActor,
    since: date | None = None,
    until: date | None = None,
    provider_org_id: str | None = None,
) -> dict[str, Any]:
    rows = request_service.stats(session, actor=actor, since=since, until=until, provider_org_id=provider_org_id)
    return {
        "by_state": request_service.counts_by_state(session, actor=actor),
        "rows": [r.as_dict() for r in rows],
    }


@router.get("/{request_id}", response_model=DataRequestRead, summary="数据需求详情")
def get_request(session: DbSession, actor: CurrentActor, request_id: str) -> dict[str, Any]:
    return request_service.to_read(
        session, request_service.get(session, actor=actor, request_id=request_id), actor=actor
    )


@router.get(
    "/{request_id}/timeline", response_model=list[TimelineItemRead], summary="供需对接全流程：需求、目录、申请、授权"
)
def request_timeline(session: DbSession, actor: CurrentActor, request_id: str) -> list[dict[str, Any]]:
    return [
        {
            "at": i.at,
            "stage": i.stage,
            "stage_label": i.stage_label,
            "title": i.title,
            "actor_name": i.actor_name,
            "actor_org_name": i.actor_org_name,
            "comment": i.comment,
            "link": i.link,
        }
        for i in request_service.request_timeline(session, actor=actor, request_id=request_id)
    ]


def _done(session: DbSession, actor: CurrentActor, req: DataRequest) -> dict[str, Any]:
    return request_service.to_read(session, req, actor=actor)


@router.post("/{request_id}/link-entry", response_model=DataRequestRead, summary="答复：已有目录（关联目录）")
def link_entry(session: DbSession, actor: CurrentActor, request_id: str, body: LinkEntryIn) -> dict[str, Any]:
    req = request_service.link_entry(
        session, actor=actor, request_id=request_id, entry_id=body.entry_id, comment=body.comment
    )
    return _done(session, actor, req)


@router.post("/{request_id}/compile", response_model=DataRequestRead, summary="答复：编目后提供")
def compile_entry(
    session: DbSession, actor: CurrentActor, request_id: str, body: CompileIn | None = None
) -> dict[str, Any]:
    body = body or CompileIn()
    req = request_service.compile_entry(
        session, actor=actor, request_id=request_id, entry_id=body.entry_id, comment=body.comment
    )
    return _done(session, actor, req)


@router.post("/{request_id}/not-held", response_model=DataRequestRead, summary="答复：无此数据（须说明理由）")
def not_held(session: DbSession, actor: CurrentActor, request_id: str, body: ReasonIn) -> dict[str, Any]:
    req = request_service.answer_not_held(session, actor=actor, request_id=request_id, reason=body.reason)
    return _done(session, actor, req)


@router.post("/{request_id}/refuse", response_model=DataRequestRead, summary="答复：不予共享（须说明法律依据）")
def refuse(session: DbSession, actor: CurrentActor, request_id: str, body: RefuseIn) -> dict[str, Any]:
    req = request_service.refuse(
        session, actor=actor, request_id=request_id, legal_basis=body.legal_basis, reason=body.reason
    )
    return _done(session, actor, req)


@router.post("/{request_id}/redirect", response_model=DataRequestRead, summary="改派其他提供部门（办理时限重新计算）")
def redirect(session: DbSession, actor: CurrentActor, request_id: str, body: ProviderIn) -> dict[str, Any]:
    req = request_service.redirect(
        session, actor=actor, request_id=request_id, provider_org_id=body.provider_org_id, comment=body.comment
    )
    return _done(session, actor, req)


@router.post("/{request_id}/ask-coordination", response_model=DataRequestRead, summary="提请数据主管部门协调")
def ask_coordination(session: DbSession, actor: CurrentActor, request_id: str, body: ReasonIn) -> dict[str, Any]:
    req = request_service.ask_coordination(session, actor=actor, request_id=request_id, reason=body.reason)
    return _done(session, actor, req)


@router.post("/{request_id}/assign", response_model=DataRequestRead, summary="协调：指定提供部门")
def assign(session: DbSession, actor: CurrentActor, request_id: str, body: ProviderIn) -> dict[str, Any]:
    req = request_service.assign_provider(
        session, actor=actor, request_id=request_id, provider_org_id=body.provider_org_id, comment=body.comment
    )
    return _done(session, actor, req)


@router.post("/{request_id}/close", response_model=DataRequestRead, summary="办结（协调办结须写明结论）")
def close(session: DbSession, actor: CurrentActor, request_id: str, body: CommentIn | None = None) -> dict[str, Any]:
    req = request_service.close(session, actor=actor, request_id=request_id, comment=body.comment if body else "")
    return _done(session, actor, req)


@router.post("/{request_id}/withdraw", response_model=DataRequestRead, summary="撤回数据需求")
def withdraw(session: DbSession, actor: CurrentActor, request_id: str, body: CommentIn | None = None) -> dict[str, Any]:
    req = request_service.withdraw(session, actor=actor, request_id=request_id, reason=body.comment if body else "")
    return _done(session, actor, req)
