"""Application pages as people use them: the consumer applies for three items from the entry's apply form (the
not-shared item is disabled with its legal basis), the data authority passes compliance, the provider approves
two items and refuses one on the review page, the consumer sees the authorization, the provider revokes it;
form posts without the CSRF token are refused and bad forms re-render with the errors."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.test_catalog_pages import HTML, _fast_password_hash, csrf_of, login  # noqa: F401
from tests.factories import World
from tests.unit.test_applications import NOT_SHARED_BASIS, keys_of, make_entry
from zhengshu.core.db import Database
from zhengshu.demand.models import Authorization, DataApplication


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
def entry_id(db: Database, world: World) -> str:
    return make_entry(db, world)


def apply_form(csrf: str, entry_id: str, keys: list[str], **overrides: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "csrf_token": csrf,
        "entry_id": entry_id,
        "purpose": "办理企业职工社会保险登记时核验企业身份",
        "basis": "《社会保险法》第五十七条",
        "business_system": "江西省社会保险信息系统",
        "delivery_way": "接口",
        "contact_name": "王晓",
        "contact_phone": "0791-88888888",
    }
    fields.update(overrides)
    fields["item_keys"] = keys
    return fields


def dates_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="(start_on|end_on)" value="([^"]*)"', page))


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_apply_review_decide_and_revoke_through_the_pages(browser: Any, db: Database, entry_id: str) -> None:
    keys = keys_of(db, entry_id)
    consumer = browser("hrss_officer")
    form = consumer.get(f"/applications/new?entry_id={entry_id}", headers=HTML)
    assert form.status_code == 200 and "申请使用：企业登记信息" in form.text
    # every item has a checkbox; the not-shared one is disabled and says why
    for key in keys.values():
        assert f'value="{key}"' in form.text
    disabled = re.search(rf'value="{keys["法定代表人身份证号"]}"[^>]*>', form.text, re.S)
    assert disabled and "disabled" in disabled.group(0)
    assert NOT_SHARED_BASIS in html.unescape(form.text)

    chosen = [keys["法定代表人"], keys["联系电话"], keys["注册资本"]]
    data = apply_form(csrf_of(form.text), entry_id, chosen, **dates_of(form.text))
    r = consumer.post("/applications/new", data=data, headers=HTML, follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    detail = consumer.get(url, headers=HTML)
    assert "申请已提交" in detail.text and "待合规审查" in detail.text
    assert f'action="{url}/withdraw"' in detail.text
    mine = consumer.get("/applications", headers=HTML)
    assert url in mine.text

    reviewer = browser("reviewer")
    queue = reviewer.get("/applications?box=authority", headers=HTML)
    assert url in queue.text
    page = reviewer.get(url, headers=HTML)
    assert f'action="{url}/comply"' in page.text
    r = reviewer.post(
        f"{url}/comply", data={"csrf_token": csrf_of(page.text), "text": "相符"}, headers=HTML, follow_redirects=False
    )
    assert r.status_code == 303

    provider = browser("market_officer")
    page = provider.get(url, headers=HTML)
    assert "逐项审核" in page.text
    for key in chosen:
        assert f'name="decision-{key}"' in page.text and f'name="reason-{key}"' in page.text
    decision = {
        "csrf_token": csrf_of(page.text),
        f"decision-{keys['法定代表人']}": "approve",
        f"mask-{keys['法定代表人']}": "name_first",
        f"decision-{keys['联系电话']}": "approve",
        f"decision-{keys['注册资本']}": "refuse",
        f"reason-{keys['注册资本']}": "涉及企业经营秘密",
    }
    # a refusal without its reason is sent back with the message and changes nothing
    r = provider.post(f"{url}/decide", data={**decision, f"reason-{keys['注册资本']}": ""}, headers=HTML)
    assert r.status_code == 200 and "必须说明理由" in r.text
    assert count(db, Authorization) == 0
    r = provider.post(f"{url}/decide", data=decision, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    done = provider.get(url, headers=HTML)
    assert "已部分同意" in done.text and "涉及企业经营秘密" in done.text

    seen = consumer.get(url, headers=HTML)
    assert "已答复（可申诉）" in seen.text and f'action="{url}/appeal"' in seen.text
    auth_url = re.search(r'href="(/authorizations/[0-9a-f]+)"', seen.text)
    assert auth_url, "the consumer sees a link to the authorization"
    auth_page = consumer.get(auth_url.group(1), headers=HTML)
    assert auth_page.status_code == 200
    assert "法定代表人" in auth_page.text and "联系电话" in auth_page.text and "注册资本" not in auth_page.text
    assert "姓名保留首字" in auth_page.text and "revoke" not in auth_page.text  # the consumer cannot revoke

    manage = provider.get(auth_url.group(1), headers=HTML)
    assert f'action="{auth_url.group(1)}/revoke"' in manage.text
    r = provider.post(
        f"{auth_url.group(1)}/revoke",
        data={"csrf_token": csrf_of(manage.text), "text": "违规转供"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    revoked = provider.get(auth_url.group(1), headers=HTML)
    assert "授权已撤销" in revoked.text and "违规转供" in revoked.text
    listed = consumer.get("/authorizations?status=revoked", headers=HTML)
    assert auth_url.group(1) in listed.text
    who = provider.get(f"/authorizations/who-can-see?entry_id={entry_id}&item_key={keys['联系电话']}", headers=HTML)
    assert who.status_code == 200 and "目前没有部门获授权使用该信息项" in who.text


def test_bad_apply_forms_re_render_with_errors_and_change_nothing(browser: Any, db: Database, entry_id: str) -> None:
    keys = keys_of(db, entry_id)
    consumer = browser("hrss_officer")
    form = consumer.get(f"/applications/new?entry_id={entry_id}", headers=HTML)
    csrf = csrf_of(form.text)
    dates = dates_of(form.text)
    r = consumer.post("/applications/new", data=apply_form(csrf, entry_id, [], **dates), headers=HTML)
    assert r.status_code == 422 and "请至少选择一个信息项" in r.text
    r = consumer.post(
        "/applications/new", data=apply_form(csrf, entry_id, [keys["法定代表人身份证号"]], **dates), headers=HTML
    )
    assert r.status_code == 422 and NOT_SHARED_BASIS in html.unescape(r.text)
    r = consumer.post(
        "/applications/new",
        data=apply_form(csrf, entry_id, [keys["企业名称"]], start_on=dates["end_on"], end_on=dates["start_on"]),
        headers=HTML,
    )
    assert r.status_code == 422 and "截止日期必须晚于起始日期" in r.text
    assert 'value="江西省社会保险信息系统"' in r.text  # what was typed is kept
    r = consumer.post(
        "/applications/new", data=apply_form("forged", entry_id, [keys["企业名称"]], **dates), headers=HTML
    )
    assert r.status_code == 403
    assert count(db, DataApplication) == 0


def test_the_provider_cannot_apply_for_its_own_entry(browser: Any, entry_id: str) -> None:
    provider = browser("market_user")
    r = provider.get(f"/applications/new?entry_id={entry_id}", headers=HTML)
    assert r.status_code == 409 and "本部门" in r.text


def test_a_refused_action_on_the_page_explains_itself(browser: Any, db: Database, entry_id: str) -> None:
    keys = keys_of(db, entry_id)
    consumer = browser("hrss_officer")
    form = consumer.get(f"/applications/new?entry_id={entry_id}", headers=HTML)
    r = consumer.post(
        "/applications/new",
        data=apply_form(csrf_of(form.text), entry_id, [keys["注册资本"]], **dates_of(form.text)),
        headers=HTML,
        follow_redirects=False,
    )
    url = r.headers["location"]
    page = consumer.get(url, headers=HTML)
    # the applicant tries a reviewer's action: the page says why, the state stays
    r = consumer.post(f"{url}/comply", data={"csrf_token": csrf_of(page.text)}, headers=HTML)
    assert r.status_code == 200 and "您无权" in r.text
    r = consumer.post(f"{url}/withdraw", data={"csrf_token": csrf_of(page.text), "text": "不需要了"}, headers=HTML)
    assert "申请已撤回" in r.text and "已撤回" in r.text
    with db.session() as s:
        assert s.scalar(select(DataApplication.state)) == "withdrawn"
    other = browser("nc_reviewer")
    assert other.get(url, headers=HTML).status_code == 404


def test_supervision_page_for_reviewers(browser: Any, db: Database, entry_id: str) -> None:
    reviewer = browser("reviewer")
    page = reviewer.get("/applications/stats", headers=HTML)
    assert page.status_code == 200 and "按期办结率" in page.text
    assert browser("hrss_officer").get("/applications/stats", headers=HTML).status_code == 403
