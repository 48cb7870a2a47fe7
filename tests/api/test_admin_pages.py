"""Admin console pages, the calendar pages and the data source pages: rendering, forms, CSRF, roles."""

from __future__ import annotations

import datetime as dt
import html
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import PASSWORD
from zhengshu.core import clock
from zhengshu.demo.identities import uscc

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"|"X-CSRF-Token": "([^"]+)"')
FUTURE = next(y for y in range(2027, 2100) if clock.library_schedule(y) is None)


class Browser:
    """A logged-in browser session: cookies, the page's CSRF token, HTML accepted."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.client.headers["accept"] = "text/html"
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD) -> Any:
        page = self.get("/login")
        assert page.status_code == 200
        response = self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": self.csrf, "next": "/"},
            follow_redirects=False,
        )
        if response.status_code == 303:
            self.get("/todo")  # a new session has a new token: read it from the next page, as a browser does
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        response = self.client.get(url, **kwargs)
        match = CSRF.search(response.text)
        if match:
            self.csrf = match.group(1) or match.group(2)
        return response

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        data = dict(data or {})
        if csrf:
            data["csrf_token"] = self.csrf
        return self.client.post(url, data=data, follow_redirects=False, **kwargs)


@pytest.fixture
def browser(app, world) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """``browser("admin")`` gives a logged-in session for that user."""
    clients: list[TestClient] = []

    def make(username: str) -> Browser:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        b = Browser(client)
        response = b.login(username)
        assert response.status_code == 303, response.text
        return b

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def text_of(response: Any) -> str:
    return html.unescape(response.text)


def field_error(response: Any, field: str) -> str:
    match = re.search(rf'data-field="{re.escape(field)}">([^<]*)<', response.text)
    assert match, f"no error shown at field {field}"
    return html.unescape(match.group(1))


def flash_after(b: Browser, response: Any) -> str:
    assert response.status_code == 303, response.text[:2000]
    page = b.get(response.headers["location"])
    assert page.status_code == 200
    match = re.search(r'<div class="flash success" role="status">(.*?)</div>', page.text, re.S)
    assert match, "no confirmation shown"
    return html.unescape(match.group(1))


# ---- access -------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, world) -> None:  # type: ignore[no-untyped-def]
    for path in ("/admin", "/admin/users", "/admin/calendar", "/sources"):
        r = client.get(path, headers={"accept": "text/html"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path


def test_non_admins_are_refused_admin_pages(browser) -> None:  # type: ignore[no-untyped-def]
    officer = browser("market_officer")
    for path in (
        "/admin",
        "/admin/regions",
        "/admin/organizations",
        "/admin/users",
        f"/admin/users/{'x' * 8}",
        "/admin/calendar",
        f"/admin/calendar/{FUTURE}",
    ):
        r = officer.get(path)
        assert r.status_code == 403, path
        assert "无权" in text_of(r)
    r = officer.post(
        "/admin/users",
        {
            "username": "sneaky",
            "display_name": "x",
            "password": "Passw0rd!x",
            "org_id": "x",
            "roles": ["admin"],
        },
    )
    assert r.status_code == 403
    r = officer.post(f"/admin/calendar/{FUTURE}/days", {"date": f"{FUTURE}-03-01", "kind": "holiday", "name": "x"})
    assert r.status_code == 403


def test_admin_home_links_and_counts(browser) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin")
    assert r.status_code == 200
    for link in ("/admin/regions", "/admin/organizations", "/admin/users", "/admin/calendar", "/sources"):
        assert f'href="{link}"' in r.text
    page = text_of(r)
    assert re.search(r'<div class="stat">8</div><div class="stat-label">用户', page)
    assert re.search(r'<div class="stat">6</div><div class="stat-label">组织机构', page)
    assert re.search(r'<div class="stat">4</div><div class="stat-label">行政区划', page)


def test_posts_without_csrf_token_are_refused(browser, db) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.post(
        "/admin/regions",
        {"code": "360103", "name": "西湖区", "level": "county", "parent_code": "360100"},
        csrf=False,
    )
    assert r.status_code == 403
    assert "页面已过期" in text_of(r)
    r = admin.post(
        "/admin/regions",
        {
            "code": "360103",
            "name": "西湖区",
            "level": "county",
            "parent_code": "360100",
            "csrf_token": "forged",
        },
        csrf=False,
    )
    assert r.status_code == 403
    assert "西湖区" not in admin.get("/admin/regions").text


# ---- regions ------------------------------------------------------------------------------------------


def test_regions_tree_and_form(browser) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin/regions")
    assert r.status_code == 200
    page = text_of(r)
    assert "南昌市" in page and "东湖区" in page and "九江市" in page
    assert 'class="responsive"' in r.text and 'data-label="所辖县（区）"' in r.text

    created = admin.post(
        "/admin/regions", {"code": "360103", "name": "西湖区", "level": "county", "parent_code": "360100"}
    )
    assert "已新增行政区划：西湖区（360103）" in flash_after(admin, created)
    nanchang_row = re.search(r"<td data-label=\"市\">南昌市</td>.*?</tr>", admin.get("/admin/regions").text, re.S)
    assert nanchang_row and "西湖区" in nanchang_row.group(0)

    edit = admin.get("/admin/regions", params={"edit": "360103"})
    assert 'value="西湖区"' in edit.text and "readonly" in edit.text
    renamed = admin.post(
        "/admin/regions",
        {"code": "360103", "name": "西湖区（新）", "level": "county", "parent_code": "360100"},
    )
    assert "已修改行政区划" in flash_after(admin, renamed)

    bad = admin.post("/admin/regions", {"code": "3601", "name": "", "level": "county", "parent_code": ""})
    assert bad.status_code == 422
    assert field_error(bad, "code") and field_error(bad, "name")
    assert 'value="3601"' in bad.text  # the form keeps what was typed


# ---- organizations ------------------------------------------------------------------------------------


def test_organization_create_with_uscc_errors_at_the_field(browser) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin/organizations")
    assert r.status_code == 200 and "江西省市场监督管理局" in text_of(r)
    assert 'data-label="统一社会信用代码"' in r.text

    good = uscc(random.Random(42), region_code="360000", authority="1", org_type="1")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    form = {
        "name": "江西省民政厅",
        "short_name": "省民政厅",
        "uscc": bad,
        "region_code": "360000",
        "parent_id": "",
        "dept_number": "15",
    }
    refused = admin.post("/admin/organizations", form)
    assert refused.status_code == 422
    assert "统一社会信用代码" in field_error(refused, "uscc")
    assert f'value="{bad}"' in refused.text
    assert "江西省民政厅" not in re.findall(
        r'data-label="机构名称"><a href="[^"]+">([^<]+)</a>', admin.get("/admin/organizations").text
    )

    created = admin.post("/admin/organizations", {**form, "uscc": good, "is_data_authority": ""})
    assert "已新增组织机构：江西省民政厅" in flash_after(admin, created)
    listing = admin.get("/admin/organizations", params={"q": "民政"})
    names = re.findall(r'data-label="机构名称"><a href="[^"]+">([^<]+)</a>', listing.text)
    assert names == ["江西省民政厅"] and good in listing.text


def test_organization_filters_and_edit(browser, world) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin/organizations", params={"region_code": "360100"})
    names = re.findall(r'data-label="机构名称"><a href="[^"]+">([^<]+)</a>', r.text)
    assert sorted(names) == ["南昌市公安局", "南昌市数据局"]
    assert "共 2 个机构" in text_of(r)

    org_id = world.orgs["hrss"]
    r = admin.get(f"/admin/organizations/{org_id}")
    assert r.status_code == 200 and "人社数据专员" in text_of(r)  # the organization's users are listed
    saved = admin.post(
        f"/admin/organizations/{org_id}",
        {
            "name": "江西省人力资源和社会保障厅",
            "short_name": "人社厅",
            "parent_id": "",
            "dept_number": "13",
            "active": "true",
        },
    )
    assert "已保存组织机构" in flash_after(admin, saved)
    assert 'value="人社厅"' in admin.get(f"/admin/organizations/{org_id}").text
    bad = admin.post(f"/admin/organizations/{org_id}", {"name": "江", "dept_number": "x", "active": "true"})
    assert bad.status_code == 422
    assert field_error(bad, "name") and field_error(bad, "dept_number")


# ---- users --------------------------------------------------------------------------------------------


def test_user_lifecycle(browser, world, app) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin/users")
    assert r.status_code == 200
    assert 'type="checkbox" name="roles" value="officer"' in r.text and 'data-label="角色"' in r.text

    form = {
        "username": "hrss_new",
        "display_name": "人社新专员",
        "password": "short",
        "org_id": world.orgs["hrss"],
        "roles": ["officer"],
        "phone": "",
        "email": "",
    }
    weak = admin.post("/admin/users", form)
    assert weak.status_code == 422 and field_error(weak, "password")
    no_roles = admin.post("/admin/users", {**form, "password": "Newpass123", "roles": []})
    assert no_roles.status_code == 422 and field_error(no_roles, "roles")

    created = admin.post("/admin/users", {**form, "password": "Newpass123"})
    assert "已新增用户：人社新专员（hrss_new）" in flash_after(admin, created)
    new_user = Browser(TestClient(app))
    assert new_user.login("hrss_new", "Newpass123").status_code == 303

    user_id = re.search(r'href="/admin/users/([^"]+)">hrss_new<', admin.get("/admin/users").text).group(1)  # type: ignore[union-attr]
    edit = admin.get(f"/admin/users/{user_id}")
    assert edit.status_code == 200 and 'value="officer" checked' in edit.text

    saved = admin.post(
        f"/admin/users/{user_id}",
        {
            "display_name": "人社专员乙",
            "org_id": world.orgs["hrss"],
            "roles": ["officer", "user"],
            "phone": "",
            "email": "",
        },
    )
    assert "已保存用户信息" in flash_after(admin, saved)
    assert 'value="user" checked' in admin.get(f"/admin/users/{user_id}").text

    mismatch = admin.post(f"/admin/users/{user_id}/password", {"password": "Another123", "password_confirm": "x"})
    assert mismatch.status_code == 422 and field_error(mismatch, "password_confirm")
    reset = admin.post(f"/admin/users/{user_id}/password", {"password": "Another123", "password_confirm": "Another123"})
    assert "已重置用户口令" in flash_after(admin, reset)
    assert Browser(TestClient(app)).login("hrss_new", "Newpass123").status_code == 401
    assert Browser(TestClient(app)).login("hrss_new", "Another123").status_code == 303

    off = admin.post(f"/admin/users/{user_id}/deactivate")
    assert "已停用用户" in flash_after(admin, off)
    assert Browser(TestClient(app)).login("hrss_new", "Another123").status_code == 401
    on = admin.post(f"/admin/users/{user_id}/activate")
    assert "已启用用户" in flash_after(admin, on)
    assert Browser(TestClient(app)).login("hrss_new", "Another123").status_code == 303

    me = admin.post(f"/admin/users/{world['admin'].user_id}/deactivate")
    assert me.status_code == 422


# ---- calendar -----------------------------------------------------------------------------------------


def future_csv() -> str:
    start = min(d for d, n in clock.provisional_schedule(FUTURE).holidays.items() if n == "春节")
    days = [start + dt.timedelta(days=i) for i in range(8)]
    later = days[-1] + dt.timedelta(days=1)
    saturday = later + dt.timedelta(days=(5 - later.weekday()) % 7)
    lines = ["date,kind,name"] + [f"{d.isoformat()},holiday,春节" for d in days]
    return "\n".join([*lines, f"{saturday.isoformat()},workday,春节"]) + "\n"


def test_calendar_years_mark_provisional(browser) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get("/admin/calendar")
    assert r.status_code == 200
    rows = dict(re.findall(r'<a href="/admin/calendar/(\d{4})">(.*?)</tr>', r.text, re.S))
    this_year = clock.today().year
    assert str(this_year) in rows
    for year, row in rows.items():
        if clock.year_status(int(year)) == "provisional":
            assert "暂定，待国务院办公厅公布后导入" in row
        else:
            assert "内置" in row or "正式" in row
    assert (
        admin.get("/admin/calendar", params={"year": FUTURE}, follow_redirects=False).headers["location"]
        == f"/admin/calendar/{FUTURE}"
    )


def test_calendar_year_page_import_and_day_forms(browser, client, world) -> None:  # type: ignore[no-untyped-def]
    admin = browser("admin")
    r = admin.get(f"/admin/calendar/{FUTURE}")
    assert r.status_code == 200
    page = text_of(r)
    assert "暂定，待国务院办公厅公布后导入" in page
    assert page.count("<caption>") == 12
    assert '<td class="day-holiday"' in r.text and '<td class="day-workday"' not in r.text
    assert f'href="/api/v1/calendar/years/{FUTURE}/export"' in r.text
    assert 'enctype="multipart/form-data"' in r.text

    bad = admin.post(f"/admin/calendar/{FUTURE}/import", files={"file": ("h.csv", b"date,kind\n", "text/csv")})
    assert bad.status_code == 422 and "表头" in text_of(bad)

    imported = admin.post(
        f"/admin/calendar/{FUTURE}/import",
        {"source": "国办发明电〔2026〕7号"},
        files={"file": ("h.csv", future_csv().encode(), "text/csv")},
    )
    assert f"已导入 {FUTURE} 年节假日安排，共 9 天" in flash_after(admin, imported)
    r = admin.get(f"/admin/calendar/{FUTURE}")
    assert "暂定，待国务院办公厅公布后导入" not in text_of(r)
    assert "国办发明电〔2026〕7号" in text_of(r)
    assert '<td class="day-workday"' in r.text
    assert clock.year_status(FUTURE) == "official"

    # Add a day, then delete it with its button.
    day = dt.date(FUTURE, 6, 1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    invalid = admin.post(f"/admin/calendar/{FUTURE}/days", {"date": day.isoformat(), "kind": "workday", "name": "x"})
    assert invalid.status_code == 422 and field_error(invalid, "kind")
    saved = admin.post(
        f"/admin/calendar/{FUTURE}/days", {"date": day.isoformat(), "kind": "holiday", "name": "测试假日"}
    )
    assert f"已保存 {day.isoformat()}" in flash_after(admin, saved)
    assert not clock.is_working_day(day)
    page = admin.get(f"/admin/calendar/{FUTURE}").text
    assert f'action="/admin/calendar/{FUTURE}/days/{day.isoformat()}/delete"' in page
    deleted = admin.post(f"/admin/calendar/{FUTURE}/days/{day.isoformat()}/delete")
    assert f"已删除 {day.isoformat()}" in flash_after(admin, deleted)
    assert clock.is_working_day(day)


# ---- data sources -------------------------------------------------------------------------------------


CSV = "tyshxydm,qymc\n91360100MA35XXXX0X,南昌某科技有限公司\n"


def test_sources_register_upload_test_and_describe(browser) -> None:  # type: ignore[no-untyped-def]
    officer = browser("market_officer")
    r = officer.get("/sources")
    assert r.status_code == 200
    assert "本部门尚未登记数据源" in text_of(r) and 'id="register"' in r.text

    missing = officer.post("/sources", {"name": "前置库", "kind": "postgresql"})
    assert missing.status_code == 422
    assert field_error(missing, "host") and field_error(missing, "database")

    created = officer.post(
        "/sources",
        {"name": "企业登记文件", "kind": "csv"},
        files={"file": ("企业.csv", CSV.encode(), "text/csv")},
    )
    assert "已登记数据源：企业登记文件" in flash_after(officer, created)
    source_url = created.headers["location"]
    detail = officer.get(source_url)
    assert 'data-label="名称"' in detail.text and "未检测" in text_of(detail)
    table = re.search(rf'href="({re.escape(source_url)}/tables/[^"]+)"', detail.text)
    assert table, "tables listed"

    tested = officer.post(f"{source_url}/test")
    assert "连接检测通过" in flash_after(officer, tested)
    described = officer.get(html.unescape(table.group(1)))
    assert described.status_code == 200
    assert "tyshxydm" in described.text and "qymc" in described.text and "1 行" in text_of(described)

    user = browser("market_user")
    listing = user.get("/sources")
    assert "企业登记文件" in text_of(listing) and 'id="register"' not in listing.text
    assert user.post(f"{source_url}/test").status_code == 403
    assert browser("hrss_officer").get(source_url).status_code == 404

    deleted = officer.post(f"{source_url}/delete")
    assert "已删除数据源：企业登记文件" in flash_after(officer, deleted)


def test_audit_log_page_lists_records_and_verifies_chain(client, world) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import PASSWORD

    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    listing = client.get("/admin/audit?action=auth")
    assert listing.status_code == 200
    assert "auth.login" in listing.text
    # login starts a fresh session, hence a fresh CSRF token
    token = listing.text.split('name="csrf_token" value="')[1].split('"')[0]
    verified = client.post("/admin/audit/verify", data={"csrf_token": token})
    assert verified.status_code == 200
    assert "审计日志完整" in verified.text
    refused = client.post("/admin/audit/verify", data={})
    assert refused.status_code == 403
