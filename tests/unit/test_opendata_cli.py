"""``zhengshu opendata …`` end to end: publish as the provider, list, show, query with the filter language,
export equal to the source, refresh (by hand and the due-date job), withdraw and reopen; refusals exit 1."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.factories import World
from tests.unit.test_opendata_fixtures import MARKER, expected_rows, open_entry
from zhengshu.audit.models import AuditRecord
from zhengshu.cli.main import app
from zhengshu.core.config import Settings, reset_settings
from zhengshu.core.db import Database
from zhengshu.core.events import OutboxEvent
from zhengshu.opendata.models import OpenDataset

runner = CliRunner()
N = 40


@pytest.fixture
def cli_env(db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setattr("zhengshu.cli.main._database", lambda settings=None: db)
    reset_settings()
    yield
    reset_settings()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def test_publish_query_export_refresh_and_withdraw(
    cli_env: None, db: Database, world: World, settings: Settings, tmp_path: Path
) -> None:
    entry_id = open_entry(db, world, settings, n=N)
    args = ["opendata", "publish", entry_id, "--as", "market_officer", "--field", "market", "--key-item", "tyshxydm"]
    for item in ("tyshxydm", "qymc", "fddbr", "lxdh=mobile_3_4", "hylx", "zczb", "clrq"):
        args += ["--item", item]
    run("opendata", "publish", entry_id, "--as", "hrss_officer", "--item", "qymc", code=1)  # not their entry
    run("opendata", "publish", entry_id, "--as", "market_officer", "--item", "mm", code=1)  # not open
    published = run_json(*args)
    slug, dataset_id = published["slug"], published["id"]
    assert published["row_count"] == N

    assert [d["slug"] for d in run_json("opendata", "list", "--q", "scztdj")] == [slug]
    assert run_json("opendata", "show", slug)["items"][3]["masking_rule"] == "mobile_3_4"
    rows = run_json("opendata", "query", slug, "--filter", "hylx:eq:建筑业", "--limit", "100")
    assert rows["total"] == 10 and [r["qymc"] for r in rows["items"]] == [
        w["qymc"] for w in expected_rows(N) if w["hylx"] == "建筑业"
    ]
    run("opendata", "query", slug, "--filter", "zczb:gt:abc", code=1)

    out = tmp_path / "export.csv"
    run("opendata", "export", slug, "--out", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and MARKER.encode() not in raw
    exported = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [{**r, "zczb": float(r["zczb"])} for r in exported] == expected_rows(N)

    assert run_json("opendata", "refresh", dataset_id, "--as", "market_officer", "--note", "手工更新")["version"] == 2
    assert run_json("opendata", "refresh-due") == {"refreshed": [], "failed": []}  # 每日: refreshed just now
    with db.session() as s:
        d = s.get(OpenDataset, dataset_id)
        assert d is not None and d.refreshed_at is not None
        d.refreshed_at = d.refreshed_at - timedelta(days=2)
    assert run_json("opendata", "refresh-due")["refreshed"] == [dataset_id]
    assert run_json("opendata", "show", slug)["version"] == 3

    run("opendata", "unpublish", dataset_id, "--as", "hrss_officer", "--reason", "越权", code=1)
    run("opendata", "unpublish", dataset_id, "--as", "market_officer", "--reason", "数据核查")
    run("opendata", "show", slug, code=1)
    assert "已重新开放" in run("opendata", "republish", dataset_id, "--as", "market_officer")

    with db.session() as s:
        actions = [a for (a,) in s.execute(select(AuditRecord.action).where(AuditRecord.action.like("opendata.%")))]
        events = [n for (n,) in s.execute(select(OutboxEvent.name).where(OutboxEvent.name.like("opendata.%")))]
    assert actions.count("opendata.publish") == 3  # two refusals (人社厅; a not-open item) and the success
    assert {"opendata.refresh", "opendata.refresh_due", "opendata.unpublish", "opendata.republish"} <= set(actions)
    assert events.count("opendata.dataset.published") == 2 and events.count("opendata.dataset.refreshed") == 2
    assert "opendata.dataset.unpublished" in events
