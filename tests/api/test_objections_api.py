"""Objection API: create with multipart evidence, the life of an objection over HTTP with each role allowed
or refused, lists by box, flags and corrections for readers of the entry, downloads for the parties only,
problem+json errors that change nothing, supervision figures."""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import World, published_entry, token_for
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import MountedResource
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.objection.models import Objection
from zhengshu.security.passwords import hash_password

API = "/api/v1/objections"
USCC = "91360000MA35XXXX1A"
PDF = b"%PDF-1.4\n%evidence\n%%EOF\n"
_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The app's settings with a 1 MB attachment limit, so an oversized file is cheap to make."""
    return Settings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        node_code="360000",
        node_name="江西省政务数据共享平台",
        embedded_jobs=False,
        max_attachment_mb=1,
    )


class Users:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self._headers: dict[str, dict[str, str]] = {}

    def __getitem__(self, username: str) -> dict[str, str]:
        if username not in self._headers:
            self._headers[username] = token_for(self.client, username)
        return self._headers[username]


@pytest.fixture
def h(client: TestClient, world: World) -> Users:
    return Users(client)


@pytest.fixture
def target(db: Database, world: World) -> dict[str, str]:
    entry_id = published_entry(db, world)
    with db.session() as s:
        resource = MountedResource(entry_id=entry_id, kind="api", api_endpoint="https://x.gov.cn/qy", created_by="m")
        s.add(resource)
        s.flush()
        entry = catalog_service.get(s, actor=world["market_officer"], entry_id=entry_id)
        keys = {i.name: i.key for i in catalog_service.display_version(s, entry).items}
        return {"entry_id": entry_id, "resource_id": resource.id, "item_key": keys["法定代表人"]}


def form(target: dict[str, str], **overrides: str) -> dict[str, str]:
    data = {
        "entry_id": target["entry_id"],
        "resource_id": target["resource_id"],
        "record_key": USCC,
        "item_key": target["item_key"],
        "kind": "wrong",
        "claimed_value": "张三",
        "description": "法定代表人已变更",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def create(
    client: TestClient, headers: dict[str, str], target: dict[str, str], files: Any = None, **overrides: str
) -> Any:
    return client.post(API, data=form(target, **overrides), files=files, headers=headers)


def objections(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Objection)) or 0


def stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def act(client: TestClient, headers: dict[str, str], oid: str, verb: str, body: Any = None) -> Any:
    return client.post(f"{API}/{oid}/{verb}", json=body, headers=headers)


def test_create_with_evidence_and_detail(
    client: TestClient, h: Users, target: dict[str, str], world: World, settings: Settings
) -> None:
    r = create(client, h["hrss_officer"], target, files=[("attachments", ("通知书.pdf", PDF, "application/pdf"))])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "raised" and body["state_label"] == "待受理"
    assert body["target_type"] == "record" and body["record_key"] == USCC and body["item_name"] == "法定代表人"
    assert body["handler_org_id"] == world.orgs["market"] and body["objector_org_id"] == world.orgs["hrss"]
    assert body["due_on"] and body["timeline"][0]["action"] == "open"
    assert body["actions"] == ["withdraw", "attach"]
    (att,) = body["attachments"]
    assert att["file_type"] == "pdf" and att["size"] == len(PDF) and len(att["sm3"]) == 64
    provider_view = client.get(f"{API}/{body['id']}", headers=h["market_officer"]).json()
    assert "accept" in provider_view["actions"] and "forward" in provider_view["actions"]
    download = client.get(att["download_url"], headers=h["market_officer"])
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert len(stored_files(settings)) == 1


def test_bad_creates_get_clear_errors_and_change_nothing(
    client: TestClient, h: Users, target: dict[str, str], db: Database, settings: Settings
) -> None:
    zip_buf = io.BytesIO()
    with zipfile.ZipFile(zip_buf, "w") as zf:
        zf.writestr("payload.exe", b"MZ")
    cases = [
        (
            "hrss_officer",
            {},
            [("attachments", ("证明.pdf", zip_buf.getvalue(), "application/pdf"))],
            422,
            "objection.attachment_type",
        ),
        (
            "hrss_officer",
            {},
            [("attachments", ("大.pdf", PDF + b"0" * (1024 * 1024), "application/pdf"))],
            422,
            "objection.attachment_too_large",
        ),
        ("market_officer", {}, None, 409, "objection.own_entry"),
        ("reviewer", {}, None, 403, "auth.forbidden"),
        ("hrss_officer", {"kind": "inconsistent"}, None, 422, "validation.failed"),
        ("hrss_officer", {"kind": "rumour"}, None, 422, "validation.failed"),
        ("hrss_officer", {"item_key": "nosuch"}, None, 422, "objection.invalid"),
        ("hrss_officer", {"entry_id": "0" * 24}, None, 404, "catalog.not_found"),
    ]
    for who, overrides, files, status, code in cases:
        r = create(client, h[who], target, files=files, **overrides)
        assert r.status_code == status, (who, overrides, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code, r.text
    assert objections(db) == 0
    assert stored_files(settings) == []
    problem = create(client, h["hrss_officer"], target, kind="inconsistent").json()
    assert any("另一数据来源" in e["message"] for e in problem["errors"])


def test_each_role_allowed_or_refused_through_the_flow(
    client: TestClient, h: Users, target: dict[str, str], world: World
) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    # who may see it at all
    for who, status in (
        ("hrss_officer", 200),
        ("market_user", 200),
        ("reviewer", 200),
        ("admin", 200),
        ("nc_police_officer", 404),
        ("nc_reviewer", 404),
    ):
        assert client.get(f"{API}/{oid}", headers=h[who]).status_code == status, who
    # accept: the provider's data officer only
    for who, status in (("hrss_officer", 403), ("market_user", 403), ("reviewer", 403), ("nc_police_officer", 404)):
        r = act(client, h[who], oid, "accept")
        assert r.status_code == status, (who, r.text)
    r = act(client, h["market_officer"], oid, "accept", {"comment": "受理"})
    assert r.status_code == 200 and r.json()["state"] == "verifying"
    assert r.json()["flags"][0]["record_key"] == USCC
    assert act(client, h["market_officer"], oid, "accept").json()["code"] == "workflow.invalid_transition"
    # answer
    assert (
        act(
            client, h["hrss_officer"], oid, "answer", {"resolution": "corrected", "corrected_value": "张三"}
        ).status_code
        == 403
    )
    bad = act(client, h["market_officer"], oid, "answer", {"resolution": "not_error"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation.failed"
    r = act(client, h["market_officer"], oid, "answer", {"resolution": "not_error", "note": "经核对原始登记档案无误"})
    assert r.status_code == 200 and r.json()["state"] == "answered" and r.json()["resolution_label"] == "经核实无误"
    # dispute: the objector only
    assert act(client, h["market_officer"], oid, "dispute", {"reason": "x"}).status_code == 403
    assert act(client, h["hrss_officer"], oid, "dispute", {"reason": ""}).status_code == 422
    r = act(client, h["hrss_officer"], oid, "dispute", {"reason": "有变更登记证明"})
    assert r.status_code == 200 and r.json()["state"] == "arbitrating"
    # arbitrate: the covering data authority only
    decision = {"decision": "order_correction", "reason": "以变更登记为准", "corrected_value": "张三"}
    assert act(client, h["market_officer"], oid, "arbitrate", decision).status_code == 403
    assert act(client, h["nc_reviewer"], oid, "arbitrate", decision).status_code == 404
    r = act(client, h["reviewer"], oid, "arbitrate", decision)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "archived" and done["decision_label"] == "责令更正" and done["actions"] == []
    assert done["corrections"][0]["corrected_value"] == "张三" and done["flags"][0]["closed_at"] is not None
    assert [e["action"] for e in done["timeline"]] == ["open", "accept", "answer", "dispute", "arbitrate"]
    assert act(client, h["hrss_officer"], oid, "withdraw").status_code == 409


def test_forward_confirm_and_withdraw_over_http(
    client: TestClient, h: Users, target: dict[str, str], world: World
) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    r = act(client, h["market_officer"], oid, "forward", {"to_org_id": "0" * 24, "reason": "x"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to_org_id"
    r = act(
        client, h["market_officer"], oid, "forward", {"to_org_id": world.orgs["nc_police"], "reason": "公安户籍数据"}
    )
    assert r.status_code == 200 and r.json()["handler_org_id"] == world.orgs["nc_police"]
    assert client.get(f"{API}/{oid}", headers=h["nc_police_officer"]).status_code == 200, "the new handler sees it"
    assert act(client, h["nc_police_officer"], oid, "accept").status_code == 200
    r = act(client, h["nc_police_officer"], oid, "answer", {"resolution": "corrected", "corrected_value": "张三"})
    assert r.status_code == 200
    assert act(client, h["market_officer"], oid, "confirm").status_code == 403
    r = act(client, h["hrss_officer"], oid, "confirm", {"comment": "认可"})
    assert r.status_code == 200 and r.json()["state"] == "archived"

    other = create(client, h["hrss_officer"], target, record_key="91360000MA35YYYY2B").json()["id"]
    assert act(client, h["market_officer"], other, "withdraw").status_code == 403
    r = act(client, h["hrss_officer"], other, "withdraw", {"comment": "误报"})
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"


def test_lists_by_box(client: TestClient, h: Users, target: dict[str, str]) -> None:
    first = create(client, h["hrss_officer"], target).json()["id"]
    second = create(client, h["nc_police_officer"], target).json()
    assert second["group_id"] == first and set(second["group_members"]) == {first, second["id"]}

    def ids(who: str, **params: Any) -> list[str]:
        r = client.get(API, params=params, headers=h[who])
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["items"]]

    assert ids("hrss_officer", box="mine") == [first]
    assert sorted(ids("market_officer", box="todo")) == sorted([first, second["id"]])
    assert ids("market_user", box="todo") == [], "the to-handle list is the data officer's"
    assert len(ids("market_user", box="provider")) == 2
    assert ids("nc_police_officer") == [second["id"]]
    assert ids("reviewer", box="arbitration") == []
    assert ids("jj_reviewer") == []
    assert len(ids("admin")) == 2
    assert ids("market_officer", record_key=USCC, state="raised", sort="raised_on", limit=1) != []
    r = client.get(API, params={"count": "true", "limit": 1}, headers=h["market_officer"])
    assert r.json()["total"] == 2 and r.json()["next_cursor"]
    assert client.get(API, params={"sort": "nosuch"}, headers=h["admin"]).status_code == 422
    assert client.get(API, params={"box": "nosuch"}, headers=h["admin"]).status_code == 422
    assert client.get(API).status_code == 401


def test_flags_and_corrections_for_readers_of_the_entry(
    client: TestClient, h: Users, target: dict[str, str], world: World
) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    params = {"entry_id": target["entry_id"]}
    assert client.get(f"{API}/flags", params=params, headers=h["jj_reviewer"]).json() == []
    act(client, h["market_officer"], oid, "accept")
    # anyone who may read the published entry sees the flag on the record, even if not party to the objection
    flags = client.get(f"{API}/flags", params={**params, "record_key": USCC}, headers=h["jj_reviewer"]).json()
    assert len(flags) == 1 and flags[0]["record_key"] == USCC and flags[0]["objection_id"] == oid
    assert client.get(f"{API}/flags", params={**params, "record_key": "OTHER"}, headers=h["hrss_officer"]).json() == []
    act(
        client,
        h["market_officer"],
        oid,
        "answer",
        {"resolution": "corrected", "corrected_value": "张三", "old_value": "李四", "effective_from": "2026-10-09"},
    )
    fixes = client.get(f"{API}/corrections", params={**params, "record_key": USCC}, headers=h["nc_police_officer"])
    assert fixes.status_code == 200
    (c,) = fixes.json()
    assert (c["old_value"], c["corrected_value"], c["effective_from"]) == ("李四", "张三", "2026-10-09")
    assert c["corrected_by"] == "market_officer" and c["corrected_by_org_name"] == "省市场监管局"
    by_item = client.get(f"{API}/corrections", params={**params, "item_key": target["item_key"]}, headers=h["admin"])
    assert len(by_item.json()) == 1
    missing = client.get(f"{API}/flags", params={"entry_id": "0" * 24}, headers=h["hrss_officer"])
    assert missing.status_code == 404


def test_attachments_upload_and_download_only_for_parties(
    client: TestClient, h: Users, target: dict[str, str], settings: Settings
) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    upload = [("attachments", ("核实.txt", "已核实".encode(), "text/plain"))]
    r = client.post(f"{API}/{oid}/attachments", files=upload, headers=h["market_officer"])
    assert r.status_code == 201, r.text
    (att,) = r.json()
    assert client.post(f"{API}/{oid}/attachments", files=upload, headers=h["nc_police_officer"]).status_code == 404
    assert client.post(f"{API}/{oid}/attachments", files=upload, headers=h["reviewer"]).status_code == 403
    disguised = [("attachments", ("截图.png", PDF, "image/png"))]
    r = client.post(f"{API}/{oid}/attachments", files=disguised, headers=h["hrss_officer"])
    assert r.status_code == 422 and r.json()["code"] == "objection.attachment_type"
    assert len(stored_files(settings)) == 1
    url = att["download_url"]
    for who, status in (
        ("hrss_officer", 200),
        ("market_user", 200),
        ("reviewer", 200),
        ("admin", 200),
        ("nc_police_officer", 404),
        ("nc_reviewer", 404),
    ):
        assert client.get(url, headers=h[who]).status_code == status, who
    assert client.get(url).status_code == 401
    assert client.get(f"{API}/{oid}/attachments/{'0' * 24}", headers=h["hrss_officer"]).status_code == 404


def test_supervision_figures(client: TestClient, h: Users, target: dict[str, str], world: World) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    act(client, h["market_officer"], oid, "accept")
    act(client, h["market_officer"], oid, "answer", {"resolution": "corrected", "corrected_value": "张三"})
    create(client, h["hrss_officer"], target, record_key="B")
    assert client.get(f"{API}/stats", headers=h["market_officer"]).status_code == 403
    rows = client.get(f"{API}/stats", headers=h["reviewer"]).json()
    (row,) = rows
    assert row["org_id"] == world.orgs["market"] and row["raised"] == 2 and row["answered"] == 1
    assert row["on_time_rate"] == 1.0 and row["avg_handling_days"] is not None
    assert row["by_state"] == {"answered": 1, "raised": 1}
    states = {s["state"]: s["count"] for s in client.get(f"{API}/stats/states", headers=h["reviewer"]).json()}
    assert states["answered"] == 1 and states["raised"] == 1 and states["archived"] == 0
    assert client.get(f"{API}/stats", headers=h["nc_reviewer"]).json() == []
