"""Demo interface services and apps: a generated data API on every published entry with a mounted database
table (keyed by its 身份证号 / 统一社会信用代码 / 代码 item), and an app for every department system that holds an
authorization. Called by the demo builder after catalogs, sources and authorizations exist."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.demand.models import Authorization
from zhengshu.gateway import service as gw_service
from zhengshu.gateway.models import GatewayApp, GatewayService
from zhengshu.gateway.schemas import AppIn, ServiceIn
from zhengshu.lake.models import DataSource
from zhengshu.security.actor import SYSTEM_ACTOR, Actor

KEY_WORDS = ("身份证号", "公民身份号码", "统一社会信用代码", "代码", "编号", "号码")


def _key_item(items: list[Any]) -> Any | None:
    with_column = [i for i in items if i.column_name]
    for word in KEY_WORDS:
        for item in with_column:
            if word in item.name:
                return item
    return with_column[0] if with_column else None


def _code(entry: CatalogEntry, taken: set[str]) -> str:
    base = "svc-" + re.sub(r"[^a-z0-9]+", "-", entry.code.lower()).strip("-")
    code, n = base[:56], 2
    while code in taken:
        code = f"{base[:52]}-{n}"
        n += 1
    taken.add(code)
    return code


def seed(session: Session, *, actor: Actor = SYSTEM_ACTOR, max_services: int = 30) -> dict[str, Any]:
    """Create the demo services and apps; returns what was made, with each app's secret (for the printed demo
    instructions — the platform keeps only the encrypted form)."""
    taken = set(session.scalars(select(GatewayService.code)))
    services: list[str] = []
    rows = session.execute(
        select(CatalogEntry, MountedResource)
        .join(MountedResource, MountedResource.entry_id == CatalogEntry.id)
        .join(DataSource, DataSource.id == MountedResource.source_id)
        .where(
            CatalogEntry.status == "published",
            MountedResource.kind == "table",
            MountedResource.active.is_(True),
            DataSource.kind.in_(gw_service.TABLE_SOURCE_KINDS),
        )
        .order_by(CatalogEntry.code)
    ).all()
    seen: set[str] = set()
    for entry, resource in rows:
        if entry.id in seen or len(services) >= max_services:
            continue
        seen.add(entry.id)
        if session.scalar(select(GatewayService.id).where(GatewayService.entry_id == entry.id)) is not None:
            continue
        items = catalog_service.display_version(session, entry).items
        key = _key_item(items)
        if key is None:
            continue
        filters = [i.name for i in items if i.column_name and i is not key][:2]
        service = gw_service.register_service(
            session,
            actor=actor,
            service_in=ServiceIn.model_validate(
                {
                    "entry_id": entry.id,
                    "code": _code(entry, taken),
                    "name": f"{entry.name}查询",
                    "description": (
                        f"按{key.name}查询{entry.name}，或按条件分页查询；只返回已授权的信息项并按授权脱敏。"
                    ),
                    "kind": "table",
                    "table": {"resource_id": resource.id, "key_items": [key.name], "filter_items": filters},
                }
            ),
        )
        services.append(service.code)
    apps: list[dict[str, Any]] = []
    systems = session.execute(
        select(Authorization.consumer_org_id, Authorization.consumer_system)
        .where(Authorization.status == "active")
        .distinct()
        .order_by(Authorization.consumer_org_id, Authorization.consumer_system)
    ).all()
    for org_id, system in systems:
        name = (system or "业务系统")[:200]
        exists = session.scalar(select(GatewayApp.id).where(GatewayApp.org_id == org_id, GatewayApp.name == name))
        if exists is not None:
            continue
        app, issued = gw_service.create_app(session, actor=actor, app_in=AppIn(name=name, org_id=org_id))
        apps.append({"org_id": org_id, "name": app.name, **issued})
    return {"services": services, "apps": apps}
