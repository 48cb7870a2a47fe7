"""DCAT-AP 3.0 export of the open catalog (Turtle, JSON-LD, RDF/XML), paginated with Hydra paging links.

Every value that DCAT-AP expects from a controlled vocabulary uses the EU Publications Office authority URIs
(data themes mapped from 领域, frequencies from 更新周期, file types, access rights, languages) and IANA media
types, each typed with the class DCAT-AP's range shapes require, so the export conforms to the official SHACL
shapes (``tests/data/dcat-ap-3.0.0``). Literals are language-tagged: Chinese ``@zh``, the pinyin of each title
``@zh-Latn-pinyin`` and English ``@en`` (descriptions generated from the controlled vocabularies' English
labels). Only dataset-level metadata and the published copy's distributions appear, never data items.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.core.errors import ValidationFailed
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset, OpenDatasetVersion
from zhengshu.opendata.vocab import FORMATS, LICENCES
from zhengshu.org.models import Organization

dcat_router = APIRouter(tags=["dcat"])

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
EU = "http://publications.europa.eu/resource/authority/"
THEME_SCHEME = URIRef(EU + "data-theme")
DCAT_VERSION = URIRef(str(DCAT) + "version")  # DCAT 3 term, newer than rdflib's closed DCAT namespace
IANA = "http://www.iana.org/assignments/media-types/"
PUBLISHER_TYPE = URIRef("http://purl.org/adms/publishertype/RegionalAuthority")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000

# 领域 → EU data theme (http://publications.europa.eu/resource/authority/data-theme)
THEMES: dict[str, str] = {
    "economy": "ECON",
    "credit": "ECON",
    "finance": "ECON",
    "market": "ECON",
    "transport": "TRAN",
    "education": "EDUC",
    "tourism": "EDUC",
    "health": "HEAL",
    "social": "SOCI",
    "civil": "SOCI",
    "environment": "ENVI",
    "resources": "ENER",
    "urban": "REGI",
    "geography": "REGI",
    "agriculture": "AGRI",
    "safety": "JUST",
    "science": "TECH",
    "government": "GOVE",
    "other": "GOVE",
}
THEME_LABELS: dict[str, str] = {
    "ECON": "Economy and finance",
    "TRAN": "Transport",
    "EDUC": "Education, culture and sport",
    "HEAL": "Health",
    "SOCI": "Population and society",
    "ENVI": "Environment",
    "ENER": "Energy",
    "REGI": "Regions and cities",
    "AGRI": "Agriculture, fisheries, forestry and food",
    "JUST": "Justice, legal system and public safety",
    "TECH": "Science and technology",
    "GOVE": "Government and public sector",
}
# 更新周期 → EU frequency (http://publications.europa.eu/resource/authority/frequency)
FREQUENCIES: dict[str, tuple[str, str]] = {
    "实时": ("UPDATE_CONT", "continuously updated"),
    "每日": ("DAILY", "daily"),
    "每周": ("WEEKLY", "weekly"),
    "每月": ("MONTHLY", "monthly"),
    "每季度": ("QUARTERLY", "quarterly"),
    "每半年": ("ANNUAL_2", "semiannual"),
    "每年": ("ANNUAL", "annual"),
    "不定期": ("IRREG", "irregular"),
}
# download format → (EU file type, IANA media type)
FILE_TYPES: dict[str, tuple[str, str]] = {
    "csv": ("CSV", "text/csv"),
    "json": ("JSON", "application/json"),
    "xlsx": ("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "parquet": ("PARQUET", "application/vnd.apache.parquet"),
}
ACCESS_RIGHTS = {
    "无条件开放": ("PUBLIC", "public", "无条件开放"),
    "有条件开放": ("RESTRICTED", "restricted", "有条件开放（须申请并获批）"),
}


def pinyin(text: str) -> str:
    # pypinyin's phrase dictionary takes ~50 MB: loaded on the first export, not in every server process
    from pypinyin import lazy_pinyin

    return " ".join(w for w in lazy_pinyin(text) if w.strip())


class CatalogPage:
    """One page of the catalog as an RDF graph."""

    def __init__(self, base: str, node_name: str) -> None:
        self.base = base.rstrip("/")
        self.graph = Graph()
        for prefix, ns in (
            ("dcat", DCAT),
            ("dct", DCTERMS),
            ("foaf", FOAF),
            ("skos", SKOS),
            ("vcard", VCARD),
            ("spdx", SPDX),
            ("hydra", HYDRA),
            ("xsd", XSD),
        ):
            self.graph.bind(prefix, ns)
        self.catalog = URIRef(f"{self.base}/open/catalog")
        self.node_name = node_name
        self._typed: set[URIRef] = set()

    # -- controlled vocabularies, typed as the range shapes require --

    def _concept(self, uri: URIRef, *classes: URIRef, labels: dict[str, str]) -> URIRef:
        if uri not in self._typed:
            self._typed.add(uri)
            for cls in classes:
                self.graph.add((uri, RDF.type, cls))
            for lang, text in labels.items():
                self.graph.add((uri, SKOS.prefLabel, Literal(text, lang=lang)))
        return uri

    def theme(self, field: str) -> URIRef:
        code = THEMES.get(field, "GOVE")
        uri = self._concept(URIRef(f"{EU}data-theme/{code}"), SKOS.Concept, labels={"en": THEME_LABELS[code]})
        self.graph.add((uri, SKOS.inScheme, THEME_SCHEME))
        return uri

    def frequency(self, cycle: str) -> URIRef:
        code, label = FREQUENCIES.get(cycle, ("IRREG", "irregular"))
        return self._concept(
            URIRef(f"{EU}frequency/{code}"), DCTERMS.Frequency, SKOS.Concept, labels={"en": label, "zh": cycle}
        )

    def access_rights(self, opening: str) -> URIRef:
        code, en, zh = ACCESS_RIGHTS.get(opening, ACCESS_RIGHTS["有条件开放"])
        uri = self._concept(
            URIRef(f"{EU}access-right/{code}"), DCTERMS.RightsStatement, SKOS.Concept, labels={"en": en, "zh": zh}
        )
        return uri

    def language(self) -> URIRef:
        return self._concept(
            URIRef(f"{EU}language/ZHO"), DCTERMS.LinguisticSystem, SKOS.Concept, labels={"en": "Chinese", "zh": "中文"}
        )

    def licence(self, code: str) -> URIRef:
        info = LICENCES.get(code) or LICENCES["GOV-OPEN-1.0"]
        uri = URIRef(info["url"])
        if uri not in self._typed:
            self._typed.add(uri)
            self.graph.add((uri, RDF.type, DCTERMS.LicenseDocument))
            self.graph.add((uri, DCTERMS.title, Literal(info["label"], lang="zh")))
            self.graph.add((uri, DCTERMS.title, Literal(info["label_en"], lang="en")))
            self.graph.add((uri, DCTERMS.identifier, Literal(code)))
        return uri

    def agent(self, uri: URIRef, name: str) -> URIRef:
        if uri not in self._typed:
            self._typed.add(uri)
            self.graph.add((uri, RDF.type, FOAF.Agent))
            self.graph.add((uri, FOAF.name, Literal(name, lang="zh")))
            self.graph.add((uri, FOAF.name, Literal(pinyin(name), lang="zh-Latn-pinyin")))
            kind = self._concept(
                PUBLISHER_TYPE, SKOS.Concept, labels={"en": "Regional authority", "zh": "地方政府机构"}
            )
            self.graph.add((uri, DCTERMS.type, kind))
        return uri

    # -- the catalog and its datasets --

    def add_catalog(self, *, modified: datetime | None) -> None:
        g, cat = self.graph, self.catalog
        g.add((cat, RDF.type, DCAT.Catalog))
        g.add((cat, DCTERMS.title, Literal(f"{self.node_name}·开放数据目录", lang="zh")))
        g.add((cat, DCTERMS.title, Literal(f"{pinyin(self.node_name)} open data catalogue", lang="en")))
        g.add(
            (
                cat,
                DCTERMS.description,
                Literal("政府数据开放平台的开放数据目录，含无条件开放和有条件开放的数据集。", lang="zh"),
            )
        )
        g.add(
            (
                cat,
                DCTERMS.description,
                Literal(
                    "Catalogue of the government open data portal: unconditionally and conditionally open datasets.",
                    lang="en",
                ),
            )
        )
        g.add((cat, DCTERMS.publisher, self.agent(URIRef(f"{self.base}/open#publisher"), self.node_name)))
        homepage = URIRef(f"{self.base}/open")
        g.add((homepage, RDF.type, FOAF.Document))
        g.add((cat, FOAF.homepage, homepage))
        g.add((cat, DCTERMS.language, self.language()))
        g.add((THEME_SCHEME, RDF.type, SKOS.ConceptScheme))
        g.add((THEME_SCHEME, DCTERMS.title, Literal("Data theme", lang="en")))
        g.add((cat, DCAT.themeTaxonomy, THEME_SCHEME))
        if modified is not None:
            g.add((cat, DCTERMS.modified, Literal(modified, datatype=XSD.dateTime)))

    def add_dataset(self, dataset: OpenDataset, version: OpenDatasetVersion | None, provider: Organization) -> None:
        g = self.graph
        ds = URIRef(f"{self.base}/open/datasets/{dataset.id}")
        g.add((self.catalog, DCAT.dataset, ds))
        g.add((ds, RDF.type, DCAT.Dataset))
        g.add((ds, DCTERMS.identifier, Literal(dataset.id)))
        g.add((ds, DCTERMS.title, Literal(dataset.title, lang="zh")))
        g.add((ds, DCTERMS.title, Literal(pinyin(dataset.title), lang="zh-Latn-pinyin")))
        g.add((ds, DCTERMS.description, Literal(dataset.description or dataset.title, lang="zh")))
        g.add((ds, DCTERMS.description, Literal(self._english(dataset, provider), lang="en")))
        publisher = self.agent(URIRef(f"{self.base}/open/organizations/{provider.id}"), provider.name)
        g.add((ds, DCTERMS.publisher, publisher))
        if dataset.field:
            g.add((ds, DCAT.theme, self.theme(dataset.field)))
        for tag in dataset.tags:
            g.add((ds, DCAT.keyword, Literal(str(tag), lang="zh")))
        g.add((ds, DCTERMS.accrualPeriodicity, self.frequency(dataset.update_cycle)))
        g.add((ds, DCTERMS.accessRights, self.access_rights(dataset.opening_type)))
        g.add((ds, DCTERMS.language, self.language()))
        if dataset.published_at:
            g.add((ds, DCTERMS.issued, Literal(dataset.published_at, datatype=XSD.dateTime)))
        modified = dataset.refreshed_at or dataset.updated_at
        if modified:
            g.add((ds, DCTERMS.modified, Literal(modified, datatype=XSD.dateTime)))
        g.add((ds, DCAT_VERSION, Literal(str(dataset.version_number))))
        landing = URIRef(f"{self.base}/open/datasets/{dataset.id}")
        g.add((landing, RDF.type, FOAF.Document))
        g.add((ds, DCAT.landingPage, landing))
        contact = BNode()
        g.add((contact, RDF.type, VCARD.Kind))
        g.add((contact, RDF.type, VCARD.Organization))
        g.add((contact, VCARD.fn, Literal(provider.name, lang="zh")))
        phone = "".join(ch for ch in dataset.contact if ch.isdigit() or ch in "+-")
        if phone:
            g.add((contact, VCARD.hasTelephone, URIRef(f"tel:{phone}")))
        g.add((ds, DCAT.contactPoint, contact))
        for fmt in FILE_TYPES:
            self._distribution(ds, dataset, version, fmt)
        self._api_distribution(ds, dataset, publisher)

    def _api_distribution(self, ds: URIRef, dataset: OpenDataset, publisher: URIRef) -> None:
        """The dataset's data API as a distribution served by a dcat:DataService."""
        g = self.graph
        endpoint = URIRef(f"{self.base}/api/v1/open/datasets/{dataset.slug}/data")
        service = URIRef(f"{ds}/api")
        g.add((service, RDF.type, DCAT.DataService))
        g.add((service, DCTERMS.title, Literal(f"{dataset.title} 数据接口", lang="zh")))
        g.add((service, DCTERMS.title, Literal(f"{pinyin(dataset.title)} data API", lang="en")))
        g.add((endpoint, RDF.type, RDFS.Resource))
        g.add((service, DCAT.endpointURL, endpoint))
        description = URIRef(f"{self.base}/api/v1/openapi.json")
        g.add((description, RDF.type, RDFS.Resource))
        g.add((service, DCAT.endpointDescription, description))
        g.add((service, DCAT.servesDataset, ds))
        g.add((service, DCTERMS.publisher, publisher))
        g.add((service, DCTERMS.accessRights, self.access_rights(dataset.opening_type)))
        g.add((service, DCTERMS.license, self.licence(dataset.licence)))
        dist = URIRef(f"{ds}/distributions/api")
        g.add((ds, DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, DCTERMS.title, Literal(f"{dataset.title}（数据接口）", lang="zh")))
        g.add((dist, DCAT.accessURL, endpoint))
        g.add((dist, DCAT.accessService, service))
        json_type = URIRef(IANA + "application/json")
        g.add((json_type, RDF.type, DCTERMS.MediaType))
        g.add((dist, DCAT.mediaType, json_type))
        g.add((dist, DCTERMS.license, self.licence(dataset.licence)))
        g.add((dist, DCTERMS.rights, self.access_rights(dataset.opening_type)))
        self.graph.add((self.catalog, DCAT.service, service))

    def _english(self, dataset: OpenDataset, provider: Organization) -> str:
        theme = THEME_LABELS[THEMES.get(dataset.field, "GOVE")]
        frequency = FREQUENCIES.get(dataset.update_cycle, ("IRREG", "irregular"))[1]
        rights = ACCESS_RIGHTS.get(dataset.opening_type, ACCESS_RIGHTS["有条件开放"])[1]
        licence = LICENCES.get(dataset.licence, {}).get("label_en", dataset.licence)
        return (
            f'Open dataset "{pinyin(dataset.title)}" published by {pinyin(provider.name)}. '
            f"Theme: {theme}. Updated: {frequency}. Records: {dataset.row_count:,}. "
            f"Access: {rights}. Licence: {licence}."
        )

    def _distribution(self, ds: URIRef, dataset: OpenDataset, version: OpenDatasetVersion | None, fmt: str) -> None:
        g = self.graph
        file_type, media_type = FILE_TYPES[fmt]
        dist = URIRef(f"{ds}/distributions/{fmt}")
        g.add((ds, DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        label = FORMATS[fmt]["label"]
        g.add((dist, DCTERMS.title, Literal(f"{dataset.title}（{label}）", lang="zh")))
        g.add((dist, DCTERMS.title, Literal(f"{pinyin(dataset.title)} ({file_type})", lang="zh-Latn-pinyin")))
        url = URIRef(self.base + opendata_service.download_urls(dataset)[fmt])
        g.add((url, RDF.type, RDFS.Resource))  # the range shapes want the class stated
        g.add((dist, DCAT.accessURL, url))
        g.add((dist, DCAT.downloadURL, url))
        fmt_uri = URIRef(f"{EU}file-type/{file_type}")
        g.add((fmt_uri, RDF.type, DCTERMS.MediaTypeOrExtent))
        g.add((dist, DCTERMS.format, fmt_uri))
        media = URIRef(IANA + media_type)
        g.add((media, RDF.type, DCTERMS.MediaType))
        g.add((dist, DCAT.mediaType, media))
        g.add((dist, DCTERMS.license, self.licence(dataset.licence)))
        g.add((dist, DCTERMS.rights, self.access_rights(dataset.opening_type)))
        if dataset.refreshed_at:
            g.add((dist, DCTERMS.modified, Literal(dataset.refreshed_at, datatype=XSD.dateTime)))
        if fmt == "parquet" and version is not None:
            # the published file itself: its size and SHA-256 are known exactly
            g.add((dist, DCAT.byteSize, Literal(version.byte_size, datatype=XSD.nonNegativeInteger)))
            checksum = BNode()
            g.add((checksum, RDF.type, SPDX.Checksum))
            g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
            g.add((SPDX.checksumAlgorithm_sha256, RDF.type, SPDX.ChecksumAlgorithm))
            g.add((checksum, SPDX.checksumValue, Literal(version.checksum, datatype=XSD.hexBinary)))
            g.add((dist, SPDX.checksum, checksum))

    def add_paging(self, *, path: str, page: int, page_size: int, total: int) -> None:
        g = self.graph
        last = max((total + page_size - 1) // page_size, 1)

        def at(n: int) -> URIRef:
            return URIRef(f"{self.base}{path}?page={n}&page_size={page_size}")

        node = at(page)
        g.add((node, RDF.type, HYDRA.PagedCollection))
        g.add((node, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
        g.add((node, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
        g.add((node, HYDRA.firstPage, at(1)))
        g.add((node, HYDRA.lastPage, at(last)))
        if page < last:
            g.add((node, HYDRA.nextPage, at(page + 1)))
        if page > 1:
            g.add((node, HYDRA.previousPage, at(page - 1)))


def build_page(
    session: Session, *, base: str, node_name: str, path: str, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE
) -> Graph:
    """The catalog graph for one page of published datasets (newest first, then by id for a stable order)."""
    if page < 1 or page > MAX_PAGE:
        raise ValidationFailed(f"page 应为 1 到 {MAX_PAGE:,} 之间的整数", code="opendata.bad_page")
    if page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise ValidationFailed(f"page_size 应在 1 到 {MAX_PAGE_SIZE:,} 之间", code="opendata.page_too_large")
    published = OpenDataset.status == "published"
    total = session.scalar(select(func.count()).select_from(OpenDataset).where(published)) or 0
    modified = session.scalar(select(func.max(OpenDataset.refreshed_at)).where(published))
    datasets = list(
        session.scalars(
            select(OpenDataset)
            .where(published)
            .order_by(OpenDataset.published_at.desc(), OpenDataset.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    )
    version_ids = [d.published_version_id for d in datasets if d.published_version_id]
    versions = {
        v.id: v for v in session.scalars(select(OpenDatasetVersion).where(OpenDatasetVersion.id.in_(version_ids)))
    }
    result = CatalogPage(base, node_name)
    result.add_catalog(modified=modified)
    for dataset in datasets:
        version = versions.get(dataset.published_version_id or "")
        result.add_dataset(dataset, version, dataset.provider)
    result.add_paging(path=path, page=page, page_size=page_size, total=total)
    return result.graph


JSONLD_CONTEXT: dict[str, Any] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "skos": str(SKOS),
    "vcard": str(VCARD),
    "spdx": str(SPDX),
    "hydra": str(HYDRA),
    "xsd": str(XSD),
}

SERIALIZATIONS = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}


def serialize(graph: Graph, fmt: str) -> str:
    rdf_format, _ = SERIALIZATIONS[fmt]
    if rdf_format == "json-ld":
        return graph.serialize(format="json-ld", context=JSONLD_CONTEXT, auto_compact=True)
    return graph.serialize(format=rdf_format)


def _export(request: Request, fmt: str, page: int, page_size: int) -> Response:
    from zhengshu.web.deps import get_database

    settings = request.app.state.settings
    with get_database(request).session() as session:
        graph = build_page(
            session,
            base=str(request.base_url),
            node_name=settings.node_name,
            path=request.url.path,
            page=page,
            page_size=page_size,
        )
    _, media_type = SERIALIZATIONS[fmt]
    return Response(serialize(graph, fmt), media_type=media_type)


Page = Query(1, description="页码，从 1 开始")
PageSize = Query(DEFAULT_PAGE_SIZE, description=f"每页数据集数，最大 {MAX_PAGE_SIZE}")


@dcat_router.get("/open/catalog.ttl", summary="DCAT-AP 3.0 开放数据目录（Turtle）")
def catalog_turtle(request: Request, page: int = Page, page_size: int = PageSize) -> Response:
    return _export(request, "ttl", page, page_size)


@dcat_router.get("/open/catalog.jsonld", summary="DCAT-AP 3.0 开放数据目录（JSON-LD）")
def catalog_jsonld(request: Request, page: int = Page, page_size: int = PageSize) -> Response:
    return _export(request, "jsonld", page, page_size)


@dcat_router.get("/open/catalog.rdf", summary="DCAT-AP 3.0 开放数据目录（RDF/XML）")
def catalog_rdfxml(request: Request, page: int = Page, page_size: int = PageSize) -> Response:
    return _export(request, "rdf", page, page_size)


@dcat_router.get("/open/catalog", summary="DCAT-AP 3.0 开放数据目录（按 Accept 协商格式）")
def catalog_negotiated(request: Request, page: int = Page, page_size: int = PageSize) -> Response:
    accept = request.headers.get("accept", "")
    fmt = "jsonld" if "ld+json" in accept else ("rdf" if "rdf+xml" in accept else "ttl")
    response = _export(request, fmt, page, page_size)
    response.headers["Vary"] = "Accept"
    return response
