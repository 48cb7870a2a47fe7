"""The periodic task starts sync runs on threads of the worker process and returns: a long run never holds the
job consumer's worker (the embedded consumer has one), and no more runs go at once than the threads allow."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import World
from tests.sync.helpers import authorize, create_job, make_rows, pg_create, pg_target
from zhengshu.core.config import Settings
from zhengshu.core.db import Database, utcnow
from zhengshu.exchange.tables import engine, runner
from zhengshu.exchange.tables.models import SyncJob, SyncRun


def _wait_idle(threads: runner.RunThreads, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while threads.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads.busy() == 0, "the runs did not end"


def _runs(db: Database, job_id: str) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(r.trigger, r.status) for r in s.scalars(select(SyncRun).where(SyncRun.job_id == job_id))]


@pytest.mark.postgres
def test_the_tick_starts_runs_on_threads_up_to_the_limit_and_returns(
    db: Database, world: World, settings: Settings, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_create(pg_schema, "src", make_rows(400))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    target_id = pg_target(db, world, pg_schema)
    jobs = []
    for n in range(2):
        job_id = create_job(
            db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="full",
            table=f"ry{n}", batch_size=100, schedule="0 3 * * *",
        )  # fmt: skip
        jobs.append(job_id)
    with db.session() as s:  # both due now
        for job_id in jobs:
            job = s.get(SyncJob, job_id)
            assert job is not None
            job.next_run_at = utcnow() - timedelta(minutes=1)
    # runs wait at a gate: the tick can only return before their end if it does not wait for them
    gate = threading.Event()
    engine_run = engine.run

    def gated(spec: Any, on_batch: Any = None) -> Any:
        assert gate.wait(60)
        return engine_run(spec, on_batch=on_batch)

    monkeypatch.setattr(engine, "run", gated)
    slow = settings.model_copy(update={"sync_parallel_runs": 1})
    threads = runner.RunThreads()

    first = runner.dispatch_due(db, settings=slow, threads=threads)
    assert len(first) == 1 and threads.busy() == 1
    [started] = first
    waiting = next(j for j in jobs if j != started)
    assert _runs(db, started) == [("schedule", "running")]
    assert runner.dispatch_due(db, settings=slow, threads=threads) == {}  # no free thread: the other job waits
    assert _runs(db, waiting) == []

    gate.set()
    _wait_idle(threads)
    assert _runs(db, started) == [("schedule", "succeeded")]
    assert runner.dispatch_due(db, settings=slow, threads=threads) == {waiting: "started"}
    _wait_idle(threads)
    assert _runs(db, waiting) == [("schedule", "succeeded")]
    assert runner.dispatch_due(db, settings=slow, threads=threads) == {}  # neither is due again before 03:00


@pytest.mark.postgres
def test_a_run_queued_by_hand_goes_before_scheduled_jobs(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    pg_create(pg_schema, "src", make_rows(50))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    target_id = pg_target(db, world, pg_schema)
    scheduled = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="full", table="ry_s",
        schedule="0 3 * * *",
    )  # fmt: skip
    by_hand = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="full", table="ry_h"
    )
    with db.session() as s:
        job = s.get(SyncJob, scheduled)
        assert job is not None
        job.next_run_at = utcnow() - timedelta(minutes=1)
    run_id = runner.start(db, actor=world["hrss_officer"], job_id=by_hand, trigger="manual", queue=True)
    one = settings.model_copy(update={"sync_parallel_runs": 1})
    threads = runner.RunThreads()
    assert runner.dispatch_due(db, settings=one, threads=threads) == {run_id: "started"}
    _wait_idle(threads)
    assert _runs(db, by_hand) == [("manual", "succeeded")]
    assert runner.dispatch_due(db, settings=one, threads=threads) == {scheduled: "started"}
    _wait_idle(threads)
    assert _runs(db, scheduled) == [("schedule", "succeeded")]
