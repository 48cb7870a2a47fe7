"""HTTP API of the catalog: /api/v1/catalog/…"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from zhengshu.catalog import excel, importing, indexing, mounting
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import ENTRY_STATUS_LABELS, RESOURCE_CLASSES
from zhengshu.catalog.models import CatalogEntry
from zhengshu.catalog.schemas import (
    CommentIn,
    DiffRead,
    DutyChangeIn,
    EntryIn,
    EntryRead,
    EntrySummary,
    EntryUpdateIn,
    ImportResultRead,
    MountedResourceRead,
    ReasonIn,
    SearchFacetValue,
    SearchResponse,
    TicketEventRead,
    VersionRead,
)
from zhengshu.core.errors import ValidationFailed
from zhengshu.org.models import Organization
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, decode_cursor, encode_cursor, paginate

router = APIRouter(prefix="/catalog", tags=["catalog"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_IMPORT_BYTES = 20 * 1024 * 1024

ListFilter = Annotated[list[str] | None, Query()]


def _filters(
    q: str | None,
    provider_org_id: list[str] | None,
    region_code: list[str] | None,
    class_code: list[str] | None,
    sharing_type: list[str] | None,
    opening_type: list[str] | None,
    status: list[str] | None,
    update_cycle: list[str] | None = None,
) -> catalog_service.EntryFilters:
    return catalog_service.EntryFilters(
        q=q,
        provider_org_id=provider_org_id,
        region_code=region_code,
        class_code=class_code,
        sharing_type=sharing_type,
        opening_type=opening_type,
        status=status,
        update_cycle=update_cycle,
    )


@router.get("/entries", response_model=Page[EntrySummary], summary="目录列表（一本账）")
def list_entries(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    sort: Annotated[
        str, Query(description="排序字段：name, code, published_on, updated_at；前缀 - 为降序")
    ] = "-updated_at",
    provider_org_id: ListFilter = None,
    region_code: ListFilter = None,
    class_code: ListFilter = None,
    sharing_type: ListFilter = None,
    opening_type: ListFilter = None,
    status: ListFilter = None,
    update_cycle: ListFilter = None,
) -> dict[str, Any]:
    field = sort.lstrip("-")
    if field not in catalog_service.SORTS:
        raise ValidationFailed(f"不支持按 {field} 排序", code="catalog.bad_sort")
    column = catalog_service.SORTS[field]
    stmt = catalog_service.list_query(
        actor,
        _filters(None, provider_org_id, region_code, class_code, sharing_type, opening_type, status, update_cycle),
    )
    stmt = stmt.order_by(column.desc() if sort.startswith("-") else column.asc(), CatalogEntry.id)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [catalog_service.to_summary(e) for e in rows], "next_cursor": next_cursor, "total": total}


def class_labels(codes: list[str]) -> dict[str, str]:
    out = {}
    for code in codes:
        major, item = code[:1], code[1:3]
        name, items = RESOURCE_CLASSES.get(major, ("", {}))
        out[code] = f"{items.get(item, name)} {code}" if name else code
    return out


def facet_labels(session: DbSession, facets: dict[str, list[tuple[str, int]]]) -> dict[str, list[SearchFacetValue]]:
    org_ids = [v for v, _ in facets.get("org_id", [])]
    orgs = {o.id: o.short_name or o.name for o in session.query(Organization).filter(Organization.id.in_(org_ids))}
    from zhengshu.org.models import Region

    codes = [v for v, _ in facets.get("region_code", [])]
    regions = {r.code: r.name for r in session.query(Region).filter(Region.code.in_(codes))}
    out: dict[str, list[SearchFacetValue]] = {}
    for name, values in facets.items():
        labels = {
            "org_id": orgs,
            "region_code": regions,
            "status": ENTRY_STATUS_LABELS,
            "class_code": class_labels([v for v, _ in values]),
        }.get(name, {})
        out[name] = [SearchFacetValue(value=v, label=labels.get(v, v), count=n) for v, n in values]
    return out


@router.get("/search", response_model=SearchResponse, summary="检索目录（中文分词、拼音、拼音首字母）")
def search_entries(
    session: DbSession,
    actor: CurrentActor,
    q: str | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    provider_org_id: ListFilter = None,
    region_code: ListFilter = None,
    class_code: ListFilter = None,
    sharing_type: ListFilter = None,
    opening_type: ListFilter = None,
    status: ListFilter = None,
) -> dict[str, Any]:
    offset = decode_cursor(cursor)
    filters = {
        k: v
        for k, v in {
            "org_id": provider_org_id,
            "region_code": region_code,
            "class_code": class_code,
            "sharing_type": sharing_type,
            "opening_type": opening_type,
            "status": status,
        }.items()
        if v
    }
    result = indexing.search(session, actor=actor, q=q, filters=filters, limit=limit, offset=offset)
    entries = {e.id: e for e in catalog_service.entries_by_ids(session, [h.doc_id for h in result.hits])}
    items = [
        catalog_service.to_summary(entries[h.doc_id], summary=h.summary, score=h.score)
        for h in result.hits
        if h.doc_id in entries
    ]
    return {
        "items": items,
        "next_cursor": encode_cursor(offset + limit) if offset + limit < result.total else None,
        "total": result.total,
        "facets": facet_labels(session, result.facets),
    }


@router.post("/entries", response_model=EntryRead, status_code=201, summary="编制目录（草稿）")
def create_entry(session: DbSession, actor: CurrentActor, entry_in: EntryIn) -> dict[str, Any]:
    entry = catalog_service.create(session, actor=actor, entry_in=entry_in)
    return catalog_service.to_read(session, entry, catalog_service.working_version(session, entry))


@router.get("/entries/{entry_id}", response_model=EntryRead, summary="目录详情（已发布版本，或草稿）")
def get_entry(session: DbSession, actor: CurrentActor, entry_id: str) -> dict[str, Any]:
    return catalog_service.to_read(session, catalog_service.get(session, actor=actor, entry_id=entry_id))


@router.get("/by-code/{code:path}", response_model=EntryRead, summary="按资源代码查询目录")
def get_entry_by_code(session: DbSession, actor: CurrentActor, code: str) -> dict[str, Any]:
    return catalog_service.to_read(session, catalog_service.get_by_code(session, actor=actor, code=code))


@router.get("/entries/{entry_id}/draft", response_model=EntryRead, summary="待审或编辑中的版本")
def get_working(session: DbSession, actor: CurrentActor, entry_id: str) -> dict[str, Any]:
    entry, working = catalog_service.get_working(session, actor=actor, entry_id=entry_id)
    return catalog_service.to_read(session, entry, working)


@router.put("/entries/{entry_id}", response_model=EntryRead, summary="修改目录（已发布目录将生成新版本待审）")
def update_entry(session: DbSession, actor: CurrentActor, entry_id: str, entry_in: EntryUpdateIn) -> dict[str, Any]:
    entry = catalog_service.update(
        session, actor=actor, entry_id=entry_id, entry_in=entry_in, change_note=entry_in.change_note
    )
    return catalog_service.to_read(session, entry, catalog_service.working_version(session, entry))


def _action(fn: Any, session: DbSession, actor: CurrentActor, entry_id: str, **kwargs: Any) -> dict[str, Any]:
    entry = fn(session, actor=actor, entry_id=entry_id, **kwargs)
    return catalog_service.to_read(session, entry)


@router.post("/entries/{entry_id}/submit", response_model=EntryRead, summary="提交审核")
def submit_entry(
    session: DbSession, actor: CurrentActor, entry_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    return _action(catalog_service.submit, session, actor, entry_id, comment=body.comment if body else "")


@router.post("/entries/{entry_id}/recall", response_model=EntryRead, summary="撤回审核中的提交")
def recall_entry(
    session: DbSession, actor: CurrentActor, entry_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    return _action(catalog_service.recall, session, actor, entry_id, comment=body.comment if body else "")


@router.post("/entries/{entry_id}/approve", response_model=EntryRead, summary="审核通过并发布")
def approve_entry(
    session: DbSession, actor: CurrentActor, entry_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    return _action(catalog_service.approve, session, actor, entry_id, comment=body.comment if body else "")


@router.post("/entries/{entry_id}/return", response_model=EntryRead, summary="退回修改（须说明理由）")
def return_entry(session: DbSession, actor: CurrentActor, entry_id: str, body: ReasonIn) -> dict[str, Any]:
    return _action(catalog_service.return_for_revision, session, actor, entry_id, reason=body.reason)


@router.post("/entries/{entry_id}/withdraw", response_model=EntryRead, summary="下架（须说明理由）")
def withdraw_entry(session: DbSession, actor: CurrentActor, entry_id: str, body: ReasonIn) -> dict[str, Any]:
    return _action(catalog_service.withdraw, session, actor, entry_id, reason=body.reason)


@router.post("/entries/{entry_id}/discard", response_model=EntryRead, summary="作废草稿或待修订版本")
def discard_entry(
    session: DbSession, actor: CurrentActor, entry_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    return _action(catalog_service.discard_draft, session, actor, entry_id, comment=body.comment if body else "")


@router.post("/entries/{entry_id}/recheck", response_model=EntryRead, summary="年度复核：确认无变化")
def recheck_entry(
    session: DbSession, actor: CurrentActor, entry_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    return _action(catalog_service.confirm_recheck, session, actor, entry_id, comment=body.comment if body else "")


@router.post("/entries/{entry_id}/duty-changes", status_code=201, summary="登记职责变更（10 个工作日内更新）")
def register_duty_change(session: DbSession, actor: CurrentActor, entry_id: str, body: DutyChangeIn) -> dict[str, Any]:
    ticket = catalog_service.register_duty_change(session, actor=actor, entry_id=entry_id, description=body.description)
    return {"ticket_id": ticket.id, "due_on": ticket.due_on, "due_provisional": ticket.due_provisional}


@router.get("/entries/{entry_id}/versions", response_model=list[VersionRead], summary="版本历史")
def list_versions(session: DbSession, actor: CurrentActor, entry_id: str) -> list[Any]:
    return catalog_service.visible_versions(session, actor=actor, entry_id=entry_id)


@router.get("/entries/{entry_id}/versions/{number}", response_model=EntryRead, summary="某一版本的内容")
def get_version(session: DbSession, actor: CurrentActor, entry_id: str, number: int) -> dict[str, Any]:
    v = catalog_service.get_version(session, actor=actor, entry_id=entry_id, number=number)
    return catalog_service.to_read(session, v.entry, v)


@router.get("/entries/{entry_id}/diff", response_model=DiffRead, summary="两个版本之间的差异")
def diff(
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    from_version: Annotated[int, Query(alias="from")],
    to_version: Annotated[int, Query(alias="to")],
) -> dict[str, Any]:
    old = catalog_service.get_version(session, actor=actor, entry_id=entry_id, number=from_version)
    new = catalog_service.get_version(session, actor=actor, entry_id=entry_id, number=to_version)
    d = catalog_service.diff_versions(old, new)
    return {
        "from_version": from_version,
        "to_version": to_version,
        "changes": [c.__dict__ for c in d.changes],
        "items_added": d.items_added,
        "items_removed": d.items_removed,
        "items_changed": [{"name": n, "changes": [c.__dict__ for c in cs]} for n, cs in d.items_changed],
    }


@router.get("/entries/{entry_id}/history", response_model=list[TicketEventRead], summary="办理时间线")
def entry_history(session: DbSession, actor: CurrentActor, entry_id: str) -> list[Any]:
    return catalog_service.history(session, actor=actor, entry_id=entry_id)


@router.get("/entries/{entry_id}/resources", response_model=list[MountedResourceRead], summary="挂接的资源")
def list_resources(session: DbSession, actor: CurrentActor, entry_id: str) -> list[Any]:
    return [r for r in catalog_service.get(session, actor=actor, entry_id=entry_id).resources if r.active]


@router.post(
    "/entries/{entry_id}/resources/table",
    response_model=MountedResourceRead,
    status_code=201,
    summary="挂接数据表或文件（核对字段，记录行数和更新时间）",
)
def mount_table(session: DbSession, actor: CurrentActor, entry_id: str, body: mounting.TableMountIn) -> Any:
    return mounting.mount_table(session, actor=actor, entry_id=entry_id, mount_in=body)


@router.post(
    "/entries/{entry_id}/resources/api", response_model=MountedResourceRead, status_code=201, summary="挂接接口"
)
def mount_api(session: DbSession, actor: CurrentActor, entry_id: str, body: mounting.ApiMountIn) -> Any:
    return mounting.mount_api(session, actor=actor, entry_id=entry_id, mount_in=body)


@router.post(
    "/entries/{entry_id}/resources/{resource_id}/refresh",
    response_model=MountedResourceRead,
    summary="重新核对挂接资源",
)
def refresh_resource(session: DbSession, actor: CurrentActor, entry_id: str, resource_id: str) -> Any:
    return mounting.refresh(session, actor=actor, entry_id=entry_id, resource_id=resource_id)


@router.delete("/entries/{entry_id}/resources/{resource_id}", status_code=204, summary="取消挂接")
def unmount(session: DbSession, actor: CurrentActor, entry_id: str, resource_id: str) -> Response:
    mounting.unmount(session, actor=actor, entry_id=entry_id, resource_id=resource_id)
    return Response(status_code=204)


@router.post("/import", response_model=ImportResultRead, summary="Excel 导入（有错误时默认不导入任何目录）")
async def import_entries(
    session: DbSession,
    actor: CurrentActor,
    file: Annotated[UploadFile, File()],
    valid_only: Annotated[bool, Form()] = False,
    provider_org_id: Annotated[str | None, Form()] = None,
) -> Any:
    content = await file.read(MAX_IMPORT_BYTES + 1)
    if len(content) > MAX_IMPORT_BYTES:
        raise ValidationFailed("导入文件超过 20 MB", code="catalog.import.too_large")
    return importing.import_workbook(
        session, actor=actor, content=content, valid_only=valid_only, provider_org_id=provider_org_id
    )


@router.get("/export", summary="导出为 Excel（模板格式）")
def export_entries(
    session: DbSession,
    actor: CurrentActor,
    provider_org_id: ListFilter = None,
    region_code: ListFilter = None,
    class_code: ListFilter = None,
    sharing_type: ListFilter = None,
    opening_type: ListFilter = None,
    status: ListFilter = None,
) -> Response:
    stmt = catalog_service.list_query(
        actor, _filters(None, provider_org_id, region_code, class_code, sharing_type, opening_type, status)
    ).order_by(CatalogEntry.code)
    entries = list(session.scalars(stmt.limit(20000)))
    content = excel.export_workbook([catalog_service.to_read(session, e) for e in entries])
    return Response(
        content, media_type=XLSX, headers={"Content-Disposition": "attachment; filename*=UTF-8''catalog.xlsx"}
    )


@router.get("/template", summary="下载目录编制模板")
def template() -> Response:
    return Response(
        excel.template_workbook(),
        media_type=XLSX,
        headers={"Content-Disposition": "attachment; filename*=UTF-8''catalog-template.xlsx"},
    )


@router.get("/stats", summary="按部门和状态统计目录数")
def stats(session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    return [
        {"org_id": o, "org_name": n, "status": s, "count": c}
        for o, n, s, c in catalog_service.counts_by_provider_and_status(session, actor=actor)
    ]
