"""Conditionally open data (有条件开放): a registered account applies with a purpose; the provider reviews it
through the workflow engine (the ticket lands in the provider officers' to-do list with a due date in working
days); approval creates a grant (account, dataset, items, period) that :func:`access.check_download` honours.

Items are the column names of the published copy (``OpenDatasetItem.column_name``), the names the data API,
the downloads and CKAN's ``fields`` use.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, FieldError, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.opendata import accounts
from zhengshu.opendata import public_permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.opendata.access import is_conditional, published_dataset
from zhengshu.opendata.public_models import OpenAccessApplication, OpenAccessGrant, PublicAccount
from zhengshu.opendata.public_schemas import AccessApplicationIn, DecisionIn
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role
from zhengshu.workflow import service as workflow
from zhengshu.workflow.machine import State, declare
from zhengshu.workflow.models import Ticket

KIND = "open_access_application"
SUBJECT = "open_access_application"

PENDING = "pending"
APPROVED = "approved"
REFUSED = "refused"
WITHDRAWN = "withdrawn"


def _link(subject_type: str, subject_id: str) -> str:
    return f"/open/review/applications/{subject_id}"


MACHINE = declare(
    KIND,
    "有条件开放申请",
    states=[
        State(
            PENDING,
            "待提供方审核",
            frozenset({Role.OFFICER}),
            sla_days=lambda: get_settings().open_application_reply_days,
        ),
        State(APPROVED, "已同意", final=True),
        State(REFUSED, "不同意", final=True),
        State(WITHDRAWN, "已撤回", final=True),
    ],
    transitions=[
        ("approve", "提供方同意", {PENDING}, APPROVED),
        ("refuse", "提供方不同意", {PENDING}, REFUSED),
        ("withdraw", "申请人撤回", {PENDING}, WITHDRAWN),
    ],
    initial=PENDING,
    link=_link,
)

STATE_LABELS = {name: s.label for name, s in MACHINE.states.items()}


def account_actor(account: PublicAccount, *, source_ip: str | None = None, via: str = "web") -> Actor:
    """How a public account appears in ticket histories and audit records: no organization, no roles."""
    return Actor(
        user_id=None,
        username=f"open:{account.username}",
        display_name=accounts.label(account)[:60],
        org_id=None,
        org_name="开放平台注册用户",
        source_ip=source_ip,
        via=via,
    )


# ---- the applicant's side ---------------------------------------------------------------------------------


def apply(
    session: Session,
    *,
    account: PublicAccount,
    application_in: AccessApplicationIn,
    settings: Settings | None = None,
) -> OpenAccessApplication:
    settings = settings or get_settings()
    dataset = published_dataset(session, ref=application_in.dataset_id)
    if not is_conditional(dataset):
        raise Conflict("该数据集为无条件开放，无需申请即可下载和调用", code="opendata.not_conditional")
    open_columns = [i.column_name for i in dataset.items]
    wanted = list(dict.fromkeys(application_in.items)) or open_columns
    errors = ErrorCollector()
    unknown = [c for c in wanted if c not in open_columns]
    if unknown:
        errors.add("items", "以下信息项不在该数据集的开放范围内：" + "、".join(unknown))
    if application_in.requested_days > settings.open_grant_max_days:
        errors.add("requested_days", f"使用期限最长 {settings.open_grant_max_days} 天")
    errors.raise_if_any("开放申请未通过校验", code="opendata.application_invalid")
    pending = session.scalars(
        select(OpenAccessApplication).where(
            OpenAccessApplication.account_id == account.id,
            OpenAccessApplication.dataset_id == dataset.id,
            OpenAccessApplication.state == PENDING,
        )
    ).first()
    if pending is not None:
        raise Conflict("您对该数据集已有一份待审核的申请，请等待答复或先撤回", code="opendata.application_pending")
    app = OpenAccessApplication(
        account_id=account.id,
        dataset_id=dataset.id,
        dataset_title=dataset.title,
        provider_org_id=dataset.provider_org_id,
        items=wanted,
        purpose=application_in.purpose,
        scenario=application_in.scenario,
        requested_days=application_in.requested_days,
        state=PENDING,
    )
    session.add(app)
    session.flush()
    ticket = workflow.open_ticket(
        session,
        actor=account_actor(account),
        kind=KIND,
        title=f"有条件开放申请：{dataset.title}（{accounts.label(account)}）"[:300],
        subject_type=SUBJECT,
        subject_id=app.id,
        assignee_org_id=dataset.provider_org_id,
        comment=application_in.purpose,
        data={"dataset_id": dataset.id, "account_id": account.id},
    )
    app.ticket_id = ticket.id
    session.flush()
    emit(
        session,
        "opendata.access_applied",
        application_id=app.id,
        dataset_id=dataset.id,
        account_id=account.id,
        provider_org_id=dataset.provider_org_id,
    )
    return app


def withdraw(session: Session, *, account: PublicAccount, application_id: str) -> OpenAccessApplication:
    app = get_for_account(session, account=account, application_id=application_id)
    _move(session, app, actor=account_actor(account), name="withdraw", comment="申请人撤回")
    app.state = WITHDRAWN
    session.flush()
    emit(session, "opendata.access_withdrawn", application_id=app.id)
    return app


def get_for_account(session: Session, *, account: PublicAccount, application_id: str) -> OpenAccessApplication:
    app = session.get(OpenAccessApplication, application_id)
    if app is None or app.account_id != account.id:
        raise NotFound("未找到该开放申请", code="opendata.application_not_found")
    return app


def list_for_account(session: Session, *, account: PublicAccount) -> list[OpenAccessApplication]:
    return list(
        session.scalars(
            select(OpenAccessApplication)
            .where(OpenAccessApplication.account_id == account.id)
            .order_by(OpenAccessApplication.created_at.desc())
        )
    )


def grants_for_account(session: Session, *, account: PublicAccount) -> list[OpenAccessGrant]:
    return list(
        session.scalars(
            select(OpenAccessGrant)
            .where(OpenAccessGrant.account_id == account.id)
            .order_by(OpenAccessGrant.created_at.desc())
        )
    )


# ---- the provider's side ----------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, application_id: str) -> OpenAccessApplication:
    app = session.get(OpenAccessApplication, application_id)
    if app is None or not authz.allowed(actor, "opendata.access_view", app):
        raise NotFound("未找到该开放申请", code="opendata.application_not_found")
    return app


def list_query(actor: Actor, *, state: str | None = None, dataset_id: str | None = None) -> Select[Any]:
    stmt = select(OpenAccessApplication).where(authz.scope(actor, "opendata.access_view"))
    if state:
        stmt = stmt.where(OpenAccessApplication.state == state)
    if dataset_id:
        stmt = stmt.where(OpenAccessApplication.dataset_id == dataset_id)
    return stmt.order_by(OpenAccessApplication.created_at.desc(), OpenAccessApplication.id)


def ticket_of(session: Session, app: OpenAccessApplication) -> Ticket | None:
    return session.get(Ticket, app.ticket_id) if app.ticket_id else None


def _move(session: Session, app: OpenAccessApplication, *, actor: Actor, name: str, comment: str = "") -> None:
    ticket = ticket_of(session, app)
    if ticket is None:
        raise Conflict("该申请缺少办理流程记录，请联系平台管理员", code="opendata.no_ticket")
    workflow.transition(session, actor=actor, ticket=ticket, name=name, comment=comment)


def approve(
    session: Session,
    *,
    actor: Actor,
    application_id: str,
    decision_in: DecisionIn | None = None,
    settings: Settings | None = None,
) -> OpenAccessApplication:
    """The provider agrees: a grant for the items (all asked, or fewer) and the period (as asked, or shorter)."""
    settings = settings or get_settings()
    decision_in = decision_in or DecisionIn()
    app = get(session, actor=actor, application_id=application_id)
    authz.ensure(actor, "opendata.access_decide", app)
    if app.state != PENDING:
        raise Conflict(f"该申请当前为「{STATE_LABELS[app.state]}」，不能再审核", code="opendata.application_closed")
    items = decision_in.items if decision_in.items is not None else list(app.items)
    errors = ErrorCollector()
    extra = [i for i in items if i not in app.items]
    if not items:
        errors.add("items", "请至少批准一个信息项；全部不同意请选择“不同意”")
    if extra:
        errors.add("items", "只能在申请的信息项范围内批准：" + "、".join(extra))
    days = decision_in.days or app.requested_days
    if days > settings.open_grant_max_days:
        errors.add("days", f"使用期限最长 {settings.open_grant_max_days} 天")
    errors.raise_if_any("审核意见未通过校验", code="opendata.decision_invalid")
    now = utcnow()
    grant = OpenAccessGrant(
        account_id=app.account_id,
        dataset_id=app.dataset_id,
        application_id=app.id,
        items=items,
        starts_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(grant)
    session.flush()
    partly = len(items) < len(app.items)
    note = decision_in.reason or ("部分同意：" + "、".join(items) if partly else "同意")
    _move(session, app, actor=actor, name="approve", comment=f"{note}；期限 {days} 天")
    app.state = APPROVED
    app.grant_id = grant.id
    app.decided_by = actor.username
    app.decided_at = now
    app.reason = decision_in.reason
    session.flush()
    emit(
        session,
        "opendata.access_approved",
        application_id=app.id,
        grant_id=grant.id,
        dataset_id=app.dataset_id,
        account_id=app.account_id,
    )
    return app


def refuse(session: Session, *, actor: Actor, application_id: str, reason: str) -> OpenAccessApplication:
    app = get(session, actor=actor, application_id=application_id)
    authz.ensure(actor, "opendata.access_decide", app)
    if not reason.strip():
        raise ValidationFailed(
            "不同意时须说明理由", code="opendata.decision_invalid", errors=[FieldError("reason", "请填写不同意的理由")]
        )
    if app.state != PENDING:
        raise Conflict(f"该申请当前为「{STATE_LABELS[app.state]}」，不能再审核", code="opendata.application_closed")
    _move(session, app, actor=actor, name="refuse", comment=reason)
    app.state = REFUSED
    app.reason = reason
    app.decided_by = actor.username
    app.decided_at = utcnow()
    session.flush()
    emit(session, "opendata.access_refused", application_id=app.id, dataset_id=app.dataset_id)
    return app


def revoke_grant(session: Session, *, actor: Actor, grant_id: str, reason: str) -> OpenAccessGrant:
    grant = session.get(OpenAccessGrant, grant_id)
    app = session.get(OpenAccessApplication, grant.application_id) if grant is not None else None
    if grant is None or app is None or not authz.allowed(actor, "opendata.access_view", app):
        raise NotFound("未找到该开放授权", code="opendata.grant_not_found")
    authz.ensure(actor, "opendata.access_decide", app)
    grant.status = "revoked"
    grant.revoked_reason = reason
    session.flush()
    emit(session, "opendata.grant_revoked", grant_id=grant.id, dataset_id=grant.dataset_id)
    return grant


def to_read(session: Session, app: OpenAccessApplication) -> dict[str, Any]:
    from zhengshu.org.models import Organization

    ticket = ticket_of(session, app)
    grant = session.get(OpenAccessGrant, app.grant_id) if app.grant_id else None
    provider = session.get(Organization, app.provider_org_id)
    return {
        "id": app.id,
        "dataset_id": app.dataset_id,
        "dataset_title": app.dataset_title,
        "provider_org_id": app.provider_org_id,
        "provider_name": provider.name if provider else "",
        "account_id": app.account_id,
        "applicant": accounts.label(app.account),
        "applicant_kind": app.account.kind,
        "items": list(app.items),
        "purpose": app.purpose,
        "scenario": app.scenario,
        "requested_days": app.requested_days,
        "state": app.state,
        "state_label": STATE_LABELS.get(app.state, app.state),
        "ticket_id": app.ticket_id,
        "due_on": ticket.due_on if ticket is not None else None,
        "decided_by": app.decided_by,
        "decided_at": app.decided_at,
        "reason": app.reason,
        "grant": grant,
        "created_at": app.created_at,
    }
