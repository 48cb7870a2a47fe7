"""The control-plane HTTP API: register a service and an app, the secret shown once, rotation, the OpenAPI
description, call logs and figures for the provider and the consumer, and who may do what."""

from __future__ import annotations

from typing import Any

from tests.factories import World, token_for
from tests.gateway.conftest import PEOPLE, AppCreds, grant, signed
from zhengshu.core.db import Database

API = "/api/v1/gateway"


def service_body(entry_id: str, base: str) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "code": "person-status",
        "name": "个人参保状态查询",
        "description": "按身份证号查询参保状态",
        "kind": "proxy",
        "proxy": {
            "upstream_url": f"{base}/person/{{sfzh}}",
            "params": [{"name": "sfzh", "location": "path", "required": True, "description": "身份证号"}],
            "fields": {"id_no": "身份证号", "name": "姓名", "status": "参保状态"},
            "timeout_s": 2,
        },
    }


def test_register_call_and_read_the_log_over_http(
    gw_client: Any, gw: Any, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    market = token_for(gw_client, "market_officer")
    hrss = token_for(gw_client, "hrss_officer")
    r = gw_client.post(f"{API}/services", json=service_body(person_entry, upstream[0]), headers=market)
    assert r.status_code == 201, r.text
    service = r.json()
    assert service["call_url"].endswith("/gw/person-status") and service["versions"][0]["number"] == 1
    # the consumer may not register services on another department's entry
    body = service_body(person_entry, upstream[0]) | {"code": "other"}
    r = gw_client.post(f"{API}/services", json=body, headers=hrss)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = gw_client.post(f"{API}/services", json=service_body(person_entry, upstream[0]), headers=market)
    assert r.status_code == 409 and r.json()["code"] == "gateway.duplicate_code"

    spec = gw_client.get(f"{API}/services/person-status/openapi.json", headers=hrss).json()
    assert spec["openapi"] == "3.1.0"
    [path] = spec["paths"]
    assert path == "/person-status/{sfzh}"
    assert set(spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"])

    r = gw_client.post(f"{API}/apps", json={"name": "社保核查系统"}, headers=hrss)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["credential"]["secret"]
    app_id = created["app"]["id"]
    listed = gw_client.get(f"{API}/apps/{app_id}", headers=hrss)
    assert secret not in listed.text and listed.json()["credentials"][0]["status"] == "active"
    assert gw_client.get(f"{API}/apps/{app_id}", headers=market).status_code == 404
    plain_user = token_for(gw_client, "market_user")
    assert gw_client.post(f"{API}/apps", json={"name": "x"}, headers=plain_user).status_code == 403

    grant(db, world, person_entry, {"身份证号": "id_6_4", "参保状态": "none"})
    creds = AppCreds(app_id, created["credential"]["access_key"], secret)
    url = f"http://testserver/gw/person-status/{PEOPLE[0][0]}"
    assert gw_client.get(url, headers=signed(creds, "GET", url)).status_code == 200
    assert gw_client.get(url + "?fields=xm", headers=signed(creds, "GET", url + "?fields=xm")).status_code == 403

    rotated = gw_client.post(f"{API}/apps/{app_id}/rotate-secret", json={"overlap_hours": 1}, headers=hrss).json()
    assert rotated["secret"] != secret and rotated["previous_valid_until"]
    new = AppCreds(app_id, rotated["access_key"], rotated["secret"])
    assert gw_client.get(url, headers=signed(new, "GET", url)).status_code == 200
    assert gw_client.get(url, headers=signed(creds, "GET", url)).status_code == 200
    r = gw_client.post(f"{API}/apps/{app_id}/credentials/{creds.access_key}/revoke", headers=hrss)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert gw_client.get(url, headers=signed(creds, "GET", url)).json()["code"] == "gateway.unknown_key"

    gw_client.portal.call(gw.calls.flush)
    # the provider sees who called its service; the consumer its own app's calls; a third party nothing
    stats = gw_client.get(f"{API}/calls/stats", params={"service_id": service["id"]}, headers=market).json()
    assert stats["calls"] == 5 and stats["errors"] == 2
    assert stats["by_app"][0]["app_name"] == "社保核查系统" and stats["by_app"][0]["calls"] == 4
    assert {c["code"] for c in stats["by_code"]} == {"ok", "gateway.item_not_authorized", "gateway.unknown_key"}
    assert sum(d["calls"] for d in stats["by_day"]) == 5
    calls = gw_client.get(f"{API}/calls", params={"app_id": app_id, "count": "true"}, headers=hrss).json()
    assert calls["total"] == 4 and calls["items"][0]["params_hash"]  # the unknown key is nobody's app
    errors = gw_client.get(f"{API}/calls", params={"errors_only": "true"}, headers=hrss).json()
    assert {c["status"] for c in errors["items"]} == {403}
    police = token_for(gw_client, "nc_police_officer")
    assert gw_client.get(f"{API}/calls", headers=police).json()["items"] == []

    # a new version switches what callers receive; disabling stops calls
    r = gw_client.post(
        f"{API}/services/{service['id']}/versions",
        json={"proxy": service_body(person_entry, upstream[0])["proxy"] | {"fields": {"status": "参保状态"}}},
        headers=market,
    )
    assert r.status_code == 201 and r.json()["number"] == 2
    assert gw_client.get(url, headers=signed(new, "GET", url)).json()["items"] == [{"cbzt": "正常参保"}]
    r = gw_client.patch(f"{API}/services/{service['id']}", json={"status": "disabled"}, headers=market)
    assert r.status_code == 200 and r.json()["status"] == "disabled"
    assert gw_client.get(url, headers=signed(new, "GET", url)).json()["code"] == "gateway.service_disabled"
    listed = gw_client.get(f"{API}/services", params={"entry_id": person_entry}, headers=hrss).json()
    assert listed["items"] == []  # a disabled service is visible to its provider only
    assert len(gw_client.get(f"{API}/services", headers=market).json()["items"]) == 1


def test_invalid_definitions_are_explained_field_by_field(gw_client: Any, world: World, person_entry: str) -> None:
    market = token_for(gw_client, "market_officer")
    body = service_body(person_entry, "http://127.0.0.1:9")
    body["proxy"]["fields"] = {"x": "不存在的信息项"}
    body["proxy"]["upstream_url"] = "http://127.0.0.1:9/person/{sfzh}/{other}"
    r = gw_client.post(f"{API}/services", json=body, headers=market)
    assert r.status_code == 422 and r.json()["code"] == "gateway.invalid_service"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"proxy.fields.x", "proxy.upstream_url"}
    r = gw_client.post(f"{API}/services", json=body | {"code": "Bad Code"}, headers=market)
    assert r.status_code == 422
