"""Who is calling the open-data portal, and may they take this data away?

The portal core (pages, data API, downloads) and the CKAN API call the two functions of the contract:
:func:`account_from_request` (an API key in ``X-API-Key`` / ``?api_key=``, or a logged-in public account) and
:func:`check_download` (conditionally open data needs an active grant covering the items; every call made
with an account counts against its daily quota).

Quotas are counted with the ``limits`` library per key (or per account without a key) per Asia/Shanghai
calendar day: in memory by default, in Redis when the platform has one, so every server process shares them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from fastapi import Request
from limits import RateLimitItemPerDay
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from zhengshu.catalog.enums import OpeningType
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import utcnow
from zhengshu.core.errors import Forbidden, NotFound, Unauthenticated, ZhengshuError
from zhengshu.core.timeutil import local_today
from zhengshu.opendata.public_models import OpenAccessGrant, PublicAccount, PublicApiKey
from zhengshu.security.crypto import token_digest

API_KEY_HEADER = "x-api-key"
API_KEY_PREFIX = "ok_"
SESSION_KEY = "open_account_id"
SESSION_EPOCH = "open_pw"
# The key an account came with in this request (set on the ORM instance; never stored).
_KEY_ATTR = "_zs_open_api_key"


class QuotaExceeded(ZhengshuError):
    status = 429
    code = "opendata.quota_exceeded"
    title = "今日调用次数已用完"


class GrantRequired(Forbidden):
    code = "opendata.grant_required"
    title = "该数据为有条件开放，需申请并获批后使用"


# ---- who is calling ---------------------------------------------------------------------------------------


def _raw_key(request: Request) -> str | None:
    raw = request.headers.get(API_KEY_HEADER) or request.query_params.get("api_key")
    if not raw:
        # CKAN clients (ckanapi) send the key in the Authorization header without a scheme
        header = request.headers.get("authorization", "")
        if header.startswith(API_KEY_PREFIX):
            raw = header
    return raw.strip() if raw else None


def account_for_key(session: Session, *, raw_key: str) -> PublicAccount:
    key = session.scalars(select(PublicApiKey).where(PublicApiKey.key_digest == token_digest(raw_key))).first()
    now = utcnow()
    if key is None or key.revoked or (key.expires_at and key.expires_at < now) or not key.account.active:
        raise Unauthenticated("API Key 无效、已吊销或已过期", code="opendata.bad_api_key")
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=5):
        # its own short transaction: a row lock held by the request would serialise every call of this key
        with session.get_bind().connect() as conn:
            conn.execute(update(PublicApiKey).where(PublicApiKey.id == key.id).values(last_used_at=now))
            conn.commit()
    account = key.account
    setattr(account, _KEY_ATTR, key)
    return account


def session_epoch(secret: str, account: PublicAccount) -> str:
    """Changes when the password changes, so other sessions of the account end."""
    from zhengshu.security.crypto import hmac_sm3

    return hmac_sm3(secret.encode(), ("open:" + account.password_hash).encode()).hex()[:20]


def account_from_request(session: Session, request: Request) -> PublicAccount | None:
    """The registered account behind this request, or None for an anonymous visitor.

    A key that is sent but not valid is an error (401), not an anonymous call: the caller should know.
    """
    cached = getattr(request.state, "open_account", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    raw = _raw_key(request)
    account: PublicAccount | None = None
    if raw:
        account = account_for_key(session, raw_key=raw)
    elif "session" in request.scope:
        account_id = request.session.get(SESSION_KEY)
        if account_id:
            found = session.get(PublicAccount, account_id)
            secret = request.app.state.settings.resolved_secret_key()
            if found is None or not found.active or request.session.get(SESSION_EPOCH) != session_epoch(secret, found):
                request.session.pop(SESSION_KEY, None)
                request.session.pop(SESSION_EPOCH, None)
            else:
                account = found
    request.state.open_account = account
    return account


def api_key_of(account: PublicAccount) -> PublicApiKey | None:
    """The key the account used in this request (None when it came through its login session)."""
    return getattr(account, _KEY_ATTR, None)  # type: ignore[no-any-return]


# ---- quotas -----------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _limiter(uri: str) -> FixedWindowRateLimiter:
    return FixedWindowRateLimiter(storage_from_string(uri))


def quota_storage_uri(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.open_quota_storage:
        return settings.open_quota_storage
    if settings.redis_url:
        return settings.redis_url
    return "memory://"


@dataclass(frozen=True)
class QuotaStatus:
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def _quota_subject(account: PublicAccount, key: PublicApiKey | None, settings: Settings) -> tuple[str, int]:
    limit = settings.open_quota_per_day
    if account.daily_quota is not None:
        limit = account.daily_quota
    if key is not None:
        if key.daily_quota is not None:
            limit = key.daily_quota
        return f"key:{key.id}", limit
    return f"account:{account.id}", limit


def seconds_to_midnight() -> int:
    """Seconds until the quota day (Asia/Shanghai) ends."""
    from datetime import datetime, time

    from zhengshu.core.timeutil import SHANGHAI

    now = datetime.now(SHANGHAI)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=SHANGHAI)
    return max(int((midnight - now).total_seconds()), 1)


def _day_ids(subject: str) -> tuple[str, str, str]:
    # the day is part of the identifier, so the count restarts at Beijing midnight, not 24 h after first use
    return ("zhengshu-open-quota", subject, local_today().isoformat())


def quota_status(
    account: PublicAccount, *, key: PublicApiKey | None = None, settings: Settings | None = None
) -> QuotaStatus:
    settings = settings or get_settings()
    subject, limit = _quota_subject(account, key, settings)
    limiter = _limiter(quota_storage_uri(settings))
    item = RateLimitItemPerDay(max(limit, 1))
    stats = limiter.get_window_stats(item, *_day_ids(subject))
    used = max(limit, 1) - stats.remaining
    return QuotaStatus(limit=limit, used=min(used, limit) if limit else used)


def consume_quota(account: PublicAccount, *, cost: int = 1, settings: Settings | None = None) -> QuotaStatus:
    """Count one call (download, API page) against the account's (or its key's) daily quota."""
    settings = settings or get_settings()
    key = api_key_of(account)
    subject, limit = _quota_subject(account, key, settings)
    if limit <= 0:
        raise QuotaExceeded("该账号未分配调用额度，请联系平台管理员", extra={"limit": limit})
    limiter = _limiter(quota_storage_uri(settings))
    item = RateLimitItemPerDay(limit)
    if not limiter.hit(item, *_day_ids(subject), cost=cost):
        raise QuotaExceeded(
            f"今日调用次数已达上限（{limit:,} 次），请于次日零点（北京时间）后再试",
            extra={"limit": limit, "retry_after": seconds_to_midnight()},
        )
    stats = limiter.get_window_stats(item, *_day_ids(subject))
    return QuotaStatus(limit=limit, used=limit - stats.remaining)


# ---- grants -----------------------------------------------------------------------------------------------


def opening_of(dataset: Any) -> str:
    """The dataset's opening attribute (无条件开放 / 有条件开放 / 不予开放)."""
    return str(dataset.opening_type)


def is_conditional(dataset: Any) -> bool:
    return opening_of(dataset) == OpeningType.CONDITIONAL.value


def active_grants(session: Session, *, account_id: str, dataset_id: str) -> list[OpenAccessGrant]:
    now = utcnow()
    return list(
        session.scalars(
            select(OpenAccessGrant).where(
                OpenAccessGrant.account_id == account_id,
                OpenAccessGrant.dataset_id == dataset_id,
                OpenAccessGrant.status == "active",
                OpenAccessGrant.starts_at <= now,
                OpenAccessGrant.expires_at > now,
            )
        )
    )


def granted_items(session: Session, *, account_id: str, dataset_id: str) -> set[str]:
    """Items (by name) this account may take from the dataset under its active grants."""
    items: set[str] = set()
    for grant in active_grants(session, account_id=account_id, dataset_id=dataset_id):
        items.update(str(i) for i in grant.items)
    return items


def may_access(session: Session, *, dataset: Any, account: PublicAccount | None, items: Iterable[str]) -> bool:
    """The check of :func:`check_download` without counting the quota (pages use it to show buttons)."""
    opening = opening_of(dataset)
    if opening == OpeningType.UNCONDITIONAL.value:
        return True
    if opening != OpeningType.CONDITIONAL.value or account is None:
        return False
    wanted = set(items)
    return bool(wanted) and wanted <= granted_items(session, account_id=account.id, dataset_id=dataset.id)


def check_download(
    session: Session,
    *,
    dataset: Any,
    account: PublicAccount | None,
    items: Sequence[str],
    settings: Settings | None = None,
) -> None:
    """Allow or refuse taking ``items`` of ``dataset`` away (download, data API, CKAN datastore_search).

    Unconditionally open data is open to anyone; conditionally open data needs a registered account with an
    active grant covering every item asked for. A registered account's call counts against its daily quota
    (anonymous calls of unconditional data have no account to count against).
    """
    opening = opening_of(dataset)
    if opening not in (OpeningType.UNCONDITIONAL.value, OpeningType.CONDITIONAL.value):
        raise NotFound("未找到该开放数据集", code="opendata.not_found")
    if opening == OpeningType.CONDITIONAL.value:
        if account is None:
            raise Unauthenticated(
                "该数据为有条件开放，请登录或使用 API Key，并在获批后使用", code="opendata.login_required"
            )
        if not may_access(session, dataset=dataset, account=account, items=items):
            granted = sorted(granted_items(session, account_id=account.id, dataset_id=dataset.id))
            if granted:
                raise GrantRequired(
                    "所请求的信息项超出已获批的范围：" + "、".join(sorted(set(items) - set(granted))),
                    extra={"granted_items": granted},
                )
            raise GrantRequired("该数据为有条件开放，您尚未获得使用授权或授权已过期，请先提交开放申请")
    if account is not None:
        consume_quota(account, settings=settings)


def published_dataset(session: Session, *, ref: str) -> Any:
    """A published open dataset by id or by its name (slug); anything else looks missing."""
    from zhengshu.opendata import service as opendata_service

    return opendata_service.get_public(session, ref=ref)
