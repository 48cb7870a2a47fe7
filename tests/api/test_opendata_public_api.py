"""The public side's HTTP API: accounts and keys, conditional-open applications end to end, showcase moderation,
responsibility lists, problem reports becoming objections, statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.test_opendata_public_support import (
    PUBLIC_PASSWORD,
    issue_key,
    make_dataset,
    public_client,
    register,
    scan_for_marker,
)
from tests.factories import token_for
from zhengshu.core.timeutil import local_today
from zhengshu.objection.models import Objection
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.public_models import ProblemReport


@pytest.fixture
def open_client(app: Any) -> Iterator[Any]:
    yield from public_client(app)


def _company(username: str = "acme", **extra: Any) -> dict[str, Any]:
    import random

    from zhengshu.demo.identities import uscc

    data = {
        "kind": "company",
        "username": username,
        "password": PUBLIC_PASSWORD,
        "display_name": "张经办",
        "email": f"{username}@example.com",
        "company_name": "江西某某数据科技有限公司",
        "uscc": uscc(random.Random(username), region_code="360100", authority="9", org_type="1"),
    }
    data.update(extra)
    return data


def test_register_issue_key_and_revoke(db, world, open_client) -> None:  # type: ignore[no-untyped-def]
    response = open_client.post("/api/v1/open/accounts", json=_company(uscc="91360100123456789X"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["uscc"]

    response = open_client.post("/api/v1/open/accounts", json=_company())
    assert response.status_code == 201, response.text
    assert "password" not in response.text and "password_hash" not in response.text

    response = open_client.post(
        "/api/v1/open/accounts/me/keys", json={"name": "脚本", "username": "acme", "password": "wrong-pass1"}
    )
    assert response.status_code == 401
    response = open_client.post(
        "/api/v1/open/accounts/me/keys", json={"name": "脚本", "username": "acme", "password": PUBLIC_PASSWORD}
    )
    assert response.status_code == 201
    issued = response.json()
    headers = {"X-API-Key": issued["key"]}

    me = open_client.get("/api/v1/open/accounts/me", headers=headers).json()
    assert me["username"] == "acme" and me["quota"]["limit"] == 1000 and me["quota"]["used"] == 0
    keys = open_client.get("/api/v1/open/accounts/me/keys", headers=headers).json()
    assert [k["prefix"] for k in keys] == [issued["prefix"]] and "key" not in keys[0]

    response = open_client.post(f"/api/v1/open/accounts/me/keys/{issued['id']}/revoke", headers=headers)
    assert response.status_code == 200 and response.json()["revoked"] is True
    response = open_client.get("/api/v1/open/accounts/me", headers=headers)
    assert response.status_code == 401 and response.json()["code"] == "opendata.bad_api_key"
    assert open_client.get("/api/v1/open/accounts/me").json()["code"] == "opendata.login_required"


def test_conditional_application_through_the_api(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, opening="有条件开放", slug="shebao")
    key = issue_key(db, register(db))
    headers = {"X-API-Key": key}
    response = open_client.post(
        "/api/v1/open/applications",
        json={
            "dataset_id": "shebao",
            "items": ["qymc", "zczb"],
            "purpose": "研究企业注册资本分布",
            "requested_days": 90,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    application = response.json()
    assert application["state"] == "pending" and application["due_on"]

    officer = token_for(open_client, "market_officer")
    notes = open_client.get("/api/v1/notifications", headers=officer).json()["items"]
    assert any(n["title"].startswith("新的待办：有条件开放申请") for n in notes), notes
    listed = open_client.get("/api/v1/open/access-applications?count=true", headers=officer).json()
    assert listed["total"] == 1 and listed["items"][0]["applicant"].startswith("江西某某数据科技有限公司")
    other = token_for(open_client, "hrss_officer")
    assert open_client.get("/api/v1/open/access-applications?count=true", headers=other).json()["total"] == 0
    response = open_client.post(
        f"/api/v1/open/access-applications/{application['id']}/approve", json={"days": 30}, headers=other
    )
    assert response.status_code == 404

    response = open_client.post(
        f"/api/v1/open/access-applications/{application['id']}/approve", json={"items": ["qymc"]}, headers=officer
    )
    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["state"] == "approved" and decided["grant"]["items"] == ["qymc"]
    grants = open_client.get("/api/v1/open/accounts/me/grants", headers=headers).json()
    assert [g["dataset_id"] for g in grants] == [dataset_id]
    with db.session() as s:
        from zhengshu.audit.models import AuditRecord

        actors = set(s.scalars(select(AuditRecord.actor_username).where(AuditRecord.action.like("open.%"))))
        assert "open:acme" in actors  # the public account's change is audited under its name
    mine = open_client.get("/api/v1/open/accounts/me/applications", headers=headers).json()
    assert mine[0]["state_label"] == "已同意"

    response = open_client.post(
        f"/api/v1/open/access-grants/{decided['grant']['id']}/revoke", json={"reason": "用途变更"}, headers=officer
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"


def test_showcase_is_moderated_before_it_shows(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings)
    headers = {"X-API-Key": issue_key(db, register(db))}
    body = {
        "name": "企业地图",
        "description": "基于企业登记开放数据的企业分布地图应用",
        "link": "https://example.com/map",
        "dataset_ids": [dataset_id],
    }
    response = open_client.post("/api/v1/open/showcase", json=body, headers=headers)
    assert response.status_code == 201 and response.json()["status"] == "pending"
    showcase_id = response.json()["id"]
    assert open_client.get("/api/v1/open/showcase?count=true").json()["total"] == 0
    assert open_client.get(f"/api/v1/open/showcase/{showcase_id}").status_code == 404

    user = token_for(open_client, "market_user")
    assert open_client.get("/api/v1/open/showcase/moderation", headers=user).status_code == 403
    reviewer = token_for(open_client, "reviewer")
    queue = open_client.get("/api/v1/open/showcase/moderation?count=true", headers=reviewer).json()
    assert queue["total"] == 1
    response = open_client.post(f"/api/v1/open/showcase/{showcase_id}/reject", json={"reason": ""}, headers=reviewer)
    assert response.status_code == 422
    response = open_client.post(f"/api/v1/open/showcase/{showcase_id}/approve", json={}, headers=reviewer)
    assert response.status_code == 200
    shown = open_client.get("/api/v1/open/showcase").json()["items"]
    assert [s["name"] for s in shown] == ["企业地图"] and shown[0]["datasets"][0]["id"] == dataset_id

    body["dataset_ids"] = ["no-such-dataset"]
    assert open_client.post("/api/v1/open/showcase", json=body, headers=headers).status_code == 422


def test_responsibility_list_progress(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, name="企业登记信息")
    with db.session() as s:
        entry_id = opendata_service.get_public(s, ref=dataset_id).entry_id
    today = local_today()
    reviewer = token_for(open_client, "reviewer")
    items = [
        {"title": "企业登记信息", "entry_id": entry_id, "planned_on": date(today.year, 12, 31).isoformat()},
        {"title": "个体工商户信息", "planned_on": date(today.year, 1, 1).isoformat(), "field": "market"},
        {"title": "广告经营许可", "planned_on": date(today.year, 12, 31).isoformat()},
    ]
    for item in items:
        response = open_client.post(
            "/api/v1/open/responsibility",
            json={"year": today.year, "org_id": world.orgs["market"], **item},
            headers=reviewer,
        )
        assert response.status_code == 201, response.text
    officer = token_for(open_client, "market_officer")
    response = open_client.post(
        "/api/v1/open/responsibility",
        json={"year": today.year, "org_id": world.orgs["market"], "title": "x" * 5, "planned_on": today.isoformat()},
        headers=officer,
    )
    assert response.status_code == 403
    progress = open_client.get(f"/api/v1/open/responsibility?year={today.year}").json()
    assert (progress["planned"], progress["done"]) == (3, 1)
    dept = progress["departments"][0]
    assert dept["org_name"] == "江西省市场监督管理局" and dept["percent"] == 33
    statuses = {i["title"]: i["status"] for i in dept["items"]}
    assert statuses["企业登记信息"] == "done"
    expected = "overdue" if date(today.year, 1, 1) < today else "planned"
    assert statuses["个体工商户信息"] == expected

    from io import BytesIO

    from openpyxl import load_workbook

    response = open_client.get(f"/api/v1/open/responsibility.xlsx?year={today.year}")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    sheet = load_workbook(BytesIO(response.content)).worksheets[0]
    titles = [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(titles) == sorted(i["title"] for i in items)


def test_problem_report_becomes_an_objection_to_the_provider(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, slug="qiye-dengji")
    body = {"dataset_id": "qiye-dengji", "kind": "wrong", "description": "第3号企业的注册资本有误", "item": "zczb"}
    response = open_client.post("/api/v1/open/reports", json=body)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "contact"
    response = open_client.post("/api/v1/open/reports", json={**body, "item": "nbhcyj", "contact": "a@b.cn"})
    assert response.status_code == 422
    response = open_client.post("/api/v1/open/reports", json={**body, "contact": "13900000000", "contact_name": "王"})
    assert response.status_code == 201, response.text
    scan_for_marker(response.text)
    with db.session() as s:
        report = s.scalars(select(ProblemReport)).one()
        objection = s.get(Objection, report.objection_id)
        assert objection is not None and objection.provider_org_id == world.orgs["market"]
        assert objection.source == "opendata.public_report" and objection.item_name == "注册资本"
        assert "13900000000" in objection.description and report.dataset_id == dataset_id
    for _ in range(20):
        response = open_client.post("/api/v1/open/reports", json={**body, "contact": "x@y.cn"})
        if response.status_code == 429:
            break
    assert response.status_code == 429


def test_statistics_per_day_department_and_dataset(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    first = make_dataset(db, world, settings, slug="a")
    second = make_dataset(db, world, settings, name="企业年报", slug="b")
    today = local_today()
    with db.session() as s:
        opendata_service.record_usage(s, dataset_id=first, views=5, downloads=2, day=today)
        opendata_service.record_usage(s, dataset_id=first, views=3, api_calls=7, day=today - timedelta(days=2))
        opendata_service.record_usage(s, dataset_id=second, views=1, day=today)
        opendata_service.record_usage(s, dataset_id=second, views=100, day=today - timedelta(days=40))
    daily = open_client.get("/api/v1/open/stats/daily?days=7").json()
    assert len(daily["days"]) == 7 and daily["totals"]["views"] == 9 and daily["totals"]["api_calls"] == 7
    assert daily["days"][-1] == {"day": today.isoformat(), "views": 6, "downloads": 2, "api_calls": 0, "bytes": 0}
    one = open_client.get(f"/api/v1/open/stats/daily?days=7&dataset_id={second}").json()
    assert one["totals"]["views"] == 1
    departments = open_client.get("/api/v1/open/stats/departments?days=7").json()["items"]
    assert [(d["org_name"], d["datasets"], d["views"]) for d in departments] == [("江西省市场监督管理局", 2, 9)]
    top = open_client.get("/api/v1/open/stats/datasets?days=90&metric=views").json()["items"]
    assert [t["slug"] for t in top] == ["b", "a"]
    assert open_client.get("/api/v1/open/stats/daily?days=5000").status_code == 422
    assert open_client.get("/api/v1/open/stats/datasets?metric=secret").status_code == 422
    exported = open_client.get("/api/v1/open/stats/departments.csv?days=7")
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")
    assert "江西省市场监督管理局,2,9,2,7,0" in exported.content.decode("utf-8-sig")
    overview = open_client.get("/api/v1/open/stats/overview").json()
    assert overview["datasets"] == 2
    for url in ("/api/v1/open/stats/datasets?days=90", "/api/v1/open/stats/departments"):
        scan_for_marker(open_client.get(url).text)
