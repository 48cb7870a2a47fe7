"""The operator CLI end to end on a fresh SQLite data directory: migrations, organizations and users,
catalog import/export, the holiday schedule, and audit verification catching tampering."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.factories import PASSWORD, entry_in
from zhengshu.catalog import excel
from zhengshu.cli.main import app
from zhengshu.core import migrate
from zhengshu.core.config import reset_settings
from zhengshu.demo.identities import uscc

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "cli-test-secret-0123456789abcdef")
    monkeypatch.delenv("ZHENGSHU_DATABASE_URL", raising=False)
    reset_settings()
    yield tmp_path
    reset_settings()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_operator_commands_end_to_end(data_dir: Path) -> None:
    assert f"已迁移到 {migrate.head()}" in run("db", "upgrade")
    assert "已载入" in run("org", "load-regions")
    rng = random.Random(3)
    run(
        "org",
        "create",
        "江西省数据局",
        uscc(rng, region_code="360000", authority="1"),
        "360000",
        "--data-authority",
        "--dept-number",
        "18",
    )
    run(
        "org",
        "create",
        "江西省市场监督管理局",
        uscc(rng, region_code="360000", authority="1"),
        "360000",
        "--dept-number",
        "15",
    )
    bad = runner.invoke(app, ["org", "create", "坏机构", "91360000ABCDEFGHIJ", "360000"])
    assert bad.exit_code == 1 and "统一社会信用代码" in bad.output
    run(
        "user",
        "create",
        "officer",
        "--org",
        "江西省市场监督管理局",
        "--role",
        "officer",
        "--name",
        "专员",
        "--password",
        PASSWORD,
    )
    assert "officer" in run("user", "list")

    workbook = data_dir / "in.xlsx"
    workbook.write_bytes(excel.export_workbook([{**entry_in().model_dump(), "code": None}]))
    out = run("catalog", "import", str(workbook), "--as", "officer", "--json")
    assert '"created": ["102001/00001"]' in out
    exported = data_dir / "out.xlsx"
    run("catalog", "export", str(exported), "--as", "officer")
    report = excel.parse_workbook(exported.read_bytes())
    assert [e.entry.name for e in report.entries] == ["企业登记信息"] and report.entries[0].code == "102001/00001"

    csv_file = data_dir / "2027.csv"
    csv_file.write_text("date,kind,name\n2027-01-01,holiday,元旦\n2027-02-20,workday,春节\n", encoding="utf-8")
    run("calendar", "import", "2027", str(csv_file), "--source", "国办发明电〔2026〕1号")
    shown = run("calendar", "show", "2027")
    assert "正式" in shown and "2027-02-20" in shown

    verified = run("audit", "verify", "--json")
    assert '"ok": true' in verified
    # operator commands were audited: org and user creation, the import, the schedule
    with sqlite3.connect(data_dir / "zhengshu.db") as conn:
        actions = {row[0] for row in conn.execute("SELECT action FROM audit_record")}
        assert {"org.create", "user.create", "catalog.import", "calendar.import"} <= actions
        conn.execute("DROP TRIGGER audit_record_no_update")
        conn.execute("UPDATE audit_record SET actor_username = 'mallory' WHERE seq = 2")
    tampered = runner.invoke(app, ["audit", "verify"])
    assert tampered.exit_code == 1 and "第 2 条" in tampered.output
