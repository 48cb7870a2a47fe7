"""HTTP API of notifications: /api/v1/notifications/… (always the caller's own)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from zhengshu.core.errors import ValidationFailed
from zhengshu.notify import service as notify_service
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

router = APIRouter(prefix="/notifications", tags=["notify"])


class NotificationRead(BaseModel):
    id: str
    title: str
    body: str
    link: str = Field(description="相关页面地址")
    kind: str = Field(description="ticket.todo 待办、ticket.returned 退回、ticket.result 办理结果，或功能自定义")
    kind_label: str
    org_id: str | None
    user_id: str | None
    roles: list[str] = Field(description="发给单位时限定的角色；为空表示单位全体用户")
    created_at: datetime
    read: bool
    read_at: datetime | None


class UnreadCount(BaseModel):
    unread: int


class MarkedCount(BaseModel):
    marked: int


@router.get("", response_model=Page[NotificationRead], summary="我的通知（未读在前）")
def list_notifications(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    unread: Annotated[bool, Query(description="为 true 时只返回未读通知")] = False,
    kind: str | None = None,
    sort: Annotated[str | None, Query(description="默认未读在前、新的在前；created_at 或 -created_at 按时间")] = None,
) -> dict[str, Any]:
    if sort is not None and sort.lstrip("-") not in notify_service.SORTS:
        raise ValidationFailed(f"不支持按 {sort.lstrip('-')} 排序", code="notify.bad_sort")
    stmt = notify_service.list_query(actor, unread_only=unread, kind=kind, sort=sort)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    reads = notify_service.read_times(session, actor=actor, ids=[n.id for n in rows])
    return {
        "items": [notify_service.to_read(n, reads.get(n.id)) for n in rows],
        "next_cursor": next_cursor,
        "total": total,
    }


@router.get("/unread-count", response_model=UnreadCount, summary="未读通知数")
def unread_count(session: DbSession, actor: CurrentActor) -> dict[str, int]:
    return {"unread": notify_service.unread_count(session, actor=actor)}


@router.post("/read-all", response_model=MarkedCount, summary="全部标为已读")
def read_all(session: DbSession, actor: CurrentActor) -> dict[str, int]:
    return {"marked": notify_service.mark_all_read(session, actor=actor)}


@router.post("/{notification_id}/read", response_model=NotificationRead, summary="标为已读")
def mark_read(session: DbSession, actor: CurrentActor, notification_id: str) -> dict[str, Any]:
    notification, read_at = notify_service.mark_read(session, actor=actor, notification_id=notification_id)
    return notify_service.to_read(notification, read_at)
