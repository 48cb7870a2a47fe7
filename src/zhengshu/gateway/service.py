"""Gateway control plane: register services (proxied or generated from a mounted table) with versions,
register consumer apps, issue and rotate their credentials.

Every change bumps the generation counter (:func:`bump_generation`), which every gateway process polls, so a
change reaches the hot path within ``ZHENGSHU_GATEWAY_REFRESH_MS`` in every process and at once in this one.
Authorization changes (``authorization.*`` events) bump it too.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, event, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.core.config import get_settings
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent, consumer, emit
from zhengshu.gateway import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.gateway.models import AppCredential, GatewayApp, GatewayGeneration, GatewayService, ServiceVersion
from zhengshu.gateway.schemas import AppIn, AppUpdate, ProxyConfigIn, ServiceIn, ServiceUpdate, TableConfigIn, VersionIn
from zhengshu.lake.models import DataSource
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import encrypt_secret

TABLE_SOURCE_KINDS = ("postgresql", "mysql", "sqlite", "duckdb")

# ---- the generation counter -------------------------------------------------------------------------------

# Gateways running in this process register a callback here: they reload right after a change commits.
local_listeners: list[Callable[[], None]] = []
_PENDING = "zhengshu.gateway.generation_pending"
_LISTENING = "zhengshu.gateway.generation_listening"


def _notify_local(session: Session) -> None:
    for listener in list(local_listeners):
        listener()


def _write_bump(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's RELEASE (the request's event delivery is one): the commit comes later
    if session.info.pop(_PENDING, None) is not session.get_transaction():
        return  # no bump asked, or asked in a transaction that was rolled back
    now = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        # one upsert: the first bumps of a fresh database no longer race to insert the row (a unique violation
        # that sent the request's events to a retry)
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(GatewayGeneration).values(id=1, value=1, changed_at=now)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[GatewayGeneration.id],
                set_={"value": GatewayGeneration.value + 1, "changed_at": now},
            )
        )
    else:
        changed = session.execute(
            update(GatewayGeneration)
            .where(GatewayGeneration.id == 1)
            .values(value=GatewayGeneration.value + 1, changed_at=now)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            session.add(GatewayGeneration(id=1, value=1, changed_at=now))
            session.flush()
    event.listen(session, "after_commit", _notify_local, once=True)


def bump_generation(session: Session) -> None:
    """Mark what the gateway serves as changed, when this transaction commits.

    The counter is one row for the whole platform, so it is written just before the commit: its lock is held
    for the commit only, not while the rest of the transaction runs. Under load, granting authorizations
    queued on this row when it was updated at the grant."""
    session.connection()  # begins the transaction the bump belongs to, if nothing else has
    # tied to this transaction: a rolled-back one drops it, a rolled-back savepoint keeps it (harmless)
    session.info[_PENDING] = session.get_transaction()
    if not session.info.get(_LISTENING):
        session.info[_LISTENING] = True
        event.listen(session, "before_commit", _write_bump)


def current_generation(session: Session) -> int:
    return int(session.scalar(select(GatewayGeneration.value).where(GatewayGeneration.id == 1)) or 0)


AUTHORIZATION_EVENTS = (
    "authorization.granted",
    "authorization.suspend",
    "authorization.resume",
    "authorization.renew",
    "authorization.revoke",
    "authorization.expire",
    "catalog.entry.withdrawn",
)


def _on_authorization_change(session: Session, _event: OutboxEvent) -> None:
    bump_generation(session)


for _name in AUTHORIZATION_EVENTS:
    consumer(_name, f"gateway.refresh.{_name}")(_on_authorization_change)


# ---- entry items ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRef:
    key: str
    name: str
    column: str | None

    @property
    def field(self) -> str:
        """The name callers see in requests and results: the column name, else the item name."""
        return self.column or self.name


def entry_items(session: Session, entry: CatalogEntry) -> list[ItemRef]:
    version = catalog_service.display_version(session, entry)
    return [ItemRef(i.key, i.name, i.column_name) for i in version.items]


def _resolve(items: list[ItemRef], ref: str) -> ItemRef | None:
    for item in items:
        if ref in (item.key, item.name, item.column):
            return item
    return None


# ---- services ---------------------------------------------------------------------------------------------


def get_service(session: Session, *, actor: Actor, service_id: str) -> GatewayService:
    service = session.get(GatewayService, service_id)
    if service is None:
        service = session.scalars(select(GatewayService).where(GatewayService.code == service_id)).first()
    if service is None or not authz.allowed(actor, "gateway.view", service):
        raise NotFound("未找到该接口服务", code="gateway.service_not_found")
    return service


def _entry_for_service(session: Session, actor: Actor, entry_id: str) -> CatalogEntry:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "gateway.manage_service", entry)
    if entry.status != "published":
        raise Conflict("只能为已发布的目录登记接口服务", code="gateway.entry_not_published")
    return entry


def _proxy_config(items: list[ItemRef], cfg: ProxyConfigIn) -> dict[str, Any]:
    errors = ErrorCollector()
    fields: dict[str, str] = {}
    used: list[ItemRef] = []
    for upstream, ref in cfg.fields.items():
        item = _resolve(items, ref)
        if item is None:
            errors.add(f"proxy.fields.{upstream}", f"目录中没有信息项“{ref}”")
            continue
        fields[upstream] = item.key
        if item not in used:
            used.append(item)
    names = [p.name for p in cfg.params]
    if len(set(names)) != len(names):
        errors.add("proxy.params", "参数名称不能重复")
    url = str(cfg.upstream_url).replace("%7B", "{").replace("%7D", "}")  # HttpUrl encodes the braces
    for p in cfg.params:
        if p.location == "path" and f"{{{p.name}}}" not in url:
            errors.add("proxy.params", f"路径参数 {p.name} 未出现在上游地址中（写作 {{{p.name}}}）")
    for name in re.findall(r"\{([^}]+)\}", url):
        if name not in names:
            errors.add("proxy.upstream_url", f"上游地址中的 {{{name}}} 没有对应的参数")
    errors.raise_if_any(code="gateway.invalid_service")
    return {
        "upstream_url": url,
        "method": cfg.method,
        "params": [p.model_dump() for p in cfg.params],
        "fields": fields,
        "result_path": cfg.result_path.strip("."),
        "timeout_s": cfg.timeout_s,
        "items": [{"key": i.key, "name": i.name, "field": i.field, "column": i.column} for i in used],
    }


def _table_config(session: Session, entry: CatalogEntry, items: list[ItemRef], cfg: TableConfigIn) -> dict[str, Any]:
    errors = ErrorCollector()
    resources = [r for r in entry.resources if r.kind == "table" and r.active]
    resource: MountedResource | None
    if cfg.resource_id:
        resource = next((r for r in resources if r.id == cfg.resource_id), None)
        if resource is None:
            errors.add("table.resource_id", "该目录没有这个已挂接的库表资源")
    else:
        resource = resources[0] if resources else None
        if resource is None:
            errors.add("table.resource_id", "该目录尚未挂接库表资源，请先挂接")
    source = session.get(DataSource, resource.source_id) if resource is not None and resource.source_id else None
    if resource is not None and (source is None or source.kind not in TABLE_SOURCE_KINDS):
        errors.add("table.resource_id", "生成接口只支持 PostgreSQL、MySQL/MariaDB、SQLite、DuckDB 数据源")

    def resolve_all(refs: list[str], field: str) -> list[str]:
        keys = []
        for ref in refs:
            item = _resolve(items, ref)
            if item is None:
                errors.add(field, f"目录中没有信息项“{ref}”")
            elif not item.column:
                errors.add(field, f"信息项“{item.name}”没有对应的字段名，不能用于查询")
            else:
                keys.append(item.key)
        return keys

    key_items = resolve_all(cfg.key_items, "table.key_items")
    filter_items = resolve_all(cfg.filter_items, "table.filter_items")
    errors.raise_if_any(code="gateway.invalid_service")
    assert resource is not None and source is not None
    exposed = [i for i in items if i.column]
    return {
        "resource_id": resource.id,
        "source_id": source.id,
        "source_kind": source.kind,
        "schema": resource.table_schema,
        "table": resource.table_name,
        "key_items": key_items,
        "filter_items": filter_items,
        "timeout_s": cfg.timeout_s,
        "items": [{"key": i.key, "name": i.name, "field": i.field, "column": i.column} for i in exposed],
    }


def _config(
    session: Session, entry: CatalogEntry, kind: str, proxy: ProxyConfigIn | None, table: TableConfigIn | None
) -> dict[str, Any]:
    items = entry_items(session, entry)
    if kind == "proxy":
        if proxy is None:
            raise ValidationFailed(code="gateway.invalid_service", errors=[_field("proxy", "请填写上游接口的配置")])
        return _proxy_config(items, proxy)
    if table is None:
        raise ValidationFailed(code="gateway.invalid_service", errors=[_field("table", "请填写生成接口的配置")])
    return _table_config(session, entry, items, table)


def _field(name: str, message: str) -> Any:
    from zhengshu.core.errors import FieldError

    return FieldError(name, message)


def register_service(session: Session, *, actor: Actor, service_in: ServiceIn) -> GatewayService:
    entry = _entry_for_service(session, actor, service_in.entry_id)
    if session.scalar(select(GatewayService.id).where(GatewayService.code == service_in.code)) is not None:
        raise Conflict(f"服务代码 {service_in.code} 已被使用", code="gateway.duplicate_code")
    config = _config(session, entry, service_in.kind, service_in.proxy, service_in.table)
    service = GatewayService(
        id=new_id(),
        code=service_in.code,
        name=service_in.name.strip(),
        description=service_in.description,
        entry_id=entry.id,
        provider_org_id=entry.provider_org_id,
        kind=service_in.kind,
        status="active",
        current_version=1,
        rate_per_s=service_in.rate_per_s,
        app_rate_per_s=service_in.app_rate_per_s,
        app_daily_quota=service_in.app_daily_quota,
        created_by=actor.username,
    )
    service.versions.append(
        ServiceVersion(id=new_id(), number=1, config=config, note="首个版本", created_by=actor.username)
    )
    session.add(service)
    session.flush()
    bump_generation(session)
    emit(session, "gateway.service.registered", service_id=service.id, entry_id=entry.id)
    return service


def add_version(
    session: Session, *, actor: Actor, service_id: str, version_in: VersionIn, activate: bool = True
) -> ServiceVersion:
    service = get_service(session, actor=actor, service_id=service_id)
    authz.ensure(actor, "gateway.manage_service", service)
    entry = catalog_service.get(session, actor=actor, entry_id=service.entry_id)
    config = _config(session, entry, service.kind, version_in.proxy, version_in.table)
    number = max(v.number for v in service.versions) + 1
    version = ServiceVersion(id=new_id(), number=number, config=config, note=version_in.note, created_by=actor.username)
    service.versions.append(version)
    if activate:
        service.current_version = number
    service.updated_at = utcnow()
    session.flush()
    bump_generation(session)
    emit(session, "gateway.service.versioned", service_id=service.id, number=number)
    return version


def update_service(session: Session, *, actor: Actor, service_id: str, service_in: ServiceUpdate) -> GatewayService:
    service = get_service(session, actor=actor, service_id=service_id)
    authz.ensure(actor, "gateway.manage_service", service)
    data = service_in.model_dump(exclude_unset=True)
    if "current_version" in data and data["current_version"] not in {v.number for v in service.versions}:
        raise ValidationFailed(code="gateway.invalid_service", errors=[_field("current_version", "没有这个版本")])
    for name, value in data.items():
        if name in ("rate_per_s", "app_rate_per_s", "app_daily_quota") and value == 0:
            value = None
        if value is not None or name in ("rate_per_s", "app_rate_per_s", "app_daily_quota"):
            setattr(service, name, value)
    service.updated_at = utcnow()
    session.flush()
    bump_generation(session)
    emit(session, "gateway.service.updated", service_id=service.id, status=service.status)
    return service


@dataclass
class ServiceFilters:
    q: str | None = None
    entry_id: str | None = None
    provider_org_id: str | None = None
    status: str | None = None
    kind: str | None = None


def list_query(actor: Actor, filters: ServiceFilters) -> Select[tuple[GatewayService]]:
    stmt = select(GatewayService).where(authz.scope(actor, "gateway.view"))
    if filters.entry_id:
        stmt = stmt.where(GatewayService.entry_id == filters.entry_id)
    if filters.provider_org_id:
        stmt = stmt.where(GatewayService.provider_org_id == filters.provider_org_id)
    if filters.status:
        stmt = stmt.where(GatewayService.status == filters.status)
    if filters.kind:
        stmt = stmt.where(GatewayService.kind == filters.kind)
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(or_(GatewayService.name.like(like), GatewayService.code.like(like)))
    return stmt.order_by(GatewayService.created_at.desc(), GatewayService.id)


def list_services(session: Session, *, actor: Actor, filters: ServiceFilters | None = None) -> list[GatewayService]:
    return list(session.scalars(list_query(actor, filters or ServiceFilters())))


def version_of(service: GatewayService, number: int | None = None) -> ServiceVersion:
    number = number or service.current_version
    for v in service.versions:
        if v.number == number:
            return v
    raise NotFound("没有这个版本", code="gateway.version_not_found")


def call_url(service: GatewayService) -> str:
    settings = get_settings()
    base = settings.gateway_public_url.rstrip("/") or settings.gateway_mount_path.rstrip("/")
    return f"{base}/{service.code}"


def to_read(session: Session, service: GatewayService, *, with_versions: bool = True) -> dict[str, Any]:
    entry = session.get(CatalogEntry, service.entry_id)
    return {
        "id": service.id,
        "code": service.code,
        "name": service.name,
        "description": service.description,
        "entry_id": service.entry_id,
        "entry_name": entry.name if entry else "",
        "provider_org_id": service.provider_org_id,
        "provider_name": service.provider.name,
        "kind": service.kind,
        "status": service.status,
        "current_version": service.current_version,
        "rate_per_s": service.rate_per_s,
        "app_rate_per_s": service.app_rate_per_s,
        "app_daily_quota": service.app_daily_quota,
        "call_url": call_url(service),
        "created_at": service.created_at,
        "updated_at": service.updated_at,
        "versions": list(service.versions) if with_versions else [],
    }


# ---- OpenAPI description of one service -------------------------------------------------------------------

_PROBLEM = {"description": "错误（application/problem+json，code 字段稳定）"}
_SIGN_HEADERS = [
    {"name": "X-ZS-AccessKey", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-ZS-Timestamp", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-ZS-Nonce", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-ZS-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
]


def openapi(service: GatewayService, number: int | None = None) -> dict[str, Any]:
    """An OpenAPI 3.1 description of the service as callers reach it through the gateway."""
    version = version_of(service, number)
    cfg = version.config
    row = {
        "type": "object",
        "properties": {
            i["field"]: {"type": ["string", "number", "null"], "description": i["name"]} for i in cfg["items"]
        },
    }
    result = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": row},
            "next_cursor": {"type": ["string", "null"]},
            "request_id": {"type": "string"},
        },
    }
    responses = {
        "200": {
            "description": "成功（只含已授权的信息项，已按授权脱敏）",
            "content": {"application/json": {"schema": result}},
        },
        "401": _PROBLEM,
        "403": _PROBLEM,
        "429": _PROBLEM,
        "502": _PROBLEM,
        "503": _PROBLEM,
        "504": _PROBLEM,
    }
    fields_param = {
        "name": "fields",
        "in": "query",
        "required": False,
        "description": "只返回这些字段（逗号分隔）；含未授权字段时拒绝",
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {}
    base = f"/{service.code}"
    by_key = {i["key"]: i for i in cfg["items"]}
    if service.kind == "table":
        key_fields = [by_key[k]["field"] for k in cfg["key_items"] if k in by_key]
        filters = [by_key[k] for k in dict.fromkeys(cfg["key_items"] + cfg["filter_items"]) if k in by_key]
        paths[base + "/{key}"] = {
            "get": {
                "summary": f"按{by_key[cfg['key_items'][0]]['name']}查询" if key_fields else "按键查询",
                "parameters": [
                    *_SIGN_HEADERS,
                    {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                    fields_param,
                ],
                "responses": responses,
            }
        }
        paths[base] = {
            "get": {
                "summary": "按条件分页查询",
                "parameters": [
                    *_SIGN_HEADERS,
                    *[
                        {
                            "name": f["field"],
                            "in": "query",
                            "required": False,
                            "description": f["name"],
                            "schema": {"type": "string"},
                        }
                        for f in filters
                    ],
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    fields_param,
                ],
                "responses": responses,
            }
        }
    else:
        path_params = [p for p in cfg["params"] if p["location"] == "path"]
        suffix = "".join(f"/{{{p['name']}}}" for p in path_params)
        operation = {
            "summary": service.name,
            "parameters": [
                *_SIGN_HEADERS,
                *[
                    {
                        "name": p["name"],
                        "in": p["location"],
                        "required": p["required"] or p["location"] == "path",
                        "description": p["description"],
                        "schema": {"type": "string"},
                    }
                    for p in cfg["params"]
                ],
                fields_param,
            ],
            "responses": responses,
        }
        paths[base + suffix] = {cfg["method"].lower(): operation}
    return {
        "openapi": "3.1.0",
        "info": {"title": service.name, "version": str(version.number), "description": service.description},
        "servers": [{"url": call_url(service).removesuffix(f"/{service.code}")}],
        "paths": paths,
    }


# ---- apps and credentials ---------------------------------------------------------------------------------


def _new_access_key() -> str:
    return "AK" + secrets.token_hex(10).upper()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _issue(app: GatewayApp, actor: Actor) -> tuple[AppCredential, str]:
    secret = _new_secret()
    cred = AppCredential(
        id=new_id(),
        access_key=_new_access_key(),
        secret_encrypted=encrypt_secret(secret),
        status="active",
        created_at=utcnow(),
        created_by=actor.username,
    )
    app.credentials.append(cred)
    return cred, secret


def get_app(session: Session, *, actor: Actor, app_id: str) -> GatewayApp:
    app = session.get(GatewayApp, app_id)
    if app is None or not authz.allowed(actor, "gateway.view_app", app):
        raise NotFound("未找到该应用", code="gateway.app_not_found")
    return app


def create_app(session: Session, *, actor: Actor, app_in: AppIn) -> tuple[GatewayApp, dict[str, Any]]:
    """A new app of the actor's organization (an administrator may name another) with its first credential;
    the secret is in the answer and nowhere else."""
    org_id = app_in.org_id if (app_in.org_id and actor.is_admin) else actor.org_id
    if not org_id:
        raise ValidationFailed(code="gateway.invalid_app", errors=[_field("org_id", "请指定应用所属部门")])
    app = GatewayApp(
        id=new_id(),
        org_id=org_id,
        name=app_in.name.strip(),
        description=app_in.description,
        contact_name=app_in.contact_name,
        contact_phone=app_in.contact_phone,
        status="active",
        created_by=actor.username,
    )
    authz.ensure(actor, "gateway.manage_app", app)
    exists = session.scalar(select(GatewayApp.id).where(GatewayApp.org_id == org_id, GatewayApp.name == app.name))
    if exists is not None:
        raise Conflict(f"本部门已有名为“{app.name}”的应用", code="gateway.duplicate_app")
    cred, secret = _issue(app, actor)
    session.add(app)
    session.flush()
    bump_generation(session)
    emit(session, "gateway.app.created", app_id=app.id, org_id=org_id)
    return app, {"app_id": app.id, "access_key": cred.access_key, "secret": secret, "previous_valid_until": None}


def update_app(session: Session, *, actor: Actor, app_id: str, app_in: AppUpdate) -> GatewayApp:
    app = get_app(session, actor=actor, app_id=app_id)
    authz.ensure(actor, "gateway.manage_app", app)
    for name, value in app_in.model_dump(exclude_unset=True).items():
        if name in ("rate_per_s", "daily_quota"):
            setattr(app, name, value or None)
        elif value is not None:
            setattr(app, name, value)
    app.updated_at = utcnow()
    session.flush()
    bump_generation(session)
    emit(session, "gateway.app.updated", app_id=app.id, status=app.status)
    return app


def rotate_secret(
    session: Session, *, actor: Actor, app_id: str, overlap_hours: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A new credential; the ones in use keep working for the overlap window, then stop."""
    app = get_app(session, actor=actor, app_id=app_id)
    authz.ensure(actor, "gateway.manage_app", app)
    now = now or utcnow()
    hours = get_settings().gateway_secret_overlap_hours if overlap_hours is None else overlap_hours
    until = now + timedelta(hours=hours)
    previous: datetime | None = None
    for cred in app.credentials:
        if cred.status == "active" or (
            cred.status == "retiring" and (cred.expires_at is None or cred.expires_at > until)
        ):
            cred.status = "retiring" if hours > 0 else "revoked"
            cred.expires_at = until if hours > 0 else now
            previous = cred.expires_at if hours > 0 else None
    cred, secret = _issue(app, actor)
    session.flush()
    bump_generation(session)
    emit(session, "gateway.app.secret_rotated", app_id=app.id, access_key=cred.access_key)
    return {"app_id": app.id, "access_key": cred.access_key, "secret": secret, "previous_valid_until": previous}


def revoke_credential(session: Session, *, actor: Actor, app_id: str, access_key: str) -> AppCredential:
    app = get_app(session, actor=actor, app_id=app_id)
    authz.ensure(actor, "gateway.manage_app", app)
    cred = next((c for c in app.credentials if c.access_key == access_key), None)
    if cred is None:
        raise NotFound("该应用没有这个访问密钥", code="gateway.credential_not_found")
    cred.status = "revoked"
    cred.expires_at = utcnow()
    session.flush()
    bump_generation(session)
    emit(session, "gateway.app.credential_revoked", app_id=app.id, access_key=access_key)
    return cred


def list_apps_query(actor: Actor, *, org_id: str | None = None, q: str | None = None) -> Select[tuple[GatewayApp]]:
    stmt = select(GatewayApp).where(authz.scope(actor, "gateway.view_app"))
    if org_id:
        stmt = stmt.where(GatewayApp.org_id == org_id)
    if q:
        stmt = stmt.where(GatewayApp.name.like(f"%{q.strip()}%"))
    return stmt.order_by(GatewayApp.created_at.desc(), GatewayApp.id)


def list_apps(session: Session, *, actor: Actor, org_id: str | None = None) -> list[GatewayApp]:
    return list(session.scalars(list_apps_query(actor, org_id=org_id)))


def callable_services(session: Session, *, actor: Actor, org_id: str | None = None) -> list[GatewayService]:
    """Enabled services of entries the organization holds an authorization in force for (what its apps can call)."""
    from zhengshu.core.timeutil import local_today
    from zhengshu.demand.models import Authorization
    from zhengshu.gateway.snapshot import INTERFACE_DELIVERY

    org_id = org_id or actor.org_id
    if not org_id:
        return []
    today = local_today()
    entries = select(Authorization.entry_id).where(
        Authorization.consumer_org_id == org_id,
        Authorization.status == "active",
        Authorization.start_on <= today,
        Authorization.end_on >= today,
        Authorization.delivery_way == INTERFACE_DELIVERY,
    )
    stmt = list_query(actor, ServiceFilters(status="active")).where(GatewayService.entry_id.in_(entries))
    return list(session.scalars(stmt))


def app_to_read(app: GatewayApp) -> dict[str, Any]:
    return {
        "id": app.id,
        "org_id": app.org_id,
        "org_name": app.org.name,
        "name": app.name,
        "description": app.description,
        "contact_name": app.contact_name,
        "contact_phone": app.contact_phone,
        "status": app.status,
        "rate_per_s": app.rate_per_s,
        "daily_quota": app.daily_quota,
        "created_at": app.created_at,
        "credentials": list(app.credentials),
    }
