"""Exactly once under kill -9: ``zhengshu sync run`` in a subprocess is SIGKILLed mid-run (batches slowed by
the throttle setting); the next run resumes from the checkpoint committed in the target with its last batch,
and the target ends equal to the source by key and row hash — no duplicates, nothing missed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.factories import World
from tests.sync.helpers import (
    authorize,
    by_key_and_hash,
    create_job,
    expected_rows,
    make_rows,
    mariadb,
    mariadb_create,
    mariadb_rows,
    pg,
    pg_count,
    pg_target,
    pg_target_rows,
)
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.tables import runner
from zhengshu.exchange.tables.models import SyncRun

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres]
ROWS = 12_000
BATCH = 500


def cli_env(db: Database, settings: Settings) -> dict[str, str]:
    url = db.url
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = f"{url}?options=-csearch_path%3D{schema}"
    env = dict(os.environ)
    env.update(
        ZHENGSHU_DATABASE_URL=url,
        ZHENGSHU_DATA_DIR=str(settings.data_dir),
        ZHENGSHU_SECRET_KEY=settings.secret_key,
        ZHENGSHU_EMBEDDED_JOBS="false",
        ZHENGSHU_SYNC_BATCH_PAUSE_MS="60",
    )
    return env


def checkpoint(schema: str, job_id: str) -> tuple[str, int] | None:
    try:
        rows = pg(f'SELECT phase, batch_seq FROM "{schema}".zs_sync_checkpoint WHERE job_id = %s', (job_id,))
    except Exception:  # the table appears with the first checkpoint
        return None
    return (rows[0][0], int(rows[0][1])) if rows else None


def kill_mid_run(db: Database, settings: Settings, schema: str, job_id: str, after_batches: int) -> tuple[str, int]:
    code = "import sys; from zhengshu.cli.main import app; sys.argv[0] = 'zhengshu'; app()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sync", "run", job_id, "--as", "hrss_officer"],
        env=cli_env(db, settings),
        cwd=str(Path(settings.data_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    seen: tuple[str, int] | None = None
    try:
        while time.monotonic() < deadline:
            seen = checkpoint(schema, job_id)
            if seen is not None and seen[1] >= after_batches:
                break
            if proc.poll() is not None:
                raise AssertionError(f"the run ended before it was killed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.02)
        else:
            raise AssertionError("the run made no progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    after = checkpoint(schema, job_id)
    assert after is not None
    return after


@pytest.mark.parametrize("mode", ["full", "incremental", "cdc"])
def test_a_run_killed_mid_way_resumes_and_ends_equal_to_the_source(
    db: Database, world: World, settings: Settings, my_table: str, pg_schema: str, mode: str
) -> None:
    mariadb_create(my_table, make_rows(ROWS))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    target_id = pg_target(db, world, pg_schema)
    job_id = create_job(
        db,
        world,
        settings,
        authorization_id=auth_id,
        target_id=target_id,
        keys=keys,
        mode=mode,
        table="ry",
        batch_size=BATCH,
    )
    if mode == "cdc":  # change detection re-compares after a crash: give it work beyond the first load
        assert runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings).status == "succeeded"
        mariadb(f"UPDATE `{my_table}` SET xm = CONCAT(xm, '改') WHERE id % 2 = 0")
        mariadb(f"DELETE FROM `{my_table}` WHERE id % 7 = 0")

    before = checkpoint(pg_schema, job_id)
    baseline = before[1] if before is not None else 0
    phase, seq = kill_mid_run(db, settings, pg_schema, job_id, after_batches=baseline + 4)
    done_batches = seq - baseline
    assert 4 <= done_batches < ROWS // BATCH  # killed part-way
    if mode == "full":
        assert phase == "loading"
        # the consumer never sees a half-loaded table: the load goes to a shadow table
        assert pg(f"SELECT to_regclass('\"{pg_schema}\".ry')")[0][0] is None
    with db.session() as s:
        [killed] = s.scalars(select(SyncRun).where(SyncRun.job_id == job_id, SyncRun.trigger == "cli"))
        assert killed.status == "running"  # the process died without a word

    resumed = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
    assert resumed.status == "succeeded", resumed.error
    if mode in ("full", "incremental"):
        assert resumed.resumed_from == killed.id
        # only what the killed run had not committed is read again
        assert resumed.rows_read == ROWS - done_batches * BATCH
    source = expected_rows(mariadb_rows(my_table))
    assert pg_count(pg_schema, "ry") == len(source)
    assert by_key_and_hash(pg_target_rows(pg_schema, "ry")) == by_key_and_hash(source)
    with db.session() as s:
        statuses = {r.trigger: r.status for r in s.scalars(select(SyncRun).where(SyncRun.job_id == job_id))}
        assert statuses["cli"] == "abandoned"
