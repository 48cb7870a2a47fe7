"""Catalog pages of the sharing portal: 一本账 list and search, entry detail, compile/edit, review, import."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from zhengshu.catalog import importing, indexing, mounting, panels
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import (
    DATA_TYPE_LABELS,
    ENTRY_STATUS_LABELS,
    RESOURCE_CLASSES,
    EntryLevel,
    OpeningType,
    ResourceFormat,
    Sensitivity,
    SharingType,
    SharingWay,
    UpdateCycle,
)
from zhengshu.catalog.schemas import EntryIn
from zhengshu.core.errors import ValidationFailed, ZhengshuError
from zhengshu.core.timeutil import local_today
from zhengshu.org import service as org_service
from zhengshu.security import authz
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.errors import pydantic_errors
from zhengshu.web.forms import safe_local_path
from zhengshu.web.pagination import decode_cursor, encode_cursor
from zhengshu.web.templating import flash, render
from zhengshu.workflow import service as workflow

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
FACET_TITLES = {
    "org_id": "提供部门",
    "region_code": "行政区划",
    "class_code": "资源分类",
    "sharing_type": "共享类型",
    "opening_type": "开放类型",
    "status": "状态",
}

CHOICES = {
    "resource_format": [e.value for e in ResourceFormat],
    "sharing_type": [e.value for e in SharingType],
    "sharing_way": [e.value for e in SharingWay],
    "opening_type": [e.value for e in OpeningType],
    "update_cycle": [e.value for e in UpdateCycle],
    "level": [e.value for e in EntryLevel],
    "data_type": DATA_TYPE_LABELS,
    "sensitivity": [e.value for e in Sensitivity],
}


def class_options() -> list[tuple[str, str]]:
    options = []
    for major, (name, items) in RESOURCE_CLASSES.items():
        for item, label in items.items():
            options.append((f"{major}{item}", f"{name} · {label}"))
    return options


@router.get("/catalog", response_class=HTMLResponse)
def catalog_list(
    request: Request, session: DbSession, actor: CurrentActor, q: str | None = None, cursor: str | None = None
) -> Response:
    params = request.query_params
    filters = {name: params.getlist(name) for name in FACET_TITLES if params.getlist(name)}
    offset = decode_cursor(cursor)
    result = indexing.search(session, actor=actor, q=q, filters=filters, limit=PAGE_SIZE, offset=offset)
    entries = {e.id: e for e in catalog_service.entries_by_ids(session, [h.doc_id for h in result.hits])}
    from zhengshu.catalog.api import facet_labels

    facets = facet_labels(session, result.facets)

    def toggle(name: str, value: str) -> str:
        pairs = [(k, v) for k, v in params.multi_items() if k != "cursor"]
        pairs = [p for p in pairs if p != (name, value)] if (name, value) in pairs else [*pairs, (name, value)]
        return "/catalog?" + urlencode(pairs)

    base_pairs = [(k, v) for k, v in params.multi_items() if k != "cursor"]
    next_url = (
        "/catalog?" + urlencode([*base_pairs, ("cursor", encode_cursor(offset + PAGE_SIZE))])
        if offset + PAGE_SIZE < result.total
        else None
    )
    prev_url = (
        "/catalog?" + urlencode([*base_pairs, ("cursor", encode_cursor(max(0, offset - PAGE_SIZE)))])
        if offset > 0
        else None
    )
    rows = [(h, entries[h.doc_id]) for h in result.hits if h.doc_id in entries]
    return render(
        request,
        "catalog/list.html",
        {
            "q": q or "",
            "rows": rows,
            "total": result.total,
            "facets": facets,
            "facet_titles": FACET_TITLES,
            "filters": filters,
            "toggle": toggle,
            "next_url": next_url,
            "prev_url": prev_url,
            "status_labels": ENTRY_STATUS_LABELS,
            "offset": offset,
        },
    )


# ---- compile and edit ---------------------------------------------------------------------------------

ITEM_FIELD = re.compile(r"^items-(\d+)-(\w+)$")


def entry_form_data(form: FormData) -> dict[str, Any]:
    """Turn the compile form (items-<n>-<field> rows) into EntryIn input; empty item rows are skipped."""
    data: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str) or key == "csrf_token":
            continue
        if m := ITEM_FIELD.match(key):
            items.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
        elif key in ("tags", "related_codes"):
            data[key] = [t for t in re.split(r"[,，、;；\s]+", value) if t]
        else:
            data[key] = value.strip()
    data["items"] = []
    for _, item in sorted(items.items()):
        if not item.get("name"):
            continue
        for optional in ("length", "column_name", "sharing_type", "opening_type"):
            if item.get(optional) == "":
                item[optional] = None
        data["items"].append(item)
    if not data.get("provider_org_id"):
        data.pop("provider_org_id", None)
    return data


def _form_context(
    session: DbSession, actor: CurrentActor, values: dict[str, Any], errors: list[dict[str, str]], entry: Any = None
) -> dict[str, Any]:
    providers = []
    if actor.is_admin:
        providers = org_service.list_organizations(session)
    return {
        "values": values,
        "errors": errors,
        "choices": CHOICES,
        "class_options": class_options(),
        "entry": entry,
        "providers": providers,
        "error_map": {e["field"]: e["message"] for e in errors},
    }


@router.get("/catalog/new", response_class=HTMLResponse)
def new_entry_form(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    authz.ensure(actor, "catalog.import")  # officers (and admins) compile entries
    values = {
        "items": [{}, {}, {}],
        "sharing_type": "有条件共享",
        "opening_type": "不予开放",
        "update_cycle": "每日",
        "resource_format": "数据库",
        "sharing_way": "接口",
        "level": "部门",
    }
    return render(request, "catalog/form.html", _form_context(session, actor, values, []))


def _validate_form(data: dict[str, Any]) -> tuple[EntryIn | None, list[dict[str, str]]]:
    try:
        return EntryIn.model_validate(data), []
    except ValidationError as exc:
        return None, pydantic_errors(list(exc.errors()))


@router.post("/catalog/new", dependencies=[Csrf])
async def create_entry(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    data = entry_form_data(await request.form())
    entry_in, errors = _validate_form(data)
    if entry_in is not None:
        try:
            entry = catalog_service.create(session, actor=actor, entry_in=entry_in)
        except ValidationFailed as exc:
            errors = [e.as_dict() for e in exc.errors] or [{"field": "form", "message": exc.detail}]
        else:
            if request.query_params.get("submit") == "1" or data.get("action") == "submit":
                catalog_service.submit(session, actor=actor, entry_id=entry.id)
                flash(
                    request,
                    f"目录「{entry.name}」已保存并提交审核，资源代码 {entry.code}。",
                    link=f"/catalog/{entry.id}",
                )
            else:
                flash(
                    request, f"目录「{entry.name}」已保存为草稿，资源代码 {entry.code}。", link=f"/catalog/{entry.id}"
                )
            return RedirectResponse(f"/catalog/{entry.id}", status_code=303)
    session.rollback()
    data.setdefault("items", [])
    return render(request, "catalog/form.html", _form_context(session, actor, data, errors), status_code=422)


def _values_of(session: DbSession, entry: Any) -> dict[str, Any]:
    v = catalog_service.working_version(session, entry) or catalog_service.display_version(session, entry)
    values = catalog_service.version_content(v)
    values["tags"] = "、".join(values["tags"])
    values["related_codes"] = "、".join(values["related_codes"])
    return values


@router.get("/catalog/{entry_id}/edit", response_class=HTMLResponse)
def edit_entry_form(request: Request, session: DbSession, actor: CurrentActor, entry_id: str) -> Response:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.edit", entry)
    return render(request, "catalog/form.html", _form_context(session, actor, _values_of(session, entry), [], entry))


@router.post("/catalog/{entry_id}/edit", dependencies=[Csrf])
async def edit_entry(request: Request, session: DbSession, actor: CurrentActor, entry_id: str) -> Response:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    data = entry_form_data(await request.form())
    change_note = str(data.pop("change_note", ""))
    entry_in, errors = _validate_form(data)
    if entry_in is not None:
        try:
            catalog_service.update(session, actor=actor, entry_id=entry_id, entry_in=entry_in, change_note=change_note)
        except ValidationFailed as exc:
            errors = [e.as_dict() for e in exc.errors] or [{"field": "form", "message": exc.detail}]
        else:
            if data.get("action") == "submit":
                catalog_service.submit(session, actor=actor, entry_id=entry_id)
                flash(request, "修改已保存并提交审核。", link=f"/catalog/{entry_id}")
            else:
                flash(
                    request, "修改已保存。已发布的目录在新版本审核通过前，仍展示原版本。", link=f"/catalog/{entry_id}"
                )
            return RedirectResponse(f"/catalog/{entry_id}", status_code=303)
    session.rollback()
    return render(request, "catalog/form.html", _form_context(session, actor, data, errors, entry), status_code=422)


# ---- detail and actions -------------------------------------------------------------------------------


@router.get("/catalog/{entry_id}", response_class=HTMLResponse)
def entry_detail(request: Request, session: DbSession, actor: CurrentActor, entry_id: str) -> Response:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    shown = catalog_service.display_version(session, entry)
    # a pending revision is a draft: other departments see only the published version
    drafts_visible = authz.allowed(actor, "catalog.view_draft", entry)
    working = catalog_service.working_version(session, entry) if drafts_visible else None
    review = workflow.open_for_subject(
        session, kind="catalog_review", subject_type="catalog_entry", subject_id=entry.id
    )
    duty = workflow.open_for_subject(
        session, kind="catalog_duty_update", subject_type="catalog_entry", subject_id=entry.id
    )
    recheck = workflow.open_for_subject(
        session, kind="catalog_recheck", subject_type="catalog_entry", subject_id=entry.id
    )
    diff = None
    if working is not None and entry.published_version_id and working.id != shown.id:
        diff = catalog_service.diff_versions(shown, working)
    can = {
        name: authz.allowed(actor, name, entry)
        for name in (
            "catalog.edit",
            "catalog.submit",
            "catalog.review",
            "catalog.withdraw",
            "catalog.mount",
            "catalog.recheck",
        )
    }
    sources = []
    if can["catalog.mount"]:
        from zhengshu.lake import service as lake_service

        sources = [
            s for s in lake_service.list_sources(session, actor=actor) if s.owner_org_id == entry.provider_org_id
        ]
    return render(
        request,
        "catalog/detail.html",
        {
            "entry": entry,
            "shown": shown,
            "working": working,
            "review": review,
            "duty": duty,
            "recheck": recheck,
            "diff": diff,
            "can": can,
            "history": catalog_service.history(session, actor=actor, entry_id=entry.id),
            "recheck_status": catalog_service.recheck_status(entry),
            "status_labels": ENTRY_STATUS_LABELS,
            "data_type_labels": DATA_TYPE_LABELS,
            "resources": [r for r in entry.resources if r.active],
            "sources": sources,
            "today": local_today(),
            "versions": catalog_service.visible_versions(session, actor=actor, entry_id=entry.id),
            **panels.render_context(session, actor, entry),
        },
    )


ACTIONS = {
    "submit": (catalog_service.submit, "comment", "已提交审核，审核期限 {due}。"),
    "recall": (catalog_service.recall, "comment", "已撤回提交，可继续修改。"),
    "approve": (catalog_service.approve, "comment", "审核通过，目录已发布。"),
    "return": (catalog_service.return_for_revision, "reason", "已退回提供部门修改。"),
    "withdraw": (catalog_service.withdraw, "reason", "目录已下架。"),
    "discard": (catalog_service.discard_draft, "comment", "草稿已作废。"),
    "recheck": (catalog_service.confirm_recheck, "comment", "年度复核已确认，下次复核日期已更新。"),
}


@router.post("/catalog/{entry_id}/{verb}", dependencies=[Csrf])
def entry_action(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    verb: str,
    text: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    if verb not in ACTIONS:
        from zhengshu.core.errors import NotFound

        raise NotFound("不支持的操作", code="catalog.unknown_action")
    fn, arg, message = ACTIONS[verb]
    entry = fn(session, actor=actor, entry_id=entry_id, **{arg: text})
    ticket = workflow.open_for_subject(
        session, kind="catalog_review", subject_type="catalog_entry", subject_id=entry_id
    )
    due = (
        f"{ticket.due_on.isoformat()}{'（暂定）' if ticket.due_provisional else ''}" if ticket and ticket.due_on else ""
    )
    flash(request, f"「{entry.name}」{message.format(due=due)}", link=f"/catalog/{entry_id}")
    target = safe_local_path(next) or f"/catalog/{entry_id}"
    return RedirectResponse(target, status_code=303)


@router.get("/catalog/{entry_id}/versions/{number}", response_class=HTMLResponse)
def version_page(request: Request, session: DbSession, actor: CurrentActor, entry_id: str, number: int) -> Response:
    v = catalog_service.get_version(session, actor=actor, entry_id=entry_id, number=number)
    entry = v.entry
    previous = next((p for p in entry.versions if p.number == number - 1), None)
    diff = catalog_service.diff_versions(previous, v) if previous else None
    return render(
        request,
        "catalog/version.html",
        {"entry": entry, "v": v, "previous": previous, "diff": diff, "data_type_labels": DATA_TYPE_LABELS},
    )


@router.post("/catalog/{entry_id}/mount/table", dependencies=[Csrf])
def mount_table(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    source_id: Annotated[str, Form()],
    table: Annotated[str, Form()],
    allow_problems: Annotated[bool, Form()] = False,
) -> Response:
    schema, _, name = table.rpartition("::")
    try:
        mounting.mount_table(
            session,
            actor=actor,
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(
                source_id=source_id, table=name, schema_name=schema or None, allow_problems=allow_problems
            ),
        )
    except ValidationFailed as exc:
        session.rollback()
        problems = exc.extra.get("problems", [])
        text = "；".join(p["message"] for p in problems if p.get("blocking")) or exc.detail
        flash(request, f"{exc.detail}：{text}", kind="error")
    else:
        flash(request, "资源已挂接，字段核对通过。")
    return RedirectResponse(f"/catalog/{entry_id}#resources", status_code=303)


@router.post("/catalog/{entry_id}/mount/api", dependencies=[Csrf])
def mount_api(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    endpoint: Annotated[str, Form()],
    method: Annotated[str, Form()] = "GET",
) -> Response:
    try:
        mount_in = mounting.ApiMountIn.model_validate({"endpoint": endpoint, "method": method})
    except ValidationError:
        flash(request, "接口地址无效，请填写以 http:// 或 https:// 开头的完整地址", kind="error")
        return RedirectResponse(f"/catalog/{entry_id}#resources", status_code=303)
    mounting.mount_api(session, actor=actor, entry_id=entry_id, mount_in=mount_in)
    flash(request, "接口已挂接。")
    return RedirectResponse(f"/catalog/{entry_id}#resources", status_code=303)


@router.post("/catalog/{entry_id}/resources/{resource_id}/refresh", dependencies=[Csrf])
def refresh_resource(
    request: Request, session: DbSession, actor: CurrentActor, entry_id: str, resource_id: str
) -> Response:
    resource = mounting.refresh(session, actor=actor, entry_id=entry_id, resource_id=resource_id)
    flash(
        request,
        "已重新核对：" + ("字段一致" if resource.check_ok else "存在不一致，请查看核对结果"),
        kind="success" if resource.check_ok else "error",
    )
    return RedirectResponse(f"/catalog/{entry_id}#resources", status_code=303)


@router.post("/catalog/{entry_id}/resources/{resource_id}/unmount", dependencies=[Csrf])
def unmount_resource(
    request: Request, session: DbSession, actor: CurrentActor, entry_id: str, resource_id: str
) -> Response:
    mounting.unmount(session, actor=actor, entry_id=entry_id, resource_id=resource_id)
    flash(request, "已取消挂接。")
    return RedirectResponse(f"/catalog/{entry_id}#resources", status_code=303)


@router.post("/catalog/{entry_id}/duty-change", dependencies=[Csrf])
def duty_change(
    request: Request, session: DbSession, actor: CurrentActor, entry_id: str, text: Annotated[str, Form()]
) -> Response:
    ticket = catalog_service.register_duty_change(session, actor=actor, entry_id=entry_id, description=text)
    flash(request, f"已登记职责变更，提供部门须在 {ticket.due_on} 前更新目录。", link=f"/catalog/{entry_id}")
    return RedirectResponse(f"/catalog/{entry_id}", status_code=303)


# ---- review queue and import --------------------------------------------------------------------------


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    tickets = workflow.todo(session, actor=actor, kinds=["catalog_review"])
    entries = {e.id: e for e in catalog_service.entries_by_ids(session, [t.subject_id for t in tickets])}
    rows = [(t, entries[t.subject_id]) for t in tickets if t.subject_id in entries]
    return render(request, "catalog/review.html", {"rows": rows, "today": local_today()})


@router.get("/catalog-import", response_class=HTMLResponse)
def import_form(request: Request, actor: CurrentActor) -> Response:
    authz.ensure(actor, "catalog.import")
    return render(request, "catalog/import.html", {"result": None, "errors": []})


@router.post("/catalog-import", dependencies=[Csrf])
async def import_upload(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    file: Annotated[UploadFile, File()],
    valid_only: Annotated[bool, Form()] = False,
) -> Response:
    content = await file.read(20 * 1024 * 1024 + 1)
    try:
        result = importing.import_workbook(session, actor=actor, content=content, valid_only=valid_only)
    except ZhengshuError as exc:
        session.rollback()
        return render(
            request,
            "catalog/import.html",
            {"result": None, "problem": exc.problem(), "errors": exc.errors},
            status_code=exc.status,
        )
    return render(request, "catalog/import.html", {"result": result, "errors": []})
