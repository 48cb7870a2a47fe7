"""Gateway pages: the entry page lists the entry's services; the service page shows the OpenAPI description
and lets an authorized department try it through the gateway; apps with the secret shown once; the call log."""

from __future__ import annotations

from typing import Any

from tests.api.test_catalog_pages import HTML, csrf_of, login
from tests.factories import World
from tests.gateway.conftest import PEOPLE, grant, proxy_service
from zhengshu.core.db import Database


def test_entry_panel_service_page_try_it_apps_and_calls(
    gw_client: Any, gw: Any, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    proxy_service(db, world, person_entry, upstream[0])
    grant(db, world, person_entry, {"身份证号": "id_6_4", "参保状态": "none"})
    login(gw_client, "hrss_officer")

    entry_page = gw_client.get(f"/catalog/{person_entry}", headers=HTML)
    assert entry_page.status_code == 200
    assert "接口服务" in entry_page.text and "/gateway/services/person-status" in entry_page.text

    listing = gw_client.get("/gateway", headers=HTML)
    assert listing.status_code == 200 and "个人参保状态查询" in listing.text

    page = gw_client.get("/gateway/services/person-status", headers=HTML)
    assert page.status_code == 200
    assert "OpenAPI" in page.text and "/person-status/{sfzh}" in page.text
    assert "还没有启用的应用" in page.text

    # register an app: the secret is on this answer only
    apps = gw_client.get("/gateway/apps", headers=HTML)
    created = gw_client.post(
        "/gateway/apps", data={"csrf_token": csrf_of(apps.text), "name": "社保核查系统"}, headers=HTML
    )
    assert created.status_code == 200 and "密钥只显示这一次" in created.text
    again = gw_client.get("/gateway/apps", headers=HTML)
    assert "社保核查系统" in again.text and "密钥只显示这一次" not in again.text
    assert "本部门可调用的接口服务" in again.text and "/gateway/services/person-status" in again.text
    invalid = gw_client.post("/gateway/apps", data={"csrf_token": csrf_of(again.text), "name": ""}, headers=HTML)
    assert invalid.status_code == 422

    page = gw_client.get("/gateway/services/person-status", headers=HTML)
    app_id = page.text.split('<option value="', 1)[1].split('"', 1)[0]
    tried = gw_client.post(
        "/gateway/services/person-status/try",
        data={"csrf_token": csrf_of(page.text), "app_id": app_id, "p:sfzh": PEOPLE[0][0]},
        headers=HTML,
    )
    assert tried.status_code == 200, tried.text
    assert "状态 <strong>200</strong>" in tried.text
    assert "360102********1234" in tried.text and "正常参保" in tried.text and "李明" not in tried.text

    gw_client.portal.call(gw.calls.flush)
    calls = gw_client.get("/gateway/calls", headers=HTML)
    assert calls.status_code == 200 and "社保核查系统" in calls.text and "成功" in calls.text

    # the provider sees who called its service on the service page
    gw_client.post("/logout", data={"csrf_token": csrf_of(calls.text)}, headers=HTML)
    login(gw_client, "market_officer")
    page = gw_client.get("/gateway/services/person-status", headers=HTML)
    assert "近 7 天调用情况" in page.text and "社保核查系统" in page.text
