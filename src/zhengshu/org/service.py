"""Regions, organizations, users, login and API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session, joinedload
from stdnum.cn import uscc as uscc_std
from stdnum.exceptions import ValidationError as StdnumError

from zhengshu.core.db import utcnow
from zhengshu.core.errors import ErrorCollector, NotFound, Unauthenticated
from zhengshu.org import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.org.models import ApiToken, Organization, Region, User
from zhengshu.org.schemas import OrganizationIn, OrganizationUpdate, RegionIn, UserIn, UserUpdate
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role
from zhengshu.security.crypto import new_token, token_digest
from zhengshu.security.passwords import check_login, hash_password

# ---- actors -------------------------------------------------------------------------------------------


def actor_for(user: User, *, source_ip: str | None = None, via: str = "web") -> Actor:
    return Actor(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        org_id=user.org_id,
        org_name=user.org.name if user.org else "",
        region_code=user.org.region_code if user.org else None,
        roles=frozenset(Role(r) for r in user.roles),
        source_ip=source_ip,
        via=via,
    )


def authenticate(session: Session, *, username: str, password: str) -> User:
    """Check a password; lock the account for a while after repeated failures."""
    user = session.scalars(select(User).where(User.username == username)).first()
    try:
        check_login(user, password, now=utcnow(), codes="auth", who="用户名")
    finally:
        session.flush()  # the failure count is kept even when the login is refused
    assert user is not None
    return user


def issue_token(session: Session, *, user: User, name: str, expires_days: int | None) -> tuple[str, ApiToken]:
    raw = "zs_" + new_token()
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_digest=token_digest(raw),
        prefix=raw[:10],
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    return raw, token


# What every API request loads for its bearer token, in one row: the token's validity (not the token itself),
# the user and its organization (read by :func:`actor_for` and, from the identity map, by the request's own
# code). One statement object with a bound parameter: its cache key is computed once, not per request.
_USER_FOR_TOKEN = (
    select(User, ApiToken.id, ApiToken.revoked, ApiToken.expires_at, ApiToken.last_used_at)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_digest == bindparam("digest"))
    .options(joinedload(User.org))
)


def user_for_token(session: Session, *, raw_token: str) -> User:
    row = session.execute(_USER_FOR_TOKEN, {"digest": token_digest(raw_token)}).first()
    now = utcnow()
    if row is None:
        raise Unauthenticated("访问令牌无效或已过期", code="auth.bad_token")
    user, token_id, revoked, expires_at, last_used_at = row
    if revoked or (expires_at and expires_at < now) or not user.active:
        raise Unauthenticated("访问令牌无效或已过期", code="auth.bad_token")
    if last_used_at is None or now - last_used_at > TOKEN_TOUCH_EVERY:
        _touch_token(session, token_id=token_id, now=now)
    return user


TOKEN_TOUCH_EVERY = timedelta(minutes=5)


def _touch_token(session: Session, *, token_id: str, now: datetime) -> None:
    """Record the token's use in a short transaction of its own: inside the request's transaction the row lock
    would queue every concurrent request using the same token until the first one commits."""
    bind = session.get_bind()
    with bind.connect() as conn:
        conn.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .where((ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now - TOKEN_TOUCH_EVERY))
            .values(last_used_at=now)
        )
        conn.commit()


# ---- regions ------------------------------------------------------------------------------------------


def regions_query(
    *, parent_code: str | None = None, level: str | None = None, current_only: bool = True
) -> Select[tuple[Region]]:
    stmt = select(Region).order_by(Region.code)
    if parent_code:
        stmt = stmt.where(Region.parent_code == parent_code)
    if level:
        stmt = stmt.where(Region.level == level)
    if current_only:
        stmt = stmt.where(Region.valid_to.is_(None))
    return stmt


def list_regions(session: Session, *, parent_code: str | None = None, current_only: bool = True) -> list[Region]:
    return list(session.scalars(regions_query(parent_code=parent_code, current_only=current_only)))


def get_region(session: Session, *, code: str) -> Region:
    region = session.get(Region, code)
    if region is None:
        raise NotFound(f"未找到行政区划 {code}", code="org.region_not_found")
    return region


def upsert_region(session: Session, *, actor: Actor, region_in: RegionIn) -> Region:
    authz.ensure(actor, "org.manage")
    if region_in.parent_code and session.get(Region, region_in.parent_code) is None:
        errors = ErrorCollector()
        errors.add("parent_code", f"上级行政区划 {region_in.parent_code} 不存在")
        errors.raise_if_any()
    region = session.get(Region, region_in.code) or Region(code=region_in.code)
    for field, value in region_in.model_dump().items():
        setattr(region, field, value)
    session.add(region)
    session.flush()
    return region


def region_covers(authority_region: str, region: str) -> bool:
    """A province-level authority covers provincial bodies; a city authority covers the city and its counties
    (counties use their city's platform)."""
    if authority_region.endswith("0000"):
        return region == authority_region
    if authority_region.endswith("00"):
        return region[:4] == authority_region[:4]
    return region == authority_region


# ---- organizations ------------------------------------------------------------------------------------


def validate_uscc(value: str) -> str | None:
    """Return a Chinese error message, or None when the code is valid."""
    try:
        uscc_std.validate(value)
    except StdnumError:
        return "统一社会信用代码无效（长度、字符集或校验码不正确）"
    except KeyError:
        return "统一社会信用代码中的行政区划代码无效"
    return None


def organizations_query(
    *, region_prefix: str | None = None, q: str | None = None, include_inactive: bool = False
) -> Select[tuple[Organization]]:
    stmt = select(Organization).order_by(Organization.region_code, Organization.name, Organization.id)
    if region_prefix:
        stmt = stmt.where(Organization.region_code.startswith(region_prefix))
    if q:
        stmt = stmt.where(Organization.name.contains(q))
    if not include_inactive:
        stmt = stmt.where(Organization.active.is_(True))
    return stmt


def list_organizations(
    session: Session, *, region_prefix: str | None = None, q: str | None = None, include_inactive: bool = False
) -> list[Organization]:
    query = organizations_query(region_prefix=region_prefix, q=q, include_inactive=include_inactive)
    return list(session.scalars(query))


def get_organization(session: Session, *, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound("未找到该组织机构", code="org.not_found")
    return org


def data_authority_for(session: Session, *, region_code: str) -> Organization | None:
    """The data authority (数据局) whose reviewers handle entries of bodies in ``region_code``."""
    city = region_code[:4] + "00"
    province = region_code[:2] + "0000"
    candidates = [region_code] if region_code.endswith("0000") else [city, province]
    for code in candidates:
        org = session.scalars(
            select(Organization).where(
                Organization.region_code == code,
                Organization.is_data_authority.is_(True),
                Organization.active.is_(True),
            )
        ).first()
        if org is not None:
            return org
    return None


def create_organization(session: Session, *, actor: Actor, org_in: OrganizationIn) -> Organization:
    authz.ensure(actor, "org.manage")
    errors = ErrorCollector()
    if (msg := validate_uscc(org_in.uscc)) is not None:
        errors.add("uscc", msg)
    if session.get(Region, org_in.region_code) is None:
        errors.add("region_code", f"行政区划 {org_in.region_code} 不存在")
    if org_in.parent_id and session.get(Organization, org_in.parent_id) is None:
        errors.add("parent_id", "上级机构不存在")
    if session.scalars(select(Organization.id).where(Organization.uscc == org_in.uscc)).first():
        errors.add("uscc", "该统一社会信用代码已被其他机构使用")
    if session.scalars(select(Organization.id).where(Organization.name == org_in.name)).first():
        errors.add("name", "机构名称已存在")
    errors.raise_if_any(code="org.invalid")
    org = Organization(**org_in.model_dump())
    session.add(org)
    session.flush()
    return org


def update_organization(session: Session, *, actor: Actor, org_id: str, org_in: OrganizationUpdate) -> Organization:
    authz.ensure(actor, "org.manage")
    org = get_organization(session, org_id=org_id)
    changes = org_in.model_dump(exclude_unset=True)
    if changes.get("parent_id") == org.id:
        errors = ErrorCollector()
        errors.add("parent_id", "上级机构不能是自身")
        errors.raise_if_any()
    for field, value in changes.items():
        setattr(org, field, value)
    session.flush()
    return org


# ---- users --------------------------------------------------------------------------------------------


def users_query(*, actor: Actor, org_id: str | None = None, q: str | None = None) -> Select[tuple[User]]:
    """Users this actor may see: administrators everyone, others their own organization."""
    stmt = select(User).order_by(User.username)
    if not actor.is_admin:
        stmt = stmt.where(User.org_id == actor.org_id)
    elif org_id:
        stmt = stmt.where(User.org_id == org_id)
    if q:
        stmt = stmt.where(User.username.contains(q) | User.display_name.contains(q))
    return stmt


def list_users(session: Session, *, actor: Actor, org_id: str | None = None, q: str | None = None) -> list[User]:
    return list(session.scalars(users_query(actor=actor, org_id=org_id, q=q)))


def get_user(session: Session, *, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("未找到该用户", code="org.user_not_found")
    return user


def get_user_by_username(session: Session, *, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"未找到用户 {username}", code="org.user_not_found")
    return user


def _check_roles(session: Session, errors: ErrorCollector, org: Organization | None, roles: list[Role]) -> None:
    if org is not None and Role.REVIEWER in roles and not org.is_data_authority:
        errors.add("roles", "审核员只能属于数据主管部门（数据局/大数据中心）")


def create_user(session: Session, *, actor: Actor, user_in: UserIn) -> User:
    authz.ensure(actor, "org.manage")
    errors = ErrorCollector()
    org = session.get(Organization, user_in.org_id)
    if org is None:
        errors.add("org_id", "所属机构不存在")
    if session.scalars(select(User.id).where(func.lower(User.username) == user_in.username.lower())).first():
        errors.add("username", "用户名已存在")
    from zhengshu.security.passwords import check_password_strength

    for message in check_password_strength(user_in.password):
        errors.add("password", message)
    _check_roles(session, errors, org, user_in.roles)
    errors.raise_if_any(code="org.invalid_user")
    user = User(
        username=user_in.username,
        display_name=user_in.display_name,
        password_hash=hash_password(user_in.password),
        org_id=user_in.org_id,
        roles=[r.value for r in user_in.roles],
        phone=user_in.phone,
        email=user_in.email,
    )
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, *, actor: Actor, user_id: str, user_in: UserUpdate) -> User:
    user = get_user(session, user_id=user_id)
    changes = user_in.model_dump(exclude_unset=True)
    self_service = actor.user_id == user.id and set(changes) <= {"display_name", "password", "phone", "email"}
    if not self_service:
        authz.ensure(actor, "org.manage")
    errors = ErrorCollector()
    if changes.get("password"):
        from zhengshu.security.passwords import check_password_strength

        for message in check_password_strength(changes["password"]):
            errors.add("password", message)
    org = session.get(Organization, changes.get("org_id") or user.org_id)
    if "org_id" in changes and org is None:
        errors.add("org_id", "所属机构不存在")
    roles = changes.get("roles")
    if roles is not None:
        _check_roles(session, errors, org, roles)
        if user.id == actor.user_id and Role.ADMIN not in roles and actor.is_admin:
            errors.add("roles", "不能取消自己的管理员角色")
    errors.raise_if_any(code="org.invalid_user")
    for field, value in changes.items():
        if field == "password":
            if value:
                user.password_hash = hash_password(value)
        elif field == "roles":
            user.roles = [Role(r).value for r in value]
        else:
            setattr(user, field, value)
    session.flush()
    return user


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def get_visible_user(session: Session, *, actor: Actor, user_id: str) -> User:
    """Administrators see every user, others the users of their own organization (as in :func:`list_users`)."""
    user = get_user(session, user_id=user_id)
    if not actor.is_admin and user.org_id != actor.org_id:
        raise NotFound("未找到该用户", code="org.user_not_found")
    return user


def revoke_token(session: Session, *, actor: Actor, raw_token: str) -> None:
    token = session.scalars(select(ApiToken).where(ApiToken.token_digest == token_digest(raw_token))).first()
    if token is None or token.user_id != actor.user_id:
        raise Unauthenticated("访问令牌无效或已过期", code="auth.bad_token")
    token.revoked = True
    session.flush()


def region_prefix(code: str | None) -> str | None:
    """360000 → "36" (the whole province), 360100 → "3601" (the city and its counties), a county itself."""
    if not code:
        return None
    prefix = code
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return prefix
