"""Objection pages of the sharing portal: raise one from an entry, my objections, the provider's to-handle
list and answer form, the data authority's supervision and arbitration, detail with the timeline, files,
flags and corrections."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry
from zhengshu.catalog.panels import register_entry_panel
from zhengshu.core.errors import NotFound, ZhengshuError
from zhengshu.core.timeutil import local_today
from zhengshu.objection import service as objection_service
from zhengshu.objection import workflows as wf
from zhengshu.objection.api import app_settings, download_response, read_uploads
from zhengshu.objection.attachments import ALLOWED_LABEL
from zhengshu.objection.models import Objection
from zhengshu.objection.schemas import (
    DECISION_LABELS,
    KIND_LABELS,
    RESOLUTION_LABELS,
    TARGET_LABELS,
    AnswerIn,
    ArbitrateIn,
    ForwardIn,
    ObjectionIn,
)
from zhengshu.org import service as org_service
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.errors import pydantic_errors
from zhengshu.web.forms import blank_to_none, page_links
from zhengshu.web.pagination import paginate
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20


def _labels() -> dict[str, Any]:
    return {
        "kind_labels": KIND_LABELS,
        "state_labels": wf.STATE_LABELS,
        "target_labels": TARGET_LABELS,
        "resolution_labels": RESOLUTION_LABELS,
        "decision_labels": DECISION_LABELS,
    }


def entry_panel_context(session: Session, *, actor: Actor, entry: CatalogEntry) -> dict[str, Any]:
    """Context for ``objection/_entry_panel.html`` on the catalog entry page: the open flags, the corrections
    and whether this reader may raise an objection."""
    shown = catalog_service.display_version(session, entry)
    return {
        "objection_flags": objection_service.flags_for(session, entry_id=entry.id),
        "objection_corrections": objection_service.corrections_for(session, entry_id=entry.id)[:20],
        "objection_items": {i.key: i.name for i in shown.items},
        "objection_can_raise": entry.status == "published"
        and entry.provider_org_id != actor.org_id
        and authz.allowed(actor, "objection.create"),
    }


register_entry_panel(
    "objections",
    "objection/_entry_panel.html",
    lambda session, actor, entry: entry_panel_context(session, actor=actor, entry=entry),
    order=20,
)


# ---- lists --------------------------------------------------------------------------------------------


@router.get("/objections", response_class=HTMLResponse)
def objection_list(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    box: str = "",
    q: str | None = None,
    state: str | None = None,
    cursor: str | None = None,
) -> Response:
    box = box if box in objection_service.BOXES else "all"
    filters = objection_service.ObjectionFilters(box=box, q=blank_to_none(q), state=[state] if state else None)
    stmt = objection_service.list_query(actor, filters).order_by(Objection.created_at.desc(), Objection.id)
    rows, next_cursor, _ = paginate(session, stmt, limit=PAGE_SIZE, cursor=cursor, count=False)
    tickets = objection_service.tickets_by_id(session, rows)
    items = [(o, tickets.get(o.ticket_id or "")) for o in rows]
    return render(
        request,
        "objection/list.html",
        {
            "box": box,
            "boxes": objection_service.BOXES,
            "q": q or "",
            "state": state or "",
            "items": items,
            "next_url": page_links(request, next_cursor),
            "today": local_today(),
            "objector_name": objection_service.objector_name,
            **_labels(),
        },
    )


# ---- raise --------------------------------------------------------------------------------------------


def _form_context(
    session: Session, entry: CatalogEntry, values: dict[str, Any], errors: dict[str, str], *, max_mb: int
) -> dict[str, Any]:
    shown = catalog_service.display_version(session, entry)
    return {
        "entry": entry,
        "items": shown.items,
        "resources": [r for r in entry.resources if r.active],
        "values": values,
        "errors": errors,
        "allowed_types": ALLOWED_LABEL,
        "max_mb": max_mb,
        **_labels(),
    }


@router.get("/objections/new", response_class=HTMLResponse)
def new_objection_form(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    item_key: str | None = None,
    resource_id: str | None = None,
    record_key: str | None = None,
) -> Response:
    authz.ensure(actor, "objection.create")
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    values = {"item_key": item_key or "", "resource_id": resource_id or "", "record_key": record_key or ""}
    values["kind"] = "wrong"
    ctx = _form_context(session, entry, values, {}, max_mb=app_settings(request).max_attachment_mb)
    return render(request, "objection/form.html", ctx)


@router.post("/objections/new", dependencies=[Csrf])
def create_objection(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    item_key: Annotated[str, Form()] = "",
    resource_id: Annotated[str, Form()] = "",
    record_key: Annotated[str, Form()] = "",
    other_source: Annotated[str, Form()] = "",
    claimed_value: Annotated[str, Form()] = "",
    attachments: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    settings = app_settings(request)
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    values = {
        "kind": kind,
        "description": description,
        "item_key": item_key,
        "resource_id": resource_id,
        "record_key": record_key,
        "other_source": other_source,
        "claimed_value": claimed_value,
    }
    errors: dict[str, str] = {}
    try:
        objection_in = ObjectionIn.model_validate({"entry_id": entry_id, **values})
        obj = objection_service.raise_objection(
            session,
            actor=actor,
            objection_in=objection_in,
            attachments=read_uploads(attachments, settings),
            settings=settings,
        )
    except ValidationError as exc:
        errors = {e["field"]: e["message"] for e in pydantic_errors(list(exc.errors()))}
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        errors = {e.field: e.message for e in exc.errors} or {"": exc.detail}
    else:
        ticket = objection_service.ticket_of(session, obj)
        due = f"{ticket.due_on.isoformat()}{'（暂定）' if ticket.due_provisional else ''}" if ticket.due_on else ""
        joined = "已并入同一对象的异议组，" if obj.group_id != obj.id else ""
        flash(
            request,
            f"数据异议已提交，{joined}已转{obj.handler_org.name}核实处理，答复期限 {due}。",
            link=f"/objections/{obj.id}",
        )
        return RedirectResponse(f"/objections/{obj.id}", status_code=303)
    session.rollback()
    ctx = _form_context(session, entry, values, errors, max_mb=settings.max_attachment_mb)
    return render(request, "objection/form.html", ctx, status_code=422)


# ---- supervision --------------------------------------------------------------------------------------


@router.get("/objections/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Response:
    def parse(value: str | None) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            return None

    start, end = parse(date_from), parse(date_to)
    return render(
        request,
        "objection/stats.html",
        {
            "states": objection_service.counts_by_state(session, actor=actor),
            "rows": objection_service.supervision_rows(session, actor=actor, date_from=start, date_to=end),
            "date_from": start.isoformat() if start else "",
            "date_to": end.isoformat() if end else "",
        },
    )


# ---- detail and actions -------------------------------------------------------------------------------


@router.get("/objections/{objection_id}", response_class=HTMLResponse)
def objection_detail(request: Request, session: DbSession, actor: CurrentActor, objection_id: str) -> Response:
    obj = objection_service.get(session, actor=actor, objection_id=objection_id)
    ticket = objection_service.ticket_of(session, obj)
    actions = objection_service.available_actions(actor, obj)
    members = objection_service.group_members(session, obj)
    flags = objection_service.group_flags(session, obj)
    shown = catalog_service.display_version(session, obj.entry)
    corrections = [
        c for c in objection_service.corrections_for(session, entry_id=obj.entry_id) if c.group_id == obj.group_id
    ]
    orgs = []
    if "forward" in actions:
        orgs = [o for o in org_service.list_organizations(session) if o.id != obj.handler_org_id]
    return render(
        request,
        "objection/detail.html",
        {
            "obj": obj,
            "ticket": ticket,
            "actions": actions,
            "members": members,
            "flags": flags,
            "corrections": corrections,
            "events": objection_service.timeline(session, obj),
            "items": shown.items,
            "orgs": orgs,
            "today": local_today(),
            "objector_name": objection_service.objector_name(obj),
            "allowed_types": ALLOWED_LABEL,
            "max_mb": app_settings(request).max_attachment_mb,
            **_labels(),
        },
    )


MESSAGES = {
    "accept": "已受理，数据已标注为“异议核实中”。",
    "answer": "已答复，等待异议方确认。",
    "forward": "已转办，新的办理部门将重新计算答复期限。",
    "urge": "已督办，退回办理部门限期答复。",
    "confirm": "已确认答复，异议办结。",
    "dispute": "已提请数据主管部门仲裁。",
    "arbitrate": "已作出仲裁裁定，异议办结。",
    "withdraw": "异议已撤回。",
}


def _perform(session: Session, actor: Actor, objection_id: str, verb: str, form: dict[str, str]) -> Objection:
    text = form.get("text", "")
    if verb == "accept":
        return objection_service.accept(session, actor=actor, objection_id=objection_id, comment=text)
    if verb == "answer":
        answer_in = AnswerIn.model_validate(
            {
                "resolution": form.get("resolution", ""),
                "corrected_value": blank_to_none(form.get("corrected_value")),
                "old_value": blank_to_none(form.get("old_value")),
                "effective_from": blank_to_none(form.get("effective_from")),
                "item_key": blank_to_none(form.get("item_key")),
                "note": form.get("note", ""),
            }
        )
        return objection_service.answer(session, actor=actor, objection_id=objection_id, answer_in=answer_in)
    if verb == "forward":
        forward_in = ForwardIn.model_validate({"to_org_id": form.get("to_org_id", ""), "reason": text})
        return objection_service.forward(session, actor=actor, objection_id=objection_id, forward_in=forward_in)
    if verb == "urge":
        return objection_service.urge(session, actor=actor, objection_id=objection_id, comment=text)
    if verb == "confirm":
        return objection_service.confirm(session, actor=actor, objection_id=objection_id, comment=text)
    if verb == "dispute":
        return objection_service.dispute(session, actor=actor, objection_id=objection_id, reason=text)
    if verb == "arbitrate":
        arbitrate_in = ArbitrateIn.model_validate(
            {
                "decision": form.get("decision", ""),
                "reason": text,
                "corrected_value": blank_to_none(form.get("corrected_value")),
                "effective_from": blank_to_none(form.get("effective_from")),
            }
        )
        return objection_service.arbitrate(session, actor=actor, objection_id=objection_id, arbitrate_in=arbitrate_in)
    if verb == "withdraw":
        return objection_service.withdraw(session, actor=actor, objection_id=objection_id, reason=text)
    raise NotFound("不支持的操作", code="objection.unknown_action")


@router.post("/objections/{objection_id}/attachments", dependencies=[Csrf])
def upload_attachments(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    objection_id: str,
    attachments: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    settings = app_settings(request)
    try:
        rows = objection_service.add_attachments(
            session,
            actor=actor,
            objection_id=objection_id,
            attachments=read_uploads(attachments, settings),
            settings=settings,
        )
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        flash(request, exc.errors[0].message if exc.errors else exc.detail, kind="error")
    else:
        flash(request, f"已上传 {len(rows)} 个佐证材料。")
    return RedirectResponse(f"/objections/{objection_id}#attachments", status_code=303)


@router.get("/objections/{objection_id}/attachments/{attachment_id}")
def download_attachment(
    request: Request, session: DbSession, actor: CurrentActor, objection_id: str, attachment_id: str
) -> FileResponse:
    row, path = objection_service.attachment_file(
        session,
        actor=actor,
        objection_id=objection_id,
        attachment_id=attachment_id,
        data_dir=app_settings(request).data_dir,
    )
    return download_response(row, path)


@router.post("/objections/{objection_id}/{verb}", dependencies=[Csrf])
def objection_action(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    objection_id: str,
    verb: str,
    text: Annotated[str, Form()] = "",
    resolution: Annotated[str, Form()] = "",
    corrected_value: Annotated[str, Form()] = "",
    old_value: Annotated[str, Form()] = "",
    effective_from: Annotated[str, Form()] = "",
    item_key: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    to_org_id: Annotated[str, Form()] = "",
    decision: Annotated[str, Form()] = "",
) -> Response:
    if verb not in MESSAGES:
        raise NotFound("不支持的操作", code="objection.unknown_action")
    form = {
        "text": text,
        "resolution": resolution,
        "corrected_value": corrected_value,
        "old_value": old_value,
        "effective_from": effective_from,
        "item_key": item_key,
        "note": note,
        "to_org_id": to_org_id,
        "decision": decision,
    }
    try:
        obj = _perform(session, actor, objection_id, verb, form)
    except ValidationError as exc:
        session.rollback()
        flash(request, "；".join(e["message"] for e in pydantic_errors(list(exc.errors()))), kind="error")
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        detail = "；".join(e.message for e in exc.errors) if exc.errors else exc.detail
        flash(request, detail, kind="error")
    else:
        flash(request, f"「{obj.title}」{MESSAGES[verb]}", link=f"/objections/{obj.id}")
    return RedirectResponse(f"/objections/{objection_id}", status_code=303)
