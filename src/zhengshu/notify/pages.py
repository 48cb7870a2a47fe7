"""Notification pages: my notifications (mark as read, open), and the unread badge fragment for the header."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from zhengshu.notify import service as notify_service
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import page_links, redirect, safe_local_path
from zhengshu.web.pagination import paginate
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(
    request: Request, session: DbSession, actor: CurrentActor, unread: bool = False, cursor: str | None = None
) -> Response:
    stmt = notify_service.list_query(actor, unread_only=unread)
    rows, next_cursor, _ = paginate(session, stmt, limit=PAGE_SIZE, cursor=cursor, count=False)
    reads = notify_service.read_times(session, actor=actor, ids=[n.id for n in rows])
    return render(
        request,
        "notify/list.html",
        {
            "rows": [notify_service.to_read(n, reads.get(n.id)) for n in rows],
            "unread_only": unread,
            "unread_count": notify_service.unread_count(session, actor=actor),
            "next_url": page_links(request, next_cursor),
        },
    )


@router.get("/notifications/badge", response_class=HTMLResponse)
def notifications_badge(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """The header link's content, refreshed by htmx: 通知 and the unread count when there is any."""
    return render(request, "notify/_badge.html", {"unread": notify_service.unread_count(session, actor=actor)})


@router.get("/notifications/{notification_id}/open")
def open_notification(session: DbSession, actor: CurrentActor, notification_id: str) -> Response:
    """Following a notification marks it read and goes to its page."""
    notification, _ = notify_service.mark_read(session, actor=actor, notification_id=notification_id)
    return redirect(safe_local_path(notification.link) or "/notifications")


@router.post("/notifications/{notification_id}/read", dependencies=[Csrf])
def read_one(request: Request, session: DbSession, actor: CurrentActor, notification_id: str) -> Response:
    notify_service.mark_read(session, actor=actor, notification_id=notification_id)
    if request.headers.get("hx-request"):
        return HTMLResponse('<span class="badge muted">已读</span>')
    flash(request, "已标为已读")
    return redirect("/notifications")


@router.post("/notifications/read-all", dependencies=[Csrf])
def read_all(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    n = notify_service.mark_all_read(session, actor=actor)
    flash(request, f"已将 {n:,} 条通知标为已读" if n else "没有未读通知")
    return redirect("/notifications")
