"""The demo's table exchange seed: a DuckDB target and a working-day job for a 库表 authorization, run once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.factories import World
from tests.sync.helpers import authorize, make_rows, sqlite_create
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demo.sync_seed import run_seeded_jobs, seed_sync_jobs
from zhengshu.exchange.tables.models import SyncJob, SyncTarget


def test_seed_creates_and_runs_jobs_on_embedded_stores(
    db: Database, world: World, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "front.sqlite"
    sqlite_create(path, make_rows(40))
    authorize(db, world, kind="sqlite", table="ry", path=path)
    with db.session() as s:
        job_ids = seed_sync_jobs(s, settings=settings)
    assert len(job_ids) == 1
    outcomes = run_seeded_jobs(db, job_ids=job_ids, settings=settings)
    assert outcomes == {job_ids[0]: "succeeded"}
    with db.session() as s:
        job = s.get(SyncJob, job_ids[0])
        assert job is not None and job.working_days_only and job.next_run_at is not None
        [target] = s.scalars(select(SyncTarget))
        assert target.kind == "duckdb" and target.path is not None
        assert Path(target.path).is_relative_to(settings.data_dir)
