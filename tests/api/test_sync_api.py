"""The table exchange API end to end on embedded stores (SQLite source → DuckDB target): targets, jobs, a
manual run, run history, the quarantine, list scopes and refusals, problem+json codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import World, token_for
from tests.sync.helpers import authorize, make_rows, sqlite_create
from zhengshu.core.config import Settings
from zhengshu.core.db import Database


@pytest.fixture
def setup(db: Database, world: World, settings: Settings, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "front.sqlite"
    sqlite_create(path, make_rows(250))
    entry_id, _, auth_id, keys = authorize(db, world, kind="sqlite", table="ry", path=path)
    return {"entry_id": entry_id, "auth_id": auth_id, "keys": keys, "path": path}


def new_target(client: TestClient, headers: dict[str, str], name: str = "人社目标库") -> str:
    r = client.post("/api/v1/exchange/sync-jobs/targets", json={"name": name, "kind": "duckdb"}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def new_job(client: TestClient, headers: dict[str, str], setup: dict[str, Any], target_id: str, **kw: Any) -> Any:
    body = {
        "name": "人员信息每日同步",
        "authorization_id": setup["auth_id"],
        "target_id": target_id,
        "target_table": "ry",
        "mode": "incremental",
        "key_items": [setup["keys"]["编号"]],
        "cursor_column": "gxsj",
        "schedule": "0 2 * * *",
        "working_days_only": True,
        **kw,
    }
    return client.post("/api/v1/exchange/sync-jobs", json=body, headers=headers)


def test_create_run_and_read_history(client: TestClient, setup: dict[str, Any], settings: Settings) -> None:
    hrss = token_for(client, "hrss_officer")
    target_id = new_target(client, hrss)
    r = new_job(client, hrss, setup, target_id)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["mode_label"] == "增量（按游标字段）" and job["next_run_at"] is not None
    assert job["schedule_label"] == "0 2 * * *（北京时间，仅工作日）" and job["direction"] == "共享交换"

    r = client.post(f"/api/v1/exchange/sync-jobs/{job['id']}/run", headers=hrss)
    assert r.status_code == 200, r.text
    run = r.json()
    assert (run["status"], run["rows_read"], run["rows_written"]) == ("succeeded", 250, 250)
    assert run["status_label"] == "成功" and run["duration_ms"] is not None and run["bytes"] > 0

    r = client.get(f"/api/v1/exchange/sync-jobs/{job['id']}/runs?count=true", headers=hrss)
    assert r.json()["total"] == 1 and r.json()["items"][0]["id"] == run["id"]
    r = client.get(f"/api/v1/exchange/sync-jobs/{job['id']}/runs/{run['id']}", headers=hrss)
    assert r.status_code == 200
    r = client.get(f"/api/v1/exchange/sync-jobs/{job['id']}", headers=hrss)
    assert r.json()["last_status"] == "succeeded"

    # the target file is the consumer's, inside its exchange area
    import duckdb

    targets = client.get("/api/v1/exchange/sync-jobs/targets", headers=hrss).json()["items"]
    path = targets[0]["path"]
    assert path.startswith(str(settings.data_dir)) and "password" not in targets[0]
    con = duckdb.connect(path, read_only=True)
    try:
        assert con.sql("SELECT COUNT(*) FROM ry").fetchall() == [(250,)]
        [(xm,)] = con.sql("SELECT xm FROM ry WHERE id = 1").fetchall()
        assert xm.endswith("*")
    finally:
        con.close()

    # queued for the background task: 202 now, executed by the minute task
    r = client.post(f"/api/v1/exchange/sync-jobs/{job['id']}/run?wait=false", headers=hrss)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    r = client.post(f"/api/v1/exchange/sync-jobs/{job['id']}/run", headers=hrss)
    assert r.status_code == 409 and r.json()["code"] == "sync.running"
    from zhengshu.exchange.tables import runner

    outcomes = runner.run_due(client.app.state.db, settings=settings)  # type: ignore[attr-defined]
    assert list(outcomes.values()) == ["succeeded"]


def test_scopes_and_permissions(client: TestClient, setup: dict[str, Any]) -> None:
    hrss = token_for(client, "hrss_officer")
    job_id = new_job(client, hrss, setup, new_target(client, hrss)).json()["id"]
    # the provider sees who takes its data; an unrelated department sees nothing
    market = token_for(client, "market_officer")
    assert [j["id"] for j in client.get("/api/v1/exchange/sync-jobs", headers=market).json()["items"]] == [job_id]
    police = token_for(client, "nc_police_officer")
    assert client.get("/api/v1/exchange/sync-jobs", headers=police).json()["items"] == []
    r = client.get(f"/api/v1/exchange/sync-jobs/{job_id}", headers=police)
    assert r.status_code == 404 and r.json()["code"] == "sync.job_not_found"
    # only the consumer's data officers run or change it
    r = client.post(f"/api/v1/exchange/sync-jobs/{job_id}/run", headers=market)
    assert r.status_code == 403 and r.json()["code"] == "sync.forbidden"
    r = client.patch(f"/api/v1/exchange/sync-jobs/{job_id}", json={"enabled": False}, headers=market)
    assert r.status_code == 403
    r = client.patch(f"/api/v1/exchange/sync-jobs/{job_id}", json={"enabled": False}, headers=hrss)
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["next_run_at"] is None
    # another department cannot write into the consumer's target
    r = client.post(
        "/api/v1/exchange/sync-jobs/targets", json={"name": "x", "kind": "parquet", "path": "/etc"}, headers=hrss
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path"
    r = client.delete(f"/api/v1/exchange/sync-jobs/{job_id}", headers=hrss)
    assert r.status_code == 204


def test_refusals_explain_themselves(client: TestClient, setup: dict[str, Any], world: World, db: Database) -> None:
    hrss = token_for(client, "hrss_officer")
    target_id = new_target(client, hrss)
    masked_key = new_job(client, hrss, setup, target_id, key_items=[setup["keys"]["姓名"]])
    assert masked_key.status_code == 422
    assert any("经过脱敏" in e["message"] for e in masked_key.json()["errors"])
    no_cursor = new_job(client, hrss, setup, target_id, cursor_column=None)
    assert no_cursor.status_code == 422 and no_cursor.json()["errors"][0]["field"] == "cursor_column"
    bad_cron = new_job(client, hrss, setup, target_id, schedule="every night")
    assert bad_cron.json()["errors"][0]["field"] == "schedule"
    wrong_column = new_job(client, hrss, setup, target_id, cursor_column="no_such")
    assert wrong_column.status_code == 422 and "游标字段" in wrong_column.text

    job_id = new_job(client, hrss, setup, target_id).json()["id"]
    from zhengshu.demand import authorizations

    with db.session() as s:
        authorizations.suspend(s, actor=world["market_officer"], authorization_id=setup["auth_id"], reason="核查中")
    r = client.post(f"/api/v1/exchange/sync-jobs/{job_id}/run", headers=hrss)
    assert r.status_code == 200
    assert r.json()["status"] == "refused" and r.json()["error_code"] == "sync.authorization_inactive"
    assert "已暂停" in r.json()["error"]
