"""Pages of applications and authorizations: apply from an entry, my applications, the provider's item-by-item
review, the data authority's compliance review and coordination, authorizations with suspend/renew/revoke,
and the supervision figures."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from zhengshu.catalog.models import CatalogEntry
from zhengshu.catalog.panels import register_entry_panel
from zhengshu.core.errors import NotFound, ZhengshuError
from zhengshu.core.timeutil import local_today
from zhengshu.demand import applications, authorizations, workflows
from zhengshu.demand.models import Authorization, DataApplication
from zhengshu.demand.schemas import ApplicationIn, DecisionIn, DeliveryWay
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role
from zhengshu.security.masking import RULES
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.errors import pydantic_errors
from zhengshu.web.forms import form_errors, redirect
from zhengshu.web.pagination import decode_cursor, encode_cursor
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20


def entry_panel_context(session: Session, actor: Actor, entry: CatalogEntry) -> dict[str, Any]:
    """The catalog entry page's panel: apply, this organization's authorizations, who may use which item."""
    reason = ""
    if entry.status != "published":
        reason = "目录发布后才能申请使用。"
    elif entry.provider_org_id == actor.org_id:
        reason = "这是本单位提供的目录，可在下方查询各信息项的授权使用方。"
    elif entry.sharing_type == "不予共享":
        reason = "该目录为不予共享，不能申请。"
    can_apply = not reason and authz.allowed(actor, "application.create")
    mine: list[Any] = []
    if actor.org_id and entry.provider_org_id != actor.org_id:
        filters = authorizations.AuthorizationFilters(
            entry_id=entry.id, consumer_org_id=actor.org_id, status=["active"]
        )
        mine = list(session.scalars(authorizations.list_query(actor, filters).limit(5)))
    return {
        "can_apply": can_apply,
        "apply_reason": reason,
        "my_authorizations": mine,
        "can_audit": authz.allowed(actor, "authorization.audit", entry),
    }


register_entry_panel("applications", "demand/_entry_panel.html", entry_panel_context, order=10)


def _pager(request: Request, offset: int, has_more: bool) -> tuple[str | None, str | None]:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    base = request.url.path + "?"
    next_url = base + urlencode([*pairs, ("cursor", encode_cursor(offset + PAGE_SIZE))]) if has_more else None
    prev_url = base + urlencode([*pairs, ("cursor", encode_cursor(max(0, offset - PAGE_SIZE)))]) if offset else None
    return next_url, prev_url


def _problem_text(exc: ZhengshuError) -> str:
    details = "；".join(e.message for e in exc.errors)
    return f"{exc.detail}：{details}" if details else exc.detail


# ---- lists ------------------------------------------------------------------------------------------------


def _default_box(actor: CurrentActor) -> str | None:
    if actor.is_admin:
        return None
    if actor.has_role(Role.REVIEWER):
        return "authority"
    return "applied"


@router.get("/applications", response_class=HTMLResponse)
def application_list(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    box: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
) -> Response:
    box = box if box in applications.BOXES or box == "all" else _default_box(actor)
    states = [s for s in request.query_params.getlist("state") if s in workflows.STATE_LABELS]
    filters = applications.ApplicationFilters(q=q or None, state=states or None, box=None if box == "all" else box)
    offset = decode_cursor(cursor)
    stmt = applications.list_query(actor, filters).order_by(
        DataApplication.created_at.desc(), DataApplication.id.desc()
    )
    rows = list(session.scalars(stmt.offset(offset).limit(PAGE_SIZE + 1)))
    next_url, prev_url = _pager(request, offset, len(rows) > PAGE_SIZE)
    rows = rows[:PAGE_SIZE]
    tickets = applications.tickets_for(session, rows)
    return render(
        request,
        "demand/application_list.html",
        {
            "rows": [(a, tickets.get(a.ticket_id or "")) for a in rows],
            "box": box or "all",
            "boxes": applications.BOXES,
            "q": q or "",
            "states": states,
            "state_labels": workflows.STATE_LABELS,
            "outcome_labels": workflows.OUTCOME_LABELS,
            "next_url": next_url,
            "prev_url": prev_url,
            "today": local_today(),
        },
    )


# ---- apply ------------------------------------------------------------------------------------------------


def _apply_context(
    session: DbSession, actor: CurrentActor, entry_id: str, values: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    entry, version, options = applications.apply_options(session, actor=actor, entry_id=entry_id)
    return {
        "entry": entry,
        "version": version,
        "options": options,
        "values": values,
        "errors": errors,
        "delivery_ways": [w.value for w in DeliveryWay],
        "rule_labels": RULES,
    }


@router.get("/applications/new", response_class=HTMLResponse)
def apply_form(request: Request, session: DbSession, actor: CurrentActor, entry_id: str) -> Response:
    today = local_today()
    values: dict[str, Any] = {
        "item_keys": [],
        "start_on": today.isoformat(),
        "end_on": date(today.year + 1, today.month, min(today.day, 28)).isoformat(),
        "delivery_way": DeliveryWay.API.value,
        "contact_name": actor.display_name,
    }
    return render(request, "demand/application_form.html", _apply_context(session, actor, entry_id, values, {}))


def _apply_data(form: FormData) -> dict[str, Any]:
    data: dict[str, Any] = {
        k: str(v).strip() for k, v in form.multi_items() if k not in ("csrf_token", "item_keys") and isinstance(v, str)
    }
    data["item_keys"] = [str(v) for v in form.getlist("item_keys")]
    return data


@router.post("/applications/new", dependencies=[Csrf])
async def apply(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    data = _apply_data(await request.form())
    entry_id = str(data.get("entry_id", ""))
    errors: dict[str, str]
    try:
        app = applications.create(session, actor=actor, application_in=ApplicationIn.model_validate(data))
    except ValidationError as exc:
        errors = {e["field"]: e["message"] for e in pydantic_errors(list(exc.errors()))}
        if not data["item_keys"]:
            errors["item_keys"] = "请至少选择一个信息项"
    except ZhengshuError as exc:
        if not exc.errors:
            raise
        errors = form_errors(exc)
    else:
        ticket = applications.ticket_of(session, app)
        flash(
            request,
            f"申请已提交，进入数据主管部门合规审查，审查期限 {ticket.due_on}"
            f"{'（暂定）' if ticket.due_provisional else ''}。",
            link=f"/applications/{app.id}",
        )
        return redirect(f"/applications/{app.id}")
    session.rollback()
    return render(
        request,
        "demand/application_form.html",
        _apply_context(session, actor, entry_id, data, errors),
        status_code=422,
    )


# ---- supervision ------------------------------------------------------------------------------------------


@router.get("/applications/stats", response_class=HTMLResponse)
def stats_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return render(
        request,
        "demand/application_stats.html",
        {
            "timeliness": applications.timeliness(session, actor=actor),
            "counts": applications.counts_by_state(session, actor=actor),
        },
    )


# ---- detail and actions -----------------------------------------------------------------------------------


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def application_detail(request: Request, session: DbSession, actor: CurrentActor, application_id: str) -> Response:
    app = applications.get(session, actor=actor, application_id=application_id)
    ticket = applications.ticket_of(session, app)
    today = local_today()
    actions = applications.available_actions(actor, app, today=today)
    # items the decision form asks about: pending ones (provider), pending or refused ones (coordination)
    open_statuses = {"pending", "refused"} if "coordinate" in actions else {"pending"}
    return render(
        request,
        "demand/application_detail.html",
        {
            "app": app,
            "ticket": ticket,
            "actions": actions,
            "decide_items": [i for i in app.items if i.status in open_statuses],
            "auths": authorizations.for_application(session, application_id=app.id),
            "state_labels": workflows.STATE_LABELS,
            "item_labels": workflows.ITEM_STATUS_LABELS,
            "outcome_labels": workflows.OUTCOME_LABELS,
            "rule_labels": RULES,
            "auth_labels": authorizations.STATUS_LABELS,
            "effective": authorizations.effective_status,
            "today": today,
        },
    )


def _decision_from_form(app: DataApplication, form: FormData, statuses: set[str]) -> DecisionIn:
    items = []
    for item in app.items:
        if item.status not in statuses:
            continue
        choice = form.get(f"decision-{item.item_key}")
        if choice is None:
            continue  # left undecided: the service names it
        items.append(
            {
                "item_key": item.item_key,
                "decision": str(choice),
                "reason": str(form.get(f"reason-{item.item_key}") or ""),
                "masking_rule": str(form.get(f"mask-{item.item_key}") or "") or None,
            }
        )
    return DecisionIn.model_validate(
        {"items": items or [{"item_key": "-", "decision": "approve"}], "comment": str(form.get("comment") or "")}
    )


DECISION_MESSAGES = {
    "all": "已全部同意，共享授权已生效。",
    "partial": "已部分同意：同意的信息项已生成共享授权，不同意的理由已告知申请方。",
    "none": "已答复不同意，理由已告知申请方。",
}


@router.post("/applications/{application_id}/decide", dependencies=[Csrf])
async def decide(request: Request, session: DbSession, actor: CurrentActor, application_id: str) -> Response:
    """Item-by-item decision: the provider in review, or the data authority in coordination."""
    form = await request.form()
    app = applications.get(session, actor=actor, application_id=application_id)
    coordinating = app.state == "coordination"
    target = f"/applications/{application_id}"
    try:
        decision_in = _decision_from_form(app, form, {"pending", "refused"} if coordinating else {"pending"})
        fn = applications.coordinate if coordinating else applications.decide
        app = fn(session, actor=actor, application_id=application_id, decision_in=decision_in)
    except ValidationError:
        session.rollback()
        flash(request, "请对每个信息项选择同意或不同意", kind="error")
        return redirect(target + "#decide")
    except ZhengshuError as exc:
        session.rollback()
        flash(request, _problem_text(exc), kind="error")
        return redirect(target + "#decide")
    flash(request, DECISION_MESSAGES.get(app.outcome or "", "已提交决定。"), link=target)
    return redirect(target)


TEXT_ACTIONS: dict[str, tuple[Any, str, str]] = {
    # verb: (service function, name of its text argument, message shown after it)
    "comply": (applications.comply, "comment", "合规审查已通过。"),
    "reject": (applications.reject, "reason", "已作出合规审查不通过的决定。"),
    "request-supplement": (applications.request_supplement, "reason", "已要求申请方补充材料。"),
    "supplement": (applications.supplement, "material", "材料已补充，申请回到提供方审核。"),
    "withdraw": (applications.withdraw, "reason", "申请已撤回。"),
    "appeal": (applications.appeal, "reason", "申诉已提交，由数据主管部门协调。"),
    "accept": (applications.accept, "comment", "已接受答复，申请办结。"),
    "remand": (applications.remand, "reason", "已退回提供方重新审核。"),
}


@router.post("/applications/{application_id}/{verb}", dependencies=[Csrf])
def application_action(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    application_id: str,
    verb: str,
    text: Annotated[str, Form()] = "",
) -> Response:
    if verb not in TEXT_ACTIONS:
        raise NotFound("不支持的操作", code="application.unknown_action")
    fn, arg, message = TEXT_ACTIONS[verb]
    target = f"/applications/{application_id}"
    try:
        app = fn(session, actor=actor, application_id=application_id, **{arg: text})
    except ZhengshuError as exc:
        if exc.status == 404:
            raise
        session.rollback()
        flash(request, _problem_text(exc), kind="error")
        return redirect(target)
    if verb == "comply" and app.state == "approved":
        message = "合规审查已通过，所申请的无条件共享信息项已按规则自动授权。"
    elif verb == "comply" and any(i.status == "granted" for i in app.items):
        message = "合规审查已通过：无条件共享信息项已按规则自动授权，有条件共享信息项已转提供方审核。"
    flash(request, message, link=target)
    return redirect(target)


# ---- authorizations ---------------------------------------------------------------------------------------


@router.get("/authorizations", response_class=HTMLResponse)
def authorization_list(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: str | None = None,
    entry_id: str | None = None,
    cursor: str | None = None,
) -> Response:
    statuses = [s for s in request.query_params.getlist("status") if s in authorizations.STATUS_LABELS]
    today = local_today()
    filters = authorizations.AuthorizationFilters(status=statuses or None, q=q or None, entry_id=entry_id or None)
    offset = decode_cursor(cursor)
    stmt = authorizations.list_query(actor, filters, on=today).order_by(
        Authorization.created_at.desc(), Authorization.id.desc()
    )
    rows = list(session.scalars(stmt.offset(offset).limit(PAGE_SIZE + 1)))
    next_url, prev_url = _pager(request, offset, len(rows) > PAGE_SIZE)
    return render(
        request,
        "demand/authorization_list.html",
        {
            "rows": [authorizations.to_summary(a, today=today) for a in rows[:PAGE_SIZE]],
            "statuses": statuses,
            "status_labels": authorizations.STATUS_LABELS,
            "q": q or "",
            "next_url": next_url,
            "prev_url": prev_url,
        },
    )


@router.get("/authorizations/who-can-see", response_class=HTMLResponse)
def who_can_see_page(
    request: Request, session: DbSession, actor: CurrentActor, entry_id: str, item_key: str
) -> Response:
    rows = authorizations.who_can_see(session, actor=actor, entry_id=entry_id, item_key=item_key)
    return render(
        request,
        "demand/who_can_see.html",
        {"rows": rows, "entry_id": entry_id, "item_key": item_key, "rule_labels": RULES, "today": local_today()},
    )


@router.get("/authorizations/{authorization_id}", response_class=HTMLResponse)
def authorization_detail(request: Request, session: DbSession, actor: CurrentActor, authorization_id: str) -> Response:
    auth = authorizations.get(session, actor=actor, authorization_id=authorization_id)
    today = local_today()
    return render(
        request,
        "demand/authorization_detail.html",
        {
            "auth": auth,
            "view": authorizations.to_read(auth, actor=actor, today=today),
            "rule_labels": RULES,
            "status_labels": authorizations.STATUS_LABELS,
            "basis_labels": authorizations.BASIS_LABELS,
            # the audit question is about the entry (its provider, the data authority covering its region)
            "can_audit": authz.allowed(actor, "authorization.audit", session.get(CatalogEntry, auth.entry_id)),
            "today": today,
        },
    )


AUTH_MESSAGES = {
    "suspend": "授权已暂停，暂停期间使用方不能调用或接收数据。",
    "resume": "授权已恢复。",
    "renew": "授权已续期。",
    "revoke": "授权已撤销，即时生效。",
}


@router.post("/authorizations/{authorization_id}/{verb}", dependencies=[Csrf])
def authorization_action(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    authorization_id: str,
    verb: str,
    text: Annotated[str, Form()] = "",
    end_on: Annotated[str, Form()] = "",
) -> Response:
    target = f"/authorizations/{authorization_id}"
    functions = {"suspend": authorizations.suspend, "resume": authorizations.resume, "revoke": authorizations.revoke}
    if verb not in functions and verb != "renew":
        raise NotFound("不支持的操作", code="authorization.unknown_action")
    try:
        if verb == "renew":
            try:
                new_end = date.fromisoformat(end_on)
            except ValueError:
                flash(request, "请填写有效的新到期日", kind="error")
                return redirect(target)
            authorizations.renew(session, actor=actor, authorization_id=authorization_id, end_on=new_end, reason=text)
        else:
            functions[verb](session, actor=actor, authorization_id=authorization_id, reason=text)
    except ZhengshuError as exc:
        if exc.status == 404:
            raise
        session.rollback()
        flash(request, _problem_text(exc), kind="error")
        return redirect(target)
    flash(request, AUTH_MESSAGES[verb], link=target)
    return redirect(target)
