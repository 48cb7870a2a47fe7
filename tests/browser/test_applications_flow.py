"""The issue's browser story: 人社厅 applies for three items of 市场监管局's 企业登记信息, the data authority passes
compliance, the provider approves two items and refuses one, and 人社厅 sees an authorization for exactly the two;
then 人社厅 objects to a wrong registered address on one record of the mounted table (with a PDF), 市场监管局
corrects it, 人社厅 confirms, and the entry page shows the correction record."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.browser.test_catalog_flow import login
from tests.factories import World, published_entry
from zhengshu.catalog import mounting
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn

pytestmark = pytest.mark.browser

ITEMS = [
    {"name": "统一社会信用代码", "column_name": "tyshxydm", "data_type": "C", "length": 18},
    {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200},
    {"name": "法定代表人", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般3"},
    {"name": "住所", "column_name": "zs", "data_type": "C", "length": 200},
]
APPLIED = ["统一社会信用代码", "企业名称", "法定代表人"]
REFUSED = "法定代表人"
RECORD_KEY = "91360100MA35K8LQ2X"
WRONG_ADDRESS = "江西省南昌市东湖区八一大道 88 号"
RIGHT_ADDRESS = "江西省南昌市红谷滩区丰和中大道 1266 号"
# the smallest file the attachment check accepts as a PDF (signature and trailer)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _front_db(path: Path) -> Path:
    """市场监管局's front-end database with the registration table the entry describes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE qy_djxx (tyshxydm VARCHAR(18) PRIMARY KEY, qymc VARCHAR(200), fddbr VARCHAR(50), zs VARCHAR(200))"
    )
    conn.executemany(
        "INSERT INTO qy_djxx VALUES (?, ?, ?, ?)",
        [
            (RECORD_KEY, "江西赣鄱科技有限公司", "刘建华", WRONG_ADDRESS),
            ("91360100MA35K8LR0P", "南昌洪都食品有限公司", "陈秀英", "江西省南昌市青山湖区北京东路 9 号"),
        ],
    )
    conn.commit()
    conn.close()
    return path


def _setup(db: Database, world: World, settings: Settings) -> tuple[str, str]:
    """A published conditionally shared entry with four items and the registration table mounted on it."""
    entry_id = published_entry(db, world, items=ITEMS)
    path = _front_db(Path(settings.data_dir) / "sources" / "market_frontend.db")
    with db.session() as s:
        source = lake_service.register_source(
            s,
            actor=world["admin"],
            data_dir=settings.data_dir,
            source_in=DataSourceIn.model_validate(
                {
                    "name": "省市场监管局前置库",
                    "kind": "sqlite",
                    "owner_org_id": world.orgs["market"],
                    "options": {"path": str(path)},
                }
            ),
        )
        resource = mounting.mount_table(
            s,
            actor=world["market_officer"],
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=source.id, table="qy_djxx"),
        )
        assert resource.check_ok, resource.check_problems
        return entry_id, resource.id


def _page(browser: Any, base: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before each decision
    login(page, base, username)
    return page


def _open_from_todo(page: Any, base: str, title_part: str) -> None:
    page.goto(f"{base}/todo")
    row = page.locator("tr", has_text=title_part)
    assert row.count() == 1, page.inner_text("main")
    row.locator("text=办理").click()
    page.wait_for_load_state()


def test_apply_decide_authorize_then_object_and_correct(
    live_server: str, browser: Any, db: Database, world: World, settings: Settings
) -> None:
    base = live_server
    entry_id, resource_id = _setup(db, world, settings)

    # 人社厅 applies from the entry page for three of the four items
    consumer = _page(browser, base, "hrss_officer")
    consumer.goto(f"{base}/catalog/{entry_id}")
    consumer.click("#applications >> text=申请使用该数据")
    consumer.wait_for_url(re.compile(r"/applications/new\?entry_id="))
    for name in APPLIED:
        consumer.check(f"input[aria-label='申请{name}']")
    assert not consumer.is_checked("input[aria-label='申请住所']")
    consumer.fill("#f-purpose", "核验参保单位的登记状态和法定代表人，办理社会保险登记与变更")
    consumer.fill("#f-basis", "《社会保险法》第五十七条；本厅“三定”方案规定的社会保险登记职责")
    consumer.fill("#f-business_system", "江西省社会保险信息系统")
    consumer.fill("#f-contact_phone", "0791-86223456")
    consumer.select_option("#f-delivery_way", "接口")
    shot(consumer, "consumer-apply")
    consumer.click("button:has-text('提交申请')")
    consumer.wait_for_url(re.compile(r"/applications/[0-9a-f]+$"))
    assert "申请已提交" in consumer.inner_text(".flash")
    assert "待合规审查" in consumer.inner_text("h1")
    application_url = consumer.url
    assert consumer.locator("#items tbody tr").count() == 3

    # the provincial data authority passes compliance from its to-do list
    reviewer = _page(browser, base, "reviewer")
    _open_from_todo(reviewer, base, "省人社厅申请「企业登记信息」")
    reviewer.click("button:has-text('合规审查通过')")
    reviewer.wait_for_load_state()
    assert "合规审查已通过" in reviewer.inner_text(".flash")
    assert "待提供方审核" in reviewer.inner_text("h1")

    # 市场监管局 decides item by item: two approved, one refused with its reason
    provider = _page(browser, base, "market_officer")
    _open_from_todo(provider, base, "省人社厅申请「企业登记信息」")
    assert provider.url == application_url
    decide = provider.locator("form#decide")
    assert decide.locator("tbody tr").count() == 3
    for name in APPLIED:
        row = decide.locator("tbody tr", has_text=name)
        if name == REFUSED:
            row.locator("input[value=refuse]").check()
            row.locator("input[name^='reason-']").fill("法定代表人信息请通过人口基础库核验接口获取")
        else:
            row.locator("input[value=approve]").check()
    shot(provider, "provider-decide")
    decide.locator("button:has-text('提交决定')").click()
    provider.wait_for_load_state()
    assert "已部分同意" in provider.inner_text(".flash")
    rows = provider.locator("#items tbody tr")
    results = {
        rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(3).inner_text() for i in range(3)
    }
    assert results == {"统一社会信用代码": "同意", "企业名称": "同意", "法定代表人": "不同意"}

    # 人社厅 sees one authorization with exactly the two approved items
    consumer.goto(application_url)
    assert "部分同意" in consumer.inner_text("h1")
    assert "人口基础库核验接口" in consumer.inner_text("#items")
    consumer.click("nav >> text=共享授权")
    rows = consumer.locator("table tbody tr", has_text="企业登记信息")
    assert rows.count() == 1
    assert "有效" in rows.inner_text()
    rows.locator("a").first.click()
    consumer.wait_for_url(re.compile(r"/authorizations/[0-9a-f]+$"))
    names = [n.strip() for n in consumer.locator("#auth-items tbody tr td:first-child").all_inner_texts()]
    assert names == ["统一社会信用代码", "企业名称"]
    shot(consumer, "consumer-authorization")
    # the data authority sees the same authorization and may ask who uses each item
    reviewer.goto(consumer.url)
    assert reviewer.locator("#auth-items tbody tr").count() == 2
    assert reviewer.locator("#auth-items >> text=谁可以使用该信息项").count() == 2

    # 人社厅 objects to the registered address of one record, with a PDF as evidence
    consumer.goto(f"{base}/catalog/{entry_id}")
    consumer.click("#objections >> text=提出数据异议")
    consumer.wait_for_url(re.compile(r"/objections/new\?entry_id="))
    consumer.select_option("#item_key", label="住所")
    consumer.select_option("#kind", "wrong")
    consumer.select_option("#resource_id", resource_id)
    consumer.fill("#record_key", RECORD_KEY)
    consumer.fill("#claimed_value", RIGHT_ADDRESS)
    consumer.fill("#description", "该企业已于今年迁址，社保登记时核对营业执照发现登记住所仍为旧址")
    consumer.set_input_files(
        "#attachments", files=[{"name": "营业执照副本.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    shot(consumer, "consumer-objection")
    consumer.click("button:has-text('提交异议')")
    consumer.wait_for_url(re.compile(r"/objections/[0-9a-f]+$"))
    assert "数据异议已提交" in consumer.inner_text(".flash")
    objection_url = consumer.url
    assert RECORD_KEY in consumer.inner_text("main")
    assert "营业执照副本.pdf" in consumer.inner_text("#attachments")

    # 市场监管局 accepts (the record is flagged) and answers "corrected" with the corrected value
    _open_from_todo(provider, base, f"记录 {RECORD_KEY}")
    assert provider.url == objection_url
    provider.click("button:has-text('受理并标注')")
    provider.wait_for_load_state()
    assert "已受理" in provider.inner_text(".flash")
    provider.select_option("#resolution", "corrected")
    provider.fill("#old_value", WRONG_ADDRESS)
    assert provider.input_value("#corrected_value") == RIGHT_ADDRESS
    provider.fill("#note", "经核对登记档案，企业已办理住所变更登记，前置库未同步，已更正")
    shot(provider, "provider-correct")
    provider.click("button:has-text('提交答复')")
    provider.wait_for_load_state()
    assert "已答复" in provider.inner_text(".flash")
    assert "待异议方确认" in provider.inner_text("h1")

    # 人社厅 confirms; the entry page then shows the correction: what, when and by whom
    consumer.goto(objection_url)
    consumer.click("button:has-text('确认答复并办结')")
    consumer.wait_for_load_state()
    assert "已办结" in consumer.inner_text("h1")
    consumer.goto(f"{base}/catalog/{entry_id}")
    panel = consumer.locator("#objections")
    panel.locator("summary:has-text('更正记录')").click()
    text = panel.inner_text()
    assert RECORD_KEY in text and RIGHT_ADDRESS in text and "市场监管数据专员" in text
    assert "存在异议" not in text  # the flag is gone once the objection is closed
    panel.scroll_into_view_if_needed()
    shot(consumer, "consumer-correction-record")
