"""Open-data pages: the public portal without login (home, search by Chinese word and pinyin, the dataset page
with its preview, filter, sort, chart, downloads and API examples, departments, developer guide) and the
provider's pages (publish an entry from a form, refresh, withdraw, reopen, edit). Plus the leak test: a marker
planted in a not-open item never appears in any page, API response or download."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.factories import PASSWORD, World
from tests.unit.test_opendata_fixtures import MARKER, Published, expected_rows, item_keys, open_entry, publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}
N = 60


@pytest.fixture
def ds(db: Database, world: World, settings: Settings) -> Published:
    return publish_dataset(db, world, settings, n=N)


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m, "no csrf_token in the page"
    return html.unescape(m.group(1))


def login(client: TestClient, username: str) -> None:
    page = client.get("/login", headers=HTML)
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/open/manage"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_home_lists_new_and_popular_datasets_by_field_and_department(client: TestClient, ds: Published) -> None:
    r = client.get("/open", headers=HTML)
    assert r.status_code == 200
    assert "市场主体登记信息" in r.text and "市场监管" in r.text and "省市场监管局" in r.text
    assert 'name="viewport"' in r.text  # reads on a phone
    for link in ("/open/datasets", "/open/responsibility", "/open/showcase", "/open/developers", "/open/feedback"):
        assert f'href="{link}"' in r.text


def test_search_page_by_chinese_word_and_pinyin_with_facets(client: TestClient, ds: Published) -> None:
    for q in ("登记", "scztdj"):
        r = client.get("/open/datasets", params={"q": q}, headers=HTML)
        assert r.status_code == 200 and f'href="/open/datasets/{ds.slug}"' in r.text
        assert "共找到 1 个数据集" in r.text
    r = client.get("/open/datasets", params={"q": "气象"}, headers=HTML)
    assert "共找到 0 个数据集" in r.text and "换个关键词" in r.text
    r = client.get("/open/datasets", params={"field": "market"}, headers=HTML)
    assert 'class="on"' in r.text and ds.slug in r.text


def test_dataset_page_shows_metadata_preview_downloads_and_api_examples(client: TestClient, ds: Published) -> None:
    r = client.get(f"/open/datasets/{ds.slug}", headers=HTML)
    assert r.status_code == 200
    first = expected_rows(N)[0]
    for text in (first["qymc"], first["fddbr"], first["lxdh"], "行业类型", "第 1 版", "100.0", "curl", "ckanapi"):
        assert text in r.text, text
    assert f"/api/v1/open/datasets/{ds.slug}/download.csv" in r.text
    assert 'id="chart"' in r.text and "echarts.min.js" in r.text
    assert "符合条件 60 行" in r.text


def test_preview_filters_and_sorts(client: TestClient, ds: Published) -> None:
    r = client.get(
        f"/open/datasets/{ds.slug}/preview", params={"f_col": "hylx", "f_op": "eq", "f_val": "建筑业", "sort": "-zczb"}
    )
    assert r.status_code == 200
    want = sorted([w for w in expected_rows(N) if w["hylx"] == "建筑业"], key=lambda w: -w["zczb"])
    assert f"符合条件 {len(want)} 行" in r.text
    positions = [r.text.index(w["qymc"]) for w in want]
    assert positions == sorted(positions)
    r = client.get(f"/open/datasets/{ds.slug}/preview", params={"f_col": "zczb", "f_op": "gt", "f_val": "很多"})
    assert r.status_code == 200 and "格式不对" in r.text
    page = client.get(f"/open/datasets/{ds.slug}", params={"f_col": "hylx", "f_val": "制造业"}, headers=HTML)
    assert "符合条件 15 行" in page.text


def test_departments_and_developer_pages(client: TestClient, ds: Published, world: World) -> None:
    r = client.get("/open/departments", headers=HTML)
    assert r.status_code == 200 and "江西省市场监督管理局" in r.text
    r = client.get(f"/open/departments/{world.orgs['market']}", headers=HTML)
    assert r.status_code == 200 and ds.slug in r.text
    r = client.get("/open/developers", headers=HTML)
    assert r.status_code == 200 and "opendata.bad_filter" in r.text and ds.slug in r.text


def test_provider_publishes_from_the_form_then_refreshes_withdraws_and_reopens(
    client: TestClient, db: Database, world: World, settings: Settings
) -> None:
    assert client.get("/open/manage", headers=HTML, follow_redirects=False).status_code in (303, 401)
    entry_id = open_entry(db, world, settings, n=30)
    keys = item_keys(db, world, entry_id)
    login(client, "market_officer")
    page = client.get("/open/manage", headers=HTML)
    assert page.status_code == 200 and f"/open/manage/publish/{entry_id}" in page.text
    form = client.get(f"/open/manage/publish/{entry_id}", headers=HTML)
    assert form.status_code == 200 and "不予开放" in form.text
    data: dict[str, Any] = {
        "csrf_token": csrf_of(form.text),
        "title": "企业登记信息（开放）",
        "field": "market",
        "licence": "CC-BY-4.0",
        "update_cycle": "每月",
        "item": [keys["qymc"], keys["hylx"], keys["fddbr"]],
        f"rule_{keys['fddbr']}": "name_first",
        "key_item": keys["qymc"],
    }
    r = client.post(f"/open/manage/publish/{entry_id}", data=data, headers=HTML, follow_redirects=False)
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    manage = client.get(target, headers=HTML)
    assert "已开放数据集" in manage.text and "企业登记信息（开放）" in manage.text
    dataset_id = target.rsplit("/", 1)[1]
    token = csrf_of(manage.text)
    for verb, extra, message in (
        ("refresh", {"note": "月度更新"}, "第 2 版"),
        ("edit", {"title": "企业登记信息（公开）", "field": "economy"}, "已保存"),
        ("unpublish", {"reason": "核查数据"}, "已撤回"),
        ("republish", {}, "已重新开放"),
    ):
        r = client.post(f"/open/manage/datasets/{dataset_id}/{verb}", data={"csrf_token": token, **extra}, headers=HTML)
        assert r.status_code == 200 and message in r.text, (verb, r.text[:500])
    r = client.post(f"/open/manage/datasets/{dataset_id}/refresh", data={}, headers=HTML)
    assert r.status_code == 403  # no CSRF token


def test_publish_form_shows_errors(client: TestClient, db: Database, world: World, settings: Settings) -> None:
    entry_id = open_entry(db, world, settings, n=5)
    login(client, "market_officer")
    form = client.get(f"/open/manage/publish/{entry_id}", headers=HTML)
    r = client.post(
        f"/open/manage/publish/{entry_id}", data={"csrf_token": csrf_of(form.text), "field": "market"}, headers=HTML
    )
    assert r.status_code == 422 and "至少" in r.text


# ---- the leak test -------------------------------------------------------------------------------------------------


def _download_text(client: TestClient, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, (url, r.text[:300])
    path = url.split("?")[0]
    if path.endswith(".xlsx"):
        wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
        return repr([list(ws.iter_rows(values_only=True)) for ws in wb.worksheets])
    if path.endswith(".parquet"):
        return repr(pq.read_table(io.BytesIO(r.content)).to_pylist())
    return r.content.decode("utf-8-sig")


def test_a_marker_in_not_open_items_never_leaves(client: TestClient, ds: Published, world: World) -> None:
    api = f"/api/v1/open/datasets/{ds.slug}"
    texts: list[str] = []
    for url in (
        "/open",
        "/open/datasets",
        "/open/datasets?q=登记",
        f"/open/datasets/{ds.slug}",
        f"/open/datasets/{ds.slug}/preview?pq=江西",
        f"/open/datasets/{ds.slug}/preview?f_col=mm&f_op=notnull",
        f"/open/departments/{world.orgs['market']}",
        "/open/departments",
        "/open/developers",
        "/api/v1/open/datasets?facets=true",
        api,
        f"{api}/data?limit=1000",
        f"{api}/data?q={MARKER}",
        f"{api}/data?filter=mm:eq:{MARKER}",
        f"{api}/data?columns=mm,bz",
        f"{api}/chart",
    ):
        r = client.get(url, headers=HTML if url.startswith("/open") else {})
        assert r.status_code in (200, 400), (url, r.status_code)
        texts.append(r.text)
    for fmt in ("csv", "json", "jsonl", "xlsx", "parquet"):
        texts.append(_download_text(client, f"{api}/download.{fmt}"))
        texts.append(_download_text(client, f"{api}/download.{fmt}?hylx=制造业"))
    leaked = [i for i, t in enumerate(texts) if MARKER in t or "登录密码" in t]
    assert not leaked
    assert sum(expected_rows(N)[5]["qymc"] in t for t in texts) >= 7  # the scan did see real data
