"""The open-data portal in a real browser: a visitor (no login) searches by a Chinese word, opens the dataset,
filters and sorts the preview (htmx), sees the chart, downloads the CSV, and the file's rows equal the open,
masked rows of the source; the same pages read on a phone. Then the conditionally open case: a company registers
at /open, applies for a dataset with a purpose, the provider approves fewer items on its review page, and the
company downloads a CSV whose rows are exactly the granted items of the open, masked rows."""

from __future__ import annotations

import csv
import io
import random
import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_opendata_public_support import PUBLIC_PASSWORD
from tests.browser.conftest import shot
from tests.browser.test_catalog_flow import login
from tests.factories import World
from tests.unit.test_opendata_fixtures import MARKER, expected_rows, publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demo.identities import uscc

pytestmark = pytest.mark.browser
N = 80


def test_visitor_searches_previews_filters_and_downloads_the_csv(
    live_server: str, browser: Any, db: Database, world: World, settings: Settings
) -> None:
    ds = publish_dataset(db, world, settings, n=N)
    base = live_server
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    page.goto(f"{base}/open")
    assert "政府数据开放" in page.inner_text("h1")
    page.fill("input[name=q]", "市场主体")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"{base}/open/datasets?q=*")
    assert "共找到 1 个数据集" in page.inner_text("#result-count")
    shot(page, "open-search")
    page.click("text=市场主体登记信息")
    page.wait_for_url(f"{base}/open/datasets/{ds.slug}")
    assert "符合条件 80 行" in page.inner_text("#preview-count")

    # filter the preview: only 建筑业, then sort by 注册资本 descending (two clicks on the header)
    page.select_option("#f_col", "hylx")
    page.select_option("#f_op", "eq")
    page.fill("#f_val", "建筑业")
    page.click("#preview button[type=submit]")
    page.wait_for_function("document.querySelector('#preview-count').innerText.includes('符合条件 20 行')")
    want = [w for w in expected_rows(N) if w["hylx"] == "建筑业"]
    cells = page.locator("#preview-table tbody tr td:nth-child(5)").all_inner_texts()
    assert cells == ["建筑业"] * len(want)
    page.click("#preview-table th a[data-column=zczb]")
    page.wait_for_function("document.querySelector('#preview-table th a[data-column=zczb]').innerText.includes('▲')")
    page.click("#preview-table th a[data-column=zczb]")
    page.wait_for_function("document.querySelector('#preview-table th a[data-column=zczb]').innerText.includes('▼')")
    capitals = [float(v) for v in page.locator("#preview-table tbody tr td:nth-child(6)").all_inner_texts()]
    assert capitals == sorted((w["zczb"] for w in want), reverse=True)
    page.wait_for_selector("#chart canvas", timeout=10_000)
    shot(page, "open-dataset")

    with page.expect_download() as caught:
        page.click("a[data-format=csv]")
    download = caught.value
    raw = Path(download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [{**r, "zczb": float(r["zczb"])} for r in rows] == expected_rows(N)
    assert MARKER not in page.content()

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN")
    phone.goto(f"{base}/open/datasets/{ds.slug}")
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than the phone"
    assert phone.locator("a[data-format=csv]").is_visible()
    shot(phone, "open-dataset-phone")


COMPANY = "江西赣江数据科技有限公司"
APPLIED = ["tyshxydm", "qymc", "fddbr", "hylx", "zczb", "clrq"]  # all but 联系电话
GRANTED = ["tyshxydm", "qymc", "fddbr", "hylx", "zczb"]  # the provider leaves out 成立日期


def _csv_rows(raw: bytes) -> list[dict[str, Any]]:
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return [{**r, "zczb": float(r["zczb"])} if "zczb" in r else r for r in rows]


def test_company_applies_provider_approves_and_company_downloads_the_granted_items(
    live_server: str, browser: Any, db: Database, world: World, settings: Settings
) -> None:
    ds = publish_dataset(db, world, settings, n=N, opening="有条件开放")
    base = live_server
    company = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)

    # the company finds the dataset: no download before a grant, only "apply"
    company.goto(f"{base}/open")
    company.fill("input[name=q]", "市场主体")
    company.press("input[name=q]", "Enter")
    company.click("text=市场主体登记信息")
    company.wait_for_url(f"{base}/open/datasets/{ds.slug}")
    assert company.locator("a[data-format]").count() == 0
    company.click("a.btn:has-text('申请使用')")
    company.wait_for_url(re.compile(rf"{re.escape(base)}/open/login\?next="))

    # registers as a company (法人) and comes back to apply
    company.click("text=注册新账号")
    company.check("input[name=kind][value=company]")
    company.fill("#username", "ganjiang-data")
    company.fill("#password", PUBLIC_PASSWORD)
    company.fill("#display_name", "李经办")
    company.fill("#email", "li@example.com")
    company.fill("#company_name", COMPANY)
    company.fill("#uscc", uscc(random.Random(5), region_code="360100", authority="9", org_type="1"))
    company.click("button:has-text('注册')")
    company.wait_for_url(f"{base}/open/account")
    assert COMPANY in company.inner_text("main")
    company.goto(f"{base}/open/datasets/{ds.slug}")
    company.click("a.btn:has-text('申请使用')")
    company.wait_for_url(f"{base}/open/datasets/{ds.slug}/apply")
    company.uncheck("input[name=items][value=lxdh]")
    company.fill("#purpose", "用于企业信用评估模型的训练与验证，不对外提供原始数据")
    company.fill("#requested_days", "90")
    shot(company, "open-apply")
    company.click("button:has-text('提交申请')")
    company.wait_for_url(f"{base}/open/account#applications")
    assert "申请已提交" in company.inner_text(".flash")
    assert "待提供方审核" in company.inner_text("#applications + .card")

    # the provider reviews it on its own review page and approves all but 成立日期
    provider = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    login(provider, base, "market_officer")
    provider.click("nav >> text=开放审核")
    provider.wait_for_url(re.compile(rf"{re.escape(base)}/open/review/applications"))
    provider.click("table >> text=市场主体登记信息")
    provider.wait_for_url(re.compile(rf"{re.escape(base)}/open/review/applications/[0-9a-f]+$"))
    detail = provider.inner_text("main")
    assert COMPANY in detail and "企业信用评估模型" in detail
    provider.uncheck("input[name=items][value=clrq]")
    provider.fill("#days", "30")
    shot(provider, "open-review")
    provider.click("button.ok:has-text('同意')")
    provider.wait_for_selector(".flash:has-text('已同意')")
    assert "已同意" in provider.inner_text("h1")

    # the company sees the grant and downloads exactly the granted items, masked
    company.goto(f"{base}/open/account")
    assert "有效" in company.inner_text("#grants + .card")
    company.goto(f"{base}/open/datasets/{ds.slug}")
    assert "成立日期" not in company.inner_text("#granted-items")
    with company.expect_download() as caught:
        company.click("a[data-format=csv]")
    rows = _csv_rows(Path(caught.value.path()).read_bytes())
    assert rows == [{c: r[c] for c in GRANTED} for r in expected_rows(N)]
    assert MARKER not in company.content()
    # the whole dataset (with items not granted) stays refused
    refused = company.request.get(f"{base}/api/v1/open/datasets/{ds.slug}/download.csv")
    assert refused.status == 403 and refused.json()["code"] == "opendata.grant_required"
    shot(company, "open-granted")
