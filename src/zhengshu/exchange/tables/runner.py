"""Running sync jobs: a run spans many transactions, so this module (like a job wrapper) owns them.

1. ``start``: claim the job (one run at a time; a run whose process died is marked abandoned and the new
   run resumes from the target's checkpoint) and record a SyncRun.
2. ``execute``: build the plan (refused when the authorization no longer allows it), let the engine move the
   batches, mirror each committed batch's progress and quarantined values into the SyncRun, then record the
   outcome, the audit line and the next scheduled time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zhengshu.audit import service as audit_service
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import Database, new_id, utcnow
from zhengshu.core.errors import Conflict, ZhengshuError
from zhengshu.core.events import emit, emitted_ids, process_pending
from zhengshu.exchange.tables import engine, service
from zhengshu.exchange.tables import schedule as schedules
from zhengshu.exchange.tables.models import SyncJob, SyncQuarantine, SyncRun
from zhengshu.exchange.tables.transform import Quarantined
from zhengshu.security.actor import SYSTEM_ACTOR, Actor

Progress = Callable[[engine.RunResult], None]

log = logging.getLogger(__name__)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _locked(session: Session, job_id: str) -> SyncJob:
    """The job row locked for this transaction (only its own row: the eager joins stay unlocked)."""
    stmt = (
        select(SyncJob)
        .where(SyncJob.id == job_id)
        .with_for_update(of=SyncJob)
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _is_dead(run: SyncRun, settings: Settings, now: datetime) -> bool:
    """A run is dead when its process on this host is gone, or it made no progress for a long time."""
    host, _, pid = (run.worker or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    seen = run.heartbeat_at or run.started_at
    return now - seen > timedelta(seconds=settings.sync_stale_after_s)


def start(
    database: Database,
    *,
    actor: Actor,
    job_id: str,
    trigger: str,
    settings: Settings | None = None,
    queue: bool = False,
) -> str:
    """Claim the job for a new run (``queue``: left for the background task to execute); returns the run id."""
    settings = settings or get_settings()
    with database.session() as session:
        job = service.get_job(session, actor=actor, job_id=job_id)
        if trigger != "schedule":
            service.ensure_can_run(actor, job)
        job = _locked(session, job.id)
        now = utcnow()
        if job.running_run_id:
            current = session.get(SyncRun, job.running_run_id)
            if current is not None and current.status in ("queued", "running"):
                if not _is_dead(current, settings, now):
                    raise Conflict("该作业正在运行，请待本次运行结束", code="sync.running")
                current.status = "abandoned"
                current.finished_at = now
                current.error = "运行进程已中断；下一次运行将从目标库的检查点继续"
        run = SyncRun(
            id=new_id(),
            job_id=job.id,
            trigger=trigger,
            triggered_by=actor.username,
            mode=job.mode,
            status="queued" if queue else "running",
            started_at=now,
            heartbeat_at=now,
            worker=None if queue else _worker(),
        )
        session.add(run)
        job.running_run_id = run.id
        session.flush()
        return run.id


def _store_quarantine(database: Database, run: SyncRun, items: list[Quarantined], room: int) -> int:
    if not items or room <= 0:
        return 0
    kept = items[:room]
    with database.session() as session:
        session.add_all(
            SyncQuarantine(
                id=new_id(),
                job_id=run.job_id,
                run_id=run.id,
                row_key=q.row_key[:500],
                column_name=q.column[:128],
                value=q.value[:500] if q.value is not None else None,
                reason=q.reason[:500],
            )
            for q in kept
        )
    return len(kept)


def _finish(
    database: Database,
    *,
    run_id: str,
    actor: Actor,
    status: str,
    result: engine.RunResult | None,
    error: ZhengshuError | None,
    started: float,
) -> SyncRun:
    with database.session() as session:
        run = session.get(SyncRun, run_id)
        assert run is not None
        job = _locked(session, run.job_id)
        now = utcnow()
        run.status = status
        run.finished_at = now
        run.duration_ms = int((time.monotonic() - started) * 1000)
        if result is not None:
            _copy(run, result)
        if error is not None:
            run.error = error.detail[:4000]
            run.error_code = error.code
        if job.running_run_id == run.id:
            job.running_run_id = None
        job.last_run_id = run.id
        job.last_status = status
        job.last_run_at = now
        if job.schedule and job.enabled:
            job.next_run_at = schedules.next_run_after(job.schedule, now, working_days_only=job.working_days_only)
        audit_service.record(
            session,
            actor=actor,
            action="sync.run",
            target_type="sync_job",
            target_id=job.id,
            outcome="success" if status == "succeeded" else "failure",
            detail={
                "run_id": run.id,
                "status": status,
                "rows_written": run.rows_written,
                "rows_deleted": run.rows_deleted,
                "rows_quarantined": run.rows_quarantined,
                "authorization_id": job.authorization_id,
                "error": run.error_code,
            },
        )
        emit(
            session,
            f"sync.run_{'refused' if status == 'refused' else 'finished'}",
            job_id=job.id,
            run_id=run.id,
            status=status,
            rows_written=run.rows_written,
            consumer_org_id=job.consumer_org_id,
            provider_org_id=job.provider_org_id,
        )
        emitted = emitted_ids(session)
        session.flush()
        session.expunge(run)
    if emitted and get_settings().process_outbox_inline:
        process_pending(database.session_factory, only=emitted)
    return run


def _copy(run: SyncRun, result: engine.RunResult) -> None:
    run.rows_read = result.rows_read
    run.rows_written = result.rows_written
    run.rows_deleted = result.rows_deleted
    run.rows_quarantined = result.rows_quarantined
    run.bytes = result.bytes
    run.batches = result.batches
    run.rows_total = result.total
    run.resumed_from = result.resumed_from
    run.cursor_value = (result.cursor or "")[:200] or None
    run.columns_added = list(result.columns_added)


def execute(
    database: Database,
    *,
    run_id: str,
    actor: Actor,
    settings: Settings | None = None,
    on_progress: Progress | None = None,
) -> SyncRun:
    """Run a claimed job to its end; the outcome (succeeded, failed, refused) is recorded, not raised."""
    settings = settings or get_settings()
    started = time.monotonic()
    try:
        with database.session() as session:
            run = session.get(SyncRun, run_id)
            assert run is not None
            run.status = "running"
            run.worker = _worker()
            run.heartbeat_at = utcnow()
            job = session.get(SyncJob, run.job_id)
            assert job is not None
            spec = service.build_spec(session, job=job, run_id=run_id, settings=settings)
            run_row = SyncRun(id=run.id, job_id=run.job_id)  # a detached handle for the callbacks
    except service.SyncRefused as exc:
        return _finish(database, run_id=run_id, actor=actor, status="refused", result=None, error=exc, started=started)
    except ZhengshuError as exc:
        return _finish(database, run_id=run_id, actor=actor, status="failed", result=None, error=exc, started=started)

    stored = 0

    def on_batch(result: engine.RunResult, quarantined: list[Quarantined]) -> None:
        nonlocal stored
        stored += _store_quarantine(database, run_row, quarantined, settings.sync_quarantine_max_rows - stored)
        with database.session() as s:
            current = s.get(SyncRun, run_id)
            if current is not None:
                _copy(current, result)
                current.heartbeat_at = utcnow()
        if on_progress is not None:
            on_progress(result)

    try:
        result = engine.run(spec, on_batch=on_batch)
    except ZhengshuError as exc:
        return _finish(database, run_id=run_id, actor=actor, status="failed", result=None, error=exc, started=started)
    except Exception as exc:  # a driver error the engine did not translate: recorded, with its text
        error = ZhengshuError(f"交换失败：{str(exc)[:1000] or type(exc).__name__}", code="sync.failed")
        return _finish(database, run_id=run_id, actor=actor, status="failed", result=None, error=error, started=started)
    return _finish(database, run_id=run_id, actor=actor, status="succeeded", result=result, error=None, started=started)


def run_job(
    database: Database,
    *,
    actor: Actor,
    job_id: str,
    trigger: str = "manual",
    settings: Settings | None = None,
    on_progress: Progress | None = None,
) -> SyncRun:
    run_id = start(database, actor=actor, job_id=job_id, trigger=trigger, settings=settings)
    return execute(database, run_id=run_id, actor=actor, settings=settings, on_progress=on_progress)


def claim_due(
    database: Database, *, now: datetime | None = None, settings: Settings | None = None, limit: int | None = None
) -> list[str]:
    """Jobs whose time has come, moved to their next time so the next tick does not pick them again."""
    settings = settings or get_settings()
    now = now or utcnow()
    with database.session() as session:
        jobs = list(
            session.scalars(
                select(SyncJob)
                .where(service.due_clause(now))
                .order_by(SyncJob.next_run_at)
                .limit(min(settings.sync_due_per_minute, limit or settings.sync_due_per_minute))
                .with_for_update(of=SyncJob, skip_locked=True)
            )
        )
        for job in jobs:
            job.next_run_at = schedules.next_run_after(job.schedule or "", now, working_days_only=job.working_days_only)
        return [job.id for job in jobs]


def queued_runs(database: Database) -> list[tuple[str, str]]:
    """Runs requested without waiting (``POST …/run`` with ``wait=false``): (run id, who asked)."""
    with database.session() as session:
        rows = session.execute(
            select(SyncRun.id, SyncRun.triggered_by).where(SyncRun.status == "queued").order_by(SyncRun.started_at)
        )
        return [(run_id, who) for run_id, who in rows]


def _claim_queued(database: Database, run_id: str) -> bool:
    with database.session() as session:
        claimed = session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.status == "queued")
            .values(status="running", worker=_worker(), heartbeat_at=utcnow())
        )
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


def run_due(database: Database, *, now: datetime | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """The periodic task: execute queued runs, then every due scheduled job as the system (a job still running
    is skipped)."""
    outcomes: dict[str, Any] = {}
    for run_id, who in queued_runs(database):
        if not _claim_queued(database, run_id):
            continue  # another worker took it
        actor = replace(SYSTEM_ACTOR, username=who, display_name=who)
        outcomes[run_id] = execute(database, run_id=run_id, actor=actor, settings=settings).status
    for job_id in claim_due(database, now=now, settings=settings):
        try:
            run = run_job(database, actor=SYSTEM_ACTOR, job_id=job_id, trigger="schedule", settings=settings)
            outcomes[job_id] = run.status
        except ZhengshuError as exc:
            outcomes[job_id] = exc.code
    return outcomes


class RunThreads:
    """This process's threads for sync runs, at most ``size`` runs at once. The periodic tick hands runs over and
    returns: a run lasting hours never holds a worker of the job consumer (the embedded one has a single worker),
    so event delivery, audit sealing, escalations and the ferry keep their schedule meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0
        self._busy = 0

    def free(self, size: int) -> int:
        with self._lock:
            if self._pool is None or size != self._size:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)  # its runs finish on their threads; new ones go to the new pool
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="zhengshu-sync-run")
                self._size = size
            return max(0, size - self._busy)

    def start(self, name: str, work: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:  # a run records its own outcome; this is what escaped it (e.g. the job was busy)
                log.exception("sync run %s ended with an error", name)
            finally:
                with self._lock:
                    self._busy -= 1

        with self._lock:
            assert self._pool is not None, "free() sizes the pool first"
            self._busy += 1
            self._pool.submit(run)

    def busy(self) -> int:
        with self._lock:
            return self._busy


RUN_THREADS = RunThreads()


def dispatch_due(
    database: Database,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    threads: RunThreads | None = None,
) -> dict[str, str]:
    """The periodic task: start queued runs, then due scheduled jobs, on this process's run threads, as many as
    have a free thread (``sync_parallel_runs``); the others stay queued or due for a later tick. Returns at once:
    (run or job id → "started", or the code of the reason a due job did not start)."""
    settings = settings or get_settings()
    threads = threads or RUN_THREADS
    free = threads.free(settings.sync_parallel_runs)
    started: dict[str, str] = {}
    for run_id, who in queued_runs(database):
        if free <= 0:
            return started
        if not _claim_queued(database, run_id):
            continue  # another worker took it
        actor = replace(SYSTEM_ACTOR, username=who, display_name=who)
        threads.start(run_id, lambda r=run_id, a=actor: execute(database, run_id=r, actor=a, settings=settings))
        started[run_id] = "started"
        free -= 1
    if free <= 0:
        return started
    for job_id in claim_due(database, now=now, settings=settings, limit=free):
        try:  # the run is recorded here, so the job shows it running from this tick on
            run_id = start(database, actor=SYSTEM_ACTOR, job_id=job_id, trigger="schedule", settings=settings)
        except ZhengshuError as exc:  # still running from an earlier time, or no longer allowed
            started[job_id] = exc.code
            continue
        threads.start(run_id, lambda r=run_id: execute(database, run_id=r, actor=SYSTEM_ACTOR, settings=settings))
        started[job_id] = "started"
    return started
