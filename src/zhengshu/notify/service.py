"""Notifications: send, list mine, mark read; and the consumer that turns every ticket move into a to-do
notice, so catalog review, applications and objections notify without importing this module.

``notify`` stores the notification (the in-page channel) and, when another channel is registered (see
:mod:`zhengshu.notify.channels`), emits ``notification.created``, whose consumer calls those channels after
commit. With the page alone there is nothing to send: no event is written and no worker looks it up later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select
from sqlalchemy.orm import Session

from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import NotFound
from zhengshu.core.events import OutboxEvent, consumer, emit
from zhengshu.notify.channels import channels, sends_beyond_page
from zhengshu.notify.models import Notification, NotificationRead
from zhengshu.org.models import User
from zhengshu.security.actor import Actor, Role
from zhengshu.workflow.machine import MACHINES, Machine
from zhengshu.workflow.models import Ticket, TicketEvent

log = logging.getLogger(__name__)

KIND_LABELS = {
    "ticket.todo": "待办",
    "ticket.returned": "退回",
    "ticket.result": "办理结果",
    "": "通知",
}


def _role_text(roles: Iterable[Role | str] | None) -> str:
    names = sorted({str(r.value if isinstance(r, Role) else r) for r in roles or ()})
    return f",{','.join(names)}," if names else ""


def notify(
    session: Session,
    *,
    org_id: str | None = None,
    user_id: str | None = None,
    roles: Iterable[Role | str] | None = None,
    title: str,
    body: str = "",
    link: str = "",
    kind: str = "",
) -> Notification:
    """Notify one user, or an organization's users (only those with one of ``roles`` when given)."""
    if org_id is None and user_id is None:
        raise ValueError("a notification needs an organization or a user")
    notification = Notification(
        id=new_id(),  # named now: no flush per notification, they go out in one batched insert
        org_id=org_id,
        user_id=user_id,
        roles=_role_text(roles) if user_id is None else "",
        title=title[:300],
        body=body,
        link=link[:500],
        kind=kind[:40],
        created_at=utcnow(),
    )
    session.add(notification)
    if sends_beyond_page():
        emit(session, "notification.created", notification_id=notification.id)
    return notification


# ---- whom it reaches ------------------------------------------------------------------------------------


def addressed_to(actor: Actor) -> ColumnElement[bool]:
    """Notifications this actor receives: addressed to the user, or to the organization and one of its roles."""
    if actor.user_id is None:
        return false()
    clauses: list[ColumnElement[bool]] = [Notification.user_id == actor.user_id]
    if actor.org_id:
        role_match = or_(Notification.roles == "", *[Notification.roles.contains(f",{r.value},") for r in actor.roles])
        clauses.append(and_(Notification.user_id.is_(None), Notification.org_id == actor.org_id, role_match))
    return or_(*clauses)


def recipients(session: Session, notification: Notification) -> list[User]:
    """The active users a notification reaches (what an e-mail or SMS channel sends to)."""
    if notification.user_id is not None:
        user = session.get(User, notification.user_id)
        return [user] if user is not None and user.active else []
    wanted = set(notification.role_list)
    users = session.scalars(
        select(User).where(User.org_id == notification.org_id, User.active.is_(True)).order_by(User.username)
    )
    return [u for u in users if not wanted or wanted.intersection(str(r) for r in u.roles or [])]


# ---- reading --------------------------------------------------------------------------------------------


def _read_join(actor: Actor) -> ColumnElement[bool]:
    return and_(NotificationRead.notification_id == Notification.id, NotificationRead.user_id == (actor.user_id or ""))


SORTS = {"created_at"}


def list_query(
    actor: Actor, *, unread_only: bool = False, kind: str | None = None, sort: str | None = None
) -> Select[tuple[Notification]]:
    """Mine; by default unread first, newest first. ``sort`` ``created_at``/``-created_at`` ignores read state."""
    stmt = select(Notification).outerjoin(NotificationRead, _read_join(actor)).where(addressed_to(actor))
    if unread_only:
        stmt = stmt.where(NotificationRead.notification_id.is_(None))
    if kind:
        stmt = stmt.where(Notification.kind == kind)
    if sort == "created_at":
        return stmt.order_by(Notification.created_at, Notification.id)
    if sort == "-created_at":
        return stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
    unread_first = case((NotificationRead.notification_id.is_(None), 0), else_=1)
    return stmt.order_by(unread_first, Notification.created_at.desc(), Notification.id.desc())


def read_times(session: Session, *, actor: Actor, ids: list[str]) -> dict[str, datetime]:
    if not ids or actor.user_id is None:
        return {}
    rows = session.execute(
        select(NotificationRead.notification_id, NotificationRead.read_at).where(
            NotificationRead.user_id == actor.user_id, NotificationRead.notification_id.in_(ids)
        )
    )
    return {nid: at for nid, at in rows}


def get(session: Session, *, actor: Actor, notification_id: str) -> Notification:
    notification = session.scalars(
        select(Notification).where(Notification.id == notification_id, addressed_to(actor))
    ).first()
    if notification is None:
        raise NotFound("未找到该通知", code="notify.not_found")
    return notification


def mark_read(session: Session, *, actor: Actor, notification_id: str) -> tuple[Notification, datetime]:
    """Mark one of my notifications read (again is harmless); returns it with when it was read."""
    notification = get(session, actor=actor, notification_id=notification_id)
    assert actor.user_id is not None  # get() finds nothing for an actor without a user
    existing = session.get(NotificationRead, (notification.id, actor.user_id))
    if existing is not None:
        return notification, existing.read_at
    row = NotificationRead(notification_id=notification.id, user_id=actor.user_id, read_at=utcnow())
    session.add(row)
    session.flush()
    return notification, row.read_at


def mark_all_read(session: Session, *, actor: Actor) -> int:
    if actor.user_id is None:
        return 0
    ids = list(session.scalars(list_query(actor, unread_only=True).with_only_columns(Notification.id).order_by(None)))
    now = utcnow()
    session.add_all([NotificationRead(notification_id=i, user_id=actor.user_id, read_at=now) for i in ids])
    session.flush()
    return len(ids)


def unread_count(session: Session, *, actor: Actor) -> int:
    stmt = list_query(actor, unread_only=True).with_only_columns(func.count()).order_by(None)
    return int(session.scalar(stmt) or 0)


def to_read(notification: Notification, read_at: datetime | None) -> dict[str, Any]:
    return {
        "id": notification.id,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "kind": notification.kind,
        "kind_label": KIND_LABELS.get(notification.kind, "通知"),
        "org_id": notification.org_id,
        "user_id": notification.user_id,
        "roles": notification.role_list,
        "created_at": notification.created_at,
        "read": read_at is not None,
        "read_at": read_at,
    }


# ---- delivery through the other channels (after commit) ------------------------------------------------


@consumer("notification.created", "notify.deliver")
def _deliver(session: Session, event: OutboxEvent) -> None:
    notification = session.get(Notification, str(event.payload["notification_id"]))
    if notification is None:
        return
    users = recipients(session, notification)
    for channel in channels():
        try:
            channel.send(notification, users)
        except Exception:  # one failing gateway must not stop the others nor resend through them
            log.exception("notification channel %s failed for %s", getattr(channel, "name", channel), notification.id)


# ---- every ticket move notifies whoever must act next --------------------------------------------------


def _subject(ticket: Ticket, machine: Machine) -> str:
    return ticket.title if ticket.title.startswith(machine.label) else f"{machine.label}：{ticket.title}"


def _entering_event(ticket: Ticket, state: str) -> TicketEvent | None:
    for ev in reversed(ticket.events):
        if ev.to_state == state and ev.action not in ("comment", "due_recomputed"):
            return ev
    return None


def _actor_org(session: Session, ev: TicketEvent | None) -> str | None:
    if ev is None or ev.actor_user_id is None:
        return None
    user = session.get(User, ev.actor_user_id)
    return user.org_id if user is not None else None


def notify_ticket(session: Session, *, ticket: Ticket, transition: str | None) -> list[Notification]:
    """Notices for the ticket's current state: a to-do for the assignee organization's handlers; when the
    ticket is finished, the result for the requester (and the last assignee). The organization that made the
    move is not told about its own action."""
    machine = MACHINES.get(ticket.kind)
    if machine is None or ticket.state not in machine.states:
        return []
    state = machine.state(ticket.state)
    entering = _entering_event(ticket, ticket.state)
    mover = _actor_org(session, entering)
    subject = _subject(ticket, machine)
    link = machine.link(ticket.subject_type, ticket.subject_id) if machine.link else f"/tickets/{ticket.id}"
    step = machine.transitions[transition].label if transition in machine.transitions else "创建"
    remark = f"\n意见：{entering.comment}" if entering is not None and entering.comment else ""
    sent: list[Notification] = []
    if state.final:
        for org_id in dict.fromkeys([ticket.requester_org_id, ticket.assignee_org_id]):
            if org_id and org_id != mover:
                sent.append(
                    notify(
                        session,
                        org_id=org_id,
                        title=f"办理结果：{subject}",
                        body=f"{step}，当前状态：{state.label}{remark}",
                        link=link,
                        kind="ticket.result",
                    )
                )
        return sent
    if not ticket.assignee_org_id or ticket.assignee_org_id == mover or not state.handler_roles:
        return sent
    returned = transition is not None and ticket.assignee_org_id == ticket.requester_org_id
    due = f"，请于 {ticket.due_on.isoformat()} 前办理" if ticket.due_on else ""
    sent.append(
        notify(
            session,
            org_id=ticket.assignee_org_id,
            roles=state.handler_roles,
            title=f"{step}：{subject}" if returned else f"新的待办：{subject}",
            body=f"当前环节：{state.label}{due}{remark}",
            link=link,
            kind="ticket.returned" if returned else "ticket.todo",
        )
    )
    return sent


@consumer("ticket.opened", "notify.ticket_opened")
def _on_ticket_opened(session: Session, event: OutboxEvent) -> None:
    ticket = session.get(Ticket, str(event.payload["ticket_id"]))
    if ticket is not None and ticket.state == event.payload.get("state"):
        notify_ticket(session, ticket=ticket, transition=None)


@consumer("ticket.transitioned", "notify.ticket_transitioned")
def _on_ticket_transitioned(session: Session, event: OutboxEvent) -> None:
    ticket = session.get(Ticket, str(event.payload["ticket_id"]))
    # a later move already happened: its own event notifies for the state the ticket is in now
    if ticket is not None and ticket.state == event.payload.get("to_state"):
        notify_ticket(session, ticket=ticket, transition=str(event.payload.get("transition") or ""))
