"""Table exchange pages: register a target and create a job from the form, run it, see the run history with
its chart and the quarantine, stop it; empty states and form errors in Chinese."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.test_objections_pages import HTML, csrf_of, login
from tests.factories import World
from tests.sync.helpers import authorize, make_rows, sqlite_create
from zhengshu.core.db import Database


def test_the_consumer_creates_runs_and_stops_a_job(
    client: TestClient, db: Database, world: World, tmp_path: Path
) -> None:
    login(client, "hrss_officer")
    page = client.get("/exchange/sync-jobs", headers=HTML)
    assert page.status_code == 200 and "暂无库表交换作业" in page.text
    page = client.get("/exchange/sync-jobs/new", headers=HTML)
    assert "本部门没有有效的、共享方式为“库表”的授权" in page.text

    path = tmp_path / "front.sqlite"
    sqlite_create(path, make_rows(120))
    _, _, auth_id, keys = authorize(db, world, kind="sqlite", table="ry", path=path)
    page = client.get("/exchange/sync-jobs/new", headers=HTML)
    assert "手机号码" in page.text and "电话保留前3位和后4位" in page.text

    r = client.post(
        "/exchange/sync-jobs/targets",
        data={"csrf_token": csrf_of(page.text), "name": "人社交换库", "kind": "duckdb"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get("/exchange/sync-jobs/new", headers=HTML)
    assert "人社交换库" in page.text
    found = re.search(r'<select id="target_id" name="target_id">\s*<option value="([^"]+)"', page.text)
    assert found is not None
    target_id = found.group(1)

    form = {
        "csrf_token": csrf_of(page.text),
        "name": "人员信息同步",
        "authorization_id": auth_id,
        "target_id": target_id,
        "target_table": "ry",
        "mode": "incremental",
        "key_items": [keys["编号"]],
        "cursor_column": "",
        "schedule": "0 2 * * *",
        "working_days_only": "1",
    }
    r = client.post("/exchange/sync-jobs", data=form, headers=HTML)
    assert r.status_code == 422 and "增量模式须指定游标字段" in r.text
    r = client.post("/exchange/sync-jobs", data={**form, "cursor_column": "gxsj"}, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    job_url = r.headers["location"]
    page = client.get(job_url, headers=HTML)
    assert "已创建交换作业" in page.text and "尚未运行" in page.text and "0 2 * * *（北京时间，仅工作日）" in page.text

    r = client.post(job_url + "/run", data={"csrf_token": csrf_of(page.text)}, headers=HTML, follow_redirects=True)
    assert "运行完成：读取 120 行，写入 120 行" in r.text
    assert 'id="rows-chart"' in r.text and "echarts.min.js" in r.text and 'id="sync-runs"' in r.text

    r = client.post(job_url + "/toggle", data={"csrf_token": csrf_of(r.text)}, headers=HTML, follow_redirects=True)
    assert "作业已停用" in r.text and "已停用" in r.text
    listing = client.get("/exchange/sync-jobs", headers=HTML)
    assert "人员信息同步" in listing.text and "成功" in listing.text

    # the provider sees the job but cannot run it
    client.cookies.clear()
    login(client, "market_officer")
    page = client.get(job_url, headers=HTML)
    assert page.status_code == 200 and "立即运行" not in page.text
