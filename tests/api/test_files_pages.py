"""File exchange and ferry pages: send form (422 with the reason on a bad file), inbox and outbox, package page
with download, sign-for and receipt status, withdraw; ferry request, approval page and ledger."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import PASSWORD, World
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.files import nodekeys
from zhengshu.exchange.files.models import FerryExport, FilePackage
from zhengshu.security.actor import SYSTEM_ACTOR

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}
CSV = "统一社会信用代码,企业名称\n91360000MA35XXXX1A,江西某某有限公司\n".encode()


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m, "no csrf_token in the page"
    return html.unescape(m.group(1))


@pytest.fixture
def browser(app: FastAPI, world: World) -> Iterator[Any]:
    opened: list[TestClient] = []

    def open_as(username: str) -> TestClient:
        c = TestClient(app)
        c.__enter__()
        opened.append(c)
        page = c.get("/login", headers=HTML)
        r = c.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/"},
            headers=HTML,
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        return c

    yield open_as
    for c in opened:
        c.__exit__(None, None, None)


def _send(c: TestClient, world: World, files: list[tuple[str, tuple[str, bytes, str]]]) -> Any:
    form = c.get("/exchange/packages/new", headers=HTML)
    assert form.status_code == 200 and "签名并发送" in form.text
    return c.post(
        "/exchange/packages/new",
        data={
            "csrf_token": csrf_of(form.text),
            "title": "企业名单",
            "recipient_org_ids": [world.orgs["hrss"]],
            "expires_days": "10",
        },
        files=files,
        headers=HTML,
        follow_redirects=False,
    )


def test_send_sign_for_and_see_the_receipt(browser: Any, world: World, db: Database) -> None:
    sender = browser("market_officer")
    bad = _send(sender, world, [("files", ("a.pdf", b"MZ\x90\x00" * 8, "application/pdf"))])
    assert bad.status_code == 422 and "伪装" in bad.text
    sent = _send(sender, world, [("files", ("企业名单.csv", CSV, "text/csv"))])
    assert sent.status_code == 303
    url = sent.headers["location"]
    with db.session() as s:
        package = s.query(FilePackage).one()
        file_id = package.files[0].id
    page = sender.get(url, headers=HTML)
    assert "企业名单.csv" in page.text and "未签收" in page.text and "撤回" in page.text
    assert "企业名单" in sender.get("/exchange/packages?box=sent", headers=HTML).text

    recipient = browser("hrss_officer")
    inbox = recipient.get("/exchange/packages", headers=HTML)
    assert "企业名单" in inbox.text
    download = recipient.get(f"{url}/files/{file_id}", headers={**HTML, "Range": "bytes=0-9"})
    assert download.status_code == 206 and download.content == CSV[:10]
    detail = recipient.get(url, headers=HTML)
    assert "核验并签收" in detail.text
    signed = recipient.post(
        f"{url}/receipt", data={"csrf_token": csrf_of(detail.text)}, headers=HTML, follow_redirects=False
    )
    assert signed.status_code == 303
    after = sender.get(url, headers=HTML)
    assert "签名有效，文件齐全" in after.text

    outsider = browser("nc_police_officer")
    assert outsider.get(url, headers=HTML).status_code == 404
    withdrawn = sender.post(
        f"{url}/withdraw",
        data={"csrf_token": csrf_of(after.text), "reason": "误发"},
        headers=HTML,
        follow_redirects=False,
    )
    assert withdrawn.status_code == 303
    assert "已撤回" in recipient.get(url, headers=HTML).text


def test_ferry_request_approval_and_ledger(browser: Any, world: World, db: Database, settings: Settings) -> None:
    officer = browser("market_officer")
    empty = officer.get("/exchange/ferry", headers=HTML)
    assert "尚未与对方网络的节点建立信任" in empty.text
    with db.session() as s:
        peer = nodekeys.create_local_key(
            s, actor=SYSTEM_ACTOR, node_code="360000W", node_name="互联网区", settings=settings
        )
        document = nodekeys.public_document(peer)
        s.delete(peer)
        s.flush()
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=document)
    page = officer.get("/exchange/ferry", headers=HTML)
    created = officer.post(
        "/exchange/ferry/exports",
        data={
            "csrf_token": csrf_of(page.text),
            "title": "企业名录导出",
            "classification": "非涉密",
            "target_node": "360000W",
        },
        files=[("files", ("企业名录.csv", CSV, "text/csv"))],
        headers=HTML,
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    reviewer = browser("reviewer")
    export_page = reviewer.get(created.headers["location"], headers=HTML)
    assert "批准导出" in export_page.text and "待审批" in export_page.text
    approved = reviewer.post(
        created.headers["location"] + "/approve",
        data={"csrf_token": csrf_of(export_page.text), "comment": "同意"},
        headers=HTML,
        follow_redirects=False,
    )
    assert approved.status_code == 303
    with db.session() as s:
        assert s.query(FerryExport).one().state == "approved"
    ledger = reviewer.get("/exchange/ferry", headers=HTML)
    assert "摆渡台账" in ledger.text and "已导出" in ledger.text
    assert "摆渡台账" not in officer.get("/exchange/ferry", headers=HTML).text


def test_data_export_from_the_ferry_page(browser: Any, world: World, db: Database, settings: Settings) -> None:
    from tests.factories import published_entry
    from zhengshu.catalog import mounting
    from zhengshu.lake import service as lake_service
    from zhengshu.lake.schemas import DataSourceIn

    with db.session() as s:
        peer = nodekeys.create_local_key(
            s, actor=SYSTEM_ACTOR, node_code="360000W", node_name="互联网区", settings=settings
        )
        document = nodekeys.public_document(peer)
        s.delete(peer)
        s.flush()
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=document)
    entry_id = published_entry(db, world, opening_type="无条件开放")
    folder = lake_service.upload_dir(data_dir=settings.data_dir, org_id=world.orgs["market"])
    folder.mkdir(parents=True)
    (folder / "qy.csv").write_text("tyshxydm,qymc,fddbr\n91360000MA35XXXX1A,江西某某有限公司,张三\n", encoding="utf-8")
    with db.session() as s:
        officer = world["market_officer"]
        source_in = DataSourceIn.model_validate(
            {"name": "企业", "kind": "csv", "options": {"path": str(folder / "qy.csv")}}
        )
        source = lake_service.register_source(s, actor=officer, source_in=source_in, data_dir=settings.data_dir)
        mount_in = mounting.TableMountIn(source_id=source.id, table="qy.csv", allow_problems=True)
        resource_id = mounting.mount_table(s, actor=officer, entry_id=entry_id, mount_in=mount_in).id
    officer_client = browser("market_officer")
    page = officer_client.get("/exchange/ferry", headers=HTML)
    assert "提交数据导出审批" in page.text and "企业登记信息" in page.text
    data = {"csrf_token": csrf_of(page.text), "title": "企业名录", "classification": "非涉密", "target_node": "360000W"}
    missing = officer_client.post("/exchange/ferry/exports/data", data={**data, "resource_id": "nope"}, headers=HTML)
    assert missing.status_code == 404 and "未找到本部门挂接的该数据资源" in missing.text
    created = officer_client.post(
        "/exchange/ferry/exports/data", data={**data, "resource_id": resource_id}, headers=HTML, follow_redirects=False
    )
    assert created.status_code == 303, created.text
    detail = officer_client.get(created.headers["location"], headers=HTML)
    assert "导出的数据" in detail.text and "企业名称" in detail.text and "法定代表人" not in detail.text
