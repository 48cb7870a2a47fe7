"""The applications and authorizations API: the whole path over HTTP (apply → compliance → item-by-item
decision → authorization → who can see → revoke), each role allowed or refused on each action, bad input as
problem+json that changes nothing, and the list conventions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import World, token_for
from tests.unit.test_applications import NOT_SHARED_BASIS, keys_of, make_entry
from zhengshu.core.db import Database
from zhengshu.core.timeutil import local_today
from zhengshu.demand import authorizations

PROBLEM = "application/problem+json"


@pytest.fixture
def entry_id(db: Database, world: World) -> str:
    return make_entry(db, world)


@pytest.fixture
def as_user(client: TestClient, world: World) -> Any:
    tokens: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            tokens[username] = token_for(client, username)
        return tokens[username]

    return headers


def body(entry_id: str, keys: list[str], **overrides: Any) -> dict[str, Any]:
    today = local_today()
    data = {
        "entry_id": entry_id,
        "item_keys": keys,
        "purpose": "办理企业职工社会保险登记时核验企业身份",
        "basis": "《社会保险法》第五十七条",
        "business_system": "江西省社会保险信息系统",
        "start_on": today.isoformat(),
        "end_on": (today + dt.timedelta(days=365)).isoformat(),
        "delivery_way": "接口",
        "contact_name": "王晓",
        "contact_phone": "0791-88888888",
    }
    data.update(overrides)
    return data


def apply(
    client: TestClient,
    as_user: Any,
    db: Database,
    entry_id: str,
    names: list[str],
    who: str = "hrss_officer",
    **overrides: Any,
) -> dict[str, Any]:
    keys = keys_of(db, entry_id)
    r = client.post(
        "/api/v1/applications", json=body(entry_id, [keys[n] for n in names], **overrides), headers=as_user(who)
    )
    assert r.status_code == 201, r.text
    return r.json()


def decisions(app: dict[str, Any], choices: dict[str, Any]) -> dict[str, Any]:
    by_name = {i["name"]: i["item_key"] for i in app["items"]}
    items = []
    for name, choice in choices.items():
        if isinstance(choice, tuple):
            items.append({"item_key": by_name[name], "decision": "refuse", "reason": choice[1]})
        else:
            items.append({"item_key": by_name[name], "decision": choice})
    return {"items": items}


def post(client: TestClient, as_user: Any, who: str, path: str, json: Any = None) -> Any:
    return client.post(f"/api/v1{path}", json=json, headers=as_user(who))


def test_apply_decide_authorize_and_revoke_over_http(
    client: TestClient, as_user: Any, db: Database, world: World, entry_id: str
) -> None:
    app = apply(client, as_user, db, entry_id, ["企业名称", "法定代表人", "联系电话", "注册资本"])
    assert app["state"] == "compliance" and app["state_label"] == "待合规审查"
    assert app["actions"] == ["withdraw"] and app["due_on"]
    assert [e["action"] for e in app["timeline"]] == ["open"]

    r = post(client, as_user, "reviewer", f"/applications/{app['id']}/comply", {"comment": "用途与职责相符"})
    assert r.status_code == 200, r.text
    app = r.json()
    assert app["state"] == "provider_review"
    assert [e["action_label"] for e in app["timeline"]][-2:] == ["合规审查通过", "规则自动授权"]

    choice = {"法定代表人": "approve", "联系电话": "approve", "注册资本": ("refuse", "涉及企业经营秘密")}
    r = post(client, as_user, "market_officer", f"/applications/{app['id']}/decide", decisions(app, choice))
    assert r.status_code == 200, r.text
    app = r.json()
    assert app["state"] == "decided" and app["outcome"] == "partial" and app["appeal_until"]
    assert {i["name"]: i["status"] for i in app["items"]} == {
        "企业名称": "granted",
        "法定代表人": "approved",
        "联系电话": "approved",
        "注册资本": "refused",
    }
    assert len(app["authorization_ids"]) == 2

    seen = client.get(f"/api/v1/applications/{app['id']}", headers=as_user("hrss_officer")).json()
    assert seen["actions"] == ["appeal", "accept"]
    provider_auth = client.get(f"/api/v1/authorizations/{app['authorization_ids'][1]}", headers=as_user("hrss_officer"))
    assert provider_auth.status_code == 200
    auth = provider_auth.json()
    assert [i["name"] for i in auth["items"]] == ["法定代表人", "联系电话"]
    assert [i["masking_rule"] for i in auth["items"]] == ["suppress", "mobile_3_4"]  # 一般3 without a name rule
    assert auth["status"] == "active" and auth["actions"] == []  # the consumer may not manage it
    assert [h["action"] for h in auth["history"]] == ["grant"]

    keys = keys_of(db, entry_id)
    who = client.get(
        "/api/v1/authorizations/who-can-see",
        params={"entry_id": entry_id, "item_key": keys["联系电话"]},
        headers=as_user("market_officer"),
    )
    assert who.status_code == 200
    assert [(w["consumer_name"], w["masking_rule"]) for w in who.json()] == [
        ("江西省人力资源和社会保障厅", "mobile_3_4")
    ]

    r = post(client, as_user, "market_officer", f"/authorizations/{auth['id']}/revoke", {"reason": "违规转供"})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    with db.session() as s:
        assert not authorizations.is_authorized(
            s, consumer_org_id=world.orgs["hrss"], entry_id=entry_id, item_keys=[keys["联系电话"]]
        )
    assert (
        client.get(
            "/api/v1/authorizations/who-can-see",
            params={"entry_id": entry_id, "item_key": keys["联系电话"]},
            headers=as_user("market_officer"),
        ).json()
        == []
    )
    listed = client.get("/api/v1/authorizations", params={"status": "revoked"}, headers=as_user("hrss_officer"))
    assert [a["id"] for a in listed.json()["items"]] == [auth["id"]]


def test_roles_allowed_and_refused_on_each_action(
    client: TestClient, as_user: Any, db: Database, world: World, entry_id: str
) -> None:
    app = apply(client, as_user, db, entry_id, ["法定代表人", "注册资本"])
    path = f"/applications/{app['id']}"
    # reading
    for who, status in [
        ("hrss_officer", 200),
        ("market_user", 200),
        ("reviewer", 200),
        ("admin", 200),
        ("nc_reviewer", 404),
        ("jj_reviewer", 404),
        ("nc_police_officer", 404),
    ]:
        assert client.get(f"/api/v1{path}", headers=as_user(who)).status_code == status, who
    # compliance review
    for who, status in [("hrss_officer", 403), ("market_officer", 403), ("nc_reviewer", 404)]:
        r = post(client, as_user, who, f"{path}/comply", {})
        assert r.status_code == status, (who, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
    assert post(client, as_user, "reviewer", f"{path}/comply", {}).status_code == 200
    # the provider's decision
    d = decisions(app, {"法定代表人": "approve", "注册资本": ("refuse", "涉密")})
    for who, status in [("reviewer", 403), ("hrss_officer", 403), ("market_user", 403), ("nc_police_officer", 404)]:
        assert post(client, as_user, who, f"{path}/decide", d).status_code == status, who
    r = post(client, as_user, "market_officer", f"{path}/decide", d)
    assert r.status_code == 200
    auth_id = r.json()["authorization_ids"][0]
    # appeal is the applicant's
    assert post(client, as_user, "market_officer", f"{path}/appeal", {"reason": "x"}).status_code == 403
    assert post(client, as_user, "hrss_officer", f"{path}/appeal", {"reason": "请协调"}).status_code == 200
    # coordination is the data authority's
    coord = decisions(app, {"注册资本": "approve"})
    assert post(client, as_user, "market_officer", f"{path}/coordinate", coord).status_code == 403
    r = post(client, as_user, "reviewer", f"{path}/coordinate", coord)
    assert r.status_code == 200 and r.json()["state"] == "approved"
    # a closed application refuses further moves
    r = post(client, as_user, "hrss_officer", f"{path}/withdraw", {})
    assert r.status_code == 409 and r.json()["code"] == "application.closed"
    # authorizations: the provider's officer and the authority manage, others do not
    a = f"/authorizations/{auth_id}"
    for who, status in [("hrss_officer", 403), ("market_user", 403), ("nc_reviewer", 404)]:
        assert post(client, as_user, who, f"{a}/suspend", {"reason": "x"}).status_code == status, who
    assert post(client, as_user, "reviewer", f"{a}/suspend", {"reason": "核查"}).status_code == 200
    assert post(client, as_user, "market_officer", f"{a}/resume", {"reason": "核查完毕"}).status_code == 200
    renewed = post(
        client,
        as_user,
        "market_officer",
        f"{a}/renew",
        {"end_on": (local_today() + dt.timedelta(days=700)).isoformat(), "reason": "延续"},
    )
    assert renewed.status_code == 200 and [h["action"] for h in renewed.json()["history"]] == [
        "grant",
        "suspend",
        "resume",
        "renew",
    ]
    assert post(client, as_user, "market_officer", f"{a}/explode", {"reason": "x"}).status_code == 404
    assert (
        client.get(
            "/api/v1/authorizations/who-can-see",
            params={"entry_id": entry_id, "item_key": "x"},
            headers=as_user("hrss_officer"),
        ).status_code
        == 403
    )


def test_withdraw_request_supplement_and_supplement(
    client: TestClient, as_user: Any, db: Database, entry_id: str
) -> None:
    app = apply(client, as_user, db, entry_id, ["法定代表人"])
    path = f"/applications/{app['id']}"
    post(client, as_user, "reviewer", f"{path}/comply", {})
    assert post(client, as_user, "market_officer", f"{path}/request-supplement", {"reason": ""}).status_code == 422
    r = post(client, as_user, "market_officer", f"{path}/request-supplement", {"reason": "请提供依据文件"})
    assert r.status_code == 200 and r.json()["state"] == "supplement"
    assert r.json()["supplement_request"] == "请提供依据文件"
    r = post(client, as_user, "hrss_officer", f"{path}/supplement", {"material": "三定方案第三条"})
    assert r.status_code == 200 and r.json()["state"] == "provider_review"
    r = post(client, as_user, "hrss_officer", f"{path}/withdraw", {"comment": "不再需要"})
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    assert r.json()["timeline"][-1]["comment"] == "不再需要"


def test_bad_input_is_problem_json_and_changes_nothing(
    client: TestClient, as_user: Any, db: Database, world: World, entry_id: str
) -> None:
    keys = keys_of(db, entry_id)
    headers = as_user("hrss_officer")
    r = client.post("/api/v1/applications", json=body(entry_id, [keys["法定代表人身份证号"]]), headers=headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == "application.invalid"
    assert problem["errors"][0]["field"] == "item_keys"
    assert (
        "法定代表人身份证号" in problem["errors"][0]["message"] and NOT_SHARED_BASIS in problem["errors"][0]["message"]
    )

    r = client.post("/api/v1/applications", json=body("nope", [keys["企业名称"]]), headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "entry_id"
    r = client.post("/api/v1/applications", json=body(entry_id, []), headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "item_keys"
    r = client.post(
        "/api/v1/applications", json=body(entry_id, [keys["企业名称"]], delivery_way="邮件"), headers=headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "delivery_way"
    r = client.post("/api/v1/applications", json=body(entry_id, [keys["企业名称"]]), headers=as_user("market_user"))
    assert r.status_code == 422 and "本部门" in r.json()["errors"][0]["message"]
    r = client.post("/api/v1/applications", json=body(entry_id, [keys["企业名称"]]), headers=as_user("reviewer"))
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"

    listed = client.get("/api/v1/applications", params={"count": "true"}, headers=as_user("admin")).json()
    assert listed["total"] == 0 and listed["items"] == []
    assert client.get("/api/v1/authorizations", headers=as_user("admin")).json()["items"] == []


def test_list_conventions(client: TestClient, as_user: Any, db: Database, entry_id: str) -> None:
    first = apply(client, as_user, db, entry_id, ["法定代表人"])
    second = apply(client, as_user, db, entry_id, ["注册资本"], business_system="就业创业服务系统")
    police = apply(client, as_user, db, entry_id, ["法定代表人"], who="nc_police_officer")
    h = as_user("hrss_officer")
    page = client.get("/api/v1/applications", params={"limit": 1, "count": "true", "sort": "created_at"}, headers=h)
    data = page.json()
    assert data["total"] == 2 and [a["id"] for a in data["items"]] == [first["id"]] and data["next_cursor"]
    nxt = client.get(
        "/api/v1/applications", params={"limit": 1, "cursor": data["next_cursor"], "sort": "created_at"}, headers=h
    ).json()
    assert [a["id"] for a in nxt["items"]] == [second["id"]] and nxt["next_cursor"] is None
    assert nxt["total"] is None
    found = client.get("/api/v1/applications", params={"q": "就业"}, headers=h).json()["items"]
    assert [a["id"] for a in found] == [second["id"]]
    provider = client.get(
        "/api/v1/applications", params={"box": "provider", "state": "compliance"}, headers=as_user("market_user")
    ).json()["items"]
    assert {a["id"] for a in provider} == {first["id"], second["id"], police["id"]}
    assert client.get("/api/v1/applications", params={"sort": "purpose"}, headers=h).status_code == 422
    assert client.get("/api/v1/applications", params={"box": "nobody"}, headers=h).status_code == 422
    assert client.get("/api/v1/authorizations", params={"status": "happy"}, headers=h).status_code == 422
    assert client.get("/api/v1/applications").status_code == 401


def test_supervision_endpoints(client: TestClient, as_user: Any, db: Database, entry_id: str) -> None:
    app = apply(client, as_user, db, entry_id, ["企业名称"])
    post(client, as_user, "reviewer", f"/applications/{app['id']}/comply", {})
    counts = client.get("/api/v1/applications/stats/counts", headers=as_user("reviewer"))
    assert counts.status_code == 200
    assert [(c["state"], c["count"]) for c in counts.json()] == [("approved", 1)]
    timeliness = client.get("/api/v1/applications/stats/timeliness", headers=as_user("admin")).json()
    assert [(t["submitted"], t["decided"], t["on_time"], t["on_time_rate"]) for t in timeliness] == [(1, 1, 1, 1.0)]
    assert client.get("/api/v1/applications/stats/counts", headers=as_user("hrss_officer")).status_code == 403
