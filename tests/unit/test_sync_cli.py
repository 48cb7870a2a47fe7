"""``zhengshu sync`` end to end on embedded stores: register a target, create a job naming the key item by
name, run it with the progress bar, read runs and the quarantine as tables and JSON, run due scheduled jobs;
refusals exit 1 with the Chinese message and the stable code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.factories import World
from tests.sync.helpers import authorize, csv_create, make_rows
from tests.sync.test_kill_and_resume import cli_env
from zhengshu.cli import main as cli_main
from zhengshu.cli.main import app
from zhengshu.core.config import Settings, reset_settings
from zhengshu.core.db import Database, utcnow
from zhengshu.exchange.tables.models import SyncJob, SyncRun

runner = CliRunner()


@pytest.fixture
def env(db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in cli_env(db, settings).items():
        if key.startswith("ZHENGSHU_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("ZHENGSHU_SYNC_BATCH_PAUSE_MS", "0")
    reset_settings()
    monkeypatch.setattr(cli_main.console, "_width", 400)
    monkeypatch.setattr(cli_main.err, "_width", 400)
    yield
    reset_settings()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_sync_commands(env: None, db: Database, world: World, tmp_path: Path) -> None:
    path = tmp_path / "ry.csv"
    csv_create(path, make_rows(150), {3: {"csrq": "不详"}})
    _, _, auth_id, _ = authorize(db, world, kind="csv", table="ry.csv", path=path)

    r = cli("sync", "target-add", "--as", "hrss_officer", "--name", "人社交换库", "--kind", "parquet", "--json")
    assert r.exit_code == 0, r.output
    target = json.loads(r.output)
    assert target["kind"] == "parquet" and target["has_password"] is False

    r = cli(
        "sync",
        "create",
        "--as",
        "hrss_officer",
        "--name",
        "人员同步",
        "--authorization",
        auth_id,
        "--target",
        target["id"],
        "--table",
        "ry",
        "--key",
        "编号",
        "--mode",
        "cdc",
        "--schedule",
        "30 1 * * *",
    )
    assert r.exit_code == 0, r.output
    assert "已创建交换作业“人员同步”" in r.output and "30 1 * * *（北京时间）" in r.output
    with db.session() as s:
        job_id = s.scalars(select(SyncJob.id)).one()

    r = cli("sync", "run", job_id, "--as", "hrss_officer")
    assert r.exit_code == 0, r.output
    assert "库表交换" in r.output and "成功" in r.output and "149" in r.output

    r = cli("sync", "runs", job_id, "--as", "hrss_officer", "--json")
    [run] = json.loads(r.output)
    assert (run["status"], run["rows_written"], run["rows_quarantined"]) == ("succeeded", 149, 1)
    r = cli("sync", "quarantine", job_id, "--as", "hrss_officer")
    assert "不详" in r.output and "无法转换为日期" in r.output
    r = cli("sync", "jobs", "--as", "market_officer")  # the provider sees it too
    assert "人员同步" in r.output
    r = cli("sync", "show", job_id, "--as", "hrss_officer")
    assert "变更比对" in r.output and "运行记录" in r.output

    # refusals: the provider may not run it; an unknown job looks missing
    r = cli("sync", "run", job_id, "--as", "market_officer")
    assert r.exit_code == 1 and "sync.forbidden" in r.output
    r = cli("sync", "run", "nope", "--as", "hrss_officer")
    assert r.exit_code == 1 and "sync.job_not_found" in r.output

    # the schedule: once due, run-due runs it as the system
    with db.session() as s:
        s.execute(update(SyncJob).values(next_run_at=utcnow()))
    r = cli("sync", "run-due", "--json")
    assert json.loads(r.output) == {job_id: "succeeded"}
    with db.session() as s:
        runs = list(s.scalars(select(SyncRun).order_by(SyncRun.started_at)))
        assert [(x.trigger, x.rows_written) for x in runs] == [("cli", 149), ("schedule", 0)]
        job = s.get(SyncJob, job_id)
        assert job is not None and job.next_run_at is not None and job.next_run_at > utcnow()
    r = cli("sync", "update", job_id, "--as", "hrss_officer", "--disabled")
    assert r.exit_code == 0 and "停用" in r.output
