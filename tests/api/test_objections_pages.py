"""Objection pages as people use them: the consumer raises an objection on a record from the entry's link
with an evidence file, the provider accepts (the record is flagged) and corrects it, the consumer confirms;
a disguised file is refused with the form shown again; CSRF; outsiders get 404; the authority's pages."""

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
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import MountedResource
from zhengshu.core.db import Database
from zhengshu.objection.models import Objection
from zhengshu.objection.pages import entry_panel_context
from zhengshu.security.passwords import hash_password

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}
USCC = "91360000MA35XXXX1A"
PDF = b"%PDF-1.4\n%evidence\n%%EOF\n"
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
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/objections"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


@pytest.fixture
def browser(app: FastAPI, world: World) -> Iterator[Any]:
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


@pytest.fixture
def target(db: Database, world: World) -> dict[str, str]:
    entry_id = published_entry(db, world)
    with db.session() as s:
        resource = MountedResource(
            entry_id=entry_id, kind="table", table_name="qy_djxx", api_endpoint=None, created_by="market_officer"
        )
        s.add(resource)
        s.flush()
        entry = catalog_service.get(s, actor=world["market_officer"], entry_id=entry_id)
        keys = {i.name: i.key for i in catalog_service.display_version(s, entry).items}
        return {"entry_id": entry_id, "resource_id": resource.id, "item_key": keys["法定代表人"]}


def objections(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Objection)) or 0


def new_url(target: dict[str, str]) -> str:
    return (
        f"/objections/new?entry_id={target['entry_id']}&item_key={target['item_key']}"
        f"&resource_id={target['resource_id']}&record_key={USCC}"
    )


def raise_form(csrf: str, target: dict[str, str], **overrides: str) -> dict[str, str]:
    data = {
        "csrf_token": csrf,
        "entry_id": target["entry_id"],
        "item_key": target["item_key"],
        "resource_id": target["resource_id"],
        "record_key": USCC,
        "kind": "wrong",
        "claimed_value": "张三",
        "other_source": "",
        "description": "法定代表人已于 8 月变更",
    }
    data.update(overrides)
    return data


def render_panel(app: FastAPI, db: Database, world: World, entry_id: str, who: str = "hrss_officer") -> str:
    with db.session() as s:
        entry = catalog_service.get(s, actor=world[who], entry_id=entry_id)
        ctx = entry_panel_context(s, actor=world[who], entry=entry)
        return str(app.state.templates.get_template("objection/_entry_panel.html").render(entry=entry, **ctx))


def test_raise_accept_correct_and_confirm(
    browser: Any, app: FastAPI, db: Database, world: World, target: dict[str, str]
) -> None:
    consumer = browser("hrss_officer")
    page = consumer.get(new_url(target), headers=HTML)
    assert page.status_code == 200 and "提出数据异议" in page.text
    assert f'value="{USCC}"' in page.text and 'enctype="multipart/form-data"' in page.text
    assert f'<option value="{target["item_key"]}" selected>法定代表人</option>' in page.text
    r = consumer.post(
        "/objections/new",
        data=raise_form(csrf_of(page.text), target),
        files=[("attachments", ("变更通知书.pdf", PDF, "application/pdf"))],
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    oid = url.rsplit("/", 1)[-1]
    detail = consumer.get(url, headers=HTML).text
    assert "数据异议已提交" in detail and "待受理" in detail and "变更通知书.pdf" in detail
    assert consumer.get(f"/objections/{oid}/attachments/" + _attachment_id(db, oid)).content == PDF
    mine = consumer.get("/objections?box=mine", headers=HTML).text
    assert f'href="/objections/{oid}"' in mine

    provider = browser("market_officer")
    todo = provider.get("/objections?box=todo", headers=HTML).text
    assert f'href="/objections/{oid}"' in todo
    page = provider.get(url, headers=HTML).text
    assert f'action="/objections/{oid}/accept"' in page and 'onsubmit="return confirm(' in page
    r = provider.post(
        f"/objections/{oid}/accept",
        data={"csrf_token": csrf_of(page), "text": ""},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = provider.get(url, headers=HTML).text
    assert "已受理" in page and "已标注" in page and f'action="/objections/{oid}/answer"' in page
    panel = render_panel(app, db, world, target["entry_id"])
    assert "存在异议" in panel and USCC in panel and "（法定代表人）" in panel and f"/objections/{oid}" in panel
    assert "提出数据异议" not in render_panel(app, db, world, target["entry_id"], who="market_officer")
    r = provider.post(
        f"/objections/{oid}/answer",
        data={
            "csrf_token": csrf_of(page),
            "resolution": "corrected",
            "corrected_value": "张三",
            "old_value": "李四",
            "effective_from": "2026-10-09",
            "item_key": "",
            "note": "已按变更登记更正",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = provider.get(url, headers=HTML).text
    assert "已答复，等待异议方确认" in page and "更正记录" in page and "李四" in page and "2026年10月9日" in page

    page = consumer.get(url, headers=HTML).text
    assert f'action="/objections/{oid}/confirm"' in page and f'action="/objections/{oid}/dispute"' in page
    r = consumer.post(
        f"/objections/{oid}/confirm", data={"csrf_token": csrf_of(page)}, headers=HTML, follow_redirects=False
    )
    assert r.status_code == 303
    page = consumer.get(url, headers=HTML).text
    assert "异议办结" in page and "标注已于" in page and "已办结" in page


def _attachment_id(db: Database, oid: str) -> str:
    with db.session() as s:
        obj = s.get(Objection, oid)
        assert obj is not None
        return obj.attachments[0].id


def test_disguised_file_is_refused_with_the_form_shown_again(
    browser: Any, db: Database, target: dict[str, str]
) -> None:
    consumer = browser("hrss_officer")
    page = consumer.get(new_url(target), headers=HTML)
    r = consumer.post(
        "/objections/new",
        data=raise_form(csrf_of(page.text), target, description="保留的说明"),
        files=[("attachments", ("截图.png", b"MZ\x90\x00" + b"\x00" * 64, "image/png"))],
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 422
    assert "伪装" in r.text and "保留的说明" in r.text
    r = consumer.post(
        "/objections/new",
        data=raise_form(csrf_of(page.text), target, kind="inconsistent"),
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 422 and "另一数据来源" in r.text
    assert objections(db) == 0


def test_csrf_outsiders_and_refused_actions(browser: Any, db: Database, target: dict[str, str]) -> None:
    consumer = browser("hrss_officer")
    r = consumer.post("/objections/new", data=raise_form("", target), follow_redirects=False)
    assert r.status_code == 403 and r.json()["code"] == "auth.csrf"
    assert objections(db) == 0
    page = consumer.get(new_url(target), headers=HTML)
    r = consumer.post(
        "/objections/new", data=raise_form(csrf_of(page.text), target), headers=HTML, follow_redirects=False
    )
    url = r.headers["location"]
    oid = url.rsplit("/", 1)[-1]
    assert browser("nc_reviewer").get(url, headers=HTML).status_code == 404
    # the objector may not accept its own objection: the page says why and nothing moves
    page = consumer.get(url, headers=HTML).text
    assert f'action="/objections/{oid}/accept"' not in page
    r = consumer.post(
        f"/objections/{oid}/accept", data={"csrf_token": csrf_of(page)}, headers=HTML, follow_redirects=True
    )
    assert r.status_code == 200 and "您无权受理该数据异议" in r.text
    with db.session() as s:
        assert s.get(Objection, oid).state == "raised"  # type: ignore[union-attr]
    provider = browser("market_officer")
    page = provider.get(url, headers=HTML).text
    r = provider.post(f"/objections/{oid}/nosuch", data={"csrf_token": csrf_of(page)}, headers=HTML)
    assert r.status_code == 404


def test_authority_pages_and_the_entry_panel(
    browser: Any, app: FastAPI, db: Database, world: World, target: dict[str, str]
) -> None:
    consumer = browser("hrss_officer")
    page = consumer.get(new_url(target), headers=HTML)
    url = consumer.post(
        "/objections/new", data=raise_form(csrf_of(page.text), target), headers=HTML, follow_redirects=False
    ).headers["location"]
    oid = url.rsplit("/", 1)[-1]
    provider = browser("market_officer")
    page = provider.get(url, headers=HTML).text
    provider.post(f"/objections/{oid}/accept", data={"csrf_token": csrf_of(page)}, headers=HTML)
    page = provider.get(url, headers=HTML).text
    provider.post(
        f"/objections/{oid}/answer",
        data={"csrf_token": csrf_of(page), "resolution": "not_error", "note": "档案无误"},
        headers=HTML,
    )
    page = consumer.get(url, headers=HTML).text
    consumer.post(f"/objections/{oid}/dispute", data={"csrf_token": csrf_of(page), "text": "有证明"}, headers=HTML)

    reviewer = browser("reviewer")
    box = reviewer.get("/objections?box=arbitration", headers=HTML).text
    assert f'href="/objections/{oid}"' in box and "仲裁中" in box
    page = reviewer.get(url, headers=HTML).text
    assert f'action="/objections/{oid}/arbitrate"' in page
    assert 'value="uphold_correction"' not in page, "nothing to uphold when the provider did not correct"
    r = reviewer.post(
        f"/objections/{oid}/arbitrate",
        data={"csrf_token": csrf_of(page), "decision": "dismiss", "text": "异议不成立"},
        headers=HTML,
        follow_redirects=True,
    )
    assert "已作出仲裁裁定" in r.text and "驳回异议" in r.text
    stats = reviewer.get("/objections/stats", headers=HTML)
    assert stats.status_code == 200 and "省市场监管局" in stats.text and "按时答复率" in stats.text
    assert browser("market_user").get("/objections/stats", headers=HTML).status_code == 403

    # the snippet the catalog entry page will include
    html_out = render_panel(app, db, world, target["entry_id"])
    assert f"/objections/new?entry_id={target['entry_id']}" in html_out
    assert "没有针对该目录的数据异议" in html_out  # the dismissed group's flag is closed
