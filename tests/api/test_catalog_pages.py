"""Catalog pages as a person uses them: log in through the form, compile an entry with three items and submit
it, the reviewer approves it from the entry page, the list finds it by a Chinese word and by pinyin initials;
form posts without the CSRF token are refused. (How pages look on a phone is a browser test.)"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import PASSWORD, World, published_entry
from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.db import Database
from zhengshu.security.passwords import hash_password

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}
_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m, "no csrf_token in the page"
    return html.unescape(m.group(1))


def login(client: TestClient, username: str) -> None:
    page = client.get("/login", headers=HTML)
    assert page.status_code == 200 and "登录" in page.text
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/catalog"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/catalog"


@pytest.fixture
def browser(app: FastAPI, world: World) -> Iterator[Any]:
    """Opens one logged-in client per user, each with its own cookies."""
    opened: list[TestClient] = []

    def open_as(username: str) -> TestClient:
        c = TestClient(app)
        c.__enter__()
        opened.append(c)
        login(c, username)
        return c

    yield open_as
    for c in opened:
        c.__exit__(None, None, None)


def compile_form(csrf: str, **overrides: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "企业登记信息",
        "class_code": "102001",
        "summary": "全省市场主体登记注册信息，包括企业名称、统一社会信用代码、法定代表人等",
        "resource_format": "数据库",
        "format_detail": "MySQL",
        "update_cycle": "每日",
        "level": "部门",
        "sharing_type": "有条件共享",
        "sharing_way": "接口",
        "opening_type": "不予开放",
        "sharing_condition": "用于市场监管、社会保障等法定职责",
        "not_shared_basis": "",
        "opening_condition": "",
        "tags": "企业、登记",
        "related_codes": "",
        "duty_basis": "",
        "action": "submit",
    }
    items = [
        ("统一社会信用代码", "tyshxydm", "C", "18"),
        ("企业名称", "qymc", "C", "200"),
        ("法定代表人", "fddbr", "C", "50"),
        ("", "", "C", ""),
    ]  # the empty fourth row is skipped
    for i, (name, column, data_type, length) in enumerate(items):
        form.update(
            {
                f"items-{i}-name": name,
                f"items-{i}-column_name": column,
                f"items-{i}-data_type": data_type,
                f"items-{i}-length": length,
                f"items-{i}-description": "",
                f"items-{i}-sharing_type": "",
                f"items-{i}-sensitivity": "一般1",
            }
        )
    form.update(overrides)
    return form


def entries(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(CatalogEntry)) or 0


def test_compile_submit_approve_and_find(browser: Any, db: Database) -> None:
    officer = browser("market_officer")
    form_page = officer.get("/catalog/new", headers=HTML)
    assert form_page.status_code == 200 and "编制目录" in form_page.text
    r = officer.post("/catalog/new", data=compile_form(csrf_of(form_page.text)), headers=HTML, follow_redirects=False)
    assert r.status_code == 303, r.text
    entry_url = r.headers["location"]
    entry_id = entry_url.rsplit("/", 1)[-1]
    detail = officer.get(entry_url, headers=HTML)
    assert detail.status_code == 200
    assert "已保存并提交审核" in detail.text and "102001/00001" in detail.text
    assert "待审核" in detail.text
    for item in ("统一社会信用代码", "企业名称", "法定代表人"):
        assert item in detail.text
    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None and entry.status == "submitted"
        assert len(entry.versions[0].items) == 3 and entry.versions[0].tags == ["企业", "登记"]

    reviewer = browser("reviewer")
    queue = reviewer.get("/review", headers=HTML)
    assert queue.status_code == 200 and "企业登记信息" in queue.text
    page = reviewer.get(entry_url, headers=HTML)
    assert f'action="/catalog/{entry_id}/approve"' in page.text
    r = reviewer.post(
        f"/catalog/{entry_id}/approve",
        data={"csrf_token": csrf_of(page.text), "text": "同意"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == entry_url
    after = reviewer.get(entry_url, headers=HTML)
    assert "审核通过，目录已发布" in after.text and "已发布" in after.text
    with db.session() as s:
        assert s.get(CatalogEntry, entry_id).status == "published"  # type: ignore[union-attr]

    # anyone in the province finds it in the list, by a Chinese word and by pinyin initials
    reader = browser("hrss_officer")
    for q in ("企业", "qydj", "登记"):
        listing = reader.get("/catalog", params={"q": q}, headers=HTML)
        assert listing.status_code == 200
        assert f'href="/catalog/{entry_id}"' in listing.text, q
        assert "企业登记信息" in listing.text
    empty = reader.get("/catalog", params={"q": "不存在的目录名称"}, headers=HTML)
    assert f'href="/catalog/{entry_id}"' not in empty.text and "没有找到" in empty.text


def test_drafts_of_other_departments_are_not_listed(browser: Any, db: Database, world: World) -> None:
    published_entry(db, world)
    officer = browser("market_officer")
    page = officer.get("/catalog/new", headers=HTML)
    r = officer.post(
        "/catalog/new",
        data=compile_form(csrf_of(page.text), name="企业年报信息", action="save"),
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    draft_id = r.headers["location"].rsplit("/", 1)[-1]
    assert "已保存为草稿" in officer.get(r.headers["location"], headers=HTML).text
    assert f'href="/catalog/{draft_id}"' in officer.get("/catalog", params={"q": "企业"}, headers=HTML).text
    other = browser("hrss_officer")
    listing = other.get("/catalog", params={"q": "企业"}, headers=HTML).text
    assert f'href="/catalog/{draft_id}"' not in listing and "企业年报信息" not in listing
    assert other.get(f"/catalog/{draft_id}", headers=HTML).status_code == 404


def test_post_without_csrf_is_refused(browser: Any, db: Database, world: World) -> None:
    officer = browser("market_officer")
    r = officer.post("/catalog/new", data=compile_form(""), follow_redirects=False)
    assert r.status_code == 403 and r.json()["code"] == "auth.csrf"
    form = compile_form("wrong-token")
    r = officer.post("/catalog/new", data=form, headers=HTML, follow_redirects=False)
    assert r.status_code == 403 and "页面已过期" in r.text
    assert entries(db) == 0
    entry_id = published_entry(db, world)
    r = browser("reviewer").post(f"/catalog/{entry_id}/withdraw", data={"text": "无令牌"}, follow_redirects=False)
    assert r.status_code == 403
    with db.session() as s:
        assert s.get(CatalogEntry, entry_id).status == "published"  # type: ignore[union-attr]


def test_invalid_form_is_shown_again_with_errors(browser: Any, db: Database) -> None:
    officer = browser("market_officer")
    page = officer.get("/catalog/new", headers=HTML)
    r = officer.post(
        "/catalog/new",
        headers=HTML,
        follow_redirects=False,
        data=compile_form(csrf_of(page.text), sharing_condition="", **{"items-1-length": "0"}),
    )
    assert r.status_code == 422
    assert "有条件共享的目录必须填写共享条件" in r.text
    assert "items[1].length" in r.text
    assert 'value="企业登记信息"' in r.text  # what was typed is kept
    assert entries(db) == 0


def test_anonymous_pages_redirect_to_login(client: TestClient, world: World) -> None:
    r = client.get("/catalog", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    page = client.get("/login", headers=HTML)
    r = client.post(
        "/login",
        data={"username": "market_officer", "password": "wrong-password", "csrf_token": csrf_of(page.text)},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = client.post("/login", data={"username": "market_officer", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
