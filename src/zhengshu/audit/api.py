"""HTTP API of the audit log: /api/v1/audit/…"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from zhengshu.audit import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.audit import service as audit_service
from zhengshu.audit.schemas import AuditRecordRead, VerifyReportRead
from zhengshu.security import authz
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Limit

router = APIRouter(prefix="/audit", tags=["audit"])

# TODO(lead): belongs in audit/permissions.py (not ours); the registry is keyed by name, so moving it is safe.


class AuditPage(BaseModel):
    items: list[AuditRecordRead]
    next_cursor: str | None = Field(default=None, description="下一页的 before_seq（文本形式）")
    next_before_seq: int | None = Field(default=None, description="取下一页时作为 before_seq 传入")
    total: int | None = None


@router.get("/records", response_model=AuditPage, summary="检索审计记录（新的在前；非管理员只见本人记录）")
def search_records(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    before_seq: Annotated[int | None, Query(ge=1, description="只返回序号小于此值的记录（翻页）")] = None,
    action_prefix: Annotated[str | None, Query(max_length=100, description="事件类型前缀，如 catalog.")] = None,
    actor_username: Annotated[str | None, Query(max_length=60)] = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="起始时间（含），ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="截止时间（不含），ISO 8601")] = None,
) -> dict[str, Any]:
    # One more than asked tells whether another page exists (the service caps a page at 200).
    fetch = min(limit + 1, audit_service.MAX_SEARCH_LIMIT)
    rows = audit_service.search(
        session,
        actor=actor,
        action_prefix=action_prefix,
        actor_username=actor_username,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        limit=fetch,
        before_seq=before_seq,
    )
    more = len(rows) > limit or (len(rows) == limit == audit_service.MAX_SEARCH_LIMIT)
    rows = rows[:limit]
    next_seq = rows[-1].seq if more and rows else None
    return {
        "items": rows,
        "next_cursor": str(next_seq) if next_seq is not None else None,
        "next_before_seq": next_seq,
        "total": None,
    }


@router.post("/verify", response_model=VerifyReportRead, summary="校验审计链完整性（管理员）")
def verify(session: DbSession, actor: CurrentActor) -> Any:
    authz.ensure(actor, "audit.verify")
    return audit_service.verify(session)
