"""Admin console pages (管理后台): the console home, regions, organizations and users."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from zhengshu.core.errors import ZhengshuError
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization, Region
from zhengshu.org.schemas import OrganizationIn, OrganizationUpdate, RegionIn, UserIn, UserUpdate
from zhengshu.security import authz
from zhengshu.security.actor import ROLE_LABELS, Actor
from zhengshu.web import pagination
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import blank_to_none, form_errors, page_links, redirect
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
LEVEL_LABELS = {"province": "省", "city": "市", "county": "县（区）"}


def _count(session: Any, stmt: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


def _page(session: Any, stmt: Any, cursor: str | None) -> dict[str, Any]:
    items, next_cursor, total = pagination.paginate(session, stmt, limit=PAGE_SIZE, cursor=cursor, count=True)
    return {"items": items, "next_cursor": next_cursor, "total": total}


def ensure_admin(actor: Actor) -> None:
    authz.ensure(actor, "org.manage")


# ---- console home ---------------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
def admin_home(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    ensure_admin(actor)
    from zhengshu.calendar import service as calendar_service
    from zhengshu.lake import service as lake_service

    years = calendar_service.list_years(session)
    counts = {
        "regions": len(org_service.list_regions(session)),
        "organizations": _count(session, org_service.organizations_query(include_inactive=True)),
        "users": org_service.count_users(session),
        "years": len(years),
        "provisional_years": sum(1 for y in years if y.status == "provisional"),
        "sources": len(lake_service.list_sources(session, actor=actor)),
    }
    return render(request, "org/admin.html", {"counts": counts})


# ---- regions --------------------------------------------------------------------------------------------


def _region_tree(regions: list[Region]) -> list[dict[str, Any]]:
    children: dict[str | None, list[Region]] = defaultdict(list)
    for r in regions:
        children[r.parent_code].append(r)
    codes = {r.code for r in regions}
    roots = [r for r in regions if r.parent_code is None or r.parent_code not in codes]
    return [
        {
            "region": root,
            "cities": [{"region": c, "counties": children.get(c.code, [])} for c in children.get(root.code, [])],
        }
        for root in roots
    ]


def _regions_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    regions = org_service.list_regions(session)
    parents = [r for r in regions if r.level in ("province", "city")]
    return render(
        request,
        "org/regions.html",
        {
            "tree": _region_tree(regions),
            "parents": parents,
            "form": form or {},
            "errors": errors or {},
            "level_labels": LEVEL_LABELS,
            "count": len(regions),
        },
        status_code=status_code,
    )


@router.get("/admin/regions", response_class=HTMLResponse)
def regions_page(
    request: Request, session: DbSession, actor: CurrentActor, edit: Annotated[str | None, Query()] = None
) -> Response:
    ensure_admin(actor)
    form: dict[str, Any] = {}
    if edit:
        region = org_service.get_region(session, code=edit)
        form = {
            "code": region.code,
            "name": region.name,
            "level": region.level,
            "parent_code": region.parent_code or "",
            "valid_from": region.valid_from or "",
            "valid_to": region.valid_to or "",
            "editing": True,
        }
    return _regions_page(request, session, form=form)


@router.post("/admin/regions", dependencies=[Csrf])
def save_region(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = "",
    parent_code: Annotated[str, Form()] = "",
    valid_from: Annotated[str, Form()] = "",
    valid_to: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    form = {
        "code": code.strip(),
        "name": name.strip(),
        "level": level,
        "parent_code": parent_code,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }
    existed = session.get(Region, form["code"]) is not None
    try:
        region_in = RegionIn(
            code=form["code"],
            name=form["name"],
            level=level,
            parent_code=blank_to_none(parent_code),
            valid_from=blank_to_none(valid_from),
            valid_to=blank_to_none(valid_to),
        )
        region = org_service.upsert_region(session, actor=actor, region_in=region_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _regions_page(request, session, form=form, errors=form_errors(exc), status_code=422)
    verb = "修改" if existed else "新增"
    flash(
        request,
        f"已{verb}行政区划：{region.name}（{region.code}）",
        link=f"/admin/regions?edit={region.code}",
    )
    return redirect("/admin/regions")


# ---- organizations --------------------------------------------------------------------------------------


def _org_form(org: Any) -> dict[str, Any]:
    return {
        "name": org.name,
        "short_name": org.short_name,
        "uscc": org.uscc,
        "region_code": org.region_code,
        "parent_id": org.parent_id or "",
        "is_data_authority": org.is_data_authority,
        "dept_number": org.dept_number or "",
        "active": org.active,
    }


def _orgs_page(
    request: Request,
    session: DbSession,
    *,
    q: str | None,
    region_code: str | None,
    include_inactive: bool,
    cursor: str | None,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    page = _page(
        session,
        org_service.organizations_query(
            region_prefix=org_service.region_prefix(blank_to_none(region_code)),
            q=blank_to_none(q),
            include_inactive=include_inactive,
        ).options(joinedload(Organization.region)),  # the list shows each one's region
        cursor,
    )
    return render(
        request,
        "org/organizations.html",
        {
            "page": page,
            "next_url": page_links(request, page["next_cursor"]),
            "filters": {"q": q or "", "region_code": region_code or "", "include_inactive": include_inactive},
            "regions": org_service.list_regions(session),
            "all_orgs": org_service.list_organizations(session),
            "form": form or {},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/admin/organizations", response_class=HTMLResponse)
def organizations_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: str | None = None,
    region_code: str | None = None,
    include_inactive: bool = False,
    cursor: str | None = None,
) -> Response:
    ensure_admin(actor)
    return _orgs_page(request, session, q=q, region_code=region_code, include_inactive=include_inactive, cursor=cursor)


@router.post("/admin/organizations", dependencies=[Csrf])
def create_organization(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form()] = "",
    short_name: Annotated[str, Form()] = "",
    uscc: Annotated[str, Form()] = "",
    region_code: Annotated[str, Form()] = "",
    parent_id: Annotated[str, Form()] = "",
    is_data_authority: Annotated[str, Form()] = "",
    dept_number: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    form = {
        "name": name.strip(),
        "short_name": short_name.strip(),
        "uscc": uscc.strip().upper(),
        "region_code": region_code,
        "parent_id": parent_id,
        "is_data_authority": bool(is_data_authority),
        "dept_number": dept_number.strip(),
    }
    try:
        org_in = OrganizationIn(
            name=form["name"],
            short_name=form["short_name"],
            uscc=form["uscc"],
            region_code=region_code,
            parent_id=blank_to_none(parent_id),
            is_data_authority=bool(is_data_authority),
            dept_number=blank_to_none(dept_number),
        )
        org = org_service.create_organization(session, actor=actor, org_in=org_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _orgs_page(
            request,
            session,
            q=None,
            region_code=None,
            include_inactive=False,
            cursor=None,
            form=form,
            errors=form_errors(exc),
            status_code=422,
        )
    flash(request, f"已新增组织机构：{org.name}", link=f"/admin/organizations/{org.id}")
    return redirect("/admin/organizations")


def _org_edit_page(
    request: Request,
    session: DbSession,
    org: Any,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    users = org_service.list_users(session, actor=request.state.actor, org_id=org.id)
    return render(
        request,
        "org/organization_edit.html",
        {
            "org": org,
            "form": form or _org_form(org),
            "errors": errors or {},
            "users": users,
            "all_orgs": [o for o in org_service.list_organizations(session) if o.id != org.id],
        },
        status_code=status_code,
    )


@router.get("/admin/organizations/{org_id}", response_class=HTMLResponse)
def organization_page(request: Request, session: DbSession, actor: CurrentActor, org_id: str) -> Response:
    ensure_admin(actor)
    return _org_edit_page(request, session, org_service.get_organization(session, org_id=org_id))


@router.post("/admin/organizations/{org_id}", dependencies=[Csrf])
def update_organization(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    org_id: str,
    name: Annotated[str, Form()] = "",
    short_name: Annotated[str, Form()] = "",
    parent_id: Annotated[str, Form()] = "",
    is_data_authority: Annotated[str, Form()] = "",
    dept_number: Annotated[str, Form()] = "",
    active: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    org = org_service.get_organization(session, org_id=org_id)
    form = {
        **_org_form(org),
        "name": name.strip(),
        "short_name": short_name.strip(),
        "parent_id": parent_id,
        "is_data_authority": bool(is_data_authority),
        "dept_number": dept_number.strip(),
        "active": bool(active),
    }
    try:
        org_in = OrganizationUpdate(
            name=form["name"],
            short_name=form["short_name"],
            parent_id=blank_to_none(parent_id),
            is_data_authority=bool(is_data_authority),
            dept_number=blank_to_none(dept_number),
            active=bool(active),
        )
        org_service.update_organization(session, actor=actor, org_id=org_id, org_in=org_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _org_edit_page(request, session, org, form=form, errors=form_errors(exc), status_code=422)
    flash(request, f"已保存组织机构：{org.name}", link=f"/admin/organizations/{org.id}")
    return redirect(f"/admin/organizations/{org.id}")


# ---- users ----------------------------------------------------------------------------------------------


def _users_page(
    request: Request,
    session: DbSession,
    actor: Actor,
    *,
    q: str | None,
    org_id: str | None,
    cursor: str | None,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    page = _page(
        session, org_service.users_query(actor=actor, org_id=blank_to_none(org_id), q=blank_to_none(q)), cursor
    )
    orgs = org_service.list_organizations(session, include_inactive=True)
    return render(
        request,
        "org/users.html",
        {
            "page": page,
            "next_url": page_links(request, page["next_cursor"]),
            "filters": {"q": q or "", "org_id": org_id or ""},
            "orgs": [o for o in orgs if o.active],
            "org_names": {o.id: o.short_name or o.name for o in orgs},
            "role_labels": ROLE_LABELS,
            "form": form or {"roles": []},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: str | None = None,
    org_id: str | None = None,
    cursor: str | None = None,
) -> Response:
    ensure_admin(actor)
    return _users_page(request, session, actor, q=q, org_id=org_id, cursor=cursor)


@router.post("/admin/users", dependencies=[Csrf])
def create_user(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    org_id: Annotated[str, Form()] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    phone: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    form = {
        "username": username.strip(),
        "display_name": display_name.strip(),
        "org_id": org_id,
        "roles": roles or [],
        "phone": phone.strip(),
        "email": email.strip(),
    }
    try:
        user_in = UserIn.model_validate({**form, "password": password})
        user = org_service.create_user(session, actor=actor, user_in=user_in)
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _users_page(
            request,
            session,
            actor,
            q=None,
            org_id=None,
            cursor=None,
            form=form,
            errors=form_errors(exc),
            status_code=422,
        )
    flash(request, f"已新增用户：{user.display_name}（{user.username}）", link=f"/admin/users/{user.id}")
    return redirect("/admin/users")


def _user_edit_page(
    request: Request,
    session: DbSession,
    user: Any,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    form = form or {
        "display_name": user.display_name,
        "org_id": user.org_id,
        "roles": list(user.roles),
        "phone": user.phone,
        "email": user.email,
    }
    return render(
        request,
        "org/user_edit.html",
        {
            "user": user,
            "form": form,
            "errors": errors or {},
            "role_labels": ROLE_LABELS,
            "orgs": org_service.list_organizations(session),
        },
        status_code=status_code,
    )


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, session: DbSession, actor: CurrentActor, user_id: str) -> Response:
    ensure_admin(actor)
    return _user_edit_page(request, session, org_service.get_user(session, user_id=user_id))


def _update_user(
    request: Request,
    session: DbSession,
    actor: Actor,
    user_id: str,
    changes: dict[str, Any],
    form: dict[str, Any] | None,
    message: str,
) -> Response:
    user = org_service.get_user(session, user_id=user_id)
    try:
        org_service.update_user(session, actor=actor, user_id=user_id, user_in=UserUpdate.model_validate(changes))
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status != 422:
            raise
        return _user_edit_page(request, session, user, form=form, errors=form_errors(exc), status_code=422)
    flash(
        request,
        message.format(name=f"{user.display_name}（{user.username}）"),
        link=f"/admin/users/{user.id}",
    )
    return redirect(f"/admin/users/{user.id}")


@router.post("/admin/users/{user_id}", dependencies=[Csrf])
def update_user(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    user_id: str,
    display_name: Annotated[str, Form()] = "",
    org_id: Annotated[str, Form()] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    phone: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    form = {
        "display_name": display_name.strip(),
        "org_id": org_id,
        "roles": roles or [],
        "phone": phone.strip(),
        "email": email.strip(),
    }
    if not form["roles"]:
        user = org_service.get_user(session, user_id=user_id)
        return _user_edit_page(
            request, session, user, form=form, errors={"roles": "请至少选择一个角色"}, status_code=422
        )
    return _update_user(request, session, actor, user_id, form, form, "已保存用户信息：{name}")


@router.post("/admin/users/{user_id}/password", dependencies=[Csrf])
def reset_password(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    user_id: str,
    password: Annotated[str, Form()] = "",
    password_confirm: Annotated[str, Form()] = "",
) -> Response:
    ensure_admin(actor)
    if password != password_confirm:
        user = org_service.get_user(session, user_id=user_id)
        return _user_edit_page(
            request, session, user, errors={"password_confirm": "两次输入的口令不一致"}, status_code=422
        )
    return _update_user(
        request,
        session,
        actor,
        user_id,
        {"password": password},
        None,
        "已重置用户口令：{name}。请通过安全渠道告知本人，并提醒其登录后修改。",
    )


@router.post("/admin/users/{user_id}/deactivate", dependencies=[Csrf])
def deactivate_user(request: Request, session: DbSession, actor: CurrentActor, user_id: str) -> Response:
    ensure_admin(actor)
    if user_id == actor.user_id:
        user = org_service.get_user(session, user_id=user_id)
        return _user_edit_page(request, session, user, errors={"": "不能停用自己的账号"}, status_code=422)
    return _update_user(
        request,
        session,
        actor,
        user_id,
        {"active": False},
        None,
        "已停用用户：{name}。该用户已无法登录，其访问令牌同时失效。",
    )


@router.post("/admin/users/{user_id}/activate", dependencies=[Csrf])
def activate_user(request: Request, session: DbSession, actor: CurrentActor, user_id: str) -> Response:
    ensure_admin(actor)
    return _update_user(request, session, actor, user_id, {"active": True}, None, "已启用用户：{name}")
