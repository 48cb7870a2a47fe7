"""Mounting real resources on a catalog entry through the API: a SQLite table registered as a data source of
the provider (columns checked against the entry's items, row count recorded), a mismatching table, an API."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import World, published_entry, token_for
from zhengshu.catalog.models import MountedResource
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.security.passwords import hash_password

API = "/api/v1/catalog"
_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


def _front_db(path: Path) -> Path:
    """The provider's front-end database (前置库): one table that matches the entry, one that does not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE qy_jbxx (tyshxydm VARCHAR(18), qymc VARCHAR(200), fddbr VARCHAR(50), bz TEXT);
        INSERT INTO qy_jbxx VALUES ('91360000MA35XXXX1A', '江西甲公司', '张三', NULL),
                                   ('91360000MA35XXXX2B', '江西乙公司', '李四', NULL),
                                   ('91360000MA35XXXX3C', '江西丙公司', '王五', '备注');
        CREATE TABLE qy_old (tyshxydm INTEGER, qymc VARCHAR(500));
        INSERT INTO qy_old VALUES (1, '旧表');
    """)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def setup(client: TestClient, db: Database, world: World, settings: Settings) -> dict[str, Any]:
    officer = token_for(client, "market_officer")
    path = _front_db(Path(settings.data_dir) / "uploads" / world.orgs["market"] / "qianzhiku.sqlite")
    r = client.post(
        "/api/v1/lake/sources",
        headers=officer,
        json={"name": "市场监管前置库", "kind": "sqlite", "options": {"path": str(path)}},
    )
    assert r.status_code == 201, r.text
    return {"officer": officer, "source_id": r.json()["id"], "entry_id": published_entry(db, world)}


def mount(
    client: TestClient, setup: dict[str, Any], table: str, headers: dict[str, str] | None = None, **extra: Any
) -> Any:
    return client.post(
        f"{API}/entries/{setup['entry_id']}/resources/table",
        headers=headers or setup["officer"],
        json={"source_id": setup["source_id"], "table": table, **extra},
    )


def resource_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(MountedResource)) or 0


def test_matching_table_is_mounted_with_its_row_count(client: TestClient, setup: dict[str, Any]) -> None:
    r = mount(client, setup, "qy_jbxx")
    assert r.status_code == 201, r.text
    resource = r.json()
    assert resource["kind"] == "table" and resource["table_name"] == "qy_jbxx"
    assert resource["source_id"] == setup["source_id"]
    assert resource["row_count"] == 3 and resource["check_ok"] is True and resource["checked_at"]
    # the unused column is reported but does not block
    assert [(p["kind"], p["column"], p["blocking"]) for p in resource["check_problems"]] == [
        ("extra_column", "bz", False)
    ]
    listed = client.get(f"{API}/entries/{setup['entry_id']}/resources", headers=token_for(client, "hrss_officer"))
    assert [x["id"] for x in listed.json()] == [resource["id"]]


def test_mismatching_table_is_refused_with_its_problems(
    client: TestClient, setup: dict[str, Any], db: Database
) -> None:
    r = mount(client, setup, "qy_old")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "catalog.mount_mismatch" and problem["title"] == "提交的数据未通过校验"
    kinds = {(p["kind"], p["item"]) for p in problem["problems"] if p["blocking"]}
    assert kinds == {
        ("type_mismatch", "统一社会信用代码"),
        ("length_exceeded", "企业名称"),
        ("missing_column", "法定代表人"),
    }
    assert all(p["message"] for p in problem["problems"])
    assert resource_count(db) == 0
    # the officer may mount it anyway; it is then marked as failing the check
    r = mount(client, setup, "qy_old", allow_problems=True)
    assert r.status_code == 201, r.text
    assert r.json()["check_ok"] is False and r.json()["row_count"] == 1
    assert resource_count(db) == 1


def test_refresh_and_unmount(client: TestClient, setup: dict[str, Any], settings: Settings, world: World) -> None:
    resource_id = mount(client, setup, "qy_jbxx").json()["id"]
    path = Path(settings.data_dir) / "uploads" / world.orgs["market"] / "qianzhiku.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO qy_jbxx VALUES ('91360000MA35XXXX4D', '江西丁公司', '赵六', NULL)")
    conn.commit()
    conn.close()
    url = f"{API}/entries/{setup['entry_id']}/resources/{resource_id}"
    r = client.post(f"{url}/refresh", headers=setup["officer"])
    assert r.status_code == 200, r.text
    assert r.json()["row_count"] == 4 and r.json()["check_ok"] is True
    r = client.delete(url, headers=token_for(client, "hrss_officer"))
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    assert client.delete(url, headers=setup["officer"]).status_code == 204
    assert client.get(f"{API}/entries/{setup['entry_id']}/resources", headers=setup["officer"]).json() == []
    r = client.post(f"{API}/entries/{setup['entry_id']}/resources/nope/refresh", headers=setup["officer"])
    assert r.status_code == 404 and r.json()["code"] == "catalog.resource_not_found"


def test_only_the_provider_mounts_and_only_its_own_sources(
    client: TestClient, setup: dict[str, Any], db: Database, world: World, settings: Settings
) -> None:
    hrss = token_for(client, "hrss_officer")
    r = mount(client, setup, "qy_jbxx", headers=hrss)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = mount(client, setup, "qy_jbxx", headers=token_for(client, "market_user"))
    assert r.status_code == 403
    # a source of another department cannot back this entry
    path = _front_db(Path(settings.data_dir) / "uploads" / world.orgs["hrss"] / "rs.sqlite")
    other = client.post(
        "/api/v1/lake/sources",
        headers=hrss,
        json={"name": "人社前置库", "kind": "sqlite", "options": {"path": str(path)}},
    )
    assert other.status_code == 201, other.text
    r = client.post(
        f"{API}/entries/{setup['entry_id']}/resources/table",
        headers=setup["officer"],
        json={"source_id": other.json()["id"], "table": "qy_jbxx"},
    )
    assert r.status_code == 404 and r.json()["code"] == "lake.source_not_found"
    r = client.post(
        f"{API}/entries/{setup['entry_id']}/resources/table",
        headers=token_for(client, "admin"),
        json={"source_id": other.json()["id"], "table": "qy_jbxx"},
    )
    assert r.status_code == 422 and r.json()["code"] == "catalog.mount_foreign_source"
    r = mount(client, setup, "no_such_table")
    assert r.status_code in (404, 422) and r.json()["code"].startswith("lake.")
    assert resource_count(db) == 0


def test_api_mount(client: TestClient, setup: dict[str, Any], db: Database) -> None:
    url = f"{API}/entries/{setup['entry_id']}/resources/api"
    r = client.post(
        url,
        headers=setup["officer"],
        json={
            "endpoint": "https://gateway.example.gov.cn/api/qy/jbxx",
            "method": "POST",
            "params": [{"name": "tyshxydm", "location": "body", "required": True, "description": "统一社会信用代码"}],
        },
    )
    assert r.status_code == 201, r.text
    resource = r.json()
    assert resource["kind"] == "api" and resource["api_method"] == "POST" and resource["check_ok"] is True
    assert resource["api_endpoint"] == "https://gateway.example.gov.cn/api/qy/jbxx"
    assert resource["api_params"][0]["name"] == "tyshxydm" and resource["api_params"][0]["required"] is True
    r = client.post(url, headers=setup["officer"], json={"endpoint": "not a url", "method": "DELETE"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"endpoint", "method"}
    assert resource_count(db) == 1
    # a withdrawn entry takes no new resources
    client.post(f"{API}/entries/{setup['entry_id']}/withdraw", json={"reason": "停止产生"}, headers=setup["officer"])
    r = client.post(url, headers=setup["officer"], json={"endpoint": "https://gateway.example.gov.cn/api/x"})
    assert r.status_code == 409 and r.json()["code"] == "catalog.withdrawn"
