"""Open-data API under ``/api/v1/open`` (mounted without login).

Public: the dataset list and search, a dataset's metadata, its **data API** (``/datasets/{ref}/data``: choose
items, filter, sort, cursor pages, total only with ``count=true``), downloads and chart data. Conditionally open
datasets ask ``opendata.access`` (API key or public account, grant, quota). Provider routes under ``/manage``
require a logged-in government user and the ``opendata.*`` actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote as url_quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from zhengshu.core.errors import Forbidden, NotFound
from zhengshu.opendata import downloads, query, vocab
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.schemas import DatasetRead, DatasetSummary, DatasetUpdate, PublishIn, ReasonIn, RefreshIn
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, paginate

router = APIRouter(prefix="/api/v1/open", tags=["opendata"])

# Query parameters of the data API that are not item names (any other parameter naming an item means "equals").
RESERVED = frozenset({"columns", "filter", "q", "sort", "limit", "cursor", "count", "offset", "api_key", "format"})
Filters = Annotated[
    list[str] | None,
    Query(description="筛选：信息项:运算符:值，可重复；运算符 eq ne gt ge lt le like prefix in null notnull"),
]


def data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


def check_access(session: Session, request: Request, dataset: OpenDataset, columns: list[str]) -> None:
    """Conditionally open data needs a grant (and every keyed call counts against the quota)."""
    try:
        from zhengshu.opendata import access
    except ImportError:  # the public-accounts module is not installed: conditional data stays closed
        if dataset.is_conditional:
            raise Forbidden("有条件开放数据暂不可用", code="opendata.grant_required") from None
        return
    account = access.account_from_request(session, request)
    access.check_download(session, dataset=dataset, account=account, items=columns)


def _columns(published: query.Published, raw: str | None) -> list[str]:
    if not raw:
        return published.columns
    columns = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
    for c in columns:
        query.check_column(published, c)
    return columns or published.columns


def _equals(request: Request, published: query.Published) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k not in RESERVED and k in published.schema.names}


# ---- the public catalogue ------------------------------------------------------------------------------------


@router.get("/datasets", summary="开放数据集列表与检索（中文词、拼音、首字母）")
def list_datasets(
    session: DbSession,
    q: str | None = None,
    field: str | None = None,
    provider: str | None = Query(default=None, description="提供部门 id"),
    opening_type: str | None = None,
    sort: str | None = Query(default=None, description="relevance newest published popular downloads title rows"),
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    facets: bool = False,
) -> dict[str, Any]:
    filters = opendata_service.PublicFilters(
        q=q, field=field, provider_org_id=provider, opening_type=opening_type, sort=sort
    )
    rows, next_cursor, total = paginate(
        session, opendata_service.public_query(filters), limit=limit, cursor=cursor, count=count
    )
    body: dict[str, Any] = {
        "items": [DatasetSummary.model_validate(opendata_service.to_summary(d)).model_dump(mode="json") for d in rows],
        "next_cursor": next_cursor,
        "total": total,
    }
    if facets:
        body["facets"] = {
            name: [{"value": v, "label": label, "count": n} for v, label, n in values]
            for name, values in opendata_service.public_facets(session, filters).items()
        }
    return body


@router.get("/fields", summary="领域及其开放数据集数量")
def list_fields(session: DbSession) -> list[dict[str, Any]]:
    counts = {v: n for v, _, n in opendata_service.public_facets(session, opendata_service.PublicFilters())["field"]}
    return [{"code": c, "label": label, "count": counts.get(c, 0)} for c, label in vocab.FIELDS.items()]


@router.get("/departments", summary="开放数据的提供部门")
def list_departments(session: DbSession) -> list[dict[str, Any]]:
    return [
        {"id": org.id, "name": org.name, "short_name": org.short_name, "datasets": n, "downloads": d}
        for org, n, d in opendata_service.departments(session)
    ]


@router.get("/datasets/{ref}", response_model=DatasetRead, summary="开放数据集详情（元数据、信息项、更新历史）")
def get_dataset(ref: str, session: DbSession) -> dict[str, Any]:
    dataset = opendata_service.get_public(session, ref=ref)
    return opendata_service.to_read(session, dataset)


@router.get("/datasets/{ref}/data", summary="数据接口：选择信息项、筛选、排序、游标分页")
def get_data(
    ref: str,
    request: Request,
    session: DbSession,
    columns: str | None = Query(default=None, description="返回的信息项，逗号分隔；缺省为全部开放信息项"),
    filter: Filters = None,
    q: str | None = Query(default=None, description="在文本信息项中查找包含该词的行"),
    sort: str | None = Query(default=None, description="排序信息项，前加 - 为降序"),
    limit: int = Query(default=20, description="每页条数（上限见 ZHENGSHU_OPENDATA_MAX_PAGE_SIZE）"),
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    settings = request.app.state.settings
    dataset = opendata_service.get_public(session, ref=ref)
    published = opendata_service.published_copy(session, dataset, data_dir(request))
    selected = _columns(published, columns)
    filters = query.parse_filters(published, filter or [], _equals(request, published))
    spec = query.QuerySpec(columns=selected, filters=filters, q=q, sort=sort, limit=limit, cursor=cursor, count=count)
    # validate before the access check, so a bad request costs no quota
    query.check_limit(limit, settings.opendata_max_page_size)
    check_access(session, request, dataset, selected)
    result = query.run_query(
        published, spec, max_limit=settings.opendata_max_page_size, timeout_s=settings.opendata_query_timeout_s
    )
    opendata_service.record_usage(session, dataset_id=dataset.id, api_calls=1)
    names = {i.column_name: i.name for i in dataset.items}
    return {
        "items": result.rows,
        "next_cursor": result.next_cursor,
        "total": result.total,
        "fields": [
            {"id": c, "name": names.get(c, c), "type": query.type_label(published.type_of(c))} for c in result.columns
        ],
    }


@router.get("/datasets/{ref}/chart", summary="自动图表的数据")
def get_chart(ref: str, request: Request, session: DbSession) -> dict[str, Any]:
    dataset = opendata_service.get_public(session, ref=ref)
    hint = dict(dataset.chart_hint or {})
    if not hint:
        return {"kind": None, "points": []}
    published = opendata_service.published_copy(session, dataset, data_dir(request))
    names = {i.column_name: i.name for i in dataset.items}
    points = query.chart_data(published, hint)
    return {
        "kind": hint.get("kind"),
        "x": hint.get("x"),
        "x_name": names.get(str(hint.get("x")), hint.get("x")),
        "y": hint.get("y"),
        "y_name": names.get(str(hint.get("y") or ""), "记录数") if hint.get("y") else "记录数",
        "points": [{"x": x, "y": y} for x, y in points],
    }


def _disposition(dataset: OpenDataset, fmt: str) -> str:
    ext = "json" if fmt == "jsonl" else fmt
    ascii_name = f"{dataset.slug}-v{dataset.version_number}.{ext if fmt != 'jsonl' else 'jsonl'}"
    utf8_name = url_quote(f"{dataset.title}-v{dataset.version_number}.{ext if fmt != 'jsonl' else 'jsonl'}")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


def _counting(chunks: Iterator[bytes], request: Request, dataset_id: str) -> Iterator[bytes]:
    """Pass the chunks through and add the bytes sent to the day's counter once the stream ends."""
    sent = 0
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
    finally:
        if sent:
            with request.app.state.db.session() as s:
                opendata_service.record_usage(s, dataset_id=dataset_id, bytes_sent=sent)


@router.get("/datasets/{ref}/download.{fmt}", summary="下载：csv（UTF-8 带 BOM）、json、jsonl、xlsx、parquet")
def download(
    ref: str,
    fmt: str,
    request: Request,
    session: DbSession,
    columns: str | None = None,
    filter: Filters = None,
    q: str | None = None,
    sort: str | None = None,
) -> StreamingResponse:
    if fmt not in vocab.FORMATS:
        raise NotFound("不支持该下载格式（可选 csv、json、jsonl、xlsx、parquet）", code="opendata.bad_format")
    dataset = opendata_service.get_public(session, ref=ref)
    published = opendata_service.published_copy(session, dataset, data_dir(request))
    selected = _columns(published, columns)
    filters = query.parse_filters(published, filter or [], _equals(request, published))
    subset = bool(filters or (q and q.strip()) or sort or selected != published.columns)
    check_access(session, request, dataset, selected)
    opendata_service.record_usage(session, dataset_id=dataset.id, downloads=1)
    headers = {"Content-Disposition": _disposition(dataset, fmt), "X-Content-Type-Options": "nosniff"}
    media_type = vocab.FORMATS[fmt]["media_type"]
    title = dataset.title
    names = {i.column_name: i.name for i in dataset.items}

    def batches() -> Iterator[Any]:
        return query.iter_batches(published, columns=selected, filters=filters, q=q, sort=sort)

    chunks: Iterator[bytes]
    whole = not (filters or (q and q.strip()) or sort)  # every row: read row group by row group, no query
    if fmt == "csv":
        chunks = (
            downloads.csv_file_stream(published.path, selected) if whole else downloads.csv_stream(batches(), selected)
        )
    elif fmt == "json":
        chunks = downloads.json_file_stream(published.path, selected) if whole else downloads.json_stream(batches())
    elif fmt == "jsonl":
        chunks = downloads.jsonl_file_stream(published.path, selected) if whole else downloads.jsonl_stream(batches())
    elif fmt == "parquet":
        if subset:
            path = downloads.parquet_subset(published, columns=selected, filters=filters, q=q, sort=sort)
            chunks = downloads.file_stream(path, remove=True)
        else:
            headers["Content-Length"] = str(published.path.stat().st_size)
            chunks = downloads.file_stream(published.path)
    else:
        header_row = [names.get(c, c) for c in selected]
        if subset:
            path = downloads.temp_xlsx(batches(), headers=header_row, title=title)
            chunks = downloads.file_stream(path, remove=True)
        else:
            path = downloads.cached_xlsx(published, headers=header_row, title=title)
            headers["Content-Length"] = str(path.stat().st_size)
            chunks = downloads.file_stream(path)
    return StreamingResponse(_counting(chunks, request, dataset.id), media_type=media_type, headers=headers)


# ---- provider side ------------------------------------------------------------------------------------------


@router.get("/manage/datasets", summary="本部门的开放数据集（管理）")
def managed_datasets(
    session: DbSession,
    actor: CurrentActor,
    status: str | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    stmt = opendata_service.list_managed(session, actor=actor, status=status)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [opendata_service.to_summary(d) for d in rows], "next_cursor": next_cursor, "total": total}


@router.get("/manage/entries/{entry_id}/options", summary="某目录可开放的信息项、默认脱敏规则与挂接资源")
def publish_options(entry_id: str, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    options = opendata_service.publish_options(session, actor=actor, entry_id=entry_id)
    return {
        "entry_id": options.entry.id,
        "name": options.version.name,
        "opening_type": options.version.opening_type,
        "existing_dataset_id": options.existing.id if options.existing else None,
        "items": [
            {
                "item_key": o.key,
                "name": o.name,
                "column": o.column,
                "data_type": o.data_type,
                "sensitivity": o.sensitivity,
                "opening_type": o.opening_type,
                "openable": o.openable,
                "reason": o.reason,
                "default_masking_rule": o.default_rule,
            }
            for o in options.items
        ],
        "resources": [
            {"id": r.id, "kind": r.kind, "table": r.table_name, "row_count": r.row_count} for r in options.resources
        ],
    }


@router.post("/manage/datasets", status_code=201, response_model=DatasetRead, summary="开放一个目录（发布数据集）")
def publish_dataset(body: PublishIn, request: Request, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    dataset = opendata_service.publish(session, actor=actor, publish_in=body, data_dir=data_dir(request))
    return opendata_service.to_read(session, dataset)


@router.get("/manage/datasets/{dataset_id}", response_model=DatasetRead, summary="开放数据集（管理视图）")
def managed_dataset(dataset_id: str, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    return opendata_service.to_read(session, opendata_service.get_managed(session, actor=actor, dataset_id=dataset_id))


@router.patch(
    "/manage/datasets/{dataset_id}", response_model=DatasetRead, summary="修改数据集的名称、简介、领域、许可等"
)
def update_dataset(dataset_id: str, body: DatasetUpdate, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    dataset = opendata_service.update(session, actor=actor, dataset_id=dataset_id, update_in=body)
    return opendata_service.to_read(session, dataset)


@router.post("/manage/datasets/{dataset_id}/refresh", response_model=DatasetRead, summary="更新开放副本")
def refresh_dataset(
    dataset_id: str, request: Request, session: DbSession, actor: CurrentActor, body: RefreshIn | None = None
) -> dict[str, Any]:
    opendata_service.refresh(
        session, actor=actor, dataset_id=dataset_id, data_dir=data_dir(request), note=body.note if body else ""
    )
    return opendata_service.to_read(session, opendata_service.get_managed(session, actor=actor, dataset_id=dataset_id))


@router.post("/manage/datasets/{dataset_id}/unpublish", response_model=DatasetRead, summary="撤回开放")
def unpublish_dataset(dataset_id: str, body: ReasonIn, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    dataset = opendata_service.unpublish(session, actor=actor, dataset_id=dataset_id, reason=body.reason)
    return opendata_service.to_read(session, dataset)


@router.post("/manage/datasets/{dataset_id}/republish", response_model=DatasetRead, summary="重新开放")
def republish_dataset(dataset_id: str, request: Request, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    dataset = opendata_service.republish(session, actor=actor, dataset_id=dataset_id, data_dir=data_dir(request))
    return opendata_service.to_read(session, dataset)
