"""Portal pages shared by every feature: login, the dashboard, the to-do list, ticket timelines."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import ENTRY_STATUS_LABELS
from zhengshu.core.errors import Unauthenticated
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.web.deps import Csrf, CurrentActor, DbSession, OptionalActor, client_ip, session_epoch
from zhengshu.web.forms import safe_local_path
from zhengshu.web.templating import flash, render
from zhengshu.workflow import service as workflow
from zhengshu.workflow.machine import get_machine
from zhengshu.workflow.models import Ticket

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    return safe_local_path(target) or "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, actor: OptionalActor, next: str | None = None) -> Response:
    if actor is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Csrf])
def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    from zhengshu.audit import service as audit_service

    try:
        user = org_service.authenticate(session, username=username, password=password)
    except Unauthenticated as exc:
        audit_service.record(
            session,
            actor=None,
            action="auth.login",
            target_type="user",
            target_id=username,
            outcome="failure",
            source_ip=client_ip(request),
            detail={"reason": exc.code},
        )
        return render(
            request,
            "login.html",
            {"error": exc.detail, "username": username, "next": _safe_next(next)},
            status_code=401,
        )
    request.session.clear()
    request.session["user_id"] = user.id
    request.session["pw"] = session_epoch(request, user)  # a password change ends other sessions
    actor = org_service.actor_for(user, source_ip=client_ip(request))
    audit_service.record(session, actor=actor, action="auth.login", target_type="user", target_id=user.id)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def ticket_rows(session: DbSession, tickets: list[Ticket]) -> list[dict[str, object]]:
    org_ids = {t.assignee_org_id for t in tickets} | {t.requester_org_id for t in tickets}
    names = dict(
        session.execute(
            select(Organization.id, Organization.short_name).where(Organization.id.in_([i for i in org_ids if i]))
        ).all()
    )
    rows = []
    for t in tickets:
        machine = get_machine(t.kind)
        rows.append(
            {
                "ticket": t,
                "kind_label": machine.label,
                "state_label": machine.state(t.state).label,
                "link": machine.link(t.subject_type, t.subject_id) if machine.link else f"/tickets/{t.id}",
                "assignee": names.get(t.assignee_org_id or "", ""),
                "requester": names.get(t.requester_org_id or "", ""),
            }
        )
    return rows


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    counts = catalog_service.counts_by_provider_and_status(session, actor=actor)
    by_status: dict[str, int] = defaultdict(int)
    by_org: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _org_id, org_name, status, n in counts:
        by_status[status] += n
        by_org[org_name][status] += n
    top = sorted(by_org.items(), key=lambda kv: -sum(kv[1].values()))[:15]
    chart = {
        "orgs": [name for name, _ in top][::-1],
        "series": [
            {"name": ENTRY_STATUS_LABELS[s], "data": [c.get(s, 0) for _, c in top][::-1]} for s in ENTRY_STATUS_LABELS
        ],
    }
    todo_count = session.scalar(select(func.count()).select_from(workflow.todo_query(actor).subquery())) or 0
    overdue_count = (
        session.scalar(
            select(func.count()).select_from(
                workflow.overdue_query(org_id=None if actor.is_admin else actor.org_id).subquery()
            )
        )
        or 0
    )
    return render(
        request,
        "home.html",
        {
            "by_status": by_status,
            "status_labels": ENTRY_STATUS_LABELS,
            "chart": chart,
            "todo_count": todo_count,
            "overdue_count": overdue_count,
            "total": sum(by_status.values()),
        },
    )


@router.get("/todo", response_class=HTMLResponse)
def todo_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    mine = workflow.todo(session, actor=actor)
    overdue = workflow.overdue(session, org_id=None if actor.is_admin else actor.org_id)
    return render(request, "todo.html", {"rows": ticket_rows(session, mine), "overdue": ticket_rows(session, overdue)})


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, session: DbSession, actor: CurrentActor, ticket_id: str) -> Response:
    ticket = workflow.get_visible(session, actor=actor, ticket_id=ticket_id)
    row = ticket_rows(session, [ticket])[0]
    return render(request, "ticket.html", {"row": row, "ticket": ticket, "machine": get_machine(ticket.kind)})


__all__ = ["flash", "router"]


# The delivery channels of the sharing system (数据共享交换): one landing page, one navigation entry.
EXCHANGE_CHANNELS = (
    ("/gateway", "接口服务", "按应用调用已授权的数据接口：应用凭据、签名校验、限流、脱敏与调用日志。"),
    ("/exchange/sync-jobs", "库表交换", "把已授权的数据按计划全量或增量同步到本部门数据库，断点续传、恰好一次。"),
    ("/exchange/packages", "文件交换", "向其他部门发送文件包：清单与摘要、节点签名、断点下载与签名回执。"),
    ("/exchange/ferry", "安全摆渡", "内外网之间经审批的数据与文件导入导出：加密、签名、防重放，异常即隔离。"),
    ("/open/manage", "数据开放", "把可开放的目录数据发布到开放门户，选择开放信息项、脱敏规则与许可协议。"),
)


@router.get("/exchange", response_class=HTMLResponse)
def exchange_page(request: Request, actor: CurrentActor) -> Response:
    return render(request, "exchange.html", {"channels": EXCHANGE_CHANNELS})
