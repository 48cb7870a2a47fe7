"""Data applications (共享申请): apply, compliance review, rule grants, item-by-item review, supplement,
withdrawal, appeal, coordination, escalation, and the supervision figures.

Every function takes the session and the acting user and checks the named actions itself, so the API, the
pages and the CLI enforce the same rules. Functions flush; the caller owns the transaction. Rows of an
application are locked while it moves (``SELECT … FOR UPDATE``) so two deciders never both transition it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import EntryStatus, SharingType
from zhengshu.catalog.models import CatalogEntry, DataItem, EntryVersion
from zhengshu.core import clock
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today
from zhengshu.demand import authorizations, workflows
from zhengshu.demand import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.demand.models import ApplicationItem, Authorization, AuthorizationItem, DataApplication
from zhengshu.demand.schemas import ApplicationIn, DecisionIn
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.security.masking import RULES, default_rule_for
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket, TicketEvent

PHONE = re.compile(r"^[0-9+\-() ]{5,30}$")
MAX_PERIOD_DAYS = authorizations.MAX_PERIOD_DAYS


# ---- lookups ----------------------------------------------------------------------------------------------


def get(
    session: Session, *, actor: Actor, application_id: str, for_update: bool = False, with_items: bool = False
) -> DataApplication:
    """``with_items``: the items come in the same query (a step reads them all)."""
    stmt = select(DataApplication).where(DataApplication.id == application_id)
    if with_items:
        stmt = stmt.options(joinedload(DataApplication.items))
    if for_update:
        stmt = stmt.with_for_update(of=DataApplication)  # the application's row only, not its items'
    app = session.scalars(stmt).unique().first()
    if app is None or not authz.allowed(actor, "application.view", app):
        raise NotFound("未找到该共享申请", code="application.not_found")
    return app


def ticket_of(session: Session, app: DataApplication) -> Ticket:
    ticket = session.get(Ticket, app.ticket_id) if app.ticket_id else None
    if ticket is None:
        raise Conflict("该申请没有办理流程", code="application.no_ticket")
    return ticket


def ticket_with_history(session: Session, app: DataApplication) -> Ticket:
    """The application's ticket and its history in one query (a step appends to the history)."""
    ticket = (
        session.scalars(select(Ticket).where(Ticket.id == app.ticket_id).options(joinedload(Ticket.events)))
        .unique()
        .first()
        if app.ticket_id
        else None
    )
    if ticket is None:
        raise Conflict("该申请没有办理流程", code="application.no_ticket")
    return ticket


def tickets_for(session: Session, apps: list[DataApplication]) -> dict[str, Ticket]:
    ids = [a.ticket_id for a in apps if a.ticket_id]
    if not ids:
        return {}
    return {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}


@dataclass
class ApplicationFilters:
    q: str | None = None
    state: list[str] | None = None
    entry_id: str | None = None
    consumer_org_id: str | None = None
    provider_org_id: str | None = None
    box: str | None = None  # applied | provider | authority: the actor's own side of the applications


SORTS = {
    "created_at": DataApplication.created_at,
    "submitted_on": DataApplication.submitted_on,
    "entry_name": DataApplication.entry_name,
    "state": DataApplication.state,
}
BOXES = {"applied": "我申请的", "provider": "申请我部门数据的", "authority": "合规审查与协调"}


def list_query(actor: Actor, filters: ApplicationFilters) -> Select[tuple[DataApplication]]:
    stmt = select(DataApplication).where(authz.scope(actor, "application.view"))
    org = actor.org_id or ""
    if filters.box == "applied":
        stmt = stmt.where(DataApplication.consumer_org_id == org)
    elif filters.box == "provider":
        stmt = stmt.where(DataApplication.provider_org_id == org)
    elif filters.box == "authority":
        stmt = stmt.where(DataApplication.authority_org_id == org)
    if filters.state:
        stmt = stmt.where(DataApplication.state.in_(filters.state))
    if filters.entry_id:
        stmt = stmt.where(DataApplication.entry_id == filters.entry_id)
    if filters.consumer_org_id:
        stmt = stmt.where(DataApplication.consumer_org_id == filters.consumer_org_id)
    if filters.provider_org_id:
        stmt = stmt.where(DataApplication.provider_org_id == filters.provider_org_id)
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(
            or_(
                DataApplication.entry_name.like(like),
                DataApplication.business_system.like(like),
                DataApplication.purpose.like(like),
            )
        )
    return stmt


def timeline(session: Session, *, actor: Actor, application_id: str) -> list[TicketEvent]:
    app = get(session, actor=actor, application_id=application_id)
    return list(ticket_of(session, app).events)


# ---- what may be applied for ------------------------------------------------------------------------------


def effective_sharing(item: DataItem, version: EntryVersion) -> str:
    return item.sharing_type or version.sharing_type


@dataclass
class ItemOption:
    """One item on the apply form: disabled (with the reason) when it cannot be applied for."""

    key: str
    name: str
    column_name: str | None
    data_type: str
    sensitivity: str
    sharing_type: str
    masking_rule: str
    disabled_reason: str | None


def _published(session: Session, entry: CatalogEntry) -> EntryVersion | None:
    if entry.status != EntryStatus.PUBLISHED.value or not entry.published_version_id:
        return None
    return catalog_service.version(session, version_id=entry.published_version_id)


def _not_shared_reason(item: DataItem, version: EntryVersion) -> str:
    basis = version.not_shared_basis.strip() or "提供方未注明"
    return f"信息项「{item.name}」为不予共享，不能申请。依据：{basis}"


def _pending_keys(session: Session, *, consumer_org_id: str, entry_id: str, keys: set[str]) -> set[str]:
    """Items already in an application of this consumer that is still being handled."""
    if not keys:
        return set()
    return set(
        session.scalars(
            select(ApplicationItem.item_key)
            .join(DataApplication, DataApplication.id == ApplicationItem.application_id)
            .where(
                DataApplication.consumer_org_id == consumer_org_id,
                DataApplication.entry_id == entry_id,
                DataApplication.state.in_(workflows.PENDING_STATES),
                ApplicationItem.status == "pending",
                ApplicationItem.item_key.in_(keys),
            )
        )
    )


def _authorized_keys(
    session: Session, *, consumer_org_id: str, entry_id: str, system: str | None, keys: set[str], on: date
) -> dict[str, date]:
    """Items already authorized to this consumer (for this business system when given) → end date."""
    if not keys:
        return {}
    stmt = (
        select(AuthorizationItem.item_key, func.max(Authorization.end_on))
        .join(Authorization, Authorization.id == AuthorizationItem.authorization_id)
        .where(
            Authorization.consumer_org_id == consumer_org_id,
            Authorization.entry_id == entry_id,
            Authorization.status == "active",
            Authorization.end_on >= on,
            AuthorizationItem.item_key.in_(keys),
        )
        .group_by(AuthorizationItem.item_key)
    )
    if system is not None:
        stmt = stmt.where(Authorization.consumer_system == system)
    return {k: end for k, end in session.execute(stmt)}


def apply_options(
    session: Session, *, actor: Actor, entry_id: str, today: date | None = None
) -> tuple[CatalogEntry, EntryVersion, list[ItemOption]]:
    """The entry and its items as the apply form shows them."""
    authz.ensure(actor, "application.create")
    today = today or local_today()
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    version = _published(session, entry)
    if version is None:
        raise Conflict("该目录尚未发布或已下架，不能申请", code="application.entry_not_published")
    if entry.provider_org_id == actor.org_id:
        raise Conflict("这是本部门提供的目录，无需申请", code="application.own_entry")
    keys = {i.key for i in version.items}
    pending = _pending_keys(session, consumer_org_id=actor.org_id or "", entry_id=entry.id, keys=keys)
    options = []
    for item in version.items:
        sharing = effective_sharing(item, version)
        reason = None
        if sharing == SharingType.NOT_SHARED.value:
            reason = f"不予共享。依据：{version.not_shared_basis.strip() or '提供方未注明'}"
        elif item.key in pending:
            reason = "已在办理中的申请中"
        options.append(
            ItemOption(
                key=item.key,
                name=item.name,
                column_name=item.column_name,
                data_type=item.data_type,
                sensitivity=item.sensitivity,
                sharing_type=sharing,
                masking_rule=default_rule_for(item.name, item.sensitivity),
                disabled_reason=reason,
            )
        )
    return entry, version, options


# ---- apply ------------------------------------------------------------------------------------------------


def create(
    session: Session, *, actor: Actor, application_in: ApplicationIn, today: date | None = None
) -> DataApplication:
    """Submit an application; it goes to the compliance review of the data authority covering the provider."""
    authz.ensure(actor, "application.create")
    today = today or local_today()
    if actor.org_id is None:
        raise Conflict("您的账号未关联部门，不能提交申请", code="application.no_org")
    errors = ErrorCollector()
    try:
        entry: CatalogEntry | None = catalog_service.get(session, actor=actor, entry_id=application_in.entry_id)
    except NotFound:
        entry = None
    version = _published(session, entry) if entry is not None else None
    if entry is None or version is None:
        # another department's draft looks exactly like a missing entry
        errors.add("entry_id", "目录不存在或尚未发布，只能申请已发布的目录")
        errors.raise_if_any(code="application.invalid")
    assert entry is not None and version is not None
    if entry.provider_org_id == actor.org_id:
        errors.add("entry_id", "不能申请本部门提供的目录")

    by_key = {i.key: i for i in version.items}
    keys = list(dict.fromkeys(application_in.item_keys))
    for key in keys:
        item = by_key.get(key)
        if item is None:
            errors.add("item_keys", f"信息项 {key} 不属于该目录的现行发布版本")
        elif effective_sharing(item, version) == SharingType.NOT_SHARED.value:
            errors.add("item_keys", _not_shared_reason(item, version))
    wanted = {k for k in keys if k in by_key}
    for key in sorted(_pending_keys(session, consumer_org_id=actor.org_id, entry_id=entry.id, keys=wanted)):
        errors.add("item_keys", f"信息项「{by_key[key].name}」已在本部门办理中的申请中，请勿重复申请")
    authorized = _authorized_keys(
        session,
        consumer_org_id=actor.org_id,
        entry_id=entry.id,
        system=application_in.business_system.strip(),
        keys=wanted,
        on=today,
    )
    for key, end in sorted(authorized.items()):
        errors.add(
            "item_keys",
            f"信息项「{by_key[key].name}」已授权给该业务系统（有效期至 {end.isoformat()}），如需延长请联系提供方续期",
        )

    if application_in.start_on < today:
        errors.add("start_on", "使用期限的起始日期不能早于今天")
    if application_in.end_on <= application_in.start_on:
        errors.add("end_on", "使用期限的截止日期必须晚于起始日期")
    elif (application_in.end_on - application_in.start_on).days > MAX_PERIOD_DAYS:
        errors.add("end_on", "使用期限最长 3 年，到期后可申请续期")
    if not PHONE.match(application_in.contact_phone.strip()):
        errors.add("contact_phone", "联系电话格式不正确")
    for field in ("purpose", "basis", "business_system", "contact_name"):
        if not str(getattr(application_in, field)).strip():
            errors.add(field, "不能为空")
    errors.raise_if_any(code="application.invalid")

    authority = org_service.data_authority_for(session, region_code=entry.region_code)
    if authority is None:
        raise Conflict("未找到负责合规审查的数据主管部门，请联系平台管理员", code="application.no_authority")
    consumer = org_service.get_organization(session, org_id=actor.org_id)
    app = DataApplication(
        id=new_id(),
        consumer_org_id=consumer.id,
        applicant_user_id=actor.user_id,
        applicant_name=actor.display_name,
        entry_id=entry.id,
        entry_version_id=version.id,
        entry_name=version.name,
        provider_org_id=entry.provider_org_id,
        authority_org_id=authority.id,
        purpose=application_in.purpose.strip(),
        basis=application_in.basis.strip(),
        business_system=application_in.business_system.strip(),
        start_on=application_in.start_on,
        end_on=application_in.end_on,
        delivery_way=application_in.delivery_way,
        contact_name=application_in.contact_name.strip(),
        contact_phone=application_in.contact_phone.strip(),
        state=workflows.APPLICATION_MACHINE.initial,
        submitted_on=today,
    )
    wanted_in_order = [i for i in version.items if i.key in wanted]
    for position, item in enumerate(wanted_in_order, start=1):
        app.items.append(
            ApplicationItem(
                id=new_id(),
                item_key=item.key,
                position=position,
                name=item.name,
                column_name=item.column_name,
                sharing_type=effective_sharing(item, version),
                sensitivity=item.sensitivity,
                status="pending",
            )
        )
    app.ticket_id = new_id()  # named now, so the application is inserted with it (no update after)
    session.add(app)  # inserted with the ticket, in the flush below
    ticket = workflow.open_ticket(
        session,
        actor=actor,
        kind=workflows.APPLICATION,
        title=f"共享申请：{consumer.short_name or consumer.name}申请「{version.name}」",
        subject_type=workflows.SUBJECT,
        subject_id=app.id,
        assignee_org_id=authority.id,
        requester_org_id=consumer.id,
        comment=f"申请 {len(app.items)} 个信息项，用途：{app.purpose}",
        data={"entry_id": entry.id, "provider_org_id": entry.provider_org_id},
        today=today,
        ticket_id=app.ticket_id,
        flush=False,
    )
    app.state = ticket.state
    emit(session, "application.submitted", application_id=app.id, entry_id=entry.id)
    session.flush()  # the application, its items, the ticket and both events in one flush
    return app


# ---- moving the ticket ------------------------------------------------------------------------------------

# Transitions that finish a handler's step: done after the due date, they count as late in supervision.
HANDLER_STEPS = frozenset(
    {"comply", "reject", "approve_all", "decide", "request_supplement", "coordinate_all", "coordinate", "remand"}
)


def _move(
    session: Session,
    *,
    actor: Actor,
    app: DataApplication,
    name: str,
    comment: str = "",
    assignee_org_id: str | None = None,
    today: date,
    data: dict[str, Any] | None = None,
) -> Ticket:
    ticket = ticket_of(session, app)
    if name in HANDLER_STEPS and ticket.due_on is not None and today > ticket.due_on:
        app.late_steps += 1
    workflow.transition(
        session,
        actor=actor,
        ticket=ticket,
        name=name,
        comment=comment,
        assignee_org_id=assignee_org_id,
        data=data,
        today=today,
        flush=False,  # written with the rest of the request's changes, in one flush
    )
    app.state = ticket.state
    app.updated_at = utcnow()
    emit(session, f"application.{name}", application_id=app.id, state=app.state)
    return ticket


def _ensure_open(app: DataApplication) -> None:
    if app.state in workflows.FINAL_STATES:
        label = workflows.STATE_LABELS.get(app.state, app.state)
        raise Conflict(f"该申请{label}，不能再办理", code="application.closed")


def _load(session: Session, actor: Actor, application_id: str, action: str) -> DataApplication:
    # every step reads the items and moves the ticket: loaded before anything changes (the items with the
    # locked row, the ticket with its history, two queries), so no read in the middle of the step flushes part
    # of it early and the step's writes go out together
    app = get(session, actor=actor, application_id=application_id, for_update=True, with_items=True)
    authz.ensure(actor, action, app)
    _ensure_open(app)
    ticket_with_history(session, app)
    return app


def _require(reason: str, field: str, message: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        errors = ErrorCollector()
        errors.add(field, message)
        errors.raise_if_any(code="application.invalid")
    return reason


def _outcome(app: DataApplication) -> str | None:
    live = [i for i in app.items if i.status != "withdrawn"]
    if not live or any(i.status == "pending" for i in live):
        return None
    granted = sum(1 for i in live if i.status in ("granted", "approved"))
    if granted == len(live):
        return "all"
    return "none" if granted == 0 else "partial"


def _mark_decided(app: DataApplication, today: date) -> None:
    app.outcome = _outcome(app)
    if app.outcome is not None and app.decided_on is None:
        app.decided_on = today
        app.decided_at = utcnow()


# ---- compliance review (data authority) -------------------------------------------------------------------


def comply(
    session: Session, *, actor: Actor, application_id: str, comment: str = "", today: date | None = None
) -> DataApplication:
    """Compliance approved: unconditional items are granted at once by rule, the rest go to the provider."""
    today = today or local_today()
    app = _load(session, actor, application_id, "application.comply")
    _move(
        session,
        actor=actor,
        app=app,
        name="comply",
        comment=comment,
        assignee_org_id=app.provider_org_id,
        today=today,
    )
    unconditional = [
        i for i in app.items if i.status == "pending" and i.sharing_type == SharingType.UNCONDITIONAL.value
    ]
    if unconditional:
        now = utcnow()
        for item in unconditional:
            item.status = "granted"
            item.masking_rule = default_rule_for(item.name, item.sensitivity)
            item.reason = "无条件共享，按规则自动授权"
            item.decided_by = "规则自动授权"
            item.decided_at = now
        auth = authorizations.grant(session, actor=actor, application=app, items=unconditional, basis="rule")
        remaining = any(i.status == "pending" for i in app.items)
        _mark_decided(app, today)
        _move(
            session,
            actor=actor,
            app=app,
            name="auto_grant" if remaining else "auto_grant_all",
            comment="无条件共享信息项按规则自动授权：" + "、".join(i.name for i in unconditional),
            today=today,
            data={"authorization_id": auth.id, "items": [i.item_key for i in unconditional]},
        )
    session.flush()  # the moves leave their writes to one flush, here
    return app


def reject(
    session: Session, *, actor: Actor, application_id: str, reason: str, today: date | None = None
) -> DataApplication:
    today = today or local_today()
    reason = _require(reason, "reason", "合规审查不通过时必须说明理由")
    app = _load(session, actor, application_id, "application.comply")
    now = utcnow()
    for item in app.items:
        if item.status == "pending":
            item.status, item.reason, item.decided_by, item.decided_at = "refused", reason, actor.display_name, now
    _mark_decided(app, today)
    _move(session, actor=actor, app=app, name="reject", comment=reason, today=today)
    session.flush()  # the moves leave their writes to one flush, here
    return app


# ---- item-by-item decisions (provider, or the data authority in coordination) ---------------------------


def _apply_decisions(
    app: DataApplication, decision_in: DecisionIn, *, actor: Actor, open_statuses: set[str]
) -> list[ApplicationItem]:
    """Validate and record a decision on every open item; returns the items newly approved."""
    open_items = {i.item_key: i for i in app.items if i.status in open_statuses}
    if not open_items:
        raise Conflict("该申请没有待决定的信息项", code="application.nothing_to_decide")
    errors = ErrorCollector()
    seen: set[str] = set()
    for n, d in enumerate(decision_in.items):
        if d.item_key not in open_items:
            errors.add(f"items[{n}].item_key", f"信息项 {d.item_key} 不在待决定的信息项中")
            continue
        if d.item_key in seen:
            errors.add(f"items[{n}].item_key", f"信息项「{open_items[d.item_key].name}」重复")
        seen.add(d.item_key)
        if d.decision == "refuse" and not d.reason.strip():
            errors.add(f"items[{n}].reason", f"不同意「{open_items[d.item_key].name}」时必须说明理由")
        if d.masking_rule and d.masking_rule not in RULES:
            errors.add(f"items[{n}].masking_rule", f"脱敏规则 {d.masking_rule} 无效")
    for key, item in open_items.items():
        if key not in seen:
            errors.add("items", f"请对信息项「{item.name}」作出决定")
    errors.raise_if_any(code="application.invalid")
    approved = []
    now = utcnow()
    for d in decision_in.items:
        item = open_items[d.item_key]
        item.decided_by, item.decided_at = actor.display_name, now
        if d.decision == "approve":
            item.status = "approved"
            item.reason = d.reason.strip()
            item.masking_rule = d.masking_rule or default_rule_for(item.name, item.sensitivity)
            approved.append(item)
        else:
            item.status = "refused"
            item.reason = d.reason.strip()
            item.masking_rule = None
    return approved


def _summary(app: DataApplication, approved: list[ApplicationItem], comment: str) -> str:
    refused = [i for i in app.items if i.status == "refused"]
    parts = []
    if approved:
        parts.append("同意：" + "、".join(i.name for i in approved))
    if refused:
        parts.append("不同意：" + "；".join(f"{i.name}（{i.reason}）" for i in refused))
    if comment.strip():
        parts.append(comment.strip())
    return "。".join(parts)


def decide(
    session: Session, *, actor: Actor, application_id: str, decision_in: DecisionIn, today: date | None = None
) -> DataApplication:
    """The provider approves or refuses each item under review; approvals become one authorization."""
    today = today or local_today()
    app = _load(session, actor, application_id, "application.decide")
    if app.state != "provider_review":
        raise Conflict("该申请当前不在提供方审核阶段", code="application.not_in_review")
    approved = _apply_decisions(app, decision_in, actor=actor, open_statuses={"pending"})
    auth = (
        authorizations.grant(session, actor=actor, application=app, items=approved, basis="provider")
        if approved
        else None
    )
    _mark_decided(app, today)
    done_all = app.outcome == "all"
    if not done_all:
        app.appeal_until = clock.add_working_days(today, workflows.appeal_days())
    _move(
        session,
        actor=actor,
        app=app,
        name="approve_all" if done_all else "decide",
        comment=_summary(app, approved, decision_in.comment),
        assignee_org_id=None if done_all else app.consumer_org_id,
        today=today,
        data={"authorization_id": auth.id if auth else None, "outcome": app.outcome},
    )
    emit(session, "application.decided", application_id=app.id, outcome=app.outcome)
    session.flush()  # the moves leave their writes to one flush, here
    return app


def request_supplement(
    session: Session, *, actor: Actor, application_id: str, reason: str, today: date | None = None
) -> DataApplication:
    today = today or local_today()
    reason = _require(reason, "reason", "请说明需要补充的材料")
    app = _load(session, actor, application_id, "application.decide")
    app.supplement_request = reason
    app.supplement_since = today
    _move(
        session,
        actor=actor,
        app=app,
        name="request_supplement",
        comment=reason,
        assignee_org_id=app.consumer_org_id,
        today=today,
    )
    session.flush()  # the moves leave their writes to one flush, here
    return app


# ---- the applicant ----------------------------------------------------------------------------------------


def _end_supplement_pause(app: DataApplication, today: date) -> None:
    """Time spent waiting for the applicant's material does not count against the provider's limit."""
    if app.supplement_since is not None:
        app.paused_days += max(0, clock.working_days_between(app.supplement_since, today))
    app.supplement_since = None


def supplement(
    session: Session, *, actor: Actor, application_id: str, material: str, today: date | None = None
) -> DataApplication:
    """The applicant supplies what the provider asked for; the review starts again with its full limit."""
    today = today or local_today()
    material = _require(material, "material", "请填写补充的材料说明")
    app = _load(session, actor, application_id, "application.supplement")
    ticket = ticket_of(session, app)
    if ticket.state == "supplement" and ticket.due_on is not None and today > ticket.due_on:
        raise Conflict("补充材料的期限已过，申请已失效，请重新申请", code="application.supplement_expired")
    _end_supplement_pause(app, today)
    _move(
        session,
        actor=actor,
        app=app,
        name="supplement",
        comment=material,
        assignee_org_id=app.provider_org_id,
        today=today,
    )
    session.flush()  # the moves leave their writes to one flush, here
    return app


def withdraw(
    session: Session, *, actor: Actor, application_id: str, reason: str = "", today: date | None = None
) -> DataApplication:
    """Withdraw before the decision (items already granted by rule stay authorized)."""
    today = today or local_today()
    app = _load(session, actor, application_id, "application.withdraw")
    if app.state == "coordination" and app.decided_on is not None:
        raise Conflict("申诉协调中的申请不能撤回", code="application.cannot_withdraw")
    for item in app.items:
        if item.status == "pending":
            item.status = "withdrawn"
    _end_supplement_pause(app, today)
    _move(session, actor=actor, app=app, name="withdraw", comment=reason.strip(), today=today)
    session.flush()  # the moves leave their writes to one flush, here
    return app


def appeal(
    session: Session, *, actor: Actor, application_id: str, reason: str, today: date | None = None
) -> DataApplication:
    """Appeal a refusal to the data authority, within the appeal window."""
    today = today or local_today()
    reason = _require(reason, "reason", "申诉时必须说明理由")
    app = _load(session, actor, application_id, "application.appeal")
    if app.appeal_until is not None and today > app.appeal_until:
        raise Conflict(
            f"申诉期限已于 {app.appeal_until.isoformat()} 届满，不能再申诉", code="application.appeal_expired"
        )
    _move(
        session,
        actor=actor,
        app=app,
        name="appeal",
        comment=reason,
        assignee_org_id=app.authority_org_id,
        today=today,
    )
    session.flush()  # the moves leave their writes to one flush, here
    return app


def accept(
    session: Session, *, actor: Actor, application_id: str, comment: str = "", today: date | None = None
) -> DataApplication:
    today = today or local_today()
    app = _load(session, actor, application_id, "application.appeal")
    _move(session, actor=actor, app=app, name="accept", comment=comment.strip(), today=today)
    session.flush()  # the moves leave their writes to one flush, here
    return app


# ---- coordination (data authority) ------------------------------------------------------------------------


def coordinate(
    session: Session, *, actor: Actor, application_id: str, decision_in: DecisionIn, today: date | None = None
) -> DataApplication:
    """The data authority decides for the provider: on the items not yet decided (an escalated review) or on
    the refused ones (an appeal)."""
    today = today or local_today()
    app = _load(session, actor, application_id, "application.coordinate")
    if app.state != "coordination":
        raise Conflict("该申请当前不在协调阶段", code="application.not_in_coordination")
    approved = _apply_decisions(app, decision_in, actor=actor, open_statuses={"pending", "refused"})
    auth = (
        authorizations.grant(session, actor=actor, application=app, items=approved, basis="coordination")
        if approved
        else None
    )
    _mark_decided(app, today)
    done_all = app.outcome == "all"
    app.appeal_until = None
    _move(
        session,
        actor=actor,
        app=app,
        name="coordinate_all" if done_all else "coordinate",
        comment=_summary(app, approved, decision_in.comment),
        today=today,
        data={"authorization_id": auth.id if auth else None, "outcome": app.outcome},
    )
    emit(session, "application.decided", application_id=app.id, outcome=app.outcome)
    session.flush()  # the moves leave their writes to one flush, here
    return app


def remand(
    session: Session, *, actor: Actor, application_id: str, reason: str, today: date | None = None
) -> DataApplication:
    """Send the application back to the provider to review again (refused items are reopened)."""
    today = today or local_today()
    reason = _require(reason, "reason", "退回提供方时必须说明理由")
    app = _load(session, actor, application_id, "application.coordinate")
    for item in app.items:
        if item.status == "refused":
            item.status, item.decided_by, item.decided_at = "pending", None, None
    app.outcome = None
    app.appeal_until = None
    _move(
        session,
        actor=actor,
        app=app,
        name="remand",
        comment=reason,
        assignee_org_id=app.provider_org_id,
        today=today,
    )
    session.flush()  # the moves leave their writes to one flush, here
    return app


# ---- scheduled work ---------------------------------------------------------------------------------------


def _overdue_in(session: Session, state: str, today: date) -> list[str]:
    stmt = workflow.overdue_query(as_of=today, kinds=[workflows.APPLICATION]).where(Ticket.state == state)
    return [t.subject_id for t in session.scalars(stmt)]


def escalate_overdue(session: Session, *, actor: Actor, today: date | None = None) -> int:
    """Daily job: provider reviews past their due date go to the data authority for coordination."""
    today = today or local_today()
    count = 0
    for app_id in _overdue_in(session, "provider_review", today):
        app = session.scalars(
            select(DataApplication)
            .where(DataApplication.id == app_id)
            .with_for_update(of=DataApplication, skip_locked=True)
        ).first()
        if app is None or app.state != "provider_review":
            continue  # decided meanwhile, or another process is moving it
        ticket = ticket_of(session, app)
        app.escalated = True
        app.late_steps += 1
        _move(
            session,
            actor=actor,
            app=app,
            name="escalate",
            comment=f"提供方未在期限 {ticket.due_on.isoformat() if ticket.due_on else ''} 前答复，提请数据主管部门协调",
            assignee_org_id=app.authority_org_id,
            today=today,
        )
        count += 1
    session.flush()
    return count


def close_lapsed(session: Session, *, actor: Actor, today: date | None = None) -> int:
    """Daily job: applications not supplemented in time lapse; answered ones close when the appeal window ends."""
    today = today or local_today()
    count = 0
    for app_id in _overdue_in(session, "supplement", today):
        app = session.scalars(
            select(DataApplication)
            .where(DataApplication.id == app_id)
            .with_for_update(of=DataApplication, skip_locked=True)
        ).first()
        if app is None or app.state != "supplement":
            continue
        for item in app.items:
            if item.status == "pending":
                item.status, item.reason = "withdrawn", "逾期未补充材料"
        _move(session, actor=actor, app=app, name="lapse", comment="申请人未在期限内补充材料，申请失效", today=today)
        count += 1
    decided = session.scalars(
        select(DataApplication)
        .where(
            DataApplication.state == "decided",
            DataApplication.appeal_until.is_not(None),
            DataApplication.appeal_until < today,
        )
        .with_for_update(of=DataApplication, skip_locked=True)
    ).all()
    for app in decided:
        _move(
            session,
            actor=actor,
            app=app,
            name="close",
            comment=f"申诉期限 {app.appeal_until.isoformat() if app.appeal_until else ''} 已届满",
            today=today,
        )
        count += 1
    session.flush()
    return count


# ---- what the actor may do --------------------------------------------------------------------------------


def available_actions(actor: Actor, app: DataApplication, *, today: date | None = None) -> list[str]:
    today = today or local_today()
    state = app.state
    can = {name: authz.allowed(actor, name, app) for name in _ACTION_NAMES}
    actions: list[str] = []
    if state == "compliance" and can["application.comply"]:
        actions += ["comply", "reject"]
    if state == "provider_review" and can["application.decide"]:
        actions += ["decide", "request_supplement"]
    if state == "supplement" and can["application.supplement"]:
        actions.append("supplement")
    if state == "coordination" and can["application.coordinate"]:
        actions += ["coordinate", "remand"]
    if state == "decided" and can["application.appeal"]:
        if app.appeal_until is None or today <= app.appeal_until:
            actions.append("appeal")
        actions.append("accept")
    withdrawable = state in ("compliance", "provider_review", "supplement") or (
        state == "coordination" and app.decided_on is None
    )
    if withdrawable and can["application.withdraw"]:
        actions.append("withdraw")
    return actions


_ACTION_NAMES = (
    "application.comply",
    "application.decide",
    "application.supplement",
    "application.coordinate",
    "application.appeal",
    "application.withdraw",
)


# ---- read models ------------------------------------------------------------------------------------------


def to_summary(app: DataApplication, ticket: Ticket | None) -> dict[str, Any]:
    return {
        "id": app.id,
        "entry_id": app.entry_id,
        "entry_name": app.entry_name,
        "consumer_org_id": app.consumer_org_id,
        "consumer_name": app.consumer.name,
        "provider_org_id": app.provider_org_id,
        "provider_name": app.provider.name,
        "applicant_name": app.applicant_name,
        "state": app.state,
        "state_label": workflows.STATE_LABELS.get(app.state, app.state),
        "outcome": app.outcome,
        "submitted_on": app.submitted_on,
        "due_on": ticket.due_on if ticket else None,
        "due_provisional": ticket.due_provisional if ticket else False,
        "item_count": len(app.items),
        "created_at": app.created_at,
    }


def to_read(
    session: Session,
    app: DataApplication,
    *,
    actor: Actor,
    today: date | None = None,
    authorization_ids: list[str] | None = None,
) -> dict[str, Any]:
    """The application as the API returns it. ``authorization_ids`` when the caller knows them (a new
    application has none), saving the query."""
    ticket = ticket_of(session, app)
    data = to_summary(app, ticket)
    data.update(
        authority_org_id=app.authority_org_id,
        authority_name=app.authority.name,
        purpose=app.purpose,
        basis=app.basis,
        business_system=app.business_system,
        start_on=app.start_on,
        end_on=app.end_on,
        delivery_way=app.delivery_way,
        contact_name=app.contact_name,
        contact_phone=app.contact_phone,
        decided_on=app.decided_on,
        appeal_until=app.appeal_until,
        supplement_request=app.supplement_request,
        items=[
            {
                "item_key": i.item_key,
                "name": i.name,
                "column_name": i.column_name,
                "sharing_type": i.sharing_type,
                "sensitivity": i.sensitivity,
                "status": i.status,
                "status_label": workflows.ITEM_STATUS_LABELS.get(i.status, i.status),
                "reason": i.reason,
                "masking_rule": i.masking_rule,
                "decided_by": i.decided_by,
                "decided_at": i.decided_at,
            }
            for i in app.items
        ],
        authorization_ids=(
            authorization_ids
            if authorization_ids is not None
            else authorizations.ids_for_application(session, application_id=app.id)
        ),
        actions=available_actions(actor, app, today=today),
        timeline=list(ticket.events),
    )
    return data


# ---- supervision ------------------------------------------------------------------------------------------


def _stats_query(actor: Actor, *columns: Any, date_from: date | None, date_to: date | None) -> Any:
    authz.ensure(actor, "application.stats")
    stmt = (
        select(DataApplication.provider_org_id, Organization.name, *columns)
        .join(Organization, Organization.id == DataApplication.provider_org_id)
        .where(authz.scope(actor, "application.stats"))
    )
    if date_from:
        stmt = stmt.where(DataApplication.submitted_on >= date_from)
    if date_to:
        stmt = stmt.where(DataApplication.submitted_on <= date_to)
    return stmt


def counts_by_state(
    session: Session, *, actor: Actor, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, Any]]:
    """Applications per provider department, month of submission and state."""
    stmt = _stats_query(
        actor,
        DataApplication.submitted_on,
        DataApplication.state,
        func.count(),
        date_from=date_from,
        date_to=date_to,
    ).group_by(DataApplication.provider_org_id, Organization.name, DataApplication.submitted_on, DataApplication.state)
    # grouped by day in SQL (portable), folded into months here
    totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for org_id, org_name, day, state, n in session.execute(stmt):
        totals[(org_id, org_name, f"{day:%Y-%m}", state)] += n
    return [
        {
            "provider_org_id": org_id,
            "provider_name": org_name,
            "month": month,
            "state": state,
            "state_label": workflows.STATE_LABELS.get(state, state),
            "count": n,
        }
        for (org_id, org_name, month, state), n in sorted(totals.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3]))
    ]


def handling_days(submitted_on: date, decided_on: date, paused_days: int = 0) -> int:
    """Working days from submission to decision, not counting the time the applicant took to supplement."""
    return max(0, clock.working_days_between(submitted_on, decided_on) - paused_days)


def timeliness(
    session: Session, *, actor: Actor, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, Any]]:
    """Per provider department and month of submission: submitted, decided, decided on time (every review
    step within its limit, no escalation), the on-time rate and the average handling time in working days."""
    stmt = _stats_query(
        actor,
        DataApplication.submitted_on,
        DataApplication.decided_on,
        DataApplication.paused_days,
        DataApplication.late_steps,
        DataApplication.escalated,
        date_from=date_from,
        date_to=date_to,
    )
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for org_id, org_name, submitted_on, decided_on, paused, late, escalated in session.execute(stmt):
        g = groups.setdefault(
            (org_id, org_name, f"{submitted_on:%Y-%m}"), {"submitted": 0, "decided": 0, "on_time": 0, "days": 0}
        )
        g["submitted"] += 1
        if decided_on is not None:
            g["decided"] += 1
            g["days"] += handling_days(submitted_on, decided_on, paused or 0)
            if not late and not escalated:
                g["on_time"] += 1
    rows = []
    for (org_id, org_name, month), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        decided = g["decided"]
        rows.append(
            {
                "provider_org_id": org_id,
                "provider_name": org_name,
                "month": month,
                "submitted": g["submitted"],
                "decided": decided,
                "on_time": g["on_time"],
                "on_time_rate": round(g["on_time"] / decided, 4) if decided else None,
                "avg_working_days": round(g["days"] / decided, 2) if decided else None,
            }
        )
    return rows
