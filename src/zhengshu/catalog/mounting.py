"""Mounting real resources on an entry (挂接): a table or file of a registered source, or an API."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field, HttpUrl
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.core.db import utcnow
from zhengshu.core.errors import Conflict, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.lake import service as lake_service
from zhengshu.lake.connectors import TableRef
from zhengshu.security import authz
from zhengshu.security.actor import Actor


class ApiParam(BaseModel):
    name: str = Field(min_length=1, max_length=60)
    location: str = Field(default="query", pattern=r"^(query|path|header|body)$")
    required: bool = False
    description: str = Field(default="", max_length=200)


class TableMountIn(BaseModel):
    source_id: str
    table: str = Field(min_length=1, max_length=300, description="表名、文件名或工作表名；模式名另填 schema_name")
    schema_name: str | None = Field(default=None, max_length=128)
    allow_problems: bool = Field(default=False, description="字段核对有不符时仍然挂接（将标注为核对未通过）")


class ApiMountIn(BaseModel):
    endpoint: HttpUrl
    method: str = Field(default="GET", pattern=r"^(GET|POST)$")
    params: list[ApiParam] = Field(default_factory=list)


def _entry_for_mount(session: Session, actor: Actor, entry_id: str) -> CatalogEntry:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.mount", entry)
    if entry.status == "withdrawn":
        raise Conflict("已下架的目录不能挂接资源", code="catalog.withdrawn")
    return entry


def _check(
    session: Session, actor: Actor, entry: CatalogEntry, source_id: str, table: TableRef
) -> tuple[Any, lake_service.MountCheck]:
    description = lake_service.describe_table(session, actor=actor, source_id=source_id, table=table)
    items = catalog_service.display_version(session, entry).items
    if entry.working_version_id:
        working = catalog_service.working_version(session, entry)
        items = working.items if working else items
    return description, lake_service.check_items_against_table(items, description)


def _problems(check: lake_service.MountCheck) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in check.problems]


def mount_table(session: Session, *, actor: Actor, entry_id: str, mount_in: TableMountIn) -> MountedResource:
    entry = _entry_for_mount(session, actor, entry_id)
    source = lake_service.get_source(session, actor=actor, source_id=mount_in.source_id)
    if source.owner_org_id != entry.provider_org_id:
        raise ValidationFailed("只能挂接提供方自己登记的数据源", code="catalog.mount_foreign_source")
    table = TableRef(schema=mount_in.schema_name, name=mount_in.table)
    description, check = _check(session, actor, entry, source.id, table)
    blocking = [p for p in check.problems if p.blocking]
    if blocking and not mount_in.allow_problems:
        raise ValidationFailed(
            "数据表字段与目录信息项不一致，未挂接",
            code="catalog.mount_mismatch",
            extra={"problems": _problems(check)},
        )
    resource = MountedResource(
        entry_id=entry.id,
        kind="file" if source.kind in ("csv", "xlsx", "parquet") else "table",
        source_id=source.id,
        table_schema=table.schema,
        table_name=table.name,
        created_by=actor.username,
    )
    _record_check(resource, description, check)
    entry.resources.append(resource)
    session.flush()
    emit(session, "catalog.resource.mounted", entry_id=entry.id, resource_id=resource.id)
    return resource


def _record_check(resource: MountedResource, description: Any, check: lake_service.MountCheck) -> None:
    resource.row_count = description.row_count
    resource.last_updated = description.last_updated
    resource.last_updated_basis = description.last_updated_basis
    resource.checked_at = utcnow()
    resource.check_ok = not any(p.blocking for p in check.problems)
    resource.check_problems = _problems(check)


def mount_api(session: Session, *, actor: Actor, entry_id: str, mount_in: ApiMountIn) -> MountedResource:
    entry = _entry_for_mount(session, actor, entry_id)
    resource = MountedResource(
        entry_id=entry.id,
        kind="api",
        api_endpoint=str(mount_in.endpoint),
        api_method=mount_in.method,
        api_params=[p.model_dump() for p in mount_in.params],
        created_by=actor.username,
        check_ok=True,
        checked_at=utcnow(),
    )
    entry.resources.append(resource)
    session.flush()
    emit(session, "catalog.resource.mounted", entry_id=entry.id, resource_id=resource.id)
    return resource


def get_resource(session: Session, *, actor: Actor, entry_id: str, resource_id: str) -> MountedResource:
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    for resource in entry.resources:
        if resource.id == resource_id:
            return resource
    raise NotFound("未找到该挂接资源", code="catalog.resource_not_found")


def refresh(session: Session, *, actor: Actor, entry_id: str, resource_id: str) -> MountedResource:
    """Re-check columns and record the current row count and last-update time."""
    resource = get_resource(session, actor=actor, entry_id=entry_id, resource_id=resource_id)
    entry = _entry_for_mount(session, actor, entry_id)
    if resource.kind == "api" or resource.source_id is None:
        resource.checked_at = utcnow()
        return resource
    table = TableRef(schema=resource.table_schema, name=resource.table_name or "")
    description, check = _check(session, actor, entry, resource.source_id, table)
    _record_check(resource, description, check)
    session.flush()
    return resource


def unmount(session: Session, *, actor: Actor, entry_id: str, resource_id: str) -> None:
    resource = get_resource(session, actor=actor, entry_id=entry_id, resource_id=resource_id)
    _entry_for_mount(session, actor, entry_id)
    resource.active = False
    session.flush()
    emit(session, "catalog.resource.unmounted", entry_id=entry_id, resource_id=resource_id)
