"""HTTP API of login tokens, regions, organizations and users: /api/v1/auth/… and /api/v1/org/…"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhengshu.audit import service as audit_service
from zhengshu.core.errors import NotFound, Unauthenticated, ValidationFailed
from zhengshu.org import service as org_service
from zhengshu.org.schemas import (
    OrganizationIn,
    OrganizationRead,
    OrganizationUpdate,
    RegionIn,
    RegionRead,
    TokenIn,
    TokenRead,
    UserIn,
    UserRead,
    UserUpdate,
)
from zhengshu.security import authz
from zhengshu.security.actor import ROLE_LABELS, Role
from zhengshu.web.deps import CurrentActor, DbSession, client_ip
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

public_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(tags=["org"])

RegionCode = Annotated[str, Path(pattern=r"^\d{6}$", description="6 位行政区划代码")]


# ---- tokens ---------------------------------------------------------------------------------------------


@public_router.post("/token", response_model=TokenRead, summary="以用户名和口令换取访问令牌")
def issue_token(request: Request, session: DbSession, token_in: TokenIn) -> Any:
    ip = client_ip(request)
    try:
        user = org_service.authenticate(session, username=token_in.username, password=token_in.password)
    except Unauthenticated as exc:
        audit_service.record(
            session,
            actor=None,
            action="auth.token",
            target_type="user",
            target_id=token_in.username,
            outcome="failure",
            source_ip=ip,
            detail={"reason": exc.code},
        )
        # Keep the failed-login counter (the lock-out) and the audit record: the error rolls back the rest.
        session.commit()
        raise
    raw, token = org_service.issue_token(session, user=user, name=token_in.name, expires_days=token_in.expires_days)
    actor = org_service.actor_for(user, source_ip=ip, via="api")
    request.state.actor = actor
    audit_service.record(
        session,
        actor=actor,
        action="auth.token",
        target_type="api_token",
        target_id=token.id,
        detail={"name": token.name, "prefix": token.prefix},
    )
    return TokenRead(token=raw, expires_at=token.expires_at)


class RoleRead(BaseModel):
    code: str
    label: str


class MeRead(BaseModel):
    id: str
    username: str
    display_name: str
    roles: list[RoleRead]
    is_admin: bool
    phone: str
    email: str
    last_login_at: datetime | None
    org: OrganizationRead


@router.get("/auth/me", response_model=MeRead, summary="当前用户、角色与所属机构")
def me(session: DbSession, actor: CurrentActor) -> Any:
    if actor.user_id is None:
        raise NotFound("当前身份不是平台用户", code="org.user_not_found")
    user = org_service.get_user(session, user_id=actor.user_id)
    return MeRead(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=[RoleRead(code=r, label=ROLE_LABELS[Role(r)]) for r in user.roles],
        is_admin=actor.is_admin,
        phone=user.phone,
        email=user.email,
        last_login_at=user.last_login_at,
        org=OrganizationRead.model_validate(user.org),
    )


@router.delete("/auth/token", status_code=204, summary="注销当前访问令牌")
def revoke_token(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    header = request.headers.get("authorization", "")
    raw = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not raw:
        raise ValidationFailed("当前请求未使用访问令牌（Authorization: Bearer …）", code="auth.no_token")
    org_service.revoke_token(session, actor=actor, raw_token=raw)
    return Response(status_code=204)


# ---- regions --------------------------------------------------------------------------------------------


class RegionBody(BaseModel):
    """A region's fields; its code is in the path."""

    name: str = Field(min_length=1, max_length=60)
    level: str = Field(pattern=r"^(province|city|county)$", description="province | city | county")
    parent_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    valid_from: int | None = None
    valid_to: int | None = None


@router.get("/org/regions", response_model=Page[RegionRead], summary="行政区划（可按上级代码筛选）")
def list_regions(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    parent_code: Annotated[str | None, Query(pattern=r"^\d{6}$", description="上级行政区划代码")] = None,
    level: Annotated[str | None, Query(pattern=r"^(province|city|county)$")] = None,
    include_history: Annotated[bool, Query(description="为 true 时包含已撤销的区划")] = False,
) -> dict[str, Any]:
    authz.ensure(actor, "org.view")
    stmt = org_service.regions_query(parent_code=parent_code, level=level, current_only=not include_history)
    items, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.get("/org/regions/{code}", response_model=RegionRead, summary="行政区划详情")
def get_region(session: DbSession, actor: CurrentActor, code: RegionCode) -> Any:
    authz.ensure(actor, "org.view")
    return org_service.get_region(session, code=code)


@router.put("/org/regions/{code}", response_model=RegionRead, summary="新增或修改行政区划（管理员）")
def put_region(session: DbSession, actor: CurrentActor, code: RegionCode, body: RegionBody) -> Any:
    region_in = RegionIn(code=code, **body.model_dump())
    return org_service.upsert_region(session, actor=actor, region_in=region_in)


# ---- organizations --------------------------------------------------------------------------------------


@router.get("/org/organizations", response_model=Page[OrganizationRead], summary="组织机构列表")
def list_organizations(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    q: Annotated[str | None, Query(description="按名称检索")] = None,
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}$", description="行政区划（含下级）")] = None,
    include_inactive: bool = False,
) -> dict[str, Any]:
    authz.ensure(actor, "org.view")
    stmt = org_service.organizations_query(
        region_prefix=org_service.region_prefix(region_code), q=q, include_inactive=include_inactive
    )
    items, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.post("/org/organizations", response_model=OrganizationRead, status_code=201, summary="新增组织机构（管理员）")
def create_organization(session: DbSession, actor: CurrentActor, org_in: OrganizationIn) -> Any:
    return org_service.create_organization(session, actor=actor, org_in=org_in)


@router.get("/org/organizations/{org_id}", response_model=OrganizationRead, summary="组织机构详情")
def get_organization(session: DbSession, actor: CurrentActor, org_id: str) -> Any:
    authz.ensure(actor, "org.view")
    return org_service.get_organization(session, org_id=org_id)


@router.patch("/org/organizations/{org_id}", response_model=OrganizationRead, summary="修改组织机构（管理员）")
def update_organization(session: DbSession, actor: CurrentActor, org_id: str, org_in: OrganizationUpdate) -> Any:
    return org_service.update_organization(session, actor=actor, org_id=org_id, org_in=org_in)


# ---- users ----------------------------------------------------------------------------------------------


@router.get("/org/users", response_model=Page[UserRead], summary="用户列表（非管理员只见本单位）")
def list_users(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    q: Annotated[str | None, Query(description="按用户名或姓名检索")] = None,
    org_id: str | None = None,
) -> dict[str, Any]:
    stmt = org_service.users_query(actor=actor, org_id=org_id, q=q)
    items, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.post("/org/users", response_model=UserRead, status_code=201, summary="新增用户（管理员）")
def create_user(session: DbSession, actor: CurrentActor, user_in: UserIn) -> Any:
    return org_service.create_user(session, actor=actor, user_in=user_in)


@router.get("/org/users/{user_id}", response_model=UserRead, summary="用户详情")
def get_user(session: DbSession, actor: CurrentActor, user_id: str) -> Any:
    return org_service.get_visible_user(session, actor=actor, user_id=user_id)


@router.patch(
    "/org/users/{user_id}",
    response_model=UserRead,
    summary="修改用户（管理员；本人可改姓名、口令、电话、邮箱）",
)
def update_user(session: DbSession, actor: CurrentActor, user_id: str, user_in: UserUpdate) -> Any:
    org_service.get_visible_user(session, actor=actor, user_id=user_id)
    return org_service.update_user(session, actor=actor, user_id=user_id, user_in=user_in)
