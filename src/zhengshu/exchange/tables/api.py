"""Table exchange API: /api/v1/exchange/sync-jobs/… (jobs, runs, quarantine) and …/targets (目标库)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from zhengshu.core.errors import NotFound
from zhengshu.exchange.tables import runner, service
from zhengshu.exchange.tables.models import SyncRun
from zhengshu.exchange.tables.schemas import (
    QuarantineRead,
    SyncJobIn,
    SyncJobRead,
    SyncJobUpdate,
    SyncRunRead,
    SyncTargetIn,
    SyncTargetRead,
)
from zhengshu.web.deps import CurrentActor, DbSession, get_database
from zhengshu.web.pagination import Count, Cursor, Limit, Page, page_of, paginate

router = APIRouter(prefix="/exchange/sync-jobs", tags=["exchange"])


# ---- targets (declared before /{job_id}) --------------------------------------------------------------------


@router.get("/targets", response_model=Page[SyncTargetRead], summary="本部门的交换目标库")
def list_targets(
    session: DbSession, actor: CurrentActor, limit: Limit = 20, cursor: Cursor = None, count: Count = False
) -> dict[str, Any]:
    rows = [service.target_to_read(t) for t in service.list_targets(session, actor=actor)]
    return page_of(rows, limit=limit, cursor=cursor, count=count)


@router.post("/targets", response_model=SyncTargetRead, status_code=201, summary="登记交换目标库")
def create_target(request: Request, session: DbSession, actor: CurrentActor, target_in: SyncTargetIn) -> dict[str, Any]:
    target = service.create_target(
        session, actor=actor, target_in=target_in, data_dir=request.app.state.settings.data_dir
    )
    return service.target_to_read(target)


@router.delete("/targets/{target_id}", status_code=204, summary="删除交换目标库")
def delete_target(session: DbSession, actor: CurrentActor, target_id: str) -> Response:
    service.delete_target(session, actor=actor, target_id=target_id)
    return Response(status_code=204)


# ---- jobs -------------------------------------------------------------------------------------------------


@router.get("", response_model=Page[SyncJobRead], summary="库表交换作业列表")
def list_jobs(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    sort: Annotated[str, Query(description="排序字段，前缀 - 为降序")] = "-created_at",
    q: str | None = None,
    mode: str | None = None,
    enabled: bool | None = None,
    last_status: str | None = None,
    authorization_id: str | None = None,
) -> dict[str, Any]:
    filters = service.JobFilters(
        q=q, mode=mode, enabled=enabled, last_status=last_status, authorization_id=authorization_id
    )
    rows, next_cursor, total = paginate(
        session, service.list_query(actor, filters, sort), limit=limit, cursor=cursor, count=count
    )
    return {"items": [service.to_read(session, j) for j in rows], "next_cursor": next_cursor, "total": total}


@router.post("", response_model=SyncJobRead, status_code=201, summary="创建库表交换作业")
def create_job(request: Request, session: DbSession, actor: CurrentActor, job_in: SyncJobIn) -> dict[str, Any]:
    job = service.create_job(session, actor=actor, job_in=job_in, settings=request.app.state.settings)
    return service.to_read(session, job)


@router.get("/{job_id}", response_model=SyncJobRead, summary="库表交换作业详情")
def get_job(session: DbSession, actor: CurrentActor, job_id: str) -> dict[str, Any]:
    return service.to_read(session, service.get_job(session, actor=actor, job_id=job_id))


@router.patch("/{job_id}", response_model=SyncJobRead, summary="修改调度、启用状态或方式")
def update_job(
    request: Request, session: DbSession, actor: CurrentActor, job_id: str, job_in: SyncJobUpdate
) -> dict[str, Any]:
    job = service.update_job(session, actor=actor, job_id=job_id, job_in=job_in, settings=request.app.state.settings)
    return service.to_read(session, job)


@router.delete("/{job_id}", status_code=204, summary="删除作业及其运行记录（目标库数据保留）")
def delete_job(session: DbSession, actor: CurrentActor, job_id: str) -> Response:
    service.delete_job(session, actor=actor, job_id=job_id)
    return Response(status_code=204)


@router.post("/{job_id}/run", response_model=SyncRunRead, summary="立即运行（wait=false 时交给后台任务）")
def run_job(
    request: Request,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
    job_id: str,
    wait: Annotated[bool, Query(description="true：运行完再返回；false：排队，由后台任务运行")] = True,
) -> dict[str, Any]:
    # a run spans many transactions of its own: end this request's read transaction before it starts
    session.commit()
    database = get_database(request)
    settings = request.app.state.settings
    if wait:
        run = runner.run_job(database, actor=actor, job_id=job_id, trigger="manual", settings=settings)
    else:
        run_id = runner.start(database, actor=actor, job_id=job_id, trigger="manual", settings=settings, queue=True)
        run = session.get(SyncRun, run_id)
        assert run is not None
        response.status_code = 202
    return service.run_to_read(run)


@router.get("/{job_id}/runs", response_model=Page[SyncRunRead], summary="运行记录")
def list_runs(
    session: DbSession, actor: CurrentActor, job_id: str, limit: Limit = 20, cursor: Cursor = None, count: Count = False
) -> dict[str, Any]:
    job = service.get_job(session, actor=actor, job_id=job_id)
    rows, next_cursor, total = paginate(session, service.runs_query(job.id), limit=limit, cursor=cursor, count=count)
    return {"items": [service.run_to_read(r) for r in rows], "next_cursor": next_cursor, "total": total}


@router.get("/{job_id}/runs/{run_id}", response_model=SyncRunRead, summary="一次运行的详情与进度")
def get_run(session: DbSession, actor: CurrentActor, job_id: str, run_id: str) -> dict[str, Any]:
    job = service.get_job(session, actor=actor, job_id=job_id)
    run = session.get(SyncRun, run_id)
    if run is None or run.job_id != job.id:
        raise NotFound("未找到该运行记录", code="sync.run_not_found")
    return service.run_to_read(run)


@router.get("/{job_id}/quarantine", response_model=Page[QuarantineRead], summary="隔离数据（无法转换的值及原因）")
def list_quarantine(
    session: DbSession,
    actor: CurrentActor,
    job_id: str,
    run_id: str | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    job = service.get_job(session, actor=actor, job_id=job_id)
    stmt = service.quarantine_query(job.id, run_id)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": rows, "next_cursor": next_cursor, "total": total}
