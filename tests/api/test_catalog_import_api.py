"""Excel import through the API: all or nothing by default, every bad row reported, ``valid_only`` imports the
good entries; re-importing an exported file revises the entries it names."""

from __future__ import annotations

import functools
from io import BytesIO
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select

from tests.factories import World, entry_in, published_entry, token_for
from zhengshu.catalog.excel import export_workbook
from zhengshu.catalog.models import CatalogEntry, EntryVersion
from zhengshu.core.db import Database
from zhengshu.security.passwords import hash_password
from zhengshu.workflow.models import Ticket

URL = "/api/v1/catalog/import"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


@pytest.fixture
def officer(client: TestClient, world: World) -> dict[str, str]:
    return token_for(client, "market_officer")


def row(**overrides: Any) -> dict[str, Any]:
    """An EntryRead-shaped dict as export_workbook takes it."""
    return {**entry_in(**overrides).model_dump(mode="json"), "code": None, "provider_name": "省市场监管局"}


def upload(client: TestClient, headers: dict[str, str], content: bytes, **form: str) -> Any:
    return client.post(URL, headers=headers, data=form, files={"file": ("目录.xlsx", content, XLSX)})


def entry_count(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) or 0  # type: ignore[return-value]
            for m in (CatalogEntry, EntryVersion, Ticket)
        )


def names(db: Database) -> list[str]:
    with db.session() as s:
        return sorted(s.scalars(select(CatalogEntry.name)))


def mixed_file() -> bytes:
    good_a = row()
    bad_type = row(name="失业登记信息")
    bad_type["items"][1]["data_type"] = "Z"  # sheet row 7: title row, header row, 3 rows of good_a
    good_b = row(name="企业年报信息", sharing_type="无条件共享", sharing_condition="")
    bad_condition = row(name="股权出质信息")
    bad_condition["sharing_condition"] = ""  # 有条件共享 without a condition
    bad_condition["items"][0]["length"] = 0  # rows 12-14
    return export_workbook([good_a, bad_type, good_b, bad_condition])


def test_a_good_file_imports(client: TestClient, officer: dict[str, str], db: Database, world: World) -> None:
    content = export_workbook(
        [row(), row(name="企业年报信息", class_code="102001"), row(name="食品经营许可信息", class_code="204001")]
    )
    r = upload(client, officer, content)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["created"] == ["102001/00001", "102001/00002", "204001/00001"]
    assert result["updated"] == [] and result["errors"] == [] and result["skipped_entries"] == 0
    assert names(db) == ["企业年报信息", "企业登记信息", "食品经营许可信息"]
    with db.session() as s:
        entries = list(s.scalars(select(CatalogEntry)))
        assert {e.status for e in entries} == {"draft"}
        assert {e.provider_org_id for e in entries} == {world.orgs["market"]}
        first = next(e for e in entries if e.name == "企业登记信息")
        assert [i.name for i in first.versions[0].items] == ["统一社会信用代码", "企业名称", "法定代表人"]
        assert first.versions[0].change_note == "Excel 导入"


def test_bad_rows_import_nothing_and_every_bad_row_is_reported(
    client: TestClient, officer: dict[str, str], db: Database
) -> None:
    r = upload(client, officer, mixed_file())
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "catalog.import.invalid" and "未导入任何目录" in problem["detail"]
    fields = [e["field"] for e in problem["errors"]]
    assert fields == ["第7行·数据类型", "第12行·共享条件", "第12行·数据长度"]
    assert "有条件共享的目录必须填写共享条件" in problem["errors"][1]["message"]
    assert all(e["message"] for e in problem["errors"])
    assert entry_count(db) == (0, 0, 0)


def test_valid_only_imports_the_good_entries(client: TestClient, officer: dict[str, str], db: Database) -> None:
    r = upload(client, officer, mixed_file(), valid_only="true")
    assert r.status_code == 200, r.text
    result = r.json()
    assert len(result["created"]) == 2 and result["skipped_entries"] == 2
    assert len(result["errors"]) == 3
    assert [(e["row"], e["column"]) for e in result["errors"]] == [(7, "数据类型"), (12, "共享条件"), (12, "数据长度")]
    assert names(db) == ["企业年报信息", "企业登记信息"]


def test_reimporting_an_exported_entry_revises_it(
    client: TestClient, officer: dict[str, str], db: Database, world: World
) -> None:
    entry_id = published_entry(db, world)
    exported = client.get("/api/v1/catalog/export", headers=officer)
    assert exported.status_code == 200
    # change the summary in the exported file, as a person would in Excel
    from openpyxl import load_workbook

    wb = load_workbook(BytesIO(exported.content))
    ws = wb.worksheets[0]
    header_row = next(r for r in range(1, 6) if "摘要" in [c.value for c in ws[r]])
    col = [c.value for c in ws[header_row]].index("摘要") + 1
    ws.cell(row=header_row + 1, column=col, value="经 Excel 修订的摘要")
    out = BytesIO()
    wb.save(out)
    r = upload(client, officer, out.getvalue())
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == ["102001/00001"] and r.json()["created"] == []
    shown = client.get(f"/api/v1/catalog/entries/{entry_id}", headers=officer).json()
    assert shown["version"] == 1 and shown["has_pending_revision"]
    draft = client.get(f"/api/v1/catalog/entries/{entry_id}/draft", headers=officer).json()
    assert draft["version"] == 2 and draft["summary"] == "经 Excel 修订的摘要"


def test_import_permissions_and_bad_files(client: TestClient, world: World, db: Database) -> None:
    content = export_workbook([row()])
    r = upload(client, token_for(client, "market_user"), content)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = client.post(URL, files={"file": ("目录.xlsx", content, XLSX)})
    assert r.status_code == 401
    officer = token_for(client, "hrss_officer")
    r = upload(client, officer, b"not an excel file")
    assert r.status_code == 422 and r.json()["code"] == "catalog.import.bad_file"
    wb = Workbook()
    wb.active.append(["随便", "什么"])  # type: ignore[union-attr]
    out = BytesIO()
    wb.save(out)
    r = upload(client, officer, out.getvalue())
    assert r.status_code == 422 and r.json()["code"].startswith("catalog.import")
    r = client.post(URL, headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "file"
    assert entry_count(db) == (0, 0, 0)
