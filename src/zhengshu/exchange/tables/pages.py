"""Table exchange pages: the job list, a job (run history with a chart of rows per run, the quarantine, run
now / enable / delete), the create form with the consumer's 库表 authorizations, and target registration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.core.errors import ZhengshuError
from zhengshu.core.timeutil import SHANGHAI
from zhengshu.demand import authorizations as authorization_service
from zhengshu.demand.models import Authorization
from zhengshu.exchange.tables import runner, service
from zhengshu.exchange.tables.plan import MODE_LABELS, TARGET_KIND_LABELS
from zhengshu.exchange.tables.schemas import SyncJobIn, SyncJobUpdate, SyncTargetIn
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.security.masking import RULES
from zhengshu.web.deps import Csrf, CurrentActor, DbSession, get_database
from zhengshu.web.forms import blank_to_none, form_errors, page_links, redirect
from zhengshu.web.pagination import paginate
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)
BASE = "/exchange/sync-jobs"


def _table_authorizations(session: Session, actor: Actor) -> list[Authorization]:
    """The actor's organization's authorizations in force that are delivered as tables."""
    if actor.org_id is None:
        return []
    rows = session.scalars(
        select(Authorization)
        .where(
            Authorization.consumer_org_id == actor.org_id,
            Authorization.delivery_way == service.TABLE_DELIVERY,
        )
        .order_by(Authorization.created_at.desc())
    )
    return [a for a in rows if authorization_service.effective_status(a) == "active"]


@router.get(BASE, response_class=HTMLResponse)
def jobs_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: str | None = None,
    mode: str | None = None,
    cursor: str | None = None,
) -> Response:
    filters = service.JobFilters(q=blank_to_none(q), mode=blank_to_none(mode))
    rows, next_cursor, _ = paginate(session, service.list_query(actor, filters), limit=20, cursor=cursor, count=False)
    return render(
        request,
        "sync/jobs.html",
        {
            "jobs": [service.to_read(session, j) for j in rows],
            "q": q or "",
            "mode": mode or "",
            "modes": MODE_LABELS,
            "status_label": service.run_status_label,
            "next_link": page_links(request, next_cursor),
            "can_create": authz.allowed(actor, "sync.manage"),
        },
    )


def _form_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    target_errors: dict[str, str] | None = None,
    target_form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    auths = _table_authorizations(session, actor)
    chosen = next((a for a in auths if a.id == form.get("authorization_id")), auths[0] if auths else None)
    return render(
        request,
        "sync/form.html",
        {
            "authorizations": auths,
            "chosen": chosen,
            "targets": service.list_targets(session, actor=actor) if actor.org_id else [],
            "form": form,
            "errors": errors or {},
            "target_form": target_form or {"kind": "duckdb"},
            "target_errors": target_errors or {},
            "modes": MODE_LABELS,
            "kinds": TARGET_KIND_LABELS,
            "rule_labels": RULES,
        },
        status_code=status_code,
    )


@router.get(BASE + "/new", response_class=HTMLResponse)
def new_job_page(
    request: Request, session: DbSession, actor: CurrentActor, authorization_id: str | None = None
) -> Response:
    authz.ensure(actor, "sync.manage")
    return _form_page(request, session, actor, form={"authorization_id": authorization_id, "mode": "incremental"})


@router.post(BASE, dependencies=[Csrf])
def create_job(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form()] = "",
    authorization_id: Annotated[str, Form()] = "",
    target_id: Annotated[str, Form()] = "",
    target_table: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "incremental",
    key_items: Annotated[list[str] | None, Form()] = None,
    cursor_column: Annotated[str, Form()] = "",
    schedule: Annotated[str, Form()] = "",
    working_days_only: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    form = {
        "name": name.strip(),
        "authorization_id": authorization_id,
        "target_id": target_id,
        "target_table": target_table.strip(),
        "mode": mode,
        "key_items": key_items or [],
        "cursor_column": cursor_column.strip(),
        "schedule": schedule.strip(),
        "working_days_only": bool(working_days_only),
        "description": description.strip(),
    }
    try:
        job_in = SyncJobIn.model_validate({**form, "cursor_column": form["cursor_column"] or None})
        job = service.create_job(session, actor=actor, job_in=job_in, settings=request.app.state.settings)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status not in (409, 422):
            raise
        return _form_page(request, session, actor, form=form, errors=form_errors(exc), status_code=422)
    flash(request, f"已创建交换作业：{job.name}。可以立即运行一次，核对目标表。", link=f"{BASE}/{job.id}")
    return redirect(f"{BASE}/{job.id}")


@router.post(BASE + "/targets", dependencies=[Csrf])
def create_target(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "duckdb",
    host: Annotated[str, Form()] = "",
    port: Annotated[str, Form()] = "",
    database: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    schema_name: Annotated[str, Form()] = "",
    path: Annotated[str, Form()] = "",
) -> Response:
    target_form = {
        "name": name.strip(),
        "kind": kind,
        "host": host.strip(),
        "port": port.strip(),
        "database": database.strip(),
        "username": username.strip(),
        "schema_name": schema_name.strip(),
        "path": path.strip(),
    }
    try:
        target_in = SyncTargetIn.model_validate(
            {
                **{k: (v or None) for k, v in target_form.items()},
                "name": target_form["name"],
                "password": password or None,
            }
        )
        target = service.create_target(
            session, actor=actor, target_in=target_in, data_dir=request.app.state.settings.data_dir
        )
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status not in (409, 422):
            raise
        return _form_page(
            request,
            session,
            actor,
            form={"mode": "incremental"},
            target_form=target_form,
            target_errors=form_errors(exc),
            status_code=422,
        )
    flash(request, f"已登记目标库：{target.name}。")
    return redirect(f"{BASE}/new")


@router.get(BASE + "/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, session: DbSession, actor: CurrentActor, job_id: str) -> Response:
    job = service.get_job(session, actor=actor, job_id=job_id)
    runs = [service.run_to_read(r) for r in session.scalars(service.runs_query(job.id).limit(30))]
    quarantine = list(session.scalars(service.quarantine_query(job.id).limit(50)))
    chronological = list(reversed(runs))
    chart = {
        "labels": [r["started_at"].astimezone(SHANGHAI).strftime("%m-%d %H:%M") for r in chronological],
        "written": [r["rows_written"] for r in chronological],
        "deleted": [r["rows_deleted"] for r in chronological],
        "quarantined": [r["rows_quarantined"] for r in chronological],
    }
    return render(
        request,
        "sync/job.html",
        {
            "job": service.to_read(session, job),
            "runs": runs,
            "quarantine": quarantine,
            "chart": chart,
            "can_run": authz.allowed(actor, "sync.run", job),
            "can_manage": authz.allowed(actor, "sync.manage", job),
        },
    )


@router.post(BASE + "/{job_id}/run", dependencies=[Csrf])
def run_job(request: Request, session: DbSession, actor: CurrentActor, job_id: str) -> Response:
    session.commit()  # the run commits batch by batch in its own transactions
    try:
        run = runner.run_job(
            get_database(request), actor=actor, job_id=job_id, trigger="manual", settings=request.app.state.settings
        )
    except ZhengshuError as exc:
        if exc.status not in (403, 409):
            raise
        flash(request, exc.detail, kind="error", link=f"{BASE}/{job_id}")
        return redirect(f"{BASE}/{job_id}")
    if run.status == "succeeded":
        flash(
            request,
            f"运行完成：读取 {run.rows_read:,} 行，写入 {run.rows_written:,} 行，删除 {run.rows_deleted:,} 行，"
            f"隔离 {run.rows_quarantined:,} 行。",
            link=f"{BASE}/{job_id}",
        )
    else:
        flash(request, f"运行{service.run_status_label(run.status)}：{run.error or ''}", kind="error")
    return redirect(f"{BASE}/{job_id}")


@router.post(BASE + "/{job_id}/toggle", dependencies=[Csrf])
def toggle_job(request: Request, session: DbSession, actor: CurrentActor, job_id: str) -> Response:
    job = service.get_job(session, actor=actor, job_id=job_id)
    updated = service.update_job(session, actor=actor, job_id=job_id, job_in=SyncJobUpdate(enabled=not job.enabled))
    flash(request, f"作业已{'启用' if updated.enabled else '停用'}。", link=f"{BASE}/{job_id}")
    return redirect(f"{BASE}/{job_id}")


@router.post(BASE + "/{job_id}/delete", dependencies=[Csrf])
def delete_job(request: Request, session: DbSession, actor: CurrentActor, job_id: str) -> Response:
    job = service.get_job(session, actor=actor, job_id=job_id)
    name = job.name
    service.delete_job(session, actor=actor, job_id=job_id)
    flash(request, f"已删除交换作业：{name}（目标库中的数据保留）。")
    return redirect(BASE)
