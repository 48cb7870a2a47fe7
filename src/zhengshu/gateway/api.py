"""Control-plane API of the gateway (/api/v1/gateway/…): services and their versions and OpenAPI
descriptions, apps and credentials (a secret appears only in the answer that issues it), call logs and figures.

The calls themselves go to the gateway (``/gw/<service code>…``), signed, not through this API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from zhengshu.core.errors import ValidationFailed
from zhengshu.gateway import calllog
from zhengshu.gateway import service as gw_service
from zhengshu.gateway.schemas import (
    AppIn,
    AppRead,
    AppUpdate,
    CallRead,
    CredentialRead,
    RotateIn,
    SecretIssued,
    ServiceIn,
    ServiceRead,
    ServiceUpdate,
    VersionIn,
    VersionRead,
)
from zhengshu.security import authz
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

router = APIRouter(prefix="/gateway", tags=["gateway"])


class AppCreated(BaseModel):
    app: AppRead
    credential: SecretIssued


# ---- services ---------------------------------------------------------------------------------------------


@router.get("/services", response_model=Page[ServiceRead], summary="接口服务列表")
def list_services(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    q: str | None = None,
    entry_id: str | None = None,
    provider_org_id: str | None = None,
    status: Annotated[str | None, Query(pattern="^(active|disabled)$")] = None,
    kind: Annotated[str | None, Query(pattern="^(proxy|table)$")] = None,
) -> dict[str, Any]:
    filters = gw_service.ServiceFilters(
        q=q, entry_id=entry_id, provider_org_id=provider_org_id, status=status, kind=kind
    )
    rows, next_cursor, total = paginate(
        session, gw_service.list_query(actor, filters), limit=limit, cursor=cursor, count=count
    )
    items = [gw_service.to_read(session, s, with_versions=False) for s in rows]
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.post("/services", response_model=ServiceRead, status_code=201, summary="登记接口服务（代理或库表生成）")
def register_service(session: DbSession, actor: CurrentActor, service_in: ServiceIn) -> dict[str, Any]:
    service = gw_service.register_service(session, actor=actor, service_in=service_in)
    return gw_service.to_read(session, service)


@router.get("/services/{service_id}", response_model=ServiceRead, summary="接口服务详情（id 或服务代码）")
def get_service(session: DbSession, actor: CurrentActor, service_id: str) -> dict[str, Any]:
    return gw_service.to_read(session, gw_service.get_service(session, actor=actor, service_id=service_id))


@router.patch("/services/{service_id}", response_model=ServiceRead, summary="修改、启用或停用接口服务，切换对外版本")
def update_service(
    session: DbSession, actor: CurrentActor, service_id: str, service_in: ServiceUpdate
) -> dict[str, Any]:
    service = gw_service.update_service(session, actor=actor, service_id=service_id, service_in=service_in)
    return gw_service.to_read(session, service)


@router.post(
    "/services/{service_id}/versions", response_model=VersionRead, status_code=201, summary="发布接口服务的新版本"
)
def add_version(
    session: DbSession,
    actor: CurrentActor,
    service_id: str,
    version_in: VersionIn,
    activate: Annotated[bool, Query(description="立即作为对外版本")] = True,
) -> Any:
    return gw_service.add_version(session, actor=actor, service_id=service_id, version_in=version_in, activate=activate)


@router.get("/services/{service_id}/openapi.json", summary="接口服务的 OpenAPI 说明")
def service_openapi(
    session: DbSession, actor: CurrentActor, service_id: str, version: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    service = gw_service.get_service(session, actor=actor, service_id=service_id)
    return gw_service.openapi(service, version)


# ---- apps and credentials ---------------------------------------------------------------------------------


@router.get("/apps", response_model=Page[AppRead], summary="应用列表（本部门；管理员为全部）")
def list_apps(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    q: str | None = None,
    org_id: str | None = None,
) -> dict[str, Any]:
    stmt = gw_service.list_apps_query(actor, org_id=org_id, q=q)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [gw_service.app_to_read(a) for a in rows], "next_cursor": next_cursor, "total": total}


@router.post("/apps", response_model=AppCreated, status_code=201, summary="登记应用并签发访问密钥（密钥只显示这一次）")
def create_app(session: DbSession, actor: CurrentActor, app_in: AppIn) -> dict[str, Any]:
    app, issued = gw_service.create_app(session, actor=actor, app_in=app_in)
    return {"app": gw_service.app_to_read(app), "credential": issued}


@router.get("/apps/{app_id}", response_model=AppRead, summary="应用详情（不含密钥）")
def get_app(session: DbSession, actor: CurrentActor, app_id: str) -> dict[str, Any]:
    return gw_service.app_to_read(gw_service.get_app(session, actor=actor, app_id=app_id))


@router.patch("/apps/{app_id}", response_model=AppRead, summary="修改、启用或停用应用")
def update_app(session: DbSession, actor: CurrentActor, app_id: str, app_in: AppUpdate) -> dict[str, Any]:
    return gw_service.app_to_read(gw_service.update_app(session, actor=actor, app_id=app_id, app_in=app_in))


@router.post(
    "/apps/{app_id}/rotate-secret", response_model=SecretIssued, summary="轮换密钥（旧密钥在过渡期内继续有效）"
)
def rotate_secret(session: DbSession, actor: CurrentActor, app_id: str, body: RotateIn | None = None) -> Any:
    overlap = body.overlap_hours if body is not None else None
    return gw_service.rotate_secret(session, actor=actor, app_id=app_id, overlap_hours=overlap)


@router.post(
    "/apps/{app_id}/credentials/{access_key}/revoke", response_model=CredentialRead, summary="立即停用一个访问密钥"
)
def revoke_credential(session: DbSession, actor: CurrentActor, app_id: str, access_key: str) -> Any:
    return gw_service.revoke_credential(session, actor=actor, app_id=app_id, access_key=access_key)


# ---- call logs --------------------------------------------------------------------------------------------


def _filters(
    service_id: str | None,
    app_id: str | None,
    since: datetime | None,
    until: datetime | None,
    errors_only: bool,
    code: str | None,
) -> calllog.CallFilters:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(f"{name} 须带时区，如 2026-11-27T00:00:00+08:00", code="gateway.bad_time")
    return calllog.CallFilters(
        service_id=service_id, app_id=app_id, since=since, until=until, errors_only=errors_only, code=code
    )


@router.get("/calls", response_model=Page[CallRead], summary="调用记录（本部门的应用发出的，或调用本部门服务的）")
def list_calls(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    service_id: str | None = None,
    app_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    errors_only: bool = False,
    code: str | None = None,
) -> dict[str, Any]:
    authz.ensure(actor, "gateway.view_calls")
    filters = _filters(service_id, app_id, since, until, errors_only, code)
    rows, next_cursor, total = paginate(
        session, calllog.list_query(actor, filters), limit=limit, cursor=cursor, count=count
    )
    return {"items": rows, "next_cursor": next_cursor, "total": total}


@router.get("/calls/stats", summary="调用统计：总量、错误、按应用、按服务、按结果、按日")
def call_stats(
    session: DbSession,
    actor: CurrentActor,
    service_id: str | None = None,
    app_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    authz.ensure(actor, "gateway.view_calls")
    return calllog.stats(session, actor=actor, filters=_filters(service_id, app_id, since, until, False, None))
