"""Authorizations (共享授权): who may use which items of an entry, how, and until when.

An approval of an application (by rule, by the provider or by the data authority's coordination) grants one
authorization for exactly the approved items. The provider's data officer or the data authority may suspend,
resume, renew and revoke it, each with a reason kept in its history. Expiry is computed on read; the daily
:func:`expire_due` job marks it. :func:`is_authorized` and :func:`who_can_see` are the questions the gateway,
the exchange and supervisors ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound
from zhengshu.core.events import OutboxEvent, consumer, emit
from zhengshu.core.timeutil import local_today
from zhengshu.demand import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.demand.models import (
    ApplicationItem,
    Authorization,
    AuthorizationEvent,
    AuthorizationItem,
    DataApplication,
)
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import SYSTEM_ACTOR, Actor
from zhengshu.security.masking import default_rule_for

STATUS_LABELS = {"active": "有效", "suspended": "已暂停", "revoked": "已撤销", "expired": "已到期"}
BASIS_LABELS = {"rule": "规则自动授权", "provider": "提供方审核同意", "coordination": "数据主管部门协调决定"}
# The longest period of use one authorization (or a renewal) may cover.
MAX_PERIOD_DAYS = 3 * 365 + 1


def effective_status(auth: Authorization, on: date | None = None) -> str:
    """The status as of ``on``: an active or suspended authorization past its end date is expired."""
    on = on or local_today()
    if auth.status in ("active", "suspended") and auth.end_on < on:
        return "expired"
    return auth.status


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def status_clause(status: str, on: date) -> ColumnElement[bool]:
    """SQL form of :func:`effective_status` ``== status``."""
    live = Authorization.status.in_(("active", "suspended"))
    if status == "expired":
        return or_(Authorization.status == "expired", and_(live, Authorization.end_on < on))
    if status in ("active", "suspended"):
        return and_(Authorization.status == status, Authorization.end_on >= on)
    return Authorization.status == status


# ---- lookups ----------------------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, authorization_id: str, for_update: bool = False) -> Authorization:
    stmt = select(Authorization).where(Authorization.id == authorization_id)
    if for_update:
        stmt = stmt.with_for_update(of=Authorization)
    auth = session.scalars(stmt).first()
    if auth is None or not authz.allowed(actor, "authorization.view", auth):
        raise NotFound("未找到该共享授权", code="authorization.not_found")
    return auth


@dataclass
class AuthorizationFilters:
    status: list[str] | None = None
    entry_id: str | None = None
    consumer_org_id: str | None = None
    provider_org_id: str | None = None
    application_id: str | None = None
    item_key: str | None = None
    q: str | None = None


SORTS = {
    "created_at": Authorization.created_at,
    "end_on": Authorization.end_on,
    "start_on": Authorization.start_on,
    "entry_name": Authorization.entry_name,
}


def list_query(actor: Actor, filters: AuthorizationFilters, *, on: date | None = None) -> Select[tuple[Authorization]]:
    on = on or local_today()
    stmt = select(Authorization).where(authz.scope(actor, "authorization.view"))
    if filters.status:
        stmt = stmt.where(or_(*[status_clause(s, on) for s in filters.status]))
    if filters.entry_id:
        stmt = stmt.where(Authorization.entry_id == filters.entry_id)
    if filters.consumer_org_id:
        stmt = stmt.where(Authorization.consumer_org_id == filters.consumer_org_id)
    if filters.provider_org_id:
        stmt = stmt.where(Authorization.provider_org_id == filters.provider_org_id)
    if filters.application_id:
        stmt = stmt.where(Authorization.application_id == filters.application_id)
    if filters.item_key:
        stmt = stmt.where(
            Authorization.id.in_(
                select(AuthorizationItem.authorization_id).where(AuthorizationItem.item_key == filters.item_key)
            )
        )
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(or_(Authorization.entry_name.like(like), Authorization.consumer_system.like(like)))
    return stmt


def ids_for_application(session: Session, *, application_id: str) -> list[str]:
    """Ids of :func:`for_application`, same order, without loading the authorizations."""
    return list(
        session.scalars(
            select(Authorization.id)
            .where(Authorization.application_id == application_id)
            .order_by(Authorization.created_at, Authorization.id)
        )
    )


def for_application(session: Session, *, application_id: str) -> list[Authorization]:
    return list(
        session.scalars(
            select(Authorization)
            .where(Authorization.application_id == application_id)
            .order_by(Authorization.created_at, Authorization.id)
        )
    )


# ---- grant ------------------------------------------------------------------------------------------------


def _event(
    auth: Authorization,
    actor: Actor,
    action: str,
    label: str,
    *,
    from_status: str | None,
    to_status: str,
    reason: str,
    data: dict[str, Any] | None = None,
) -> AuthorizationEvent:
    ev = AuthorizationEvent(
        id=new_id(),
        actor_user_id=actor.user_id,
        actor_name=actor.display_name,
        actor_org_name=actor.org_name,
        action=action,
        action_label=label,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        data=data or {},
        at=utcnow(),
    )
    auth.events.append(ev)
    return ev


def grant(
    session: Session,
    *,
    actor: Actor,
    application: DataApplication,
    items: list[ApplicationItem],
    basis: str,
) -> Authorization:
    """One authorization for exactly ``items`` of ``application`` (each with its masking rule)."""
    if not items:
        raise ValueError("an authorization needs at least one item")
    auth = Authorization(
        id=new_id(),
        application_id=application.id,
        consumer_org_id=application.consumer_org_id,
        consumer_system=application.business_system,
        entry_id=application.entry_id,
        entry_name=application.entry_name,
        provider_org_id=application.provider_org_id,
        authority_org_id=application.authority_org_id,
        delivery_way=application.delivery_way,
        start_on=application.start_on,
        end_on=application.end_on,
        status="active",
        status_reason=BASIS_LABELS.get(basis, basis),
        status_changed_at=utcnow(),
        grant_basis=basis,
        granted_by=BASIS_LABELS["rule"] if basis == "rule" else actor.display_name,
    )
    for position, item in enumerate(items, start=1):
        auth.items.append(
            AuthorizationItem(
                id=new_id(),
                item_key=item.item_key,
                position=position,
                name=item.name,
                column_name=item.column_name,
                masking_rule=item.masking_rule or default_rule_for(item.name, item.sensitivity),
            )
        )
    _event(
        auth,
        actor,
        "grant",
        BASIS_LABELS.get(basis, "授权"),
        from_status=None,
        to_status="active",
        reason=BASIS_LABELS.get(basis, basis),
        data={"items": [i.item_key for i in items]},
    )
    session.add(auth)  # flushed by the caller with the application's other changes
    emit(
        session,
        "authorization.granted",
        authorization_id=auth.id,
        application_id=application.id,
        entry_id=auth.entry_id,
        consumer_org_id=auth.consumer_org_id,
    )
    return auth


# ---- changes ----------------------------------------------------------------------------------------------


def _require_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        errors = ErrorCollector()
        errors.add("reason", f"{what}时必须说明理由")
        errors.raise_if_any(code="authorization.invalid")
    return reason


def _load_for_change(session: Session, actor: Actor, authorization_id: str) -> Authorization:
    auth = get(session, actor=actor, authorization_id=authorization_id, for_update=True)
    authz.ensure(actor, "authorization.manage", auth)
    return auth


def _change(
    session: Session,
    *,
    actor: Actor,
    auth: Authorization,
    action: str,
    label: str,
    to_status: str,
    reason: str,
    today: date,
    data: dict[str, Any] | None = None,
) -> Authorization:
    # the expiry job records the stored status it replaces (on read it already looks expired)
    before = auth.status if action == "expire" else effective_status(auth, today)
    auth.status = to_status
    auth.status_reason = reason
    auth.status_changed_at = utcnow()
    auth.updated_at = utcnow()
    _event(auth, actor, action, label, from_status=before, to_status=to_status, reason=reason, data=data)
    session.flush()
    emit(session, f"authorization.{action}", authorization_id=auth.id, from_status=before, to_status=to_status)
    return auth


def suspend(
    session: Session, *, actor: Actor, authorization_id: str, reason: str, today: date | None = None
) -> Authorization:
    today = today or local_today()
    reason = _require_reason(reason, "暂停授权")
    auth = _load_for_change(session, actor, authorization_id)
    if effective_status(auth, today) != "active":
        raise Conflict(
            f"只有有效的授权可以暂停，该授权{status_label(effective_status(auth, today))}",
            code="authorization.not_active",
        )
    return _change(
        session,
        actor=actor,
        auth=auth,
        action="suspend",
        label="暂停",
        to_status="suspended",
        reason=reason,
        today=today,
    )


def resume(
    session: Session, *, actor: Actor, authorization_id: str, reason: str, today: date | None = None
) -> Authorization:
    today = today or local_today()
    reason = _require_reason(reason, "恢复授权")
    auth = _load_for_change(session, actor, authorization_id)
    if effective_status(auth, today) != "suspended":
        raise Conflict(
            f"只有已暂停的授权可以恢复，该授权{status_label(effective_status(auth, today))}",
            code="authorization.not_suspended",
        )
    return _change(
        session, actor=actor, auth=auth, action="resume", label="恢复", to_status="active", reason=reason, today=today
    )


def renew(
    session: Session,
    *,
    actor: Actor,
    authorization_id: str,
    end_on: date,
    reason: str,
    today: date | None = None,
) -> Authorization:
    """A new expiry date. An expired authorization becomes active again; a suspended one stays suspended."""
    today = today or local_today()
    reason = _require_reason(reason, "续期")
    auth = _load_for_change(session, actor, authorization_id)
    current = effective_status(auth, today)
    if current == "revoked":
        raise Conflict("已撤销的授权不能续期，请重新申请", code="authorization.revoked")
    errors = ErrorCollector()
    if end_on <= auth.end_on:
        errors.add("end_on", f"新的到期日必须晚于原到期日 {auth.end_on.isoformat()}")
    elif end_on < today:
        errors.add("end_on", "新的到期日不能早于今天")
    elif (end_on - today).days > MAX_PERIOD_DAYS:
        errors.add("end_on", "续期后的期限自今天起最长 3 年")
    errors.raise_if_any(code="authorization.invalid")
    old_end = auth.end_on
    auth.end_on = end_on
    return _change(
        session,
        actor=actor,
        auth=auth,
        action="renew",
        label="续期",
        to_status="suspended" if current == "suspended" else "active",
        reason=f"{reason}（到期日 {old_end.isoformat()} → {end_on.isoformat()}）",
        today=today,
        data={"old_end_on": old_end.isoformat(), "new_end_on": end_on.isoformat()},
    )


def revoke(
    session: Session, *, actor: Actor, authorization_id: str, reason: str, today: date | None = None
) -> Authorization:
    today = today or local_today()
    reason = _require_reason(reason, "撤销授权")
    auth = _load_for_change(session, actor, authorization_id)
    if auth.status == "revoked":
        raise Conflict("该授权已撤销", code="authorization.revoked")
    return _change(
        session, actor=actor, auth=auth, action="revoke", label="撤销", to_status="revoked", reason=reason, today=today
    )


def expire_due(session: Session, *, today: date | None = None, actor: Actor = SYSTEM_ACTOR) -> int:
    """Daily job: mark authorizations past their end date as expired (each with a line of history)."""
    today = today or local_today()
    due = session.scalars(
        select(Authorization)
        .where(Authorization.status.in_(("active", "suspended")), Authorization.end_on < today)
        .with_for_update(of=Authorization, skip_locked=True)
    )
    count = 0
    for auth in due:
        _change(
            session,
            actor=actor,
            auth=auth,
            action="expire",
            label="到期",
            to_status="expired",
            reason=f"使用期限已于 {auth.end_on.isoformat()} 届满",
            today=today,
        )
        count += 1
    return count


# ---- questions --------------------------------------------------------------------------------------------


def _in_force(on: date) -> ColumnElement[bool]:
    return and_(Authorization.status == "active", Authorization.start_on <= on, Authorization.end_on >= on)


def is_authorized(
    session: Session, *, consumer_org_id: str, entry_id: str, item_keys: list[str] | set[str], on: date | None = None
) -> bool:
    """True when every one of ``item_keys`` of the entry is covered, on ``on``, by an authorization in force
    for the consumer organization (items may come from several authorizations)."""
    keys = set(item_keys)
    if not keys:
        return False
    on = on or local_today()
    covered = session.scalar(
        select(func.count(func.distinct(AuthorizationItem.item_key)))
        .join(Authorization, Authorization.id == AuthorizationItem.authorization_id)
        .where(
            Authorization.consumer_org_id == consumer_org_id,
            Authorization.entry_id == entry_id,
            AuthorizationItem.item_key.in_(keys),
            _in_force(on),
        )
    )
    return covered == len(keys)


@dataclass(frozen=True)
class WhoCanSee:
    authorization_id: str
    consumer_org_id: str
    consumer_name: str
    consumer_system: str
    item_key: str
    item_name: str
    masking_rule: str
    delivery_way: str
    start_on: date
    end_on: date


def who_can_see(
    session: Session, *, actor: Actor, entry_id: str, item_key: str, on: date | None = None
) -> list[WhoCanSee]:
    """Every consumer organization (and its application system) that may use ``item_key`` of the entry on
    ``on``, with the masking it gets — one query."""
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "authorization.audit", entry)
    on = on or local_today()
    rows = session.execute(
        select(
            Authorization.id,
            Authorization.consumer_org_id,
            Organization.name,
            Authorization.consumer_system,
            AuthorizationItem.item_key,
            AuthorizationItem.name,
            AuthorizationItem.masking_rule,
            Authorization.delivery_way,
            Authorization.start_on,
            Authorization.end_on,
        )
        .join(AuthorizationItem, AuthorizationItem.authorization_id == Authorization.id)
        .join(Organization, Organization.id == Authorization.consumer_org_id)
        .where(Authorization.entry_id == entry_id, AuthorizationItem.item_key == item_key, _in_force(on))
        .order_by(Organization.name, Authorization.consumer_system, Authorization.id)
    )
    return [WhoCanSee(*row) for row in rows]


def available_actions(actor: Actor, auth: Authorization, today: date | None = None) -> list[str]:
    if not authz.allowed(actor, "authorization.manage", auth):
        return []
    status = effective_status(auth, today)
    actions = {
        "active": ["suspend", "renew", "revoke"],
        "suspended": ["resume", "renew", "revoke"],
        "expired": ["renew", "revoke"],
    }
    return actions.get(status, [])


# ---- read models ------------------------------------------------------------------------------------------


def to_summary(auth: Authorization, *, today: date | None = None) -> dict[str, Any]:
    status = effective_status(auth, today)
    return {
        "id": auth.id,
        "application_id": auth.application_id,
        "consumer_org_id": auth.consumer_org_id,
        "consumer_name": auth.consumer.name,
        "consumer_system": auth.consumer_system,
        "entry_id": auth.entry_id,
        "entry_name": auth.entry_name,
        "provider_org_id": auth.provider_org_id,
        "provider_name": auth.provider.name,
        "delivery_way": auth.delivery_way,
        "start_on": auth.start_on,
        "end_on": auth.end_on,
        "status": status,
        "status_label": status_label(status),
        "item_count": len(auth.items),
    }


def to_read(auth: Authorization, *, actor: Actor, today: date | None = None) -> dict[str, Any]:
    data = to_summary(auth, today=today)
    data.update(
        status_reason=auth.status_reason,
        grant_basis=auth.grant_basis,
        granted_by=auth.granted_by,
        items=list(auth.items),
        history=list(auth.events),
        actions=available_actions(actor, auth, today),
    )
    return data


def expiring_within(
    session: Session, *, actor: Actor, days: int = 30, today: date | None = None
) -> list[Authorization]:
    """Authorizations in force that end within ``days`` (for reminders on the consumer's pages)."""
    today = today or local_today()
    return list(
        session.scalars(
            select(Authorization)
            .where(
                authz.scope(actor, "authorization.view"),
                Authorization.status == "active",
                Authorization.end_on >= today,
                Authorization.end_on <= today + timedelta(days=days),
            )
            .order_by(Authorization.end_on)
        )
    )


@consumer("catalog.entry.withdrawn", "demand.authorizations.entry_withdrawn")
def _on_entry_withdrawn(session: Session, event: OutboxEvent) -> None:
    """A withdrawn entry delivers nothing: its active authorizations are suspended, with the reason."""
    entry_id = str(event.payload["entry_id"])
    reason = f"目录已下架：{event.payload.get('reason') or '未说明理由'}"
    for auth in session.scalars(select(Authorization).where(Authorization.entry_id == entry_id)):
        if effective_status(auth) == "active":
            suspend(session, actor=SYSTEM_ACTOR, authorization_id=auth.id, reason=reason)
