"""The open-data portal in a real browser: a visitor (no login) searches by a Chinese word, opens the dataset,
filters and sorts the preview (htmx), sees the chart, downloads the CSV, and the file's rows equal the open,
masked rows of the source; the same pages read on a phone."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.factories import World
from tests.unit.test_opendata_fixtures import MARKER, expected_rows, publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database

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
