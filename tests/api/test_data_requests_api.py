"""Data requests through the HTTP API and the pages: create, list boxes, answer, redirect, timeline,
suggestions (JSON and the htmx fragment), stats; bad input gets a clear error and changes nothing."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import PASSWORD, World, published_entry, token_for
from zhengshu.core.db import Database
from zhengshu.core.events import process_pending

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}


def body(world: World, provider: str | None = "market", **overrides: Any) -> dict[str, Any]:
    data = {
        "title": "企业法定代表人信息",
        "description": "社保参保登记需要核对企业的法定代表人",
        "items_text": "统一社会信用代码、企业名称、法定代表人",
        "purpose": "社会保险参保登记核验",
        "basis": "《社会保险法》第五十七条",
        "business_system": "社保业务经办系统",
        "provider_org_id": world.orgs[provider] if provider else None,
    }
    data.update(overrides)
    return data


def test_anonymous_is_401(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/requests").status_code == 401
    assert client.post("/api/v1/requests", json={}).status_code == 401


def test_request_path_through_the_api(client: TestClient, world: World, db: Database) -> None:
    entry_id = published_entry(db, world)
    hrss, market, police = (token_for(client, u) for u in ("hrss_officer", "market_officer", "nc_police_officer"))
    r = client.post("/api/v1/requests", json=body(world), headers=hrss)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["state"] == "submitted" and req["state_label"] == "待提供方答复"
    assert req["provider_name"] == "江西省市场监督管理局" and req["urgency"] == "一般"
    assert req["due_on"] == req["reply_due_on"] and req["overdue"] is False
    assert req["actions"] == ["withdraw"]
    rid = req["id"]

    todo = client.get("/api/v1/requests", params={"box": "todo", "count": "true"}, headers=market).json()
    assert todo["total"] == 1 and todo["items"][0]["actions"] == ["link_entry", "compile", "not_held", "refuse"]
    assert client.get("/api/v1/requests", params={"box": "mine"}, headers=market).json()["items"] == []
    assert [x["id"] for x in client.get("/api/v1/requests", params={"box": "mine"}, headers=hrss).json()["items"]] == [
        rid
    ]
    assert client.get(f"/api/v1/requests/{rid}", headers=police).status_code == 404

    # the requester cannot answer its own request
    r = client.post(f"/api/v1/requests/{rid}/link-entry", json={"entry_id": entry_id}, headers=hrss)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = client.post(f"/api/v1/requests/{rid}/link-entry", json={"entry_id": entry_id}, headers=market)
    assert r.status_code == 200 and r.json()["state"] == "fulfilled" and r.json()["entry_id"] == entry_id
    r = client.post(f"/api/v1/requests/{rid}/withdraw", json={}, headers=hrss)
    assert r.status_code == 409 and r.json()["code"] == "workflow.invalid_transition"

    timeline = client.get(f"/api/v1/requests/{rid}/timeline", headers=hrss).json()
    # the existing entry was published before the need arose: its publication comes first
    assert [t["stage"] for t in timeline] == ["entry", "need", "need"]
    assert (
        timeline[0]["title"] == "目录「企业登记信息」审核通过并发布" and timeline[0]["link"] == f"/catalog/{entry_id}"
    )
    assert timeline[-1]["title"] == "数据需求：答复：已有目录"

    stats = client.get("/api/v1/requests/stats", headers=token_for(client, "reviewer")).json()
    assert stats["by_state"] == {"fulfilled": 1}
    [row] = stats["rows"]
    assert row["provider_org_id"] == world.orgs["market"] and row["on_time_rate"] == 1.0


def test_redirect_and_refusal_through_the_api(client: TestClient, world: World, db: Database) -> None:
    hrss, market = token_for(client, "hrss_officer"), token_for(client, "market_officer")
    rid = client.post("/api/v1/requests", json=body(world), headers=hrss).json()["id"]
    r = client.post(f"/api/v1/requests/{rid}/refuse", json={"legal_basis": ""}, headers=market)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "legal_basis"
    r = client.post(f"/api/v1/requests/{rid}/not-held", json={"reason": "非本部门职责"}, headers=market)
    assert r.status_code == 200 and r.json()["state"] == "not_held"
    r = client.get(f"/api/v1/requests/{rid}", headers=hrss).json()
    assert r["actions"] == ["redirect", "ask_coordination", "close", "withdraw"]
    r = client.post(f"/api/v1/requests/{rid}/redirect", json={"provider_org_id": "nope"}, headers=hrss)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "provider_org_id"
    r = client.post(f"/api/v1/requests/{rid}/redirect", json={"provider_org_id": world.orgs["nc_police"]}, headers=hrss)
    assert r.status_code == 200 and r.json()["state"] == "submitted" and r.json()["redirects"] == 1
    assert client.get(f"/api/v1/requests/{rid}", headers=market).status_code == 404


def test_bad_input_changes_nothing(client: TestClient, world: World) -> None:
    hrss = token_for(client, "hrss_officer")
    r = client.post("/api/v1/requests", json=body(world, title=""), headers=hrss)
    assert r.status_code == 422
    r = client.post("/api/v1/requests", json=body(world, provider="hrss"), headers=hrss)
    assert r.status_code == 422 and r.json()["code"] == "data_request.invalid"
    r = client.post("/api/v1/requests", json=body(world, urgency="马上"), headers=hrss)
    assert r.status_code == 422
    assert client.get("/api/v1/requests", params={"count": "true"}, headers=hrss).json()["total"] == 0
    assert client.get("/api/v1/requests", params={"sort": "nope"}, headers=hrss).status_code == 422
    assert client.get("/api/v1/requests", params={"box": "nope"}, headers=hrss).status_code == 422


def test_suggestions_json_and_fragment(client: TestClient, world: World, db: Database) -> None:
    published_entry(db, world)
    process_pending(db.session_factory)
    hrss = token_for(client, "hrss_officer")
    r = client.get("/api/v1/requests/suggest-providers", params={"text": "企业登记信息"}, headers=hrss)
    assert r.status_code == 200
    [top, *_] = r.json()
    assert top["org_id"] == world.orgs["market"] and top["entries"][0]["name"] == "企业登记信息"
    login(client, "hrss_officer")
    frag = client.get("/requests/suggest", params={"title": "企业登记", "items_text": "法定代表人"}, headers=HTML)
    assert frag.status_code == 200 and "江西省市场监督管理局" in frag.text and "<html" not in frag.text
    assert "没有找到" in client.get("/requests/suggest", params={"text": "火星探测"}, headers=HTML).text


def login(client: TestClient, username: str) -> None:
    page = client.get("/login", headers=HTML)
    token = html.unescape(CSRF.search(page.text).group(1))  # type: ignore[union-attr]
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/requests"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303


def csrf(page: str) -> str:
    return html.unescape(CSRF.search(page).group(1))  # type: ignore[union-attr]


def test_pages_new_request_answer_and_timeline(app: Any, world: World, db: Database) -> None:
    with TestClient(app) as requester, TestClient(app) as provider:
        login(requester, "hrss_officer")
        form = requester.get("/requests/new", headers=HTML)
        assert form.status_code == 200 and 'hx-get="/requests/suggest"' in form.text
        data = {k: v or "" for k, v in body(world).items()} | {"csrf_token": csrf(form.text), "urgency": "一般"}
        bad = requester.post("/requests/new", data=data | {"purpose": ""}, headers=HTML)
        assert bad.status_code == 422 and "请修改" in bad.text
        r = requester.post("/requests/new", data=data, headers=HTML, follow_redirects=False)
        assert r.status_code == 303
        url = r.headers["location"]
        detail = requester.get(url, headers=HTML)
        assert "供需对接全流程" in detail.text and "数据需求：创建" in detail.text and "撤回需求" in detail.text
        assert "企业法定代表人信息" in requester.get("/requests", headers=HTML).text

        login(provider, "market_officer")
        todo = provider.get("/requests?box=todo", headers=HTML)
        assert "企业法定代表人信息" in todo.text
        page = provider.get(url, headers=HTML)
        assert "答复：无此数据" in page.text
        r = provider.post(f"{url}/not-held", data={"csrf_token": csrf(page.text), "reason": ""}, headers=HTML)
        assert r.status_code == 422 and "理由" in r.text
        r = provider.post(
            f"{url}/not-held",
            data={"csrf_token": csrf(page.text), "reason": "非本部门职责"},
            headers=HTML,
            follow_redirects=False,
        )
        assert r.status_code == 303
        detail = requester.get(url, headers=HTML)
        assert "提供方无此数据" in detail.text and "非本部门职责" in detail.text and "改派其他提供部门" in detail.text
