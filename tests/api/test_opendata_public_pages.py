"""Pages of the public side: registration, login, keys shown once, applying for conditionally open data and the
provider's review, showcase, responsibility list, statistics and the problem-report form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_opendata_public_support import (
    PUBLIC_PASSWORD,
    make_dataset,
    public_client,
    scan_for_marker,
)
from tests.factories import token_for
from zhengshu.opendata import service as opendata_service

HTML = {"accept": "text/html"}


@pytest.fixture
def open_client(app: Any) -> Iterator[Any]:
    yield from public_client(app)


def _csrf(client: Any, url: str, headers: dict[str, str] | None = None) -> str:
    page = client.get(url, headers={**HTML, **(headers or {})})
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, url
    return found.group(1)


def _register(client: Any, username: str = "acme") -> None:
    import random

    from zhengshu.demo.identities import uscc

    token = _csrf(client, "/open/register")
    response = client.post(
        "/open/register",
        data={
            "csrf_token": token,
            "kind": "company",
            "username": username,
            "password": PUBLIC_PASSWORD,
            "display_name": "张经办",
            "email": "zhang@example.com",
            "company_name": "江西某某数据科技有限公司",
            "uscc": uscc(random.Random(username), region_code="360100", authority="9", org_type="1"),
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/open/account"


def test_register_login_and_key_shown_once(db, world, open_client) -> None:  # type: ignore[no-untyped-def]
    token = _csrf(open_client, "/open/register")
    response = open_client.post(
        "/open/register",
        data={"csrf_token": token, "kind": "company", "username": "bad", "password": "x", "display_name": "x"},
        headers=HTML,
    )
    assert response.status_code == 422 and "field-error" in response.text

    _register(open_client)
    page = open_client.get("/open/account", headers=HTML)
    assert "江西某某数据科技有限公司" in page.text and "今日调用额度" in page.text
    token = _csrf(open_client, "/open/account")
    response = open_client.post("/open/account/keys", data={"csrf_token": token, "name": "脚本"}, headers=HTML)
    assert response.status_code == 200
    key = re.search(r'<code id="new-key">(ok_[^<]+)</code>', response.text)
    assert key, response.text
    again = open_client.get("/open/account", headers=HTML)
    assert key.group(1) not in again.text  # shown once
    assert open_client.get("/api/v1/open/accounts/me", headers={"X-API-Key": key.group(1)}).status_code == 200

    open_client.post("/open/logout", data={"csrf_token": token}, headers=HTML)
    response = open_client.get("/open/account", headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/open/login")
    token = _csrf(open_client, "/open/login")
    response = open_client.post(
        "/open/login",
        data={"csrf_token": token, "username": "acme", "password": "wrong-password9"},
        headers=HTML,
    )
    assert response.status_code == 401 and "登录名或密码错误" in response.text
    response = open_client.post(
        "/open/login",
        data={"csrf_token": token, "username": "acme", "password": PUBLIC_PASSWORD, "next": "//evil.example"},
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/open/account"


def test_apply_on_the_page_and_the_provider_decides(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    make_dataset(db, world, settings, opening="有条件开放", slug="shebao")
    assert open_client.get("/open/datasets/shebao/apply", headers=HTML, follow_redirects=False).status_code == 303
    _register(open_client)
    page = open_client.get("/open/datasets/shebao/apply", headers=HTML)
    scan_for_marker(page.text)
    token = _csrf(open_client, "/open/datasets/shebao/apply")
    response = open_client.post(
        "/open/datasets/shebao/apply",
        data={"csrf_token": token, "items": ["qymc", "zczb"], "purpose": "短", "requested_days": "30"},
        headers=HTML,
    )
    assert response.status_code == 422 and "built-in method" not in response.text
    response = open_client.post(
        "/open/datasets/shebao/apply",
        data={"csrf_token": token, "items": ["qymc", "zczb"], "purpose": "企业信用研究使用", "requested_days": "30"},
        headers=HTML,
    )
    assert response.status_code == 200 and "申请已提交" in response.text and "待提供方审核" in response.text

    officer = token_for(open_client, "market_officer")
    listing = open_client.get("/open/review/applications", headers={**HTML, **officer})
    assert "江西某某数据科技有限公司" in listing.text
    application_id = re.search(r'href="/open/review/applications/([0-9a-f]+)"', listing.text).group(1)  # type: ignore[union-attr]
    detail = open_client.get(f"/open/review/applications/{application_id}", headers={**HTML, **officer})
    assert "注册资本" in detail.text and "同意" in detail.text
    token = _csrf(open_client, f"/open/review/applications/{application_id}", officer)
    response = open_client.post(
        f"/open/review/applications/{application_id}/refuse",
        data={"csrf_token": token, "reason": ""},
        headers={**HTML, **officer},
    )
    assert response.status_code == 422
    response = open_client.post(
        f"/open/review/applications/{application_id}/approve",
        data={"csrf_token": token, "items": ["qymc"], "days": "10"},
        headers={**HTML, **officer},
    )
    assert response.status_code == 200 and "已同意" in response.text
    mine = open_client.get("/open/account", headers=HTML)
    assert "有效" in mine.text and "已同意" in mine.text

    # the dataset page offers the downloads of the granted item only, never the whole dataset
    page = open_client.get("/open/datasets/shebao", headers=HTML)
    assert 'href="/api/v1/open/datasets/shebao/download.csv?columns=qymc"' in page.text
    assert 'href="/api/v1/open/datasets/shebao/download.csv"' not in page.text
    # the company downloads what it was granted, through the portal core's download (its login session)
    csv = open_client.get("/api/v1/open/datasets/shebao/download.csv?columns=qymc")
    assert csv.status_code == 200, csv.text
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 31 and lines[1].strip('"') == "南昌市第0号测试企业有限公司"
    scan_for_marker(csv.text)
    refused = open_client.get("/api/v1/open/datasets/shebao/download.csv?columns=qymc,zczb")
    assert refused.status_code == 403 and refused.json()["code"] == "opendata.grant_required"


def test_public_pages_render_and_hold_no_closed_item(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, slug="qiye-dengji")
    with db.session() as s:
        opendata_service.record_usage(s, dataset_id=dataset_id, views=12, downloads=3)
    for url in (
        "/open/showcase",
        "/open/responsibility",
        "/open/stats",
        "/open/stats?days=7",
        "/open/feedback",
        "/open/feedback?dataset=qiye-dengji",
        "/open/register",
        "/open/login",
    ):
        page = open_client.get(url, headers=HTML)
        assert page.status_code == 200, (url, page.text)
        assert 'name="viewport"' in page.text
        scan_for_marker(page.text)
    stats = open_client.get("/open/stats", headers=HTML).text
    assert "江西省市场监督管理局" in stats and "echarts.min.js" in stats


def test_feedback_form_files_an_objection(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    make_dataset(db, world, settings, slug="qiye-dengji")
    token = _csrf(open_client, "/open/feedback?dataset=qiye-dengji")
    with db.session() as s:
        dataset_id = opendata_service.get_public(s, ref="qiye-dengji").id
    response = open_client.post(
        "/open/feedback",
        data={"csrf_token": token, "dataset_id": dataset_id, "kind": "outdated", "description": "数据过时半年以上"},
        headers=HTML,
    )
    assert response.status_code == 422 and "联系方式" in response.text
    response = open_client.post(
        "/open/feedback",
        data={
            "csrf_token": token,
            "dataset_id": dataset_id,
            "kind": "outdated",
            "description": "数据过时半年以上",
            "contact": "a@b.cn",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303, re.findall(r"(?:errors|field-error)[^<]*<?[^<]*", response.text)
    assert response.headers["location"] == "/open/datasets/qiye-dengji"
    officer = token_for(open_client, "market_officer")
    objections = open_client.get("/api/v1/objections?count=true", headers=officer).json()
    assert objections["total"] == 1


def test_moderation_and_responsibility_pages(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    reviewer = token_for(open_client, "reviewer")
    page = open_client.get("/open/review/showcase", headers={**HTML, **reviewer})
    assert page.status_code == 200 and "优秀应用审核" in page.text
    token = _csrf(open_client, "/open/review/responsibility", reviewer)
    response = open_client.post(
        "/open/review/responsibility",
        data={
            "csrf_token": token,
            "year": "2026",
            "org_id": world.orgs["market"],
            "title": "个体工商户登记信息",
            "opening_type": "无条件开放",
            "field": "market",
            "planned_on": "2026-12-31",
        },
        headers={**HTML, **reviewer},
    )
    assert response.status_code == 200 and "个体工商户登记信息" in response.text
    public = open_client.get("/open/responsibility?year=2026", headers=HTML)
    assert "个体工商户登记信息" in public.text and "江西省市场监督管理局" in public.text
    user = token_for(open_client, "market_user")
    assert open_client.get("/open/review/responsibility", headers={**HTML, **user}).status_code == 403


def test_showcase_form_with_a_screenshot(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings)
    _register(open_client)
    token = _csrf(open_client, "/open/showcase/new")
    data = {
        "csrf_token": token,
        "name": "企业地图",
        "description": "基于企业登记开放数据的企业分布地图",
        "link": "https://example.com/map",
        "dataset_ids": [dataset_id],
    }
    disguised = {"screenshot": ("shot.png", b"MZ\x90\x00not an image", "image/png")}
    response = open_client.post("/open/showcase/new", data=data, files=disguised, headers=HTML)
    assert response.status_code == 422 and "PNG" in response.text
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = open_client.post(
        "/open/showcase/new", data=data, files={"screenshot": ("shot.png", png, "image/png")}, headers=HTML
    )
    assert response.status_code == 200 and "待审核" in response.text
    reviewer = token_for(open_client, "reviewer")
    queue = open_client.get("/api/v1/open/showcase/moderation", headers=reviewer).json()["items"]
    assert queue[0]["has_screenshot"] is True
    assert open_client.get(f"/api/v1/open/showcase/{queue[0]['id']}/screenshot").status_code == 404  # not shown yet
    token = _csrf(open_client, "/open/review/showcase", reviewer)
    response = open_client.post(
        f"/open/review/showcase/{queue[0]['id']}/approve", data={"csrf_token": token}, headers={**HTML, **reviewer}
    )
    assert response.status_code == 200
    shot = open_client.get(f"/api/v1/open/showcase/{queue[0]['id']}/screenshot")
    assert shot.status_code == 200 and shot.content == png and shot.headers["content-type"] == "image/png"
    assert "企业地图" in open_client.get("/open/showcase", headers=HTML).text


def test_password_change_ends_other_sessions(db, world, app, open_client) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    _register(open_client)
    with TestClient(app) as other:
        token = _csrf(other, "/open/login")
        other.post("/open/login", data={"csrf_token": token, "username": "acme", "password": PUBLIC_PASSWORD})
        assert other.get("/open/account", headers=HTML, follow_redirects=False).status_code == 200
        token = _csrf(open_client, "/open/account")
        response = open_client.post(
            "/open/account/password",
            data={"csrf_token": token, "old_password": "wrong-one1", "new_password": "NewPass2027"},
            headers=HTML,
        )
        assert "原密码不正确" in response.text
        response = open_client.post(
            "/open/account/password",
            data={"csrf_token": token, "old_password": PUBLIC_PASSWORD, "new_password": "NewPass2027"},
            headers=HTML,
        )
        assert "密码已修改" in response.text
        assert open_client.get("/open/account", headers=HTML, follow_redirects=False).status_code == 200
        assert other.get("/open/account", headers=HTML, follow_redirects=False).status_code == 303


def test_administrator_sets_quota_and_disables_an_account(db, world, open_client) -> None:  # type: ignore[no-untyped-def]
    from tests.api.test_opendata_public_support import issue_key, register

    account_id = register(db, username="acme")
    key = issue_key(db, account_id)
    admin = token_for(open_client, "admin")
    page = open_client.get("/open/review/accounts?q=acme", headers={**HTML, **admin})
    assert "江西某某数据科技有限公司" in page.text
    token = _csrf(open_client, "/open/review/accounts", admin)
    response = open_client.post(
        f"/open/review/accounts/{account_id}/quota", data={"csrf_token": token, "daily_quota": "3"}, headers=admin
    )
    assert response.status_code == 200 and "每日额度已更新" in response.text
    assert open_client.get("/api/v1/open/accounts/me", headers={"X-API-Key": key}).json()["quota"]["limit"] == 3
    open_client.post(f"/open/review/accounts/{account_id}/disable", data={"csrf_token": token}, headers=admin)
    assert open_client.get("/api/v1/open/accounts/me", headers={"X-API-Key": key}).status_code == 401
    officer = token_for(open_client, "market_officer")
    assert open_client.get("/open/review/accounts", headers={**HTML, **officer}).status_code == 403
