"""The audit log in the admin console: filterable records, paged backwards, and a chain check."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from zhengshu.audit import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.audit import service as audit_service
from zhengshu.core.timeutil import SHANGHAI
from zhengshu.security import authz
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import blank_to_none
from zhengshu.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    day = datetime.strptime(value, "%Y-%m-%d").date()
    return datetime.combine(day, time.max if end else time.min, tzinfo=SHANGHAI)


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    action: str | None = None,
    username: str | None = None,
    target_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    authz.ensure(actor, "audit.view")
    records = audit_service.search(
        session,
        actor=actor,
        action_prefix=blank_to_none(action),
        actor_username=blank_to_none(username),
        target_id=blank_to_none(target_id),
        since=_day(since),
        until=_day(until, end=True),
        limit=PAGE_SIZE,
        before_seq=before,
    )
    params = {k: v for k, v in request.query_params.items() if k != "before" and v}
    older = None
    if len(records) == PAGE_SIZE:
        older = "/admin/audit?" + urlencode({**params, "before": records[-1].seq})
    return render(
        request, "audit/records.html", {"records": records, "filters": params, "older": older, "report": None}
    )


@router.post("/admin/audit/verify", dependencies=[Csrf], response_class=HTMLResponse)
def verify_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    authz.ensure(actor, "audit.verify")
    report = audit_service.verify(session)
    records = audit_service.search(session, actor=actor, limit=PAGE_SIZE)
    return render(request, "audit/records.html", {"records": records, "filters": {}, "older": None, "report": report})
