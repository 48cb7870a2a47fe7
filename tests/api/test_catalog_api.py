"""Catalog API: the life of an entry over HTTP, who may do what, problem+json validation, lists, search,
facets and exports that never show other departments' drafts."""

from __future__ import annotations

import functools
from io import BytesIO
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests.factories import World, entry_in, published_entry, token_for
from zhengshu.catalog.excel import MAIN_SHEET, parse_workbook
from zhengshu.catalog.models import CatalogEntry, DataItem, EntryVersion
from zhengshu.core.db import Database
from zhengshu.security.passwords import hash_password
from zhengshu.workflow.models import Ticket

API = "/api/v1/catalog"
_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The world has eight users with one password: hash it once instead of eight times per test."""
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


class Users:
    """Bearer headers per username, fetched once per test."""

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


def body(**overrides: Any) -> dict[str, Any]:
    return entry_in(**overrides).model_dump(mode="json")


def create(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    r = client.post(f"{API}/entries", json=body(**overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def act(
    client: TestClient, headers: dict[str, str], entry_id: str, verb: str, status: int = 200, **payload: Any
) -> dict[str, Any]:
    r = client.post(f"{API}/entries/{entry_id}/{verb}", json=payload or None, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def assert_problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["title"] and any("\u4e00" <= ch <= "\u9fff" for ch in problem["title"])
    return dict(problem)


def counts(db: Database) -> tuple[int, int, int, int]:
    with db.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) or 0  # type: ignore[return-value]
            for m in (CatalogEntry, EntryVersion, DataItem, Ticket)
        )


# ---- authentication -------------------------------------------------------------------------------------


def test_anonymous_requests_get_401(client: TestClient, db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    for method, path in [
        ("get", f"{API}/entries"),
        ("get", f"{API}/entries/{entry_id}"),
        ("get", f"{API}/search?q=企业"),
        ("post", f"{API}/entries"),
        ("post", f"{API}/entries/{entry_id}/withdraw"),
        ("get", f"{API}/export"),
    ]:
        r = client.request(method, path, json={} if method == "post" else None)
        assert_problem(r, 401, "auth.unauthenticated")
    r = client.get(f"{API}/entries", headers={"Authorization": "Bearer zs_not-a-token"})
    assert_problem(r, 401, "auth.bad_token")


# ---- the life of an entry -------------------------------------------------------------------------------


def test_draft_submitted_published(client: TestClient, h: Users, world: World) -> None:
    created = create(client, h["market_officer"])
    assert created["code"] == "102001/00001" and created["status"] == "draft" and created["version"] == 1
    assert created["status_label"] == "草稿" and created["provider_name"] == "江西省市场监督管理局"
    assert [i["name"] for i in created["items"]] == ["统一社会信用代码", "企业名称", "法定代表人"]
    entry_id = created["id"]

    submitted = act(client, h["market_officer"], entry_id, "submit", comment="请审核")
    assert submitted["status"] == "submitted" and submitted["status_label"] == "待审核"
    todo = client.get("/api/v1/workflow/todo", headers=h["reviewer"])
    assert todo.status_code == 200, todo.text
    assert [t["subject_id"] for t in todo.json()["items"]] == [entry_id]

    published = act(client, h["reviewer"], entry_id, "approve", comment="同意")
    assert published["status"] == "published" and published["published_on"]
    # everyone may now read it, even a plain user of another department
    r = client.get(f"{API}/entries/{entry_id}", headers=h["market_user"])
    assert r.status_code == 200 and r.json()["status"] == "published"
    r = client.get(f"{API}/by-code/102001/00001", headers=h["hrss_officer"])
    assert r.status_code == 200 and r.json()["id"] == entry_id

    history = client.get(f"{API}/entries/{entry_id}/history", headers=h["market_officer"]).json()
    assert [(e["action"], e["comment"]) for e in history] == [("open", ""), ("submit", "请审核"), ("approve", "同意")]
    assert history[2]["actor_name"] == "省数据局审核员" and history[2]["actor_org_name"] == "江西省数据局"


def test_returned_with_a_reason_resubmitted_and_published(client: TestClient, h: Users) -> None:
    entry_id = create(client, h["market_officer"])["id"]
    act(client, h["market_officer"], entry_id, "submit")
    r = client.post(f"{API}/entries/{entry_id}/return", json={"reason": ""}, headers=h["reviewer"])
    problem = assert_problem(r, 422, "validation.failed")
    assert [e["field"] for e in problem["errors"]] == ["reason"]
    returned = act(client, h["reviewer"], entry_id, "return", reason="请补充信息项说明")
    assert returned["status"] == "returned"
    todo = client.get("/api/v1/workflow/todo", headers=h["market_officer"]).json()["items"]
    assert [t["subject_id"] for t in todo] == [entry_id]

    r = client.put(
        f"{API}/entries/{entry_id}",
        headers=h["market_officer"],
        json=body(summary="全省市场主体登记信息（已补充说明）"),
    )
    assert r.status_code == 200, r.text
    assert act(client, h["market_officer"], entry_id, "submit")["status"] == "submitted"
    final = act(client, h["reviewer"], entry_id, "approve")
    assert final["status"] == "published" and final["summary"] == "全省市场主体登记信息（已补充说明）"
    actions = [e["action"] for e in client.get(f"{API}/entries/{entry_id}/history", headers=h["market_officer"]).json()]
    assert actions == ["open", "submit", "return", "submit", "approve"]


def test_editing_a_published_entry_makes_version_two(client: TestClient, h: Users, db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    v1 = client.get(f"{API}/entries/{entry_id}", headers=h["market_officer"]).json()
    items = [*v1["items"][:2], {"name": "成立日期", "column_name": "clrq", "data_type": "D"}]
    items[1] = {**items[1], "length": 300}
    for item in items:
        item.pop("id", None)
        item.pop("position", None)
    r = client.put(
        f"{API}/entries/{entry_id}",
        headers=h["market_officer"],
        json={**body(summary="修订后的摘要", items=items), "change_note": "增加成立日期"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2

    shown = client.get(f"{API}/entries/{entry_id}", headers=h["hrss_officer"]).json()
    assert shown["version"] == 1 and shown["summary"] == v1["summary"] and shown["has_pending_revision"]
    draft = client.get(f"{API}/entries/{entry_id}/draft", headers=h["market_officer"]).json()
    assert draft["version"] == 2 and draft["summary"] == "修订后的摘要"
    # the pending revision belongs to the provider and the reviewer, not to other departments
    assert_problem(
        client.get(f"{API}/entries/{entry_id}/draft", headers=h["hrss_officer"]), 404, "catalog.no_working_version"
    )
    assert_problem(
        client.get(f"{API}/entries/{entry_id}/versions/2", headers=h["hrss_officer"]), 404, "catalog.version_not_found"
    )
    others = client.get(f"{API}/entries/{entry_id}/versions", headers=h["hrss_officer"]).json()
    assert [v["number"] for v in others] == [1]
    assert client.get(f"{API}/entries/{entry_id}/draft", headers=h["reviewer"]).json()["version"] == 2

    diff = client.get(f"{API}/entries/{entry_id}/diff?from=1&to=2", headers=h["market_officer"]).json()
    assert [c["field"] for c in diff["changes"]] == ["summary"]
    assert [i["name"] for i in diff["items_added"]] == ["成立日期"]
    assert [i["name"] for i in diff["items_removed"]] == ["法定代表人"]
    assert diff["items_changed"] == [{"name": "企业名称", "changes": [{"field": "length", "old": 200, "new": 300}]}]

    act(client, h["market_officer"], entry_id, "submit")
    assert client.get(f"{API}/entries/{entry_id}", headers=h["hrss_officer"]).json()["version"] == 1
    approved = act(client, h["reviewer"], entry_id, "approve")
    assert approved["version"] == 2 and approved["summary"] == "修订后的摘要"
    assert not approved["has_pending_revision"]
    versions = client.get(f"{API}/entries/{entry_id}/versions", headers=h["market_officer"]).json()
    assert [(v["number"], v["state"]) for v in versions] == [(1, "superseded"), (2, "published")]
    assert versions[1]["change_note"] == "增加成立日期"
    old = client.get(f"{API}/entries/{entry_id}/versions/1", headers=h["market_officer"]).json()
    assert old["version"] == 1 and old["summary"] == v1["summary"]
    assert_problem(
        client.get(f"{API}/entries/{entry_id}/draft", headers=h["market_officer"]), 404, "catalog.no_working_version"
    )
    with db.session() as s:  # items keep their key across versions
        keys = {}
        for item in s.scalars(select(DataItem).where(DataItem.entry_id == entry_id)):
            keys.setdefault(item.name, set()).add(item.key)
        assert all(len(k) == 1 for k in keys.values())


def test_withdraw_discard_and_recall(client: TestClient, h: Users, db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    r = client.post(f"{API}/entries/{entry_id}/withdraw", json={"reason": ""}, headers=h["market_officer"])
    assert [e["field"] for e in assert_problem(r, 422, "validation.failed")["errors"]] == ["reason"]
    withdrawn = act(client, h["market_officer"], entry_id, "withdraw", reason="职能调整，数据停止产生")
    assert withdrawn["status"] == "withdrawn" and withdrawn["withdrawn_reason"] == "职能调整，数据停止产生"
    assert_problem(
        client.post(f"{API}/entries/{entry_id}/withdraw", json={"reason": "再次"}, headers=h["market_officer"]),
        409,
        "catalog.not_published",
    )
    assert_problem(client.get(f"{API}/entries/{entry_id}", headers=h["hrss_officer"]), 404, "catalog.not_found")

    draft_id = create(client, h["market_officer"], name="企业年报信息")["id"]
    act(client, h["market_officer"], draft_id, "submit")
    recalled = act(client, h["market_officer"], draft_id, "recall", comment="还需修改")
    assert recalled["status"] == "draft"
    assert_problem(
        client.post(f"{API}/entries/{draft_id}/recall", headers=h["market_officer"]), 409, "workflow.invalid_transition"
    )
    discarded = act(client, h["market_officer"], draft_id, "discard", comment="重复编制")
    assert discarded["status"] == "withdrawn"
    assert_problem(
        client.post(f"{API}/entries/{draft_id}/submit", headers=h["market_officer"]), 409, "catalog.nothing_to_submit"
    )


def test_codes_are_unique_within_a_class(client: TestClient, h: Users) -> None:
    a = create(client, h["market_officer"])
    b = create(client, h["market_officer"], name="企业年报信息")
    c = create(client, h["hrss_officer"], name="社保参保信息", class_code="203001")
    assert [a["code"], b["code"], c["code"]] == ["102001/00001", "102001/00002", "203001/00001"]


def test_duty_change_and_recheck(client: TestClient, h: Users, db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    r = client.post(
        f"{API}/entries/{entry_id}/duty-changes", json={"description": "条例修订"}, headers=h["market_officer"]
    )
    assert_problem(r, 403, "auth.forbidden")
    r = client.post(f"{API}/entries/{entry_id}/duty-changes", json={"description": "条例修订"}, headers=h["reviewer"])
    assert r.status_code == 201, r.text
    assert r.json()["due_on"] and r.json()["due_provisional"] is False
    todo = client.get("/api/v1/workflow/todo", headers=h["market_officer"]).json()["items"]
    assert [t["kind"] for t in todo] == ["catalog_duty_update"]
    rechecked = act(client, h["market_officer"], entry_id, "recheck", comment="无变化")
    assert rechecked["status"] == "published"
    assert_problem(client.post(f"{API}/entries/{entry_id}/recheck", headers=h["hrss_officer"]), 403, "auth.forbidden")


# ---- authorization --------------------------------------------------------------------------------------


def test_other_department_cannot_edit(client: TestClient, h: Users, db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    draft_id = create(client, h["market_officer"], name="企业年报信息")["id"]
    before = counts(db)
    r = client.put(f"{API}/entries/{entry_id}", json=body(summary="越权修改"), headers=h["hrss_officer"])
    problem = assert_problem(r, 403, "auth.forbidden")
    assert "其他部门" in problem["detail"]
    # a draft of another department is invisible: it looks missing
    for method, path in [
        ("put", f"{API}/entries/{draft_id}"),
        ("get", f"{API}/entries/{draft_id}"),
        ("post", f"{API}/entries/{draft_id}/submit"),
        ("get", f"{API}/entries/{draft_id}/draft"),
        ("get", f"{API}/entries/{draft_id}/history"),
    ]:
        r = client.request(method, path, json=body() if method == "put" else None, headers=h["hrss_officer"])
        assert_problem(r, 404, "catalog.not_found")
    r = client.post(f"{API}/entries/{entry_id}/withdraw", json={"reason": "越权"}, headers=h["hrss_officer"])
    assert_problem(r, 403, "auth.forbidden")
    assert counts(db) == before
    assert client.get(f"{API}/entries/{entry_id}", headers=h["market_officer"]).json()["version"] == 1


def test_plain_user_cannot_create(client: TestClient, h: Users, db: Database) -> None:
    r = client.post(f"{API}/entries", json=body(), headers=h["market_user"])
    assert_problem(r, 403, "auth.forbidden")
    r = client.post(f"{API}/entries", json=body(), headers=h["reviewer"])
    assert_problem(r, 403, "auth.forbidden")
    assert counts(db) == (0, 0, 0, 0)
    # the officer and the administrator may
    create(client, h["market_officer"])
    admin = client.post(f"{API}/entries", json={**body(name="管理员代编"), "provider_org_id": None}, headers=h["admin"])
    assert admin.status_code == 201 and admin.json()["provider_name"] == "江西省数据局"


def test_reviewers_approve_only_in_their_region(client: TestClient, h: Users, db: Database, world: World) -> None:
    provincial = create(client, h["market_officer"])["id"]
    nanchang = create(client, h["nc_police_officer"], name="人口户籍信息", class_code="101001")["id"]
    act(client, h["market_officer"], provincial, "submit")
    act(client, h["nc_police_officer"], nanchang, "submit")
    # unpublished entries of another region are invisible to a reviewer
    assert_problem(
        client.post(f"{API}/entries/{provincial}/approve", headers=h["nc_reviewer"]), 404, "catalog.not_found"
    )
    assert_problem(client.post(f"{API}/entries/{nanchang}/approve", headers=h["reviewer"]), 404, "catalog.not_found")
    assert_problem(
        client.post(f"{API}/entries/{nanchang}/approve", headers=h["nc_police_officer"]), 403, "auth.forbidden"
    )
    act(client, h["reviewer"], provincial, "approve")
    act(client, h["nc_reviewer"], nanchang, "approve")
    # published entries are visible to all, but a revision is reviewed only by the responsible authority
    client.put(f"{API}/entries/{provincial}", json=body(summary="修订"), headers=h["market_officer"])
    act(client, h["market_officer"], provincial, "submit")
    client.put(
        f"{API}/entries/{nanchang}",
        json=body(name="人口户籍信息", class_code="101001", summary="修订"),
        headers=h["nc_police_officer"],
    )
    act(client, h["nc_police_officer"], nanchang, "submit")
    assert_problem(client.post(f"{API}/entries/{provincial}/approve", headers=h["nc_reviewer"]), 403, "auth.forbidden")
    assert_problem(client.post(f"{API}/entries/{nanchang}/approve", headers=h["reviewer"]), 403, "auth.forbidden")
    assert_problem(
        client.post(f"{API}/entries/{nanchang}/return", json={"reason": "不在辖区"}, headers=h["jj_reviewer"]),
        403,
        "auth.forbidden",
    )
    assert act(client, h["nc_reviewer"], nanchang, "approve")["version"] == 2
    assert act(client, h["reviewer"], provincial, "approve")["version"] == 2


# ---- validation -----------------------------------------------------------------------------------------


def test_validation_errors_are_problem_json_and_write_nothing(client: TestClient, h: Users, db: Database) -> None:
    bad = body()
    bad["items"][1]["data_type"] = "Z"
    bad["sharing_condition"] = ""
    del bad["update_cycle"]
    r = client.post(f"{API}/entries", json=bad, headers=h["market_officer"])
    problem = assert_problem(r, 422, "validation.failed")
    assert problem["title"] == "提交的数据未通过校验"
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {"items[1].data_type", "sharing_condition", "update_cycle"}
    assert fields["sharing_condition"] == "有条件共享的目录必须填写共享条件"
    assert "可选" in fields["items[1].data_type"] and fields["update_cycle"] == "必填项"

    r = client.post(f"{API}/entries", json={**body(), "sharing_type": "不予共享"}, headers=h["market_officer"])
    assert [e["field"] for e in assert_problem(r, 422, "validation.failed")["errors"]] == ["not_shared_basis"]
    r = client.post(f"{API}/entries", json={**body(), "items": []}, headers=h["market_officer"])
    assert [e["field"] for e in assert_problem(r, 422, "validation.failed")["errors"]] == ["items"]
    dup = body()
    dup["items"][2]["name"] = dup["items"][0]["name"]
    r = client.post(f"{API}/entries", json=dup, headers=h["market_officer"])
    assert [e["field"] for e in assert_problem(r, 422, "validation.failed")["errors"]] == ["items"]
    # rules checked by the service (not the schema) come back the same way
    r = client.post(
        f"{API}/entries", json=body(class_code="199001", related_codes=["102001/09999"]), headers=h["market_officer"]
    )
    problem = assert_problem(r, 422, "catalog.invalid")
    assert {e["field"] for e in problem["errors"]} == {"class_code", "related_codes[0]"}
    assert counts(db) == (0, 0, 0, 0)

    entry_id = create(client, h["market_officer"])["id"]
    before = counts(db)
    bad = body(summary="改了但有错")
    bad["items"][0]["length"] = 0
    r = client.put(f"{API}/entries/{entry_id}", json=bad, headers=h["market_officer"])
    assert [e["field"] for e in assert_problem(r, 422, "validation.failed")["errors"]] == ["items[0].length"]
    assert counts(db) == before
    assert client.get(f"{API}/entries/{entry_id}", headers=h["market_officer"]).json()["summary"] != "改了但有错"
    r = client.get(f"{API}/entries?sort=-nonsense", headers=h["market_officer"])
    assert_problem(r, 422, "catalog.bad_sort")


# ---- lists, search, facets, export ----------------------------------------------------------------------


@pytest.fixture
def catalog(client: TestClient, h: Users, db: Database, world: World) -> dict[str, str]:
    """One published entry and a draft of each of two departments."""
    ids = {
        "published": published_entry(db, world, tags=["企业", "登记", "市场主体"]),
        "market_draft": create(client, h["market_officer"], name="企业年报信息", summary="企业年度报告公示信息")["id"],
        "hrss_draft": create(
            client,
            h["hrss_officer"],
            name="企业社保登记信息",
            class_code="203001",
            summary="参保企业的社会保险登记信息",
        )["id"],
    }
    from zhengshu.core.events import process_pending

    process_pending(db.session_factory)
    return ids


def _ids(r: Any) -> set[str]:
    assert r.status_code == 200, r.text
    return {e["id"] for e in r.json()["items"]}


def test_lists_hide_other_departments_drafts(client: TestClient, h: Users, catalog: dict[str, str]) -> None:
    assert _ids(client.get(f"{API}/entries", headers=h["hrss_officer"])) == {
        catalog["published"],
        catalog["hrss_draft"],
    }
    assert _ids(client.get(f"{API}/entries", headers=h["market_user"])) == {
        catalog["published"],
        catalog["market_draft"],
    }
    assert _ids(client.get(f"{API}/entries", headers=h["jj_reviewer"])) == {catalog["published"]}
    assert _ids(client.get(f"{API}/entries", headers=h["admin"])) == set(catalog.values())
    r = client.get(f"{API}/entries?status=draft&count=true", headers=h["hrss_officer"])
    assert _ids(r) == {catalog["hrss_draft"]} and r.json()["total"] == 1
    r = client.get(f"{API}/entries?limit=1&count=true&sort=code", headers=h["admin"])
    page1 = r.json()
    assert len(page1["items"]) == 1 and page1["total"] == 3 and page1["next_cursor"]
    page2 = client.get(f"{API}/entries?limit=1&sort=code&cursor={page1['next_cursor']}", headers=h["admin"]).json()
    assert page2["items"][0]["code"] > page1["items"][0]["code"]
    stats = client.get(f"{API}/stats", headers=h["hrss_officer"]).json()
    assert {(s["org_name"], s["status"], s["count"]) for s in stats} == {
        ("省市场监管局", "published", 1),
        ("省人社厅", "draft", 1),
    }


@pytest.mark.parametrize("q", ["企业", "企业 登记", "qydj", "qiye", "法定代表人", "统一社会信用代码"])
def test_search_finds_the_published_entry(client: TestClient, h: Users, catalog: dict[str, str], q: str) -> None:
    r = client.get(f"{API}/search", params={"q": q}, headers=h["hrss_officer"])
    found = _ids(r)
    assert catalog["published"] in found
    assert catalog["market_draft"] not in found


def test_search_results_and_facets_hide_other_departments_drafts(
    client: TestClient, h: Users, catalog: dict[str, str], world: World
) -> None:
    r = client.get(f"{API}/search", params={"q": "企业"}, headers=h["hrss_officer"])
    data = r.json()
    assert _ids(r) == {catalog["published"], catalog["hrss_draft"]} and data["total"] == 2
    facets = {name: {v["value"]: (v["label"], v["count"]) for v in values} for name, values in data["facets"].items()}
    assert facets["status"] == {"published": ("已发布", 1), "draft": ("草稿", 1)}
    assert facets["org_id"] == {world.orgs["market"]: ("省市场监管局", 1), world.orgs["hrss"]: ("省人社厅", 1)}
    assert {v: n for v, (_, n) in facets["class_code"].items()} == {"102001": 1, "203001": 1}
    assert facets["region_code"] == {"360000": ("江西省", 2)}

    market = client.get(f"{API}/search", params={"q": "企业"}, headers=h["market_officer"]).json()
    assert {e["id"] for e in market["items"]} == {catalog["published"], catalog["market_draft"]}
    assert {v["value"]: v["count"] for v in market["facets"]["org_id"]} == {world.orgs["market"]: 2}

    # filters
    only = client.get(f"{API}/search", params={"q": "企业", "status": "published"}, headers=h["hrss_officer"])
    assert _ids(only) == {catalog["published"]}
    cls = client.get(f"{API}/search", params={"class_code": "2"}, headers=h["admin"])
    assert _ids(cls) == {catalog["hrss_draft"]}
    org = client.get(f"{API}/search", params={"provider_org_id": world.orgs["market"]}, headers=h["admin"])
    assert _ids(org) == {catalog["published"], catalog["market_draft"]}
    none = client.get(f"{API}/search", params={"q": "不存在的词汇组合xyz"}, headers=h["admin"]).json()
    assert none["items"] == [] and none["total"] == 0
    hit = client.get(f"{API}/search", params={"q": "qydj"}, headers=h["hrss_officer"]).json()["items"][0]
    assert hit["code"] == "102001/00001" and hit["score"] > 0 and hit["provider_name"] == "省市场监管局"


def test_export_hides_other_departments_drafts(client: TestClient, h: Users, catalog: dict[str, str]) -> None:
    r = client.get(f"{API}/export", headers=h["hrss_officer"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    report = parse_workbook(r.content)
    assert sorted(p.entry.name for p in report.entries) == ["企业登记信息", "企业社保登记信息"]
    assert load_workbook(BytesIO(r.content)).sheetnames[0] == MAIN_SHEET
    own = parse_workbook(client.get(f"{API}/export?status=draft", headers=h["market_officer"]).content)
    assert [p.entry.name for p in own.entries] == ["企业年报信息"]
    template = client.get(f"{API}/template", headers=h["market_user"])
    assert template.status_code == 200 and parse_workbook(template.content).total_entries >= 0
