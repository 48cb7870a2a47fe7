"""The open-data API end to end: list and search (Chinese words, pinyin, initials), a dataset's metadata, the
data API (items, filters, sort, keyset cursors, counts only when asked, clear 400s), downloads in every format
equal to the open, masked source rows, usage counters, and the provider's publish / refresh / withdraw."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.factories import World, token_for
from tests.unit.test_opendata_fixtures import MARKER, Published, expected_rows, item_keys, open_entry, publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.opendata.models import OpenDataset

API = "/api/v1/open"
N = 120


@pytest.fixture
def ds(db: Database, world: World, settings: Settings) -> Published:
    return publish_dataset(db, world, settings, n=N)


def _typed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "zczb": float(r["zczb"])} for r in rows]


def _all_pages(client: TestClient, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        r = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        rows.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return rows
    raise AssertionError("pagination did not end")


# ---- the catalogue ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["市场主体", "登记", "shichang", "sczt", "企业名称", "市场监管"])
def test_search_finds_the_dataset_by_chinese_words_pinyin_and_initials(
    client: TestClient, ds: Published, q: str
) -> None:
    r = client.get(f"{API}/datasets", params={"q": q, "count": "true"})
    assert r.status_code == 200, r.text
    assert [d["slug"] for d in r.json()["items"]] == [ds.slug]
    assert r.json()["total"] == 1


def test_search_without_a_match_and_facets(client: TestClient, ds: Published) -> None:
    assert client.get(f"{API}/datasets", params={"q": "气象观测"}).json()["items"] == []
    body = client.get(f"{API}/datasets", params={"facets": "true"}).json()
    assert body["total"] is None  # counted only when asked
    assert body["facets"]["field"] == [{"value": "market", "label": "市场监管", "count": 1}]
    assert body["facets"]["opening_type"][0]["value"] == "无条件开放"
    assert client.get(f"{API}/datasets", params={"field": "health"}).json()["items"] == []


def test_dataset_metadata_lists_only_open_items_with_their_masking(client: TestClient, ds: Published) -> None:
    r = client.get(f"{API}/datasets/{ds.slug}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["column"] for i in body["items"]] == ["tyshxydm", "qymc", "fddbr", "lxdh", "hylx", "zczb", "clrq"]
    rules = {i["column"]: i["masking_rule"] for i in body["items"]}
    assert rules["fddbr"] == "name_first" and rules["lxdh"] == "mobile_3_4" and rules["qymc"] == "none"
    assert body["row_count"] == N and body["version"] == 1 and len(body["versions"]) == 1
    assert body["quality_score"] == 100.0
    assert set(body["downloads"]) == {"csv", "json", "jsonl", "xlsx", "parquet"}
    assert client.get(f"{API}/datasets/{ds.dataset_id}").json()["slug"] == ds.slug  # by id too
    assert client.get(f"{API}/datasets/nope").json()["code"] == "opendata.not_found"


# ---- the data API ---------------------------------------------------------------------------------------------


def test_data_pages_by_cursor_equal_the_open_masked_source(client: TestClient, ds: Published) -> None:
    rows = _all_pages(client, f"{API}/datasets/{ds.slug}/data", {"limit": 17})
    assert _typed(rows) == expected_rows(N)


def test_data_sorted_descending_pages_with_ties_and_a_total(client: TestClient, ds: Published) -> None:
    rows = _all_pages(client, f"{API}/datasets/{ds.slug}/data", {"limit": 7, "sort": "-zczb"})
    want = sorted(expected_rows(N), key=lambda r: -r["zczb"])  # stable: ties keep the copy's order
    assert _typed(rows) == want
    first = client.get(f"{API}/datasets/{ds.slug}/data", params={"limit": 5, "count": "true"}).json()
    assert first["total"] == N and len(first["items"]) == 5
    assert client.get(f"{API}/datasets/{ds.slug}/data", params={"limit": 5}).json()["total"] is None


def test_data_filters_select_and_equality_shortcut(client: TestClient, ds: Published) -> None:
    url = f"{API}/datasets/{ds.slug}/data"
    want = [r for r in expected_rows(N) if r["hylx"] == "建筑业" and r["zczb"] >= 500]
    r = client.get(url, params={"filter": ["hylx:eq:建筑业", "zczb:ge:500"], "limit": 200, "count": "true"})
    assert r.status_code == 200, r.text
    assert _typed(r.json()["items"]) == want and r.json()["total"] == len(want)
    r = client.get(url, params={"hylx": "建筑业", "columns": "tyshxydm,qymc", "limit": 200})
    assert r.json()["items"] == [
        {"tyshxydm": w["tyshxydm"], "qymc": w["qymc"]} for w in expected_rows(N) if w["hylx"] == "建筑业"
    ]
    assert [f["id"] for f in r.json()["fields"]] == ["tyshxydm", "qymc"]
    key = expected_rows(N)[42]["tyshxydm"]
    r = client.get(url, params={"filter": f"tyshxydm:eq:{key}"})
    assert [x["tyshxydm"] for x in r.json()["items"]] == [key]
    r = client.get(url, params={"filter": "qymc:like:洪都", "limit": 200})
    assert {x["qymc"] for x in r.json()["items"]} == {w["qymc"] for w in expected_rows(N) if "洪都" in w["qymc"]}
    r = client.get(url, params={"filter": "hylx:in:建筑业|制造业", "limit": 200, "count": "true"})
    assert r.json()["total"] == sum(1 for w in expected_rows(N) if w["hylx"] in ("建筑业", "制造业"))
    r = client.get(url, params={"q": "00007", "limit": 200})
    texts = ("tyshxydm", "qymc", "fddbr", "lxdh", "hylx", "clrq")
    assert r.json()["items"] and _typed(r.json()["items"]) == [
        w for w in expected_rows(N) if any("00007" in w[c] for c in texts)
    ]
    assert client.get(url, params={"filter": "qymc:null:"}).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"filter": "zczb:gt:很多"}, "opendata.bad_filter"),
        ({"filter": "zczb"}, "opendata.bad_filter"),
        ({"filter": "zczb:between:1"}, "opendata.bad_filter"),
        ({"filter": "zczb:like:1"}, "opendata.bad_filter"),
        ({"filter": "mm:eq:x"}, "opendata.unknown_item"),
        ({"filter": "bz:notnull:"}, "opendata.unknown_item"),
        ({"columns": "qymc,mm"}, "opendata.unknown_item"),
        ({"sort": "-mm"}, "opendata.unknown_item"),
        ({"limit": "100000"}, "opendata.limit_too_large"),
        ({"limit": "0"}, "opendata.limit_too_large"),
        ({"cursor": "not-a-cursor"}, "opendata.bad_cursor"),
        ({"filter": ["zczb:gt:1"] * 11}, "opendata.bad_filter"),
    ],
)
def test_bad_queries_get_a_clear_400(client: TestClient, ds: Published, params: dict[str, Any], code: str) -> None:
    r = client.get(f"{API}/datasets/{ds.slug}/data", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code
    assert r.json()["detail"]  # a Chinese explanation
    assert MARKER not in r.text


def test_a_cursor_from_another_sort_is_refused(client: TestClient, ds: Published) -> None:
    url = f"{API}/datasets/{ds.slug}/data"
    cursor = client.get(url, params={"limit": 5, "sort": "zczb"}).json()["next_cursor"]
    r = client.get(url, params={"limit": 5, "sort": "-zczb", "cursor": cursor})
    assert r.status_code == 400 and r.json()["code"] == "opendata.bad_cursor"


# ---- downloads --------------------------------------------------------------------------------------------------


def test_csv_download_has_a_bom_crlf_and_equals_the_source(client: TestClient, ds: Published) -> None:
    r = client.get(f"{API}/datasets/{ds.slug}/download.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and "filename*=UTF-8''" in r.headers["content-disposition"]
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert _typed(rows) == [{**w, "zczb": float(w["zczb"])} for w in expected_rows(N)]
    assert MARKER.encode() not in raw


def test_json_jsonl_xlsx_and_parquet_downloads_equal_the_source(client: TestClient, ds: Published) -> None:
    want = expected_rows(N)
    r = client.get(f"{API}/datasets/{ds.slug}/download.json")
    assert r.status_code == 200 and _typed(json.loads(r.content)) == want
    r = client.get(f"{API}/datasets/{ds.slug}/download.jsonl")
    assert _typed([json.loads(line) for line in r.content.splitlines()]) == want
    r = client.get(f"{API}/datasets/{ds.slug}/download.xlsx")
    assert r.status_code == 200, r.text
    wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
    sheet = list(wb["数据"].iter_rows(values_only=True))
    assert sheet[0] == (
        "统一社会信用代码",
        "企业名称",
        "法定代表人姓名",
        "联系电话",
        "行业类型",
        "注册资本",
        "成立日期",
    )
    columns = list(want[0])
    assert [dict(zip(columns, row, strict=True)) for row in sheet[1:]] == want
    assert MARKER not in json.dumps([list(ws.iter_rows(values_only=True)) for ws in wb.worksheets], default=str)
    r = client.get(f"{API}/datasets/{ds.slug}/download.parquet")
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    assert pq.read_table(io.BytesIO(r.content)).to_pylist() == want


def test_filtered_downloads_hold_only_the_matching_rows(client: TestClient, ds: Published) -> None:
    want = [w for w in expected_rows(N) if w["hylx"] == "制造业"]
    r = client.get(f"{API}/datasets/{ds.slug}/download.csv", params={"filter": "hylx:eq:制造业", "columns": "qymc"})
    assert list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))) == [{"qymc": w["qymc"]} for w in want]
    r = client.get(f"{API}/datasets/{ds.slug}/download.parquet", params={"hylx": "制造业"})
    assert pq.read_table(io.BytesIO(r.content)).to_pylist() == want
    r = client.get(f"{API}/datasets/{ds.slug}/download.xlsx", params={"hylx": "制造业", "sort": "-zczb"})
    rows = list(openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)["数据"].iter_rows(values_only=True))
    assert len(rows) == len(want) + 1
    assert client.get(f"{API}/datasets/{ds.slug}/download.exe").json()["code"] == "opendata.bad_format"


def test_downloads_views_and_api_calls_are_counted(client: TestClient, db: Database, ds: Published) -> None:
    client.get(f"{API}/datasets/{ds.slug}/download.csv")
    client.get(f"{API}/datasets/{ds.slug}/download.json")
    client.get(f"{API}/datasets/{ds.slug}/data")
    client.get(f"/open/datasets/{ds.slug}")
    client.get(f"{API}/datasets/{ds.slug}/data", params={"limit": 0})  # refused: not counted
    with db.session() as s:
        from zhengshu.opendata import service

        d = s.get(OpenDataset, ds.dataset_id)
        assert d is not None
        assert (d.download_count, d.api_call_count, d.view_count) == (2, 1, 1)
        usage = service.usage_by_day(s, dataset_id=ds.dataset_id)
        assert len(usage) == 1 and usage[0].downloads == 2 and usage[0].bytes > 1000


# ---- the chart ---------------------------------------------------------------------------------------------------


def test_the_automatic_chart_counts_by_a_low_cardinality_item(client: TestClient, ds: Published) -> None:
    body = client.get(f"{API}/datasets/{ds.slug}/chart").json()
    assert body["kind"] == "bar" and body["x"] == "hylx" and body["x_name"] == "行业类型"
    assert sorted(p["y"] for p in body["points"]) == [30, 30, 30, 30]


# ---- the provider side --------------------------------------------------------------------------------------------


def test_provider_publishes_through_the_api_and_not_open_items_are_refused(
    client: TestClient, db: Database, world: World, settings: Settings
) -> None:
    entry_id = open_entry(db, world, settings, n=10)
    keys = item_keys(db, world, entry_id)
    officer = token_for(client, "market_officer")
    options = client.get(f"{API}/manage/entries/{entry_id}/options", headers=officer).json()
    assert {o["column"]: o["openable"] for o in options["items"]}["mm"] is False
    body = {"entry_id": entry_id, "field": "market", "items": [{"item_key": keys["qymc"]}, {"item_key": keys["mm"]}]}
    r = client.post(f"{API}/manage/datasets", headers=officer, json=body)
    assert r.status_code == 422 and r.json()["code"] == "opendata.validation_failed"
    assert client.post(f"{API}/manage/datasets", headers=token_for(client, "hrss_officer"), json=body).status_code in (
        403,
        404,
    )
    assert client.post(f"{API}/manage/datasets", json=body).status_code == 401
    body["items"] = [{"item_key": keys["qymc"]}, {"item_key": keys["lxdh"], "masking_rule": "suppress"}]
    r = client.post(f"{API}/manage/datasets", headers=officer, json=body)
    assert r.status_code == 201, r.text
    assert [i["column"] for i in r.json()["items"]] == ["qymc"]  # suppressed means not opened
    again = client.post(f"{API}/manage/datasets", headers=officer, json=body)
    assert again.status_code == 409 and again.json()["code"] == "opendata.already_published"


def test_refresh_makes_a_new_version_and_withdrawal_hides_everything(
    client: TestClient, db: Database, ds: Published, settings: Settings, world: World
) -> None:
    officer = token_for(client, "market_officer")
    front = Path(settings.data_dir) / "uploads" / world.orgs["market"] / "front.sqlite"
    conn = sqlite3.connect(front)
    conn.execute("DELETE FROM od_qy WHERE hylx = '建筑业'")
    conn.commit()
    conn.close()
    r = client.post(f"{API}/manage/datasets/{ds.dataset_id}/refresh", headers=officer, json={"note": "删除建筑业"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["row_count"] == N - 30
    assert [v["note"] for v in r.json()["versions"]] == ["删除建筑业", "首次开放"]
    rows = _all_pages(client, f"{API}/datasets/{ds.slug}/data", {"limit": 200})
    assert _typed(rows) == [w for w in expected_rows(N) if w["hylx"] != "建筑业"]
    r = client.post(f"{API}/manage/datasets/{ds.dataset_id}/unpublish", headers=officer, json={"reason": "数据核查"})
    assert r.status_code == 200 and r.json()["status"] == "unpublished"
    for url in (
        f"{API}/datasets/{ds.slug}",
        f"{API}/datasets/{ds.slug}/data",
        f"{API}/datasets/{ds.slug}/download.csv",
    ):
        assert client.get(url).status_code == 404
    assert client.get(f"{API}/datasets", params={"q": "市场主体"}).json()["items"] == []
    r = client.post(f"{API}/manage/datasets/{ds.dataset_id}/republish", headers=officer)
    assert r.status_code == 200 and r.json()["status"] == "published" and r.json()["version"] == 3
    assert client.get(f"{API}/datasets/{ds.slug}/data").status_code == 200


def test_another_department_cannot_manage_the_dataset(client: TestClient, ds: Published) -> None:
    hrss = token_for(client, "hrss_officer")
    assert client.post(f"{API}/manage/datasets/{ds.dataset_id}/refresh", headers=hrss).status_code == 404
    r = client.patch(f"{API}/manage/datasets/{ds.dataset_id}", headers=hrss, json={"title": "改名"})
    assert r.status_code == 404
    officer = token_for(client, "market_officer")
    r = client.patch(f"{API}/manage/datasets/{ds.dataset_id}", headers=officer, json={"title": "企业登记开放数据"})
    assert r.status_code == 200 and r.json()["title"] == "企业登记开放数据"
    assert client.get(f"{API}/datasets", params={"q": "开放数据"}).json()["items"][0]["slug"] == ds.slug
    listed = client.get(f"{API}/manage/datasets", headers=hrss).json()["items"]
    assert listed == []
    r = client.patch(f"{API}/manage/datasets/{ds.dataset_id}", headers=officer, json={"field": "no-such"})
    assert r.status_code == 422


def test_conditionally_open_data_needs_a_grant(
    client: TestClient, db: Database, world: World, settings: Settings
) -> None:
    cond = publish_dataset(db, world, settings, n=20, opening="有条件开放")
    assert client.get(f"{API}/datasets/{cond.slug}").status_code == 200  # metadata is public
    for url in (f"{API}/datasets/{cond.slug}/data", f"{API}/datasets/{cond.slug}/download.csv"):
        r = client.get(url)
        assert r.status_code in (401, 403), r.text
        assert "tyshxydm" not in r.text or r.headers["content-type"].startswith("application/problem+json")


def test_a_granted_company_takes_only_the_granted_items(
    client: TestClient, db: Database, world: World, settings: Settings
) -> None:
    """The contract with the public side: a registered company applies, the provider approves two items, the
    company's API key then reads and downloads those items (and nothing else); anonymous calls stay refused."""
    from zhengshu.opendata import accounts, conditional
    from zhengshu.opendata.public_schemas import AccessApplicationIn, AccountIn, DecisionIn

    cond = publish_dataset(db, world, settings, n=20, opening="有条件开放")
    with db.session() as s:
        account = accounts.register(
            s,
            account_in=AccountIn(
                kind="company",
                username="acme-data",
                password="Str0ng!Passw0rd#2026",
                display_name="王经办",
                company_name="江西某数据科技有限公司",
                uscc="91360100MAURQ28395",
                contact_name="王经办",
                email="data@example.com",
            ),
        )
        raw_key, _ = accounts.issue_key(s, account=account, name="测试")
        app = conditional.apply(
            s,
            account=account,
            application_in=AccessApplicationIn(
                dataset_id=cond.slug, items=["qymc", "hylx", "zczb"], purpose="行业分析研究"
            ),
        )
        conditional.approve(
            s, actor=world["market_officer"], application_id=app.id, decision_in=DecisionIn(items=["qymc", "hylx"])
        )
    key = {"X-API-Key": raw_key}
    url = f"{API}/datasets/{cond.slug}"
    r = client.get(f"{url}/data", params={"columns": "qymc,hylx", "limit": 100}, headers=key)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [{"qymc": w["qymc"], "hylx": w["hylx"]} for w in expected_rows(20)]
    r = client.get(f"{url}/download.csv", params={"columns": "qymc,hylx"}, headers=key)
    assert r.status_code == 200 and r.content.decode("utf-8-sig").splitlines()[0] == '"qymc","hylx"'
    for params in ({"columns": "qymc,zczb"}, {}):  # an item outside the grant, or all items
        r = client.get(f"{url}/data", params=params, headers=key)
        assert r.status_code == 403 and r.json()["code"] == "opendata.grant_required"
    assert client.get(f"{url}/data", params={"columns": "qymc"}).status_code == 401
    page = client.get(f"/open/datasets/{cond.slug}", headers={"Accept": "text/html"})
    assert "申请使用" in page.text and expected_rows(20)[0]["qymc"] not in page.text
