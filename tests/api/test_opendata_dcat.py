"""The DCAT-AP 3.0 export conforms to the official SHACL shapes (vendored in tests/data/dcat-ap-3.0.0), uses the
EU controlled vocabularies, tags literals by language, pages with Hydra links and carries no not-open item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyshacl
import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from tests.api.test_opendata_public_support import (
    make_dataset,
    public_client,
    scan_for_marker,
)
from zhengshu.opendata.dcat import HYDRA

SHAPES_DIR = Path(__file__).resolve().parents[1] / "data" / "dcat-ap-3.0.0"


@pytest.fixture
def open_client(app: Any) -> Iterator[Any]:
    yield from public_client(app)


@pytest.fixture(scope="module")
def shapes() -> Graph:
    graph = Graph()
    graph.parse(SHAPES_DIR / "dcat-ap-SHACL.ttl", format="turtle")
    graph.parse(SHAPES_DIR / "range.ttl", format="turtle")
    return graph


def _conforms(data: Graph, shapes: Graph) -> None:
    conforms, _report, text = pyshacl.validate(data, shacl_graph=shapes, inference="none", allow_warnings=False)
    assert conforms, text


def test_turtle_and_jsonld_exports_conform_to_dcat_ap_3(db, world, settings, open_client, shapes) -> None:  # type: ignore[no-untyped-def]
    open_id = make_dataset(db, world, settings, slug="qiye-dengji")
    conditional_id = make_dataset(db, world, settings, name="社会保险参保信息", opening="有条件开放", field="social")

    response = open_client.get("/open/catalog.ttl")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/turtle")
    scan_for_marker(response.text)
    turtle = Graph().parse(data=response.text, format="turtle")
    _conforms(turtle, shapes)

    response = open_client.get("/open/catalog.jsonld")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/ld+json")
    scan_for_marker(response.text)
    json.loads(response.text)
    jsonld = Graph().parse(data=response.text, format="json-ld")
    _conforms(jsonld, shapes)
    assert len(jsonld) == len(turtle)

    response = open_client.get("/open/catalog.rdf")
    assert response.status_code == 200
    _conforms(Graph().parse(data=response.text, format="xml"), shapes)

    negotiated = open_client.get("/open/catalog", headers={"accept": "application/ld+json"})
    assert negotiated.headers["content-type"].startswith("application/ld+json")
    assert open_client.get("/open/catalog").headers["content-type"].startswith("text/turtle")

    base = str(open_client.base_url).rstrip("/")
    datasets = set(turtle.subjects(RDF.type, DCAT.Dataset))
    assert datasets == {URIRef(f"{base}/open/datasets/{open_id}"), URIRef(f"{base}/open/datasets/{conditional_id}")}
    ds = URIRef(f"{base}/open/datasets/{conditional_id}")
    titles = {t.language for t in turtle.objects(ds, DCTERMS.title) if isinstance(t, Literal)}
    assert titles == {"zh", "zh-Latn-pinyin"}
    descriptions = {d.language for d in turtle.objects(ds, DCTERMS.description) if isinstance(d, Literal)}
    assert descriptions == {"zh", "en"}
    eu = "http://publications.europa.eu/resource/authority/"
    assert turtle.value(ds, DCAT.theme) == URIRef(eu + "data-theme/SOCI")
    assert turtle.value(ds, DCTERMS.accrualPeriodicity) == URIRef(eu + "frequency/MONTHLY")
    assert turtle.value(ds, DCTERMS.accessRights) == URIRef(eu + "access-right/RESTRICTED")
    formats = {turtle.value(d, DCTERMS.format) for d in turtle.objects(ds, DCAT.distribution)} - {None}
    assert formats == {URIRef(eu + f"file-type/{f}") for f in ("CSV", "JSON", "XLSX", "PARQUET")}
    services = set(turtle.subjects(DCAT.servesDataset, ds))
    assert len(services) == 1 and str(turtle.value(next(iter(services)), DCAT.endpointURL)).endswith("/data")
    open_ds = URIRef(f"{base}/open/datasets/{open_id}")
    assert turtle.value(open_ds, DCTERMS.accessRights) == URIRef(eu + "access-right/PUBLIC")


def test_export_is_paginated_with_hydra_links(db, world, settings, open_client, shapes) -> None:  # type: ignore[no-untyped-def]
    for n in range(3):
        make_dataset(db, world, settings, name=f"测试数据集{n}", slug=f"ds-{n}")
    seen: set[URIRef] = set()
    url: str | None = "/open/catalog.ttl?page=1&page_size=2"
    pages = 0
    while url:
        response = open_client.get(url)
        assert response.status_code == 200
        graph = Graph().parse(data=response.text, format="turtle")
        _conforms(graph, shapes)
        found = set(graph.subjects(RDF.type, DCAT.Dataset))
        assert found and not (found & seen)
        seen |= found
        pages += 1
        paging = next(graph.subjects(RDF.type, HYDRA.PagedCollection))
        assert int(graph.value(paging, HYDRA.totalItems)) == 3
        nxt = graph.value(paging, HYDRA.nextPage)
        url = str(nxt).replace(str(open_client.base_url).rstrip("/"), "") if nxt else None
    assert pages == 2 and len(seen) == 3


def test_bad_paging_gets_a_clear_error(open_client) -> None:  # type: ignore[no-untyped-def]
    response = open_client.get("/open/catalog.ttl", params={"page_size": 100000})
    assert response.status_code == 422
    assert response.json()["code"] == "opendata.page_too_large"
    response = open_client.get("/open/catalog.jsonld", params={"page": 0})
    assert response.status_code == 422
    assert response.json()["code"] == "opendata.bad_page"
