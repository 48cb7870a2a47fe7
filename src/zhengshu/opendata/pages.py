"""Open-data portal pages.

Public (no login, ``/open/…``): home, dataset search, dataset page (metadata, items, update history, quality,
preview with filter and sort, automatic chart, downloads, API examples), departments, developer guide.
Provider side (government users, ``/open/manage/…``): the department's open datasets, publishing an entry,
refreshing, withdrawing and reopening.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhengshu.catalog.enums import DATA_TYPE_LABELS, UpdateCycle
from zhengshu.core.errors import NotFound, ZhengshuError
from zhengshu.opendata import query, vocab
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.schemas import DatasetUpdate, ItemChoice, PublishIn
from zhengshu.org.models import Organization
from zhengshu.security import masking
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, redirect
from zhengshu.web.pagination import decode_cursor, encode_cursor
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
PREVIEW_ROWS = 20


def _data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


def _open_account(session: Session, request: Request) -> Any:
    """The public account of this browser or key, if the public-accounts module is present."""
    try:
        from zhengshu.opendata import access
    except ImportError:
        return None
    try:
        return access.account_from_request(session, request)
    except ZhengshuError:
        return None


def _may_take(session: Session, dataset: OpenDataset, account: Any) -> bool:
    if not dataset.is_conditional:
        return True
    try:
        from zhengshu.opendata import access
    except ImportError:
        return False
    return bool(
        access.may_access(session, dataset=dataset, account=account, items=[i.column_name for i in dataset.items])
    )


def _granted_columns(session: Session, dataset: OpenDataset, account: Any) -> list[str]:
    """The items of a conditionally open dataset this account was granted, in the dataset's order (a provider
    may approve fewer items than the whole dataset: the account then takes just those)."""
    if account is None or not dataset.is_conditional:
        return []
    from zhengshu.opendata import access

    granted = access.granted_items(session, account_id=account.id, dataset_id=dataset.id)
    return [i.column_name for i in dataset.items if i.column_name in granted]


def _public(request: Request, session: Session, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    context.setdefault("open_account", _open_account(session, request))
    context.setdefault("field_label", vocab.field_label)
    context.setdefault("status_labels", vocab.STATUS_LABELS)
    return render(request, name, context, status_code=status_code)


# ---- public pages -------------------------------------------------------------------------------------------


@router.get("/open", response_class=HTMLResponse)
def home(request: Request, session: DbSession) -> Response:
    published = OpenDataset.status == "published"
    totals = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(OpenDataset.row_count), 0),
            func.coalesce(func.sum(OpenDataset.download_count), 0),
            func.coalesce(func.sum(OpenDataset.api_call_count), 0),
        ).where(published)
    ).one()
    newest = list(
        session.scalars(select(OpenDataset).where(published).order_by(*opendata_service.SORTS["newest"]).limit(6))
    )
    popular = list(
        session.scalars(select(OpenDataset).where(published).order_by(*opendata_service.SORTS["popular"]).limit(6))
    )
    facets = opendata_service.public_facets(session, opendata_service.PublicFilters())
    return _public(
        request,
        session,
        "opendata/home.html",
        {
            "totals": {"datasets": totals[0], "rows": totals[1], "downloads": totals[2], "api_calls": totals[3]},
            "newest": newest,
            "popular": popular,
            "fields": facets["field"],
            "departments": opendata_service.departments(session)[:12],
        },
    )


def _page_links(request: Request, cursor: str | None, next_cursor: str | None) -> tuple[str | None, str | None]:
    params = dict(request.query_params)
    offset = decode_cursor(cursor)
    next_url = prev_url = None
    if next_cursor:
        next_url = f"{request.url.path}?{urlencode({**params, 'cursor': next_cursor})}"
    if offset > 0:
        prev = {**params, "cursor": encode_cursor(max(0, offset - PAGE_SIZE))}
        prev_url = f"{request.url.path}?{urlencode(prev)}"
    return next_url, prev_url


@router.get("/open/datasets", response_class=HTMLResponse)
def search(
    request: Request,
    session: DbSession,
    q: str | None = None,
    field: str | None = None,
    provider: str | None = None,
    opening_type: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
) -> Response:
    filters = opendata_service.PublicFilters(
        q=(q or "").strip() or None,
        field=field or None,
        provider_org_id=provider or None,
        opening_type=opening_type or None,
        sort=sort if sort in opendata_service.SORT_LABELS else None,
    )
    stmt = opendata_service.public_query(filters)
    offset = decode_cursor(cursor)
    rows = list(session.scalars(stmt.offset(offset).limit(PAGE_SIZE + 1)))
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    next_cursor = encode_cursor(offset + PAGE_SIZE) if len(rows) > PAGE_SIZE else None
    next_url, prev_url = _page_links(request, cursor, next_cursor)
    return _public(
        request,
        session,
        "opendata/search.html",
        {
            "datasets": rows[:PAGE_SIZE],
            "total": total,
            "filters": filters,
            "facets": opendata_service.public_facets(session, filters),
            "sort_labels": opendata_service.SORT_LABELS,
            "params": {k: v for k, v in request.query_params.items() if k != "cursor"},
            "next_url": next_url,
            "prev_url": prev_url,
        },
    )


def _preview_context(session: Session, request: Request, dataset: OpenDataset, *, may_take: bool) -> dict[str, Any]:
    """The first rows of the copy (or the rows matching the visitor's filter and sort)."""
    params = request.query_params
    context: dict[str, Any] = {
        "dataset": dataset,
        "may_take": may_take,
        "f_col": params.get("f_col", ""),
        "f_op": params.get("f_op", "eq"),
        "f_val": params.get("f_val", ""),
        "pq": params.get("pq", ""),
        "sort": params.get("sort", ""),
        "op_labels": query.OP_LABELS,
        "names": {i.column_name: i.name for i in dataset.items},
        "rows": [],
        "columns": [],
        "error": None,
        "next_cursor": None,
        "total": None,
    }
    if not may_take:
        return context
    try:
        published = opendata_service.published_copy(session, dataset, _data_dir(request))
        raw = []
        if context["f_col"]:
            value = "" if context["f_op"] in ("null", "notnull") else context["f_val"]
            raw.append(f"{context['f_col']}:{context['f_op']}:{value}")
        filters = query.parse_filters(published, raw)
        result = query.run_query(
            published,
            query.QuerySpec(
                filters=filters,
                q=context["pq"] or None,
                sort=context["sort"] or None,
                limit=PREVIEW_ROWS,
                cursor=params.get("cursor") or None,
                count=True,
            ),
            max_limit=PREVIEW_ROWS,
            timeout_s=request.app.state.settings.opendata_query_timeout_s,
        )
        context.update(rows=result.rows, columns=result.columns, next_cursor=result.next_cursor, total=result.total)
    except ZhengshuError as exc:
        context["error"] = exc.detail
    return context


def _preview_url(dataset: OpenDataset, context: dict[str, Any], fragment: bool = True, **changes: Any) -> str:
    """The preview with these changes: the fragment (htmx) or the whole page (links without JavaScript)."""
    params = {k: context[k] for k in ("f_col", "f_op", "f_val", "pq", "sort") if context.get(k)}
    params.update({k: v for k, v in changes.items() if v is not None})
    if fragment:
        return f"/open/datasets/{dataset.slug}/preview?{urlencode(params)}"
    return f"/open/datasets/{dataset.slug}?{urlencode(params)}#preview"


@router.get("/open/datasets/{ref}", response_class=HTMLResponse)
def dataset_page(ref: str, request: Request, session: DbSession) -> Response:
    dataset = opendata_service.get_public(session, ref=ref)
    account = _open_account(session, request)
    may_take = _may_take(session, dataset, account)
    opendata_service.record_usage(session, dataset_id=dataset.id, views=1)
    preview = _preview_context(session, request, dataset, may_take=may_take)
    base = str(request.base_url).rstrip("/")
    first = next(iter(dataset.items), None)
    downloads = opendata_service.download_urls(dataset)
    granted = [] if may_take else _granted_columns(session, dataset, account)
    if granted:  # only the granted items: the download of the whole dataset would be refused
        columns = quote(",".join(granted), safe=",")
        downloads = {fmt: f"{url}?columns={columns}" for fmt, url in downloads.items()}
    return _public(
        request,
        session,
        "opendata/dataset.html",
        {
            "dataset": dataset,
            "open_account": account,
            "versions": opendata_service.versions(session, dataset),
            "licence": vocab.LICENCES.get(dataset.licence, {"label": dataset.licence, "url": ""}),
            "formats": vocab.FORMATS,
            "downloads": downloads,
            "granted": granted,
            "type_labels": DATA_TYPE_LABELS,
            "rule_label": masking.rule_label,
            "p": preview,
            "preview_url": lambda fragment=True, **kw: _preview_url(dataset, preview, fragment, **kw),
            "base": base,
            "example_item": first.column_name if first else "",
            "may_take": may_take,
        },
    )


@router.get("/open/datasets/{ref}/preview", response_class=HTMLResponse)
def preview(ref: str, request: Request, session: DbSession) -> Response:
    """The preview table alone (htmx swaps it in place when the visitor filters, sorts or pages)."""
    dataset = opendata_service.get_public(session, ref=ref)
    may_take = _may_take(session, dataset, _open_account(session, request))
    context = _preview_context(session, request, dataset, may_take=may_take)
    return render(
        request,
        "opendata/_preview.html",
        {
            "p": context,
            "dataset": dataset,
            "preview_url": lambda fragment=True, **kw: _preview_url(dataset, context, fragment, **kw),
        },
    )


@router.get("/open/departments", response_class=HTMLResponse)
def departments(request: Request, session: DbSession) -> Response:
    return _public(
        request, session, "opendata/departments.html", {"departments": opendata_service.departments(session)}
    )


@router.get("/open/departments/{org_id}", response_class=HTMLResponse)
def department(org_id: str, request: Request, session: DbSession) -> Response:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound("未找到该部门", code="opendata.department_not_found")
    filters = opendata_service.PublicFilters(provider_org_id=org.id, sort="newest")
    datasets = list(session.scalars(opendata_service.public_query(filters).limit(200)))
    return _public(
        request,
        session,
        "opendata/department.html",
        {
            "org": org,
            "datasets": datasets,
            "downloads": sum(d.download_count for d in datasets),
            "rows": sum(d.row_count for d in datasets),
        },
    )


@router.get("/open/developers", response_class=HTMLResponse)
def developers(request: Request, session: DbSession) -> Response:
    sample = session.scalars(
        select(OpenDataset)
        .where(OpenDataset.status == "published")
        .order_by(*opendata_service.SORTS["popular"])
        .limit(1)
    ).first()
    return _public(
        request,
        session,
        "opendata/developers.html",
        {
            "sample": sample,
            "base": str(request.base_url).rstrip("/"),
            "ops": query.OP_LABELS,
            "max_page": request.app.state.settings.opendata_max_page_size,
            "formats": vocab.FORMATS,
        },
    )


# ---- provider pages ------------------------------------------------------------------------------------------


@router.get("/open/manage", response_class=HTMLResponse)
def manage(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    datasets = list(session.scalars(opendata_service.list_managed(session, actor=actor).limit(500)))
    opened = {d.entry_id for d in datasets}
    entries = [e for e in opendata_service.openable_entries(session, actor=actor) if e.id not in opened]
    return render(request, "opendata/manage.html", {"datasets": datasets, "entries": entries})


def _publish_form(
    request: Request,
    session: Session,
    actor: Any,
    entry_id: str,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    options = opendata_service.publish_options(session, actor=actor, entry_id=entry_id)
    if options.existing is not None and form is None:
        flash(request, "该目录已开放为数据集", "success")
        return redirect(f"/open/manage/datasets/{options.existing.id}")
    return render(
        request,
        "opendata/publish.html",
        {
            "options": options,
            "fields": vocab.FIELDS,
            "licences": vocab.LICENCES,
            "cycles": [c.value for c in UpdateCycle],
            "rules": masking.RULES,
            "form": form or {},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/open/manage/publish/{entry_id}", response_class=HTMLResponse)
def publish_form(entry_id: str, request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return _publish_form(request, session, actor, entry_id)


@router.post("/open/manage/publish/{entry_id}", response_class=HTMLResponse, dependencies=[Csrf])
async def publish_submit(entry_id: str, request: Request, session: DbSession, actor: CurrentActor) -> Response:
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    chosen = [str(v) for v in form.getlist("item")]
    try:
        publish_in = PublishIn(
            entry_id=entry_id,
            resource_id=data.get("resource_id") or None,
            title=data.get("title") or None,
            description=data.get("description"),
            field=data.get("field") or "other",
            tags=[t for t in (data.get("tags") or "").replace("，", ",").split(",") if t.strip()],
            licence=data.get("licence") or None,
            update_cycle=data.get("update_cycle") or None,
            contact=data.get("contact", ""),
            items=[ItemChoice(item_key=k, masking_rule=data.get(f"rule_{k}") or None) for k in chosen],
            key_item=data.get("key_item") or None,
        )
        dataset = opendata_service.publish(session, actor=actor, publish_in=publish_in, data_dir=_data_dir(request))
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status in (403, 404):
            raise
        session.rollback()
        form_data = {**data, "items": chosen}
        return _publish_form(
            request, session, actor, entry_id, form=form_data, errors=form_errors(exc), status_code=422
        )
    flash(
        request,
        f"已开放数据集“{dataset.title}”，共 {dataset.row_count:,} 行",
        "success",
        f"/open/datasets/{dataset.slug}",
    )
    return redirect(f"/open/manage/datasets/{dataset.id}")


@router.get("/open/manage/datasets/{dataset_id}", response_class=HTMLResponse)
def manage_dataset(dataset_id: str, request: Request, session: DbSession, actor: CurrentActor) -> Response:
    dataset = opendata_service.get_managed(session, actor=actor, dataset_id=dataset_id)
    usage = opendata_service.usage_by_day(session, dataset_id=dataset.id, days=30)
    return render(
        request,
        "opendata/manage_dataset.html",
        {
            "dataset": dataset,
            "versions": opendata_service.versions(session, dataset),
            "usage": usage,
            "rule_label": masking.rule_label,
            "fields": vocab.FIELDS,
            "licences": vocab.LICENCES,
            "cycles": [c.value for c in UpdateCycle],
            "status_labels": vocab.STATUS_LABELS,
            "field_label": vocab.field_label,
        },
    )


@router.post("/open/manage/datasets/{dataset_id}/{verb}", dependencies=[Csrf])
async def manage_action(
    dataset_id: str, verb: str, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    target = f"/open/manage/datasets/{dataset_id}"
    try:
        if verb == "refresh":
            version = opendata_service.refresh(
                session, actor=actor, dataset_id=dataset_id, data_dir=_data_dir(request), note=data.get("note", "")
            )
            message = f"已更新开放副本，第 {version.number} 版，共 {version.row_count:,} 行"
        elif verb == "unpublish":
            opendata_service.unpublish(
                session, actor=actor, dataset_id=dataset_id, reason=data.get("reason") or "提供部门撤回"
            )
            message = "已撤回开放，公众不再能看到该数据集"
        elif verb == "republish":
            opendata_service.republish(session, actor=actor, dataset_id=dataset_id, data_dir=_data_dir(request))
            message = "已重新开放"
        elif verb == "edit":
            update_in = DatasetUpdate(
                title=data.get("title") or None,
                description=data.get("description"),
                field=data.get("field") or None,
                tags=[t for t in (data.get("tags") or "").replace("，", ",").split(",") if t.strip()],
                licence=data.get("licence") or None,
                update_cycle=data.get("update_cycle") or None,
                contact=data.get("contact"),
            )
            opendata_service.update(session, actor=actor, dataset_id=dataset_id, update_in=update_in)
            message = "已保存数据集信息"
        else:
            raise NotFound("未知的操作", code="opendata.unknown_action")
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status in (403, 404):
            raise
        session.rollback()
        flash(request, "；".join(form_errors(exc).values()), "error")
        return redirect(target)
    flash(request, message, "success", target)
    return redirect(target)
