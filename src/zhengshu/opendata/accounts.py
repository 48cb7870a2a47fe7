"""Registered public accounts (个人 / 法人), their login and API keys.

Public accounts are not government users: they never become an :class:`~zhengshu.security.actor.Actor` with
roles, log in through the open portal only, and reach data only through the open-data checks in
:mod:`zhengshu.opendata.access`. Passwords are argon2id (the platform's hasher); API keys and resident IDs are
stored as SM3 digests only.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from zhengshu.core.db import utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, FieldError, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.opendata import public_permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.opendata.access import API_KEY_PREFIX
from zhengshu.opendata.public_models import PublicAccount, PublicApiKey
from zhengshu.opendata.public_schemas import AccountIn, AccountKind
from zhengshu.org.service import validate_uscc
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import new_token, token_digest
from zhengshu.security.passwords import (
    check_login,
    check_password_strength,
    hash_password,
    verify_password,
)

MAX_ACTIVE_KEYS = 5


def _mask_id(number: str) -> str:
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def _check_ric(number: str) -> str | None:
    try:
        ric.validate(number)
    except StdnumError:
        return "居民身份证号无效（长度、出生日期或校验码不正确）"
    except KeyError:  # stdnum raises KeyError for an unknown area code
        return "居民身份证号中的地址码无效"
    return None


def register(session: Session, *, account_in: AccountIn) -> PublicAccount:
    """Create an account. Everything wrong is reported at once; nothing is written then."""
    errors = ErrorCollector()
    for problem in check_password_strength(account_in.password):
        errors.add("password", problem)
    if session.scalar(select(func.count()).where(func.lower(PublicAccount.username) == account_in.username.lower())):
        errors.add("username", "该登录名已被注册")
    id_number = account_in.id_number.upper()
    uscc = account_in.uscc.upper()
    if account_in.kind == AccountKind.PERSON.value and id_number:
        problem = _check_ric(id_number)
        if problem:
            errors.add("id_number", problem)
        elif session.scalar(select(func.count()).where(PublicAccount.id_number_digest == token_digest(id_number))):
            errors.add("id_number", "该身份证号已注册过账号，请直接登录或找回密码")
    if account_in.kind == AccountKind.COMPANY.value:
        problem = validate_uscc(uscc)
        if problem:
            errors.add("uscc", problem)
        elif session.scalar(select(func.count()).where(PublicAccount.uscc == uscc)):
            errors.add("uscc", "该统一社会信用代码已注册过账号，请由原经办人登录或联系平台管理员")
    errors.raise_if_any("注册信息未通过校验", code="opendata.account_invalid")
    person = account_in.kind == AccountKind.PERSON.value
    account = PublicAccount(
        kind=account_in.kind,
        username=account_in.username,
        display_name=account_in.display_name,
        email=account_in.email,
        phone=account_in.phone,
        password_hash=hash_password(account_in.password),
        id_number_masked=_mask_id(id_number) if person and id_number else "",
        id_number_digest=token_digest(id_number) if person and id_number else None,
        # a valid check digit is not identity proof: the real-name check against the population base library
        # (核验 service) marks it verified; registration only records the format check
        id_verified=False,
        company_name=account_in.company_name if not person else "",
        uscc=uscc if not person else None,
        contact_name=account_in.contact_name or (account_in.display_name if not person else ""),
    )
    session.add(account)
    session.flush()
    emit(session, "opendata.account_registered", account_id=account.id, kind=account.kind)
    return account


def authenticate(session: Session, *, username: str, password: str) -> PublicAccount:
    account = session.scalars(select(PublicAccount).where(PublicAccount.username == username)).first()
    try:
        check_login(account, password, now=utcnow(), codes="opendata", who="登录名")
    finally:
        session.flush()  # the failure count is kept even when the login is refused
    assert account is not None
    return account


def change_password(session: Session, *, account: PublicAccount, old_password: str, new_password: str) -> None:
    """Change the password; every other login session of the account ends (the session epoch changes)."""
    if not verify_password(account.password_hash, old_password):
        raise ValidationFailed(
            "原密码不正确", code="opendata.bad_password", errors=[FieldError("old_password", "原密码不正确")]
        )
    problems = check_password_strength(new_password)
    if problems:
        raise ValidationFailed(
            "新密码强度不足", code="opendata.weak_password", errors=[FieldError("new_password", p) for p in problems]
        )
    account.password_hash = hash_password(new_password)
    session.flush()
    emit(session, "opendata.password_changed", account_id=account.id)


def get(session: Session, *, account_id: str) -> PublicAccount:
    account = session.get(PublicAccount, account_id)
    if account is None:
        raise NotFound("未找到该开放平台账号", code="opendata.account_not_found")
    return account


def get_by_username(session: Session, *, username: str) -> PublicAccount:
    account = session.scalars(select(PublicAccount).where(PublicAccount.username == username)).first()
    if account is None:
        raise NotFound(f"未找到开放平台账号 {username}", code="opendata.account_not_found")
    return account


# ---- API keys ---------------------------------------------------------------------------------------------


def issue_key(
    session: Session, *, account: PublicAccount, name: str, expires_days: int | None = None
) -> tuple[str, PublicApiKey]:
    """A new key; the plain key is returned this once and only its digest is kept."""
    active = session.scalar(
        select(func.count()).where(PublicApiKey.account_id == account.id, PublicApiKey.revoked.is_(False))
    )
    if (active or 0) >= MAX_ACTIVE_KEYS:
        raise Conflict(
            f"每个账号最多同时持有 {MAX_ACTIVE_KEYS} 个有效的 API Key，请先吊销不用的", code="opendata.too_many_keys"
        )
    raw = API_KEY_PREFIX + new_token(24)
    now = utcnow()
    key = PublicApiKey(
        account_id=account.id,
        name=name,
        key_digest=token_digest(raw),
        prefix=raw[:10],
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(key)
    session.flush()
    emit(session, "opendata.api_key_issued", account_id=account.id, key_id=key.id)
    return raw, key


def list_keys(session: Session, *, account: PublicAccount) -> list[PublicApiKey]:
    return list(
        session.scalars(
            select(PublicApiKey).where(PublicApiKey.account_id == account.id).order_by(PublicApiKey.created_at.desc())
        )
    )


def revoke_key(session: Session, *, account: PublicAccount, key_id: str) -> PublicApiKey:
    key = session.get(PublicApiKey, key_id)
    if key is None or key.account_id != account.id:
        raise NotFound("未找到该 API Key", code="opendata.api_key_not_found")
    key.revoked = True
    session.flush()
    emit(session, "opendata.api_key_revoked", account_id=account.id, key_id=key.id)
    return key


# ---- administration ---------------------------------------------------------------------------------------


def list_accounts(session: Session, *, actor: Actor, q: str | None = None, limit: int = 200) -> list[PublicAccount]:
    authz.ensure(actor, "opendata.account_manage")
    stmt = select(PublicAccount).order_by(PublicAccount.created_at.desc())
    if q:
        like = f"%{q}%"
        stmt = stmt.where(
            PublicAccount.username.ilike(like)
            | PublicAccount.display_name.ilike(like)
            | PublicAccount.company_name.ilike(like)
        )
    return list(session.scalars(stmt.limit(limit)))


def set_quota(
    session: Session, *, actor: Actor, account_id: str, daily_quota: int | None, key_id: str | None = None
) -> PublicAccount:
    """Set an account's (or one of its keys') daily quota; None returns to the platform default."""
    authz.ensure(actor, "opendata.account_manage")
    account = get(session, account_id=account_id)
    if key_id:
        key = session.get(PublicApiKey, key_id)
        if key is None or key.account_id != account.id:
            raise NotFound("未找到该 API Key", code="opendata.api_key_not_found")
        key.daily_quota = daily_quota
    else:
        account.daily_quota = daily_quota
    session.flush()
    emit(session, "opendata.quota_changed", account_id=account.id, key_id=key_id, daily_quota=daily_quota)
    return account


def set_active(session: Session, *, actor: Actor, account_id: str, active: bool) -> PublicAccount:
    authz.ensure(actor, "opendata.account_manage")
    account = get(session, account_id=account_id)
    account.active = active
    session.flush()
    emit(session, "opendata.account_" + ("enabled" if active else "disabled"), account_id=account.id)
    return account


def label(account: PublicAccount) -> str:
    """How an applicant is shown to providers: a company by its name, a person by name and account."""
    if account.kind == AccountKind.COMPANY.value:
        return f"{account.company_name}（{account.contact_name or account.display_name}）"
    return f"{account.display_name}（{account.username}）"
