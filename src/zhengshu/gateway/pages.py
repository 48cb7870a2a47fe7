"""Gateway pages: the services (each with its OpenAPI description and a try-it form), the department's apps and
their keys, the call log with its figures; and the panel listing an entry's services on the catalog page."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog.models import CatalogEntry
from zhengshu.catalog.panels import register_entry_panel
from zhengshu.core.db import utcnow
from zhengshu.core.errors import Unauthenticated, ZhengshuError
from zhengshu.gateway import calllog
from zhengshu.gateway import service as gw_service
from zhengshu.gateway.models import GatewayApp, GatewayService
from zhengshu.gateway.schemas import AppIn
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, redirect
from zhengshu.web.pagination import decode_cursor, encode_cursor
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
KIND_LABELS = {"proxy": "代理已有接口", "table": "库表生成接口"}
STATUS_LABELS = {"active": "启用", "disabled": "停用"}


def entry_panel_context(session: Session, actor: Actor, entry: CatalogEntry) -> dict[str, Any]:
    services = gw_service.list_services(session, actor=actor, filters=gw_service.ServiceFilters(entry_id=entry.id))
    return {
        "gateway_services": services,
        "gateway_can_register": entry.status == "published" and authz.allowed(actor, "gateway.manage_service", entry),
        "gateway_kind_labels": KIND_LABELS,
    }


register_entry_panel("gateway", "gateway/_entry_panel.html", entry_panel_context, order=20)


def _pager(request: Request, offset: int, has_more: bool) -> tuple[str | None, str | None]:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    base = request.url.path + "?"
    next_url = base + urlencode([*pairs, ("cursor", encode_cursor(offset + PAGE_SIZE))]) if has_more else None
    prev_url = base + urlencode([*pairs, ("cursor", encode_cursor(max(0, offset - PAGE_SIZE)))]) if offset else None
    return next_url, prev_url


# ---- services -----------------------------------------------------------------------------------------------


@router.get("/gateway", response_class=HTMLResponse)
def service_list(
    request: Request, session: DbSession, actor: CurrentActor, q: str | None = None, cursor: str | None = None
) -> Response:
    offset = decode_cursor(cursor)
    stmt = gw_service.list_query(actor, gw_service.ServiceFilters(q=q or None))
    rows = list(session.scalars(stmt.offset(offset).limit(PAGE_SIZE + 1)))
    next_url, prev_url = _pager(request, offset, len(rows) > PAGE_SIZE)
    entries = {
        e.id: e for e in session.scalars(select(CatalogEntry).where(CatalogEntry.id.in_({s.entry_id for s in rows})))
    }
    return render(
        request,
        "gateway/service_list.html",
        {
            "rows": rows[:PAGE_SIZE],
            "entries": entries,
            "q": q or "",
            "kind_labels": KIND_LABELS,
            "status_labels": STATUS_LABELS,
            "next_url": next_url,
            "prev_url": prev_url,
        },
    )


def _example_url(service: GatewayService, cfg: dict[str, Any]) -> str:
    url = gw_service.call_url(service)
    if service.kind == "table":
        return url + "/<键值>"
    suffix = "".join(f"/<{p['name']}>" for p in cfg["params"] if p["location"] == "path")
    query = "&".join(f"{p['name']}=<{p['name']}>" for p in cfg["params"] if p["location"] == "query")
    return url + suffix + (f"?{query}" if query else "")


def _service_context(session: Session, actor: Actor, code: str) -> dict[str, Any]:
    service = gw_service.get_service(session, actor=actor, service_id=code)
    version = gw_service.version_of(service)
    entry = session.get(CatalogEntry, service.entry_id)
    apps = [a for a in gw_service.list_apps(session, actor=actor, org_id=actor.org_id) if a.status == "active"]
    is_provider = authz.allowed(actor, "gateway.manage_service", service)
    figures = None
    if is_provider or actor.is_admin:
        figures = calllog.stats(
            session,
            actor=actor,
            filters=calllog.CallFilters(service_id=service.id, since=utcnow() - timedelta(days=7)),
        )
    import json

    spec = gw_service.openapi(service)
    return {
        "service": service,
        "version": version,
        "cfg": version.config,
        "entry": entry,
        "apps": apps,
        "is_provider": is_provider,
        "figures": figures,
        "spec": spec,
        "spec_json": json.dumps(spec, ensure_ascii=False, indent=2),
        "example_url": _example_url(service, version.config),
        "kind_labels": KIND_LABELS,
        "status_labels": STATUS_LABELS,
        "path_params": [p for p in version.config.get("params", []) if p["location"] == "path"],
        "query_params": [p for p in version.config.get("params", []) if p["location"] == "query"],
    }


@router.get("/gateway/services/{code}", response_class=HTMLResponse)
def service_detail(request: Request, session: DbSession, actor: CurrentActor, code: str) -> Response:
    return render(request, "gateway/service_detail.html", _service_context(session, actor, code))


@router.post("/gateway/services/{code}/try", response_class=HTMLResponse, dependencies=[Csrf])
async def service_try(request: Request, code: str) -> Response:
    """Call the service through the gateway on the user's behalf, signed with one of the department's apps."""
    form = await request.form()
    from starlette.concurrency import run_in_threadpool

    prepared = await run_in_threadpool(_prepare_try, request, code, dict(form))
    context, signed = prepared
    if signed is not None:
        context["try_result"] = await _call_gateway(request, *signed)
    return await run_in_threadpool(_render_try, request, context)


def _prepare_try(request: Request, code: str, form: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from zhengshu.gateway.models import AppCredential
    from zhengshu.gateway.signing import sign_request
    from zhengshu.security.crypto import decrypt_secret
    from zhengshu.web.deps import optional_actor

    database = request.app.state.db
    with database.session() as session:
        actor = optional_actor(request, session)
        if actor is None:
            raise Unauthenticated()
        context = _service_context(session, actor, code)
        app_id = str(form.get("app_id") or "")
        app = session.get(GatewayApp, app_id) if app_id else None
        if app is None or not authz.allowed(actor, "gateway.view_app", app) or app.status != "active":
            context["try_error"] = "请选择本部门一个启用的应用"
            return context, None
        cred = session.scalars(
            select(AppCredential)
            .where(AppCredential.app_id == app.id, AppCredential.status == "active")
            .order_by(AppCredential.created_at.desc())
        ).first()
        if cred is None:
            context["try_error"] = "该应用没有可用的访问密钥，请先轮换密钥"
            return context, None
        service: GatewayService = context["service"]
        base = request.app.state.settings.gateway_mount_path.rstrip("/")
        path = f"{base}/{service.code}"
        values = {k[2:]: str(v).strip() for k, v in form.items() if k.startswith("p:") and str(v).strip()}
        if service.kind == "table":
            key = str(form.get("key") or "").strip()
            if key:
                path += "/" + quote(key, safe="")
        else:
            for p in context["path_params"]:
                path += "/" + quote(values.pop(p["name"], ""), safe="")
        query = urlencode(sorted(values.items()))
        url = f"http://gateway{path}" + (f"?{query}" if query else "")
        headers = sign_request(
            access_key=cred.access_key, secret=decrypt_secret(cred.secret_encrypted), method="GET", url=url
        )
        context["try_values"] = {"app_id": app.id, "key": form.get("key") or "", **values}
        context["try_url"] = url.removeprefix("http://gateway")
        return context, (url, headers)


async def _call_gateway(request: Request, url: str, headers: dict[str, str]) -> dict[str, Any]:
    import httpx
    import orjson

    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        return {"status": 0, "body": "本进程未启用接口网关，请用调用示例中的 curl 命令在网关上试用"}
    transport = httpx.ASGITransport(app=gateway, client=(request.client.host if request.client else "127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(url, headers=headers)
    try:
        body = orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "body": body}


def _render_try(request: Request, context: dict[str, Any]) -> Response:
    return render(request, "gateway/service_detail.html", context)


# ---- apps -----------------------------------------------------------------------------------------------------


@router.get("/gateway/apps", response_class=HTMLResponse)
def app_list(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return render(request, "gateway/app_list.html", _apps_context(session, actor))


def _apps_context(session: Session, actor: Actor, **extra: Any) -> dict[str, Any]:
    return {
        "apps": gw_service.list_apps(session, actor=actor),
        "callable": gw_service.callable_services(session, actor=actor),
        "can_manage": authz.allowed(actor, "gateway.manage_app"),
        "status_labels": STATUS_LABELS,
        "errors": {},
        "values": {},
        **extra,
    }


@router.post("/gateway/apps", response_class=HTMLResponse, dependencies=[Csrf])
def app_create(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    contact_name: Annotated[str, Form()] = "",
    contact_phone: Annotated[str, Form()] = "",
) -> Response:
    values = {"name": name, "description": description, "contact_name": contact_name, "contact_phone": contact_phone}
    try:
        app_in = AppIn.model_validate(values)
        app, issued = gw_service.create_app(session, actor=actor, app_in=app_in)
    except (ValidationError, ZhengshuError) as exc:
        session.rollback()
        return render(
            request,
            "gateway/app_list.html",
            _apps_context(session, actor, errors=form_errors(exc), values=values),
            status_code=422,
        )
    return render(request, "gateway/app_list.html", _apps_context(session, actor, issued=issued, issued_name=app.name))


@router.post("/gateway/apps/{app_id}/rotate", response_class=HTMLResponse, dependencies=[Csrf])
def app_rotate(request: Request, session: DbSession, actor: CurrentActor, app_id: str) -> Response:
    issued = gw_service.rotate_secret(session, actor=actor, app_id=app_id)
    app = gw_service.get_app(session, actor=actor, app_id=app_id)
    return render(request, "gateway/app_list.html", _apps_context(session, actor, issued=issued, issued_name=app.name))


@router.post("/gateway/apps/{app_id}/status", dependencies=[Csrf])
def app_status(
    request: Request, session: DbSession, actor: CurrentActor, app_id: str, status: Annotated[str, Form()]
) -> Response:
    from zhengshu.gateway.schemas import AppUpdate

    app = gw_service.update_app(
        session,
        actor=actor,
        app_id=app_id,
        app_in=AppUpdate(status="disabled" if status == "disabled" else "active"),
    )
    flash(request, f"应用“{app.name}”已{STATUS_LABELS[app.status]}")
    return redirect("/gateway/apps")


# ---- calls ----------------------------------------------------------------------------------------------------


@router.get("/gateway/calls", response_class=HTMLResponse)
def call_list(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    service_id: str | None = None,
    app_id: str | None = None,
    errors: str | None = None,
    days: int = 7,
    cursor: str | None = None,
) -> Response:
    authz.ensure(actor, "gateway.view_calls")
    days = days if days in (1, 7, 30, 90) else 7
    filters = calllog.CallFilters(
        service_id=service_id or None,
        app_id=app_id or None,
        errors_only=errors == "1",
        since=utcnow() - timedelta(days=days),
    )
    offset = decode_cursor(cursor)
    rows = list(session.scalars(calllog.list_query(actor, filters).offset(offset).limit(PAGE_SIZE + 1)))
    next_url, prev_url = _pager(request, offset, len(rows) > PAGE_SIZE)
    figures = calllog.stats(session, actor=actor, filters=filters)
    services = {s.id: s for s in session.scalars(select(GatewayService))}
    apps = {a.id: a for a in session.scalars(select(GatewayApp))}
    return render(
        request,
        "gateway/call_list.html",
        {
            "rows": rows[:PAGE_SIZE],
            "figures": figures,
            "services": services,
            "apps": apps,
            "service_id": service_id or "",
            "app_id": app_id or "",
            "errors": errors == "1",
            "days": days,
            "next_url": next_url,
            "prev_url": prev_url,
        },
    )
