"""The CKAN-compatible Action API: the real ``ckanapi`` client against a live server, CKAN's envelope and errors,
masking, conditional access and quotas, and no trace of a not-open item in any response."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import ckanapi
import pytest
import uvicorn

from tests.api.test_opendata_public_support import (
    MARKER,
    issue_key,
    make_dataset,
    public_client,
    register,
    scan_for_marker,
)
from zhengshu.opendata import conditional
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.opendata.public_schemas import AccessApplicationIn


@pytest.fixture
def open_client(app: Any) -> Iterator[Any]:
    yield from public_client(app)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ckan_server(app: Any, world: Any) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_ckanapi_lists_searches_and_reads_datasets(db, world, settings, ckan_server) -> None:  # type: ignore[no-untyped-def]
    first = make_dataset(db, world, settings, slug="qiye-dengji", rows=40)
    make_dataset(db, world, settings, name="公共厕所位置", slug="gongce", field="urban", tags=["城建"])
    with ckanapi.RemoteCKAN(ckan_server) as ckan:
        assert ckan.action.status_show()["ckan_version"].startswith("2.")
        assert sorted(ckan.action.package_list()) == ["gongce", "qiye-dengji"]

        found = ckan.action.package_search(q="登记", rows=10, **{"facet.field": ["organization", "groups", "tags"]})
        assert found["count"] == 1 and found["results"][0]["name"] == "qiye-dengji"
        assert found["search_facets"]["groups"]["items"][0]["name"] == "market"
        assert ckan.action.package_search(q="qydj")["count"] == 1  # pinyin initials
        assert ckan.action.package_search(fq="groups:urban")["count"] == 1
        assert ckan.action.package_search(fq="tags:企业 groups:urban")["count"] == 0
        page = ckan.action.package_search(rows=1, start=1, sort="title_string asc")
        assert page["count"] == 2 and len(page["results"]) == 1

        package = ckan.action.package_show(id="qiye-dengji")
        assert package["id"] == first and package["organization"]["title"] == "江西省市场监督管理局"
        assert {r["format"] for r in package["resources"]} == {"CSV", "JSON", "XLSX", "PARQUET"}
        assert package["license_id"] == "CC-BY-4.0" and package["isopen"] is True

        orgs = ckan.action.organization_list(all_fields=True)
        assert [(o["title"], o["package_count"]) for o in orgs] == [("江西省市场监督管理局", 2)]
        org = ckan.action.organization_show(id=orgs[0]["name"], include_datasets=True)
        assert {p["name"] for p in org["packages"]} == {"gongce", "qiye-dengji"}
        groups = ckan.action.group_list(all_fields=True)
        assert {g["name"]: g["package_count"] for g in groups}["urban"] == 1

        resource = ckan.action.resource_show(id=package["resources"][0]["id"])
        assert resource["package_id"] == first and resource["datastore_active"] is True

        rows = ckan.action.datastore_search(
            resource_id=resource["id"], filters={"tyshxydm": "91360100MA0000007X"}, include_total=True
        )
        assert rows["total"] == 1 and len(rows["records"]) == 1
        record = rows["records"][0]
        assert record["qymc"] == "南昌市第7号测试企业有限公司"
        assert record["fddbr"] == "王**"  # masked as declared
        assert set(record) == {"tyshxydm", "qymc", "fddbr", "zczb"}
        assert [f["id"] for f in rows["fields"]] == ["tyshxydm", "qymc", "fddbr", "zczb"]

        plain = ckan.action.datastore_search(resource_id=resource["id"], limit=5, offset=35, sort="zczb desc")
        assert "total" not in plain  # counted only when asked
        assert [r["zczb"] for r in plain["records"]] == [104.0, 103.0, 102.0, 101.0, 100.0]

        with pytest.raises(ckanapi.NotFound):
            ckan.action.package_show(id="no-such-dataset")
        with pytest.raises(ckanapi.ValidationError):
            ckan.action.datastore_search(resource_id=resource["id"], limit=10_000_000)
        with pytest.raises(ckanapi.ValidationError):
            ckan.action.datastore_search(resource_id=resource["id"], filters={"nbhcyj": "x"})
        with pytest.raises(ckanapi.SearchQueryError):
            ckan.action.package_search(fq="secret_field:1")


def test_envelope_errors_and_get_requests(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    make_dataset(db, world, settings, slug="qiye-dengji")
    response = open_client.get("/api/3/action/package_list")
    body = response.json()
    assert response.status_code == 200 and body["success"] is True and body["result"] == ["qiye-dengji"]
    assert body["help"].endswith("/api/3/action/help_show?name=package_list")

    helped = open_client.get(body["help"].split("testserver")[-1]).json()
    assert helped["success"] is True and "名称" in helped["result"]

    response = open_client.get("/api/3/action/no_such_action")
    assert response.status_code == 400 and response.json()["success"] is False

    response = open_client.get("/api/3/action/package_show", params={"id": "missing"})
    assert response.status_code == 404
    assert response.json()["error"]["__type"] == "Not Found Error"

    response = open_client.get(
        "/api/action/datastore_search",
        params={"resource_id": "qiye-dengji", "filters": '{"zczb": "not-a-number"}'},
    )
    assert response.status_code == 409 and response.json()["error"]["__type"] == "Validation Error"

    # what CKAN harvesters send for an incremental run
    since = {"fq": "metadata_modified:[2000-01-01T00:00:00Z TO *] -organization:nobody", "sort": "id asc"}
    assert open_client.get("/api/3/action/package_search", params=since).json()["result"]["count"] == 1
    future = {"fq": "metadata_modified:[2999-01-01T00:00:00Z TO *]"}
    assert open_client.get("/api/3/action/package_search", params=future).json()["result"]["count"] == 0
    bad = open_client.get("/api/3/action/package_search", params={"fq": "metadata_modified:[yesterday TO *]"})
    assert bad.status_code == 409 and bad.json()["error"]["__type"] == "Search Query Error"

    response = open_client.get("/api/3/action/package_search", params={"rows": "5000"})
    assert response.status_code == 409 and "rows" in response.json()["error"]

    response = open_client.post(
        "/api/3/action/package_search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_conditional_dataset_needs_a_grant_and_counts_the_quota(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, opening="有条件开放", slug="shebao")
    account_id = register(db)
    raw = issue_key(db, account_id, quota=2)
    params = {"resource_id": f"{dataset_id}-csv", "limit": "3"}

    response = open_client.get("/api/3/action/datastore_search", params=params)
    assert response.status_code == 403 and response.json()["error"]["__type"] == "Authorization Error"
    response = open_client.get("/api/3/action/datastore_search", params=params, headers={"X-API-Key": raw})
    assert response.status_code == 403

    with db.session() as s:
        app = conditional.apply(
            s,
            account=s.get(PublicAccount, account_id),
            application_in=AccessApplicationIn(dataset_id=dataset_id, purpose="社保政策研究，仅作统计分析"),
            settings=settings,
        )
        conditional.approve(s, actor=world["market_officer"], application_id=app.id, settings=settings)

    # ckanapi sends the key as Authorization (no scheme) and X-CKAN-API-Key
    response = open_client.post("/api/action/datastore_search", json=params, headers={"Authorization": raw})
    assert response.status_code == 200, response.text
    assert len(response.json()["result"]["records"]) == 3
    response = open_client.get("/api/3/action/datastore_search", params={**params, "api_key": raw})
    assert response.status_code == 200
    response = open_client.get("/api/3/action/datastore_search", params=params, headers={"X-API-Key": raw})
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert "上限" in response.json()["error"]["message"]


def test_no_response_carries_a_not_open_item(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, slug="qiye-dengji")
    calls = [
        ("package_list", {}),
        ("package_search", {"q": "企业", "facet.field": '["organization","groups","tags","res_format"]'}),
        ("package_show", {"id": dataset_id}),
        ("organization_list", {"all_fields": "true"}),
        ("group_list", {"all_fields": "true"}),
        ("resource_show", {"id": f"{dataset_id}-csv"}),
        ("datastore_search", {"resource_id": dataset_id, "limit": "1000", "include_total": "true"}),
        ("datastore_search", {"resource_id": dataset_id, "q": "南昌"}),
        ("status_show", {}),
    ]
    for name, params in calls:
        response = open_client.get(f"/api/3/action/{name}", params=params)
        assert response.status_code == 200, (name, response.text)
        scan_for_marker(response.text)
    org = open_client.get("/api/3/action/organization_list").json()["result"][0]
    response = open_client.get("/api/3/action/organization_show", params={"id": org, "include_datasets": "true"})
    scan_for_marker(response.text)
    found = open_client.get("/api/3/action/datastore_search", params={"resource_id": dataset_id, "q": MARKER})
    assert found.json()["result"]["records"] == []


def test_published_through_the_portal_core_nothing_closed_leaves(db, world, settings, open_client) -> None:  # type: ignore[no-untyped-def]
    """The whole path: a provider publishes from its front-end table (the portal core's publish, which filters
    and masks); CKAN and DCAT then carry neither the closed item nor the unnamed column."""
    from tests.unit.test_opendata_fixtures import MARKER as CORE_MARKER
    from tests.unit.test_opendata_fixtures import expected_rows, publish_dataset

    published = publish_dataset(db, world, settings, n=50)
    responses = [
        open_client.get("/api/3/action/package_show", params={"id": published.slug}),
        open_client.get("/api/3/action/package_search", params={"q": "市场主体"}),
        open_client.get(
            "/api/3/action/datastore_search",
            params={"resource_id": published.dataset_id, "limit": "1000", "sort": "tyshxydm asc"},
        ),
        open_client.get("/open/catalog.ttl"),
        open_client.get("/open/catalog.jsonld"),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert CORE_MARKER not in response.text
    records = responses[2].json()["result"]["records"]
    assert records == expected_rows(50)
    assert responses[1].json()["result"]["count"] == 1
