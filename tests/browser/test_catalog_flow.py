"""The catalog story in a real browser: an officer compiles and submits, a reviewer approves from the to-do
list (on a phone), and anyone finds the entry by a Chinese word and by pinyin initials."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser


def login(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/$"))


def test_officer_compiles_reviewer_approves_and_search_finds_it(live_server: str, browser: Any) -> None:
    base = live_server
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    login(page, base, "market_officer")
    shot(page, "officer-home")

    page.click("nav >> text=目录一本账")
    page.click("a.btn:has-text('编制目录')")
    page.fill("#name", "企业登记信息")
    page.select_option("#class_code", "102001")
    page.fill("#summary", "全省市场主体登记注册信息，用于市场监管与社会保障核验")
    page.fill("#sharing_condition", "用于依法履行市场监管、社会保障职责")
    page.fill("#tags", "企业、登记")
    items = [("统一社会信用代码", "tyshxydm", "18"), ("企业名称", "qymc", "200"), ("法定代表人", "fddbr", "50")]
    for i, (name, column, length) in enumerate(items):
        page.fill(f"input[name='items-{i}-name']", name)
        page.fill(f"input[name='items-{i}-column_name']", column)
        page.fill(f"input[name='items-{i}-length']", length)
    shot(page, "officer-compile")
    page.click("button[value=submit]")
    page.wait_for_url(re.compile(r"/catalog/[0-9a-f]+$"))
    assert "已保存并提交审核" in page.inner_text(".flash")
    assert "待审核" in page.inner_text("h1")
    assert page.locator("#items tbody tr").count() == 3
    shot(page, "officer-submitted")

    # the reviewer works from a phone
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN")
    login(phone, base, "reviewer")
    phone.click("nav >> text=我的待办")
    row = phone.locator("tr", has_text="企业登记信息")
    assert row.count() == 1
    shot(phone, "reviewer-todo-phone")
    row.locator("text=办理").click()
    phone.click("button:has-text('审核通过并发布')")
    phone.wait_for_load_state()
    assert "审核通过，目录已发布" in phone.inner_text(".flash")
    assert "已发布" in phone.inner_text("h1")
    shot(phone, "reviewer-approved-phone")

    # a user of another department finds it by a Chinese word and by pinyin initials
    other = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    login(other, base, "hrss_officer")
    for query in ("企业", "qydj"):
        other.goto(f"{base}/catalog?q={query}")
        result = other.locator("#results tr", has_text="企业登记信息")
        assert result.count() == 1, query
        assert "已发布" in result.inner_text()
    shot(other, "search-pinyin-initials")
