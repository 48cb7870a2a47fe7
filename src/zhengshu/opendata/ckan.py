"""A CKAN-compatible Action API subset, so existing CKAN clients and harvesters work unchanged.

Paths ``/api/3/action/<name>`` and ``/api/action/<name>`` (GET with query parameters or POST with a JSON body,
as ckanapi sends), the CKAN envelope ``{"help", "success", "result"}`` and CKAN's error shapes and HTTP codes
(404 ``Not Found Error``, 409 ``Validation Error`` / ``Search Query Error``, 403 ``Authorization Error``, 400 for
an unknown action). Mapping: a provider department is an *organization*, a 领域 is a *group*, an open dataset is
a *package*, each download format of its published copy is a *resource* (``<dataset id>-<format>``), and
``datastore_search`` reads the published copy, which holds only the open items, already masked.

Unlike CKAN, ``datastore_search`` counts matching rows only when ``include_total`` is true (counting every row
on every query is what CKAN users complain about, ckan #3450 / #9234); paging uses ``_links.next`` as in CKAN.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from zhengshu.core.errors import Forbidden, NotFound, Unauthenticated, ZhengshuError
from zhengshu.opendata import access
from zhengshu.opendata.access import QuotaExceeded
from zhengshu.opendata.models import OpenDataset, OpenDatasetVersion
from zhengshu.opendata.vocab import FIELDS, FORMATS, LICENCES, field_label
from zhengshu.org.models import Organization

ckan_router = APIRouter(tags=["ckan"])

CKAN_VERSION = "2.10.4"
PUBLISHED = "published"
MAX_ROWS = 1000  # package_search rows (CKAN's ckan.search.rows_max default)
DATASTORE_DEFAULT_LIMIT = 100
DATASTORE_MAX_LIMIT = 32000  # CKAN's ckan.datastore.search.rows_max default
RESOURCE_FORMATS = ("csv", "json", "xlsx", "parquet")
_FQ_TERM = re.compile(
    r'(?P<neg>-)?(?P<key>[a-z_]+):(?:\[(?P<lo>[^\]\s]+) TO (?P<hi>[^\]\s]+)\]|"(?P<quoted>[^"]*)"|(?P<bare>[^\s"]+))'
)
RANGE_FIELDS = ("metadata_modified", "metadata_created")


class CkanError(Exception):
    """An error answered in CKAN's shape."""

    def __init__(self, status: int, kind: str, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"__type": self.kind}
        if self.message:
            error["message"] = self.message
        error.update(self.fields)
        return error


def _validation(field: str, message: str) -> CkanError:
    return CkanError(409, "Validation Error", f"{field}: {message}", **{field: [message]})


def _not_found(what: str) -> CkanError:
    return CkanError(404, "Not Found Error", f"Not found: {what}")


# ---- request plumbing -------------------------------------------------------------------------------------


def ckan_session(request: Request) -> Iterator[Session]:
    """A unit of work for read-only CKAN calls: POST is how ckanapi calls every action, so these are not
    audited as changes; the usage counters the call writes commit with it."""
    session: Session = request.app.state.db.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    if request.method == "POST":
        raw = await request.body()
        if raw:
            ctype = request.headers.get("content-type", "")
            if "form" in ctype:
                form = await request.form()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
            else:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise CkanError(400, "Bad Request", "Bad request - JSON Error: could not parse body") from exc
                if not isinstance(body, dict):
                    raise CkanError(400, "Bad Request", "Bad request - JSON Error: body must be an object")
                params.update(body)
    return params


def _help(request: Request, name: str) -> str:
    return str(request.base_url).rstrip("/") + f"/api/3/action/help_show?name={name}"


def _int(params: dict[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _validation(name, "Invalid integer") from None
    if value < minimum:
        raise _validation(name, f"Must be a natural number (>= {minimum})")
    if maximum is not None and value > maximum:
        raise _validation(name, f"Must be less than or equal to {maximum} (最多 {maximum:,})")
    return value


def _bool(params: dict[str, Any], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise _validation(name, "Invalid boolean")


def _json_param(params: dict[str, Any], name: str) -> Any:
    """A parameter that may come as a JSON value (POST) or as JSON text (GET)."""
    raw = params.get(name)
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError:
                raise _validation(name, "Could not parse as valid JSON") from None
    return raw


def _list_param(params: dict[str, Any], name: str) -> list[str] | None:
    value = _json_param(params, name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise _validation(name, "Must be a list of strings")


# ---- shapes -----------------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    # CKAN shows naive UTC ISO timestamps
    return moment.astimezone().replace(tzinfo=None).isoformat() if moment else None


def _org_name(org: Organization) -> str:
    return org.id


def _org_dict(org: Organization, *, package_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": org.id,
        "name": _org_name(org),
        "title": org.name,
        "display_name": org.name,
        "description": f"{org.name}（统一社会信用代码 {org.uscc}）",
        "type": "organization",
        "is_organization": True,
        "state": "active" if org.active else "deleted",
        "approval_status": "approved",
        "image_url": "",
        "image_display_url": "",
        "created": _iso(org.created_at),
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def _group_dict(code: str, *, package_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": code,
        "name": code,
        "title": field_label(code),
        "display_name": field_label(code),
        "description": f"领域：{field_label(code)}",
        "type": "group",
        "is_organization": False,
        "state": "active",
        "approval_status": "approved",
        "image_url": "",
        "image_display_url": "",
    }
    if package_count is not None:
        out["package_count"] = package_count
    return out


def _resource_id(dataset: OpenDataset, fmt: str) -> str:
    return f"{dataset.id}-{fmt}"


def download_url(base: str, dataset: OpenDataset, fmt: str) -> str:
    """Where the portal core serves the published copy in ``fmt``."""
    from zhengshu.opendata import service as opendata_service

    return base + opendata_service.download_urls(dataset)[fmt]


def _resource_dicts(base: str, dataset: OpenDataset, version: OpenDatasetVersion | None) -> list[dict[str, Any]]:
    out = []
    for position, fmt in enumerate(RESOURCE_FORMATS):
        info = FORMATS[fmt]
        out.append(
            {
                "id": _resource_id(dataset, fmt),
                "package_id": dataset.id,
                "name": f"{dataset.title}（{info['label']}）",
                "description": f"{dataset.title} 的开放数据，{info['label']} 格式",
                "format": fmt.upper(),
                "mimetype": info["media_type"].split(";")[0],
                "url": download_url(base, dataset, fmt),
                "url_type": None,
                "datastore_active": True,
                "position": position,
                "state": "active",
                "size": version.byte_size if version is not None and fmt == "parquet" else None,
                "hash": version.checksum if version is not None and fmt == "parquet" else "",
                "created": _iso(dataset.published_at),
                "last_modified": _iso(dataset.refreshed_at),
                "metadata_modified": _iso(dataset.updated_at),
            }
        )
    return out


def _current_version(session: Session, dataset: OpenDataset) -> OpenDatasetVersion | None:
    return session.get(OpenDatasetVersion, dataset.published_version_id) if dataset.published_version_id else None


def package_dict(session: Session, base: str, dataset: OpenDataset) -> dict[str, Any]:
    licence = LICENCES.get(dataset.licence, {})
    version = _current_version(session, dataset)
    resources = _resource_dicts(base, dataset, version)
    tags = [
        {"id": str(t), "name": str(t), "display_name": str(t), "state": "active", "vocabulary_id": None}
        for t in dataset.tags
    ]
    extras = {
        "opening_type": dataset.opening_type,
        "opening_condition": dataset.opening_condition,
        "update_cycle": dataset.update_cycle,
        "catalog_code": dataset.entry_code,
        "region_code": dataset.region_code,
        "row_count": str(dataset.row_count),
        "version": str(dataset.version_number),
        "quality_score": "" if dataset.quality_score is None else f"{dataset.quality_score:.2f}",
    }
    return {
        "id": dataset.id,
        "name": dataset.slug,
        "title": dataset.title,
        "notes": dataset.description,
        "type": "dataset",
        "state": "active",
        "private": False,
        "author": dataset.provider.name if dataset.provider else "",
        "author_email": None,
        "maintainer": dataset.provider.name if dataset.provider else "",
        "maintainer_email": None,
        "maintainer_contact": dataset.contact,
        "license_id": dataset.licence,
        "license_title": licence.get("label", dataset.licence),
        "license_url": licence.get("url", ""),
        "isopen": dataset.opening_type == "无条件开放",
        "url": f"{base}/open/datasets/{dataset.id}",
        "version": str(dataset.version_number),
        "metadata_created": _iso(dataset.published_at or dataset.created_at),
        "metadata_modified": _iso(dataset.refreshed_at or dataset.updated_at),
        "owner_org": dataset.provider_org_id,
        "organization": _org_dict(dataset.provider) if dataset.provider else None,
        "groups": [_group_dict(dataset.field)] if dataset.field else [],
        "tags": tags,
        "num_tags": len(tags),
        "resources": resources,
        "num_resources": len(resources),
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }


# ---- lookups ----------------------------------------------------------------------------------------------


def _published() -> Any:
    return select(OpenDataset).where(OpenDataset.status == PUBLISHED)


def _dataset(session: Session, ref: Any) -> OpenDataset:
    if not isinstance(ref, str) or not ref:
        raise _validation("id", "Missing value")
    dataset = session.scalars(_published().where(or_(OpenDataset.id == ref, OpenDataset.slug == ref))).first()
    if dataset is None:
        raise _not_found("Dataset")
    return dataset


def _resource(session: Session, ref: Any) -> tuple[OpenDataset, str]:
    """``<dataset id>-<format>``; a bare dataset id or name reads as its CSV resource."""
    if not isinstance(ref, str) or not ref:
        raise _validation("resource_id", "Missing value")
    dataset_ref, _, fmt = ref.rpartition("-")
    if fmt in RESOURCE_FORMATS and dataset_ref:
        try:
            return _dataset(session, dataset_ref), fmt
        except CkanError:
            pass
    try:
        return _dataset(session, ref), "csv"
    except CkanError:
        raise _not_found("Resource") from None


def _org(session: Session, ref: Any) -> Organization:
    if not isinstance(ref, str) or not ref:
        raise _validation("id", "Missing value")
    org = session.get(Organization, ref)
    if org is None:
        org = session.scalars(select(Organization).where(Organization.name == ref)).first()
    if org is None:
        raise _not_found("Organization")
    return org


def _provider_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OpenDataset.provider_org_id, func.count())
        .where(OpenDataset.status == PUBLISHED)
        .group_by(OpenDataset.provider_org_id)
    ).all()
    return {org_id: int(n) for org_id, n in rows}


def _field_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OpenDataset.field, func.count()).where(OpenDataset.status == PUBLISHED).group_by(OpenDataset.field)
    ).all()
    return {code: int(n) for code, n in rows}


# ---- actions ----------------------------------------------------------------------------------------------

Action = Callable[[Session, Request, dict[str, Any]], Any]
ACTIONS: dict[str, Action] = {}


def action(name: str) -> Callable[[Action], Action]:
    def register(fn: Action) -> Action:
        ACTIONS[name] = fn
        return fn

    return register


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@action("status_show")
def status_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """站点与 CKAN 版本信息。"""
    settings = request.app.state.settings
    return {
        "site_title": f"{settings.node_name}·数据开放",
        "site_description": "政府数据开放门户（政数 zhengshu），提供 CKAN 兼容的 Action API 子集",
        "site_url": _base(request),
        "ckan_version": CKAN_VERSION,
        "locale_default": "zh_Hans_CN",
        "extensions": ["datastore", "dcat"],
    }


@action("help_show")
def help_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    name = params.get("name")
    fn = ACTIONS.get(name) if isinstance(name, str) else None
    if fn is None:
        raise _not_found("Action")
    return (fn.__doc__ or f"CKAN action {name}").strip()


@action("package_list")
def package_list(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """所有已开放数据集的名称（limit、offset）。"""
    limit = _int(params, "limit", 10_000, minimum=1, maximum=10_000)
    offset = _int(params, "offset", 0)
    stmt = select(OpenDataset.slug).where(OpenDataset.status == PUBLISHED).order_by(OpenDataset.slug)
    return list(session.scalars(stmt.offset(offset).limit(limit)))


@action("package_show")
def package_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """一个数据集（id 或名称）的完整元数据与资源。"""
    dataset = _dataset(session, params.get("id") or params.get("name_or_id"))
    _record(session, dataset, views=1)
    return package_dict(session, _base(request), dataset)


@action("resource_show")
def resource_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """一个资源（某下载格式）的元数据。"""
    ref = params.get("id")
    if not isinstance(ref, str) or not ref:
        raise _validation("id", "Missing value")
    dataset, fmt = _resource(session, ref)
    resources = _resource_dicts(_base(request), dataset, _current_version(session, dataset))
    return next(r for r in resources if r["id"] == _resource_id(dataset, fmt))


@action("organization_list")
def organization_list(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """有开放数据集的提供部门（all_fields、sort、limit、offset）。"""
    all_fields = _bool(params, "all_fields", False)
    limit = _int(params, "limit", 1000, minimum=1, maximum=1000)
    offset = _int(params, "offset", 0)
    wanted = _list_param(params, "organizations")
    counts = _provider_counts(session)
    orgs = list(session.scalars(select(Organization).where(Organization.id.in_(list(counts)))))
    if wanted:
        orgs = [o for o in orgs if o.id in wanted or o.name in wanted]
    sort = str(params.get("sort") or "title asc")
    if sort.startswith("package_count"):
        orgs.sort(key=lambda o: (-counts.get(o.id, 0), o.name))
    else:
        orgs.sort(key=lambda o: o.name, reverse=sort.endswith("desc"))
    orgs = orgs[offset : offset + limit]
    if all_fields:
        return [_org_dict(o, package_count=counts.get(o.id, 0)) for o in orgs]
    return [_org_name(o) for o in orgs]


@action("organization_show")
def organization_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """一个提供部门（include_datasets）。"""
    org = _org(session, params.get("id"))
    counts = _provider_counts(session)
    if org.id not in counts:
        raise _not_found("Organization")
    out = _org_dict(org, package_count=counts[org.id])
    if _bool(params, "include_datasets", False):
        datasets = session.scalars(
            _published().where(OpenDataset.provider_org_id == org.id).order_by(OpenDataset.title).limit(1000)
        )
        out["packages"] = [package_dict(session, _base(request), d) for d in datasets]
    out["users"] = []
    out["extras"] = []
    out["groups"] = []
    out["tags"] = []
    return out


@action("group_list")
def group_list(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """领域（all_fields、sort）。"""
    all_fields = _bool(params, "all_fields", False)
    limit = _int(params, "limit", 1000, minimum=1, maximum=1000)
    offset = _int(params, "offset", 0)
    counts = _field_counts(session)
    codes = list(FIELDS)
    wanted = _list_param(params, "groups")
    if wanted:
        codes = [c for c in codes if c in wanted]
    sort = str(params.get("sort") or "title asc")
    if sort.startswith("package_count"):
        codes.sort(key=lambda c: (-counts.get(c, 0), c))
    elif sort.startswith("name"):
        codes.sort(reverse=sort.endswith("desc"))
    codes = codes[offset : offset + limit]
    if all_fields:
        return [_group_dict(c, package_count=counts.get(c, 0)) for c in codes]
    return codes


@action("group_show")
def group_show(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """一个领域。"""
    ref = params.get("id")
    if not isinstance(ref, str) or ref not in FIELDS:
        raise _not_found("Group")
    return _group_dict(ref, package_count=_field_counts(session).get(ref, 0))


# ---- package_search ---------------------------------------------------------------------------------------

FACETABLE = ("organization", "groups", "tags", "res_format", "license_id")


def _parse_fq(fq: str) -> list[tuple[bool, str, str]]:
    terms: list[tuple[bool, str, str]] = []
    rest = fq
    for m in _FQ_TERM.finditer(fq):
        if m.group("lo") is not None:
            # a range, as CKAN harvesters ask for changes since their last run: metadata_modified:[X TO *]
            value = f"{m.group('lo')}\x00{m.group('hi')}"
        else:
            value = m.group("quoted") if m.group("quoted") is not None else m.group("bare")
        terms.append((bool(m.group("neg")), m.group("key"), value))
        rest = rest.replace(m.group(0), " ", 1)
    leftover = rest.replace("AND", " ").replace("+", " ").strip()
    if leftover:
        raise CkanError(409, "Search Query Error", f"Search Query Error: 无法解析 fq 条件：{leftover}")
    return terms


def _moment(text: str, field: str) -> datetime | None:
    if text == "*":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CkanError(409, "Search Query Error", f"Search Query Error: {field} 的时间 {text} 无法识别") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _in_range(dataset: OpenDataset, key: str, value: str) -> bool:
    if "\x00" not in value:
        raise CkanError(409, "Search Query Error", f"Search Query Error: {key} 只支持范围条件 [起 TO 止]")
    lo_text, hi_text = value.split("\x00")
    lo, hi = _moment(lo_text, key), _moment(hi_text, key)
    moment = SORTS[key](dataset)
    if moment is None:
        return False
    return (lo is None or moment >= lo) and (hi is None or moment <= hi)


def _matches(dataset: OpenDataset, key: str, value: str) -> bool:
    if key in RANGE_FIELDS:
        return _in_range(dataset, key, value)
    if key in ("organization", "owner_org"):
        return value in (dataset.provider_org_id, dataset.provider.name if dataset.provider else None)
    if key == "groups":
        return dataset.field == value
    if key == "tags":
        return value in [str(t) for t in dataset.tags]
    if key == "res_format":
        return value.lower() in RESOURCE_FORMATS
    if key == "license_id":
        return dataset.licence == value
    if key in ("name", "id"):
        return value in (dataset.slug, dataset.id)
    if key == "opening_type":
        return dataset.opening_type == value
    raise CkanError(
        409, "Search Query Error", f"Search Query Error: 不支持的 fq 字段 {key}（可用：{', '.join(FACETABLE)}）"
    )


def _facet_values(dataset: OpenDataset, facet: str) -> list[str]:
    if facet == "organization":
        return [dataset.provider_org_id]
    if facet == "groups":
        return [dataset.field] if dataset.field else []
    if facet == "tags":
        return [str(t) for t in dataset.tags]
    if facet == "res_format":
        return [f.upper() for f in RESOURCE_FORMATS]
    return [dataset.licence]


def _facet_display(session: Session, facet: str, value: str) -> str:
    if facet == "organization":
        org = session.get(Organization, value)
        return org.name if org else value
    if facet == "groups":
        return field_label(value)
    if facet == "license_id":
        return str(LICENCES.get(value, {}).get("label", value))
    return value


SORTS: dict[str, Callable[[OpenDataset], Any]] = {
    "metadata_modified": lambda d: d.refreshed_at or d.updated_at,
    "metadata_created": lambda d: d.published_at or d.created_at,
    "title_string": lambda d: d.title,
    "id": lambda d: d.id,
    "name": lambda d: d.slug,
    "views_total": lambda d: d.view_count,
    "downloads_total": lambda d: d.download_count,
}


@action("package_search")
def package_search(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """检索数据集：q（中文词、拼音、首字母）、fq、rows、start、sort、facet.field。"""
    rows = _int(params, "rows", 10, maximum=MAX_ROWS)
    start = _int(params, "start", 0)
    q = str(params.get("q") or "").strip()
    if q in ("*:*", "*"):
        q = ""
    fq = str(params.get("fq") or "").strip()
    facet_fields = _list_param(params, "facet.field") or []
    bad = [f for f in facet_fields if f not in FACETABLE]
    if bad:
        raise CkanError(409, "Search Query Error", f"Search Query Error: 不支持的分面字段 {', '.join(bad)}")
    facet_limit = _int(params, "facet.limit", 50, minimum=-1)
    sort = str(params.get("sort") or ("score desc" if q else "metadata_modified desc"))

    from zhengshu.opendata import service as opendata_service

    # the portal's own search: Chinese words, pinyin and initials, ranked by title hits
    stmt = opendata_service.public_query(opendata_service.PublicFilters(q=q or None))
    candidates = list(session.scalars(stmt))
    fq_terms = _parse_fq(fq) if fq else []
    found = [d for d in candidates if all(_matches(d, k, v) != neg for neg, k, v in fq_terms)]

    clauses = [c.strip() for c in sort.split(",") if c.strip()]
    if clauses and clauses[0].split(" ")[0] == "score":
        # the portal's relevance order already; later clauses only break its ties, which it orders itself
        if clauses[0].lower().endswith(" asc"):
            found.reverse()
        clauses = []
    for clause in reversed(clauses):
        field, _, direction = clause.partition(" ")
        if field not in SORTS:
            raise CkanError(409, "Search Query Error", f"Search Query Error: 不支持的排序字段 {field}")
        found.sort(key=SORTS[field], reverse=direction.strip().lower() != "asc")

    search_facets: dict[str, Any] = {}
    facets: dict[str, Any] = {}
    for facet in facet_fields:
        counter: Counter[str] = Counter()
        for d in found:
            counter.update(_facet_values(d, facet))
        top = counter.most_common(None if facet_limit < 0 else facet_limit)
        facets[facet] = dict(top)
        search_facets[facet] = {
            "title": facet,
            "items": [{"name": v, "display_name": _facet_display(session, facet, v), "count": n} for v, n in top],
        }
    base = _base(request)
    return {
        "count": len(found),
        "sort": sort,
        "facets": facets,
        "search_facets": search_facets,
        "results": [package_dict(session, base, d) for d in found[start : start + rows]],
    }


# ---- datastore_search -------------------------------------------------------------------------------------


def _record(session: Session, dataset: OpenDataset, **counts: int) -> None:
    from zhengshu.opendata import service as opendata_service

    opendata_service.record_usage(session, dataset_id=dataset.id, **counts)


def _ckan_type(typ: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "numeric"
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_date(typ):
        return "date"
    if pa.types.is_timestamp(typ):
        return "timestamp"
    return "text"


def _filters(published: Any, filters: dict[str, Any], q: Any) -> list[Any]:
    """CKAN ``filters`` ({item: value or [values]}) and a per-item ``q`` object as the portal's typed filters."""
    from zhengshu.opendata import query

    out: list[Any] = []
    for column, value in filters.items():
        query.check_column(published, column)
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > query.MAX_IN_VALUES:
            raise _validation("filters", f"{column}: 取值个数应在 1 到 {query.MAX_IN_VALUES} 之间")
        if any(isinstance(v, (dict, list)) or v is None for v in values):
            raise _validation("filters", f"{column}: 取值应为文本或数字")
        typ = published.type_of(column)
        converted = [query.convert(str(v).lower() if isinstance(v, bool) else str(v), typ, column) for v in values]
        out.append(
            query.Filter(column, "eq", converted[0]) if len(converted) == 1 else query.Filter(column, "in", converted)
        )
    if isinstance(q, dict):
        for column, text in q.items():
            query.check_column(published, column)
            if not query.is_text(published.type_of(column)):
                raise _validation("q", f"{column} 不是文本字段，不能全文检索")
            out.append(query.Filter(column, "like", query.convert(str(text), published.type_of(column), column)))
    return out


def _sort(sort: Any) -> str | None:
    """CKAN's ``"item [asc|desc]"`` as the portal's ``item`` / ``-item`` (one sort item)."""
    if sort is None or sort == "":
        return None
    if not isinstance(sort, str):
        raise _validation("sort", 'Must be a string such as "item desc"')
    clauses = [c.strip() for c in sort.split(",") if c.strip()]
    if len(clauses) > 1:
        raise _validation("sort", "仅支持按一个字段排序")
    words = clauses[0].split()
    if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise _validation("sort", '排序应为 "字段 asc" 或 "字段 desc"')
    column = words[0].strip('"')
    return f"-{column}" if len(words) == 2 and words[1].lower() == "desc" else column


@action("datastore_search")
def datastore_search(session: Session, request: Request, params: dict[str, Any]) -> Any:
    """查询开放副本：resource_id、filters、q、fields、sort、limit、offset、include_total。"""
    from zhengshu.opendata import query

    resource_ref = params.get("resource_id") or params.get("id")
    dataset, _fmt = _resource(session, resource_ref)
    version = _current_version(session, dataset)
    path = Path(request.app.state.settings.data_dir) / version.file_path if version is not None else None
    if path is None or not path.is_file():
        raise _not_found("Resource")
    published = query.open_published(path)
    fields = _list_param(params, "fields")
    if fields is not None:
        unknown = [f for f in fields if f not in published.columns]
        if unknown:
            raise _validation("fields", "field not in resource: " + ", ".join(unknown))
    wanted = fields or published.columns
    try:
        account = access.account_from_request(session, request)
        access.check_download(session, dataset=dataset, account=account, items=wanted)
    except QuotaExceeded as exc:
        raise CkanError(429, "Rate Limit Error", exc.detail, retry_after=exc.extra.get("retry_after")) from exc
    except (Unauthenticated, Forbidden) as exc:
        raise CkanError(403, "Authorization Error", exc.detail) from exc
    limit = _int(params, "limit", DATASTORE_DEFAULT_LIMIT, maximum=DATASTORE_MAX_LIMIT)
    offset = _int(params, "offset", 0)
    include_total = _bool(params, "include_total", False)
    filters = _json_param(params, "filters")
    if filters is not None and not isinstance(filters, dict):
        raise _validation("filters", "Must be a JSON object of {item: value or [values]}")
    q = _json_param(params, "q")
    if q is not None and not isinstance(q, (str, dict)):
        raise _validation("q", "Must be a string or an object of {item: text}")
    sort = params.get("sort")
    try:
        spec = query.QuerySpec(
            columns=wanted,
            filters=_filters(published, filters or {}, q),
            q=q if isinstance(q, str) else None,
            sort=_sort(sort),
            limit=limit,
            offset=offset,
            count=include_total,
        )
        result = query.run_query(published, spec, max_limit=DATASTORE_MAX_LIMIT)
    except query.BadQuery as exc:
        raise _validation("query", exc.detail) from exc
    labels = {i.column_name: i for i in dataset.items}
    link = f"/api/3/action/datastore_search?resource_id={resource_ref}&limit={limit}"
    out: dict[str, Any] = {
        "resource_id": resource_ref,
        "fields": [
            {
                "id": col,
                "type": _ckan_type(published.type_of(col)),
                "info": {
                    "label": labels[col].name if col in labels else col,
                    "notes": labels[col].description if col in labels else "",
                },
            }
            for col in result.columns
        ],
        "records": result.rows,
        "limit": limit,
        "offset": offset,
        "include_total": include_total,
        "records_format": "objects",
        "_links": {"start": link, "next": f"{link}&offset={offset + limit}"},
    }
    if filters:
        out["filters"] = filters
    if q:
        out["q"] = q
    if sort:
        out["sort"] = sort
    if result.total is not None:
        out["total"] = result.total
        out["total_was_estimated"] = False
    _record(session, dataset, api_calls=1)
    return out


# ---- routes -----------------------------------------------------------------------------------------------


def _respond(request: Request, name: str, status: int, body: dict[str, Any]) -> JSONResponse:
    retry = body.get("error", {}).get("retry_after") if status == 429 else None
    headers = {"Retry-After": str(retry)} if retry else None
    return JSONResponse({"help": _help(request, name), **body}, status_code=status, headers=headers)


async def _dispatch(request: Request, name: str) -> JSONResponse:
    fn = ACTIONS.get(name)
    if fn is None:
        return _respond(
            request,
            name,
            400,
            {
                "success": False,
                "error": {"__type": "Bad Request", "message": f"Bad request - Action name not known: {name}"},
            },
        )
    gen = ckan_session(request)
    session = next(gen)
    try:
        params = await _params(request)
        result = await _run(fn, session, request, params)
    except CkanError as exc:
        _close(gen, exc)
        return _respond(request, name, exc.status, {"success": False, "error": exc.body()})
    except NotFound as exc:
        _close(gen, exc)
        return _respond(
            request, name, 404, {"success": False, "error": {"__type": "Not Found Error", "message": exc.detail}}
        )
    except ZhengshuError as exc:
        _close(gen, exc)
        kind = "Authorization Error" if exc.status in (401, 403) else "Validation Error"
        status = 403 if exc.status in (401, 403) else (409 if exc.status in (400, 409, 422) else exc.status)
        return _respond(request, name, status, {"success": False, "error": {"__type": kind, "message": exc.detail}})
    except BaseException as exc:
        _close(gen, exc)
        raise
    _close(gen, None)
    return _respond(request, name, 200, {"success": True, "result": result})


async def _run(fn: Action, session: Session, request: Request, params: dict[str, Any]) -> Any:
    from starlette.concurrency import run_in_threadpool

    # database and DuckDB work is blocking: keep it off the event loop
    return await run_in_threadpool(fn, session, request, params)


def _close(gen: Iterator[Session], exc: BaseException | None) -> None:
    if exc is None:
        next(gen, None)
        return
    try:
        gen.throw(exc)
    except type(exc):
        pass


# Not in the OpenAPI document: CKAN's own error shape (not problem+json) is the point of these routes, and CKAN
# clients know the API from CKAN's documentation.
@ckan_router.api_route("/api/3/action/{name}", methods=["GET", "POST"], include_in_schema=False)
async def ckan_action(request: Request, name: str) -> JSONResponse:
    return await _dispatch(request, name)


@ckan_router.api_route("/api/action/{name}", methods=["GET", "POST"], include_in_schema=False)
async def ckan_action_unversioned(request: Request, name: str) -> JSONResponse:
    return await _dispatch(request, name)
