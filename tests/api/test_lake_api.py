"""Data sources through the HTTP API: upload, register, test, list tables, describe; secrets never leave."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.factories import token_for

CSV = "tyshxydm,qymc,fddbr\n91360100MA35XXXX0X,南昌某科技有限公司,张三\n91360100MA35YYYY1Y,九江某贸易有限公司,李四\n"


def fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


def upload_csv(client, headers: dict[str, str], name: str = "企业登记.csv") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/lake/uploads", headers=headers, files={"file": (name, CSV.encode(), "text/csv")})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_anonymous_is_401(client, world) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/lake/sources").status_code == 401
    assert client.post("/api/v1/lake/uploads", files={"file": ("a.csv", b"a\n1\n", "text/csv")}).status_code == 401


def test_upload_register_test_tables_describe(client, world, settings) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    uploaded = upload_csv(client, officer)
    path = Path(uploaded["path"])
    assert path.is_file() and path.read_text(encoding="utf-8") == CSV
    assert path.is_relative_to(Path(settings.data_dir) / "uploads" / world.orgs["market"])
    assert uploaded["filename"] == "企业登记.csv" and uploaded["size"] == len(CSV.encode())

    r = client.post(
        "/api/v1/lake/sources",
        headers=officer,
        json={"name": "企业登记文件", "kind": "csv", "options": {"path": uploaded["path"]}},
    )
    assert r.status_code == 201, r.text
    source = r.json()
    assert source["owner_org_id"] == world.orgs["market"] and source["kind_label"] == "CSV 文件"
    assert source["last_check_ok"] is None

    tested = client.post(f"/api/v1/lake/sources/{source['id']}/test", headers=officer).json()
    assert tested["last_check_ok"] is True and tested["last_checked_at"]

    tables = client.get(f"/api/v1/lake/sources/{source['id']}/tables", params={"count": "true"}, headers=officer).json()
    assert tables["total"] == 1 and len(tables["items"]) == 1
    table = tables["items"][0]["name"]
    described = client.get(f"/api/v1/lake/sources/{source['id']}/tables/{table}", headers=officer)
    assert described.status_code == 200
    d = described.json()
    assert [c["name"] for c in d["columns"]] == ["tyshxydm", "qymc", "fddbr"]
    assert d["row_count"] == 2
    assert all(c["type_code"] == "C" and c["type_label"] for c in d["columns"])

    missing = client.get(f"/api/v1/lake/sources/{source['id']}/tables/nope", headers=officer)
    assert missing.status_code == 404 and missing.json()["code"] == "lake.table_not_found"

    listed = client.get("/api/v1/lake/sources", headers=officer).json()["items"]
    assert [s["id"] for s in listed] == [source["id"]]


def test_sources_are_scoped_and_managed_by_officers(client, world) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    uploaded = upload_csv(client, officer)
    source = client.post(
        "/api/v1/lake/sources",
        headers=officer,
        json={"name": "企业登记文件", "kind": "csv", "options": {"path": uploaded["path"]}},
    ).json()

    other = token_for(client, "hrss_officer")
    assert client.get("/api/v1/lake/sources", headers=other).json()["items"] == []
    r = client.get(f"/api/v1/lake/sources/{source['id']}", headers=other)
    assert r.status_code == 404 and r.json()["code"] == "lake.source_not_found"
    assert client.delete(f"/api/v1/lake/sources/{source['id']}", headers=other).status_code == 404

    colleague = token_for(client, "market_user")  # same organization, but not a data officer
    assert client.get(f"/api/v1/lake/sources/{source['id']}", headers=colleague).status_code == 200
    r = client.post(f"/api/v1/lake/sources/{source['id']}/test", headers=colleague)
    assert r.status_code == 403 and r.json()["code"] == "lake.forbidden"
    r = client.post("/api/v1/lake/uploads", headers=colleague, files={"file": ("a.csv", CSV.encode(), "text/csv")})
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"

    admin = token_for(client, "admin")
    assert source["id"] in {s["id"] for s in client.get("/api/v1/lake/sources", headers=admin).json()["items"]}

    r = client.patch(f"/api/v1/lake/sources/{source['id']}", json={"name": "企业登记（月度）"}, headers=officer)
    assert r.status_code == 200 and r.json()["name"] == "企业登记（月度）"
    assert client.delete(f"/api/v1/lake/sources/{source['id']}", headers=officer).status_code == 204
    assert client.get(f"/api/v1/lake/sources/{source['id']}", headers=officer).status_code == 404


def test_secrets_are_never_returned(client, world) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    secret = "S3cret-Front-DB!"
    body = {
        "name": "市场监管前置库",
        "kind": "postgresql",
        "host": "127.0.0.1",
        "port": 1,
        "database": "qz",
        "username": "reader",
        "password": secret,
        "options": {"schema": "public", "timeout_s": 2},
    }
    r = client.post("/api/v1/lake/sources", json=body, headers=officer)
    assert r.status_code == 201, r.text
    source = r.json()
    assert source["has_secret"] is True
    assert secret not in r.text and "password" not in source and "secret_encrypted" not in source

    tested = client.post(f"/api/v1/lake/sources/{source['id']}/test", headers=officer)
    assert tested.status_code == 200
    assert tested.json()["last_check_ok"] is False and tested.json()["last_check_message"]
    assert secret not in tested.text
    tables = client.get(f"/api/v1/lake/sources/{source['id']}/tables", headers=officer)
    assert tables.status_code == 502 and tables.json()["code"] == "lake.connection_failed"
    assert secret not in tables.text

    for response in (
        client.get(f"/api/v1/lake/sources/{source['id']}", headers=officer),
        client.get("/api/v1/lake/sources", headers=officer),
    ):
        assert secret not in response.text
    cleared = client.patch(f"/api/v1/lake/sources/{source['id']}", json={"clear_password": True}, headers=officer)
    assert cleared.json()["has_secret"] is False


def test_validation_errors_name_fields(client, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    r = client.post("/api/v1/lake/sources", json={"name": "x", "kind": "oracle"}, headers=officer)
    assert r.status_code == 422 and fields(r) == {"kind"}
    r = client.post("/api/v1/lake/sources", json={"name": "x", "kind": "postgresql"}, headers=officer)
    assert r.status_code == 422 and fields(r) == {"host", "database", "username"}
    # A path outside the department's upload area is refused (it could be any file on the server).
    outside = tmp_path / "elsewhere.sqlite"
    sqlite3.connect(outside).close()
    r = client.post(
        "/api/v1/lake/sources",
        json={"name": "x", "kind": "sqlite", "options": {"path": str(outside)}},
        headers=officer,
    )
    assert r.status_code == 422 and fields(r) == {"options.path"}
    r = client.post("/api/v1/lake/uploads", headers=officer, files={"file": ("a.exe", b"MZ", "application/x")})
    assert r.status_code == 422 and fields(r) == {"file"}
    r = client.post("/api/v1/lake/uploads", headers=officer)
    assert r.status_code == 422 and fields(r) == {"file"}

    uploaded = upload_csv(client, officer)
    body = {"name": "重名", "kind": "csv", "options": {"path": uploaded["path"]}}
    assert client.post("/api/v1/lake/sources", json=body, headers=officer).status_code == 201
    dup = client.post("/api/v1/lake/sources", json=body, headers=officer)
    assert dup.status_code == 409 and dup.json()["code"] == "lake.duplicate_name"
