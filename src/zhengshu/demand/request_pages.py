"""Data request pages: new request (with provider suggestions while typing), my requests, the provider's
to-answer list, the data authority's coordination list, and the detail page with the whole-path timeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from zhengshu.core.errors import Conflict, ValidationFailed
from zhengshu.core.timeutil import local_today
from zhengshu.demand import requests as request_service
from zhengshu.demand.models import DataRequest
from zhengshu.demand.request_schemas import DataRequestIn
from zhengshu.demand.request_workflows import ANSWER_LABELS, REQUEST_MACHINE, STATE_LABELS, URGENCIES
from zhengshu.org import service as org_service
from zhengshu.security import authz
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, page_links, redirect
from zhengshu.web.pagination import paginate
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
BOX_TITLES = {"mine": "我的数据需求", "todo": "待我答复的数据需求", "coordination": "待协调的数据需求"}
FIELDS = ("title", "description", "items_text", "purpose", "basis", "business_system", "urgency", "provider_org_id")


def _providers(session: DbSession, actor: CurrentActor) -> list[Any]:
    return [o for o in org_service.list_organizations(session) if o.id != actor.org_id and not o.is_data_authority]


@router.get("/requests", response_class=HTMLResponse)
def requests_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    box: str = "mine",
    state: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
) -> Response:
    if box not in BOX_TITLES:
        box = "mine"
    filters = request_service.RequestFilters(box=box, state=[state] if state else None, q=q)
    stmt = request_service.list_query(actor, filters).order_by(
        DataRequest.reply_due_on.is_(None), DataRequest.reply_due_on, DataRequest.created_at.desc(), DataRequest.id
    )
    if box == "mine":
        stmt = stmt.order_by(None).order_by(DataRequest.created_at.desc(), DataRequest.id)
    rows, next_cursor, _ = paginate(session, stmt, limit=PAGE_SIZE, cursor=cursor, count=False)
    return render(
        request,
        "demand/request_list.html",
        {
            "box": box,
            "box_titles": BOX_TITLES,
            "rows": [request_service.to_read(session, r, actor=actor) for r in rows],
            "state": state or "",
            "q": q or "",
            "state_labels": STATE_LABELS,
            "next_url": page_links(request, next_cursor),
            "can_create": authz.allowed(actor, "data_request.create"),
            "is_reviewer": actor.has_role(*REQUEST_MACHINE.state("coordination").handler_roles),
        },
    )


def _form(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int,
) -> Response:
    return render(
        request,
        "demand/request_form.html",
        {"values": values, "errors": errors, "providers": _providers(session, actor), "urgencies": URGENCIES},
        status_code=status,
    )


@router.get("/requests/new", response_class=HTMLResponse)
def new_request_form(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    authz.ensure(actor, "data_request.create")
    return _form(request, session, actor, {"urgency": "一般"}, {}, 200)


@router.post("/requests/new", dependencies=[Csrf])
async def create_request(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    form = await request.form()
    values = {k: str(form.get(k) or "").strip() for k in FIELDS}
    data: dict[str, Any] = {**values, "provider_org_id": values["provider_org_id"] or None}
    try:
        req = request_service.create(session, actor=actor, request_in=DataRequestIn.model_validate(data))
    except (ValidationError, ValidationFailed) as exc:
        return _form(request, session, actor, values, form_errors(exc), 422)
    whom = req.provider.name if req.provider else "数据主管部门"
    flash(request, f"数据需求已提交，由{whom}办理。", link=f"/requests/{req.id}")
    return redirect(f"/requests/{req.id}")


@router.get("/requests/suggest", response_class=HTMLResponse)
def suggest_fragment(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    text: str = "",
    title: str = "",
    description: str = "",
    items_text: str = "",
) -> Response:
    """htmx fragment: the probable providers of what is being typed, with a few of their matching entries."""
    combined = " ".join(t for t in (text, title, items_text, description) if t.strip())[:2000]
    suggestions = request_service.suggest_providers(session, actor=actor, text=combined) if combined.strip() else []
    return render(request, "demand/request_suggest.html", {"suggestions": suggestions, "text": combined})


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_detail(request: Request, session: DbSession, actor: CurrentActor, request_id: str) -> Response:
    return _detail(request, session, actor, request_id, {}, 200)


def _detail(
    request: Request, session: DbSession, actor: CurrentActor, request_id: str, errors: dict[str, str], status: int
) -> Response:
    req = request_service.get(session, actor=actor, request_id=request_id)
    ticket = request_service.ticket_of(session, req) if req.ticket_id else None
    actions = request_service.actions_for(actor, req)
    own_entries: list[Any] = []
    if {"link_entry", "compile"} & set(actions):
        from sqlalchemy import select

        from zhengshu.catalog.models import CatalogEntry

        own_entries = list(
            session.scalars(
                select(CatalogEntry)
                .where(CatalogEntry.provider_org_id == req.provider_org_id, CatalogEntry.status != "withdrawn")
                .order_by(CatalogEntry.name)
                .limit(500)
            )
        )
    return render(
        request,
        "demand/request_detail.html",
        {
            "req": req,
            "read": request_service.to_read(session, req, actor=actor),
            "ticket": ticket,
            "timeline": request_service.request_timeline(session, actor=actor, request_id=req.id),
            "actions": actions,
            "labels": {n: t.label for n, t in REQUEST_MACHINE.transitions.items()},
            "answer_labels": ANSWER_LABELS,
            "providers": _providers(session, actor) if {"redirect", "assign"} & set(actions) else [],
            "own_entries": own_entries,
            "errors": errors,
            "today": local_today(),
        },
        status_code=status,
    )


VERBS = {
    "link-entry": "关联目录",
    "compile": "编目后提供",
    "not-held": "无此数据",
    "refuse": "不予共享",
    "redirect": "改派提供部门",
    "ask-coordination": "提请协调",
    "assign": "指定提供部门",
    "close": "办结",
    "withdraw": "撤回",
}


@router.post("/requests/{request_id}/{verb}", dependencies=[Csrf])
async def request_action(
    request: Request, session: DbSession, actor: CurrentActor, request_id: str, verb: str
) -> Response:
    if verb not in VERBS:
        raise ValidationFailed("不支持的操作", code="data_request.bad_action")
    form = await request.form()

    def value(name: str) -> str:
        return str(form.get(name) or "").strip()

    s, a, rid = session, actor, request_id
    try:
        if verb == "link-entry":
            request_service.link_entry(s, actor=a, request_id=rid, entry_id=value("entry_id"), comment=value("comment"))
        elif verb == "compile":
            request_service.compile_entry(
                s, actor=a, request_id=rid, entry_id=value("entry_id") or None, comment=value("comment")
            )
        elif verb == "not-held":
            request_service.answer_not_held(s, actor=a, request_id=rid, reason=value("reason"))
        elif verb == "refuse":
            request_service.refuse(s, actor=a, request_id=rid, legal_basis=value("legal_basis"), reason=value("reason"))
        elif verb == "redirect":
            request_service.redirect(
                s, actor=a, request_id=rid, provider_org_id=value("provider_org_id"), comment=value("comment")
            )
        elif verb == "assign":
            request_service.assign_provider(
                s, actor=a, request_id=rid, provider_org_id=value("provider_org_id"), comment=value("comment")
            )
        elif verb == "ask-coordination":
            request_service.ask_coordination(s, actor=a, request_id=rid, reason=value("reason"))
        elif verb == "close":
            request_service.close(s, actor=a, request_id=rid, comment=value("comment"))
        else:
            request_service.withdraw(s, actor=a, request_id=rid, reason=value("comment"))
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        message = "；".join(form_errors(exc).values())
        return _detail(request, session, actor, request_id, {verb: message}, exc.status)
    req = request_service.get(session, actor=actor, request_id=request_id)
    flash(request, f"已{VERBS[verb]}，当前状态：{STATE_LABELS.get(req.state, req.state)}。", link=f"/requests/{req.id}")
    return redirect(f"/requests/{req.id}")
