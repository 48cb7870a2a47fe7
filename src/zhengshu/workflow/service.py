"""The workflow engine: open tickets, move them through their declared machine, list to-dos and overdue work.

Features check *who* may act (named permission actions) before calling :func:`transition`; the engine checks
*whether* the move is legal in the current state, computes due dates from the working-day clock and writes
the history. It flushes and never commits.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select
from sqlalchemy.orm import Session

from zhengshu.core import clock
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import InvalidTransition, NotFound
from zhengshu.core.events import OutboxEvent, consumer, emit
from zhengshu.core.timeutil import local_today
from zhengshu.security.actor import Actor
from zhengshu.workflow.machine import Machine, get_machine
from zhengshu.workflow.models import Ticket, TicketEvent


def _event(
    ticket: Ticket,
    actor: Actor,
    action: str,
    label: str,
    *,
    from_state: str | None,
    to_state: str | None,
    comment: str = "",
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    ev = TicketEvent(
        actor_user_id=actor.user_id,
        actor_name=actor.display_name,
        actor_org_name=actor.org_name,
        action=action,
        action_label=label,
        from_state=from_state,
        to_state=to_state,
        comment=comment,
        data=data or {},
        at=utcnow(),
    )
    ticket.events.append(ev)
    return ev


def _enter_state(ticket: Ticket, machine: Machine, state_name: str, *, today: date | None = None) -> None:
    state = machine.state(state_name)
    ticket.state = state_name
    ticket.state_entered_at = utcnow()
    ticket.state_entered_on = today or local_today()
    if state.final:
        ticket.closed_at = utcnow()
        ticket.sla_days = None
        ticket.due_on = None
        ticket.due_provisional = False
        return
    ticket.closed_at = None
    ticket.sla_days = state.sla_days() if state.sla_days else None
    _apply_due(ticket)


def _apply_due(ticket: Ticket) -> None:
    if ticket.sla_days is None:
        ticket.due_on = None
        ticket.due_provisional = False
        return
    ticket.due_on = clock.add_working_days(ticket.state_entered_on, ticket.sla_days)
    ticket.due_provisional = _span_provisional(ticket.state_entered_on, ticket.due_on)


def _span_provisional(start: date, end: date) -> bool:
    return any(clock.is_provisional(date(y, 1, 1)) for y in range(start.year, end.year + 1))


def open_ticket(
    session: Session,
    *,
    actor: Actor,
    kind: str,
    title: str,
    subject_type: str,
    subject_id: str,
    assignee_org_id: str | None,
    requester_org_id: str | None = None,
    state: str | None = None,
    comment: str = "",
    data: dict[str, Any] | None = None,
    today: date | None = None,
    due_on: date | None = None,
    ticket_id: str | None = None,
    flush: bool = True,
) -> Ticket:
    """Open a ticket; its due date comes from the state's SLA in working days, or ``due_on`` when the limit
    is a calendar date (the annual re-check). ``ticket_id`` lets the subject name its ticket before either is
    written (one insert each, no update afterwards); ``flush=False`` leaves the writes to the caller's next
    flush, as for :func:`transition`."""
    machine = get_machine(kind)
    ticket = Ticket(
        id=ticket_id or new_id(),
        kind=kind,
        title=title,
        subject_type=subject_type,
        subject_id=subject_id,
        assignee_org_id=assignee_org_id,
        requester_org_id=requester_org_id,
        opened_by=actor.username,
        data=data or {},
        state=state or machine.initial,
        state_entered_on=today or local_today(),
    )
    _enter_state(ticket, machine, ticket.state, today=today)
    if due_on is not None:
        ticket.due_on = due_on
    _event(ticket, actor, "open", "创建", from_state=None, to_state=ticket.state, comment=comment)
    session.add(ticket)
    if flush:
        session.flush()
    emit(session, "ticket.opened", ticket_id=ticket.id, kind=kind, state=ticket.state)
    return ticket


def transition(
    session: Session,
    *,
    actor: Actor,
    ticket: Ticket,
    name: str,
    comment: str = "",
    assignee_org_id: str | None = None,
    data: dict[str, Any] | None = None,
    today: date | None = None,
    flush: bool = True,
) -> Ticket:
    """Move ``ticket`` by transition ``name``. ``flush=False`` leaves the writes to the caller's next flush
    (autoflush or commit), so a request that moves a ticket twice and records other rows writes them in one
    flush, batched per table."""
    machine = get_machine(ticket.kind)
    ticket.events  # noqa: B018  (load the history before changing the ticket: the load does not flush it early)
    if not machine.can(name, ticket.state):
        current = machine.state(ticket.state).label
        label = machine.transitions[name].label if name in machine.transitions else name
        raise InvalidTransition(f"当前状态为「{current}」，不能执行「{label}」")
    t = machine.transitions[name]
    from_state = ticket.state
    if assignee_org_id is not None:
        ticket.assignee_org_id = assignee_org_id
    if data:
        ticket.data = {**ticket.data, **data}
    _enter_state(ticket, machine, t.target, today=today)
    _event(ticket, actor, name, t.label, from_state=from_state, to_state=t.target, comment=comment, data=data)
    if flush:
        session.flush()
    emit(
        session,
        "ticket.transitioned",
        ticket_id=ticket.id,
        kind=ticket.kind,
        transition=name,
        from_state=from_state,
        to_state=t.target,
    )
    return ticket


def comment(session: Session, *, actor: Actor, ticket: Ticket, text: str) -> TicketEvent:
    ev = _event(ticket, actor, "comment", "备注", from_state=ticket.state, to_state=ticket.state, comment=text)
    session.flush()
    return ev


def get(session: Session, *, ticket_id: str) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("未找到该工单", code="workflow.ticket_not_found")
    return ticket


def open_for_subject(session: Session, *, kind: str, subject_type: str, subject_id: str) -> Ticket | None:
    return session.scalars(
        select(Ticket)
        .where(
            Ticket.kind == kind,
            Ticket.subject_type == subject_type,
            Ticket.subject_id == subject_id,
            Ticket.closed_at.is_(None),
        )
        .order_by(Ticket.created_at.desc())
    ).first()


def tickets_for_subject(session: Session, *, subject_type: str, subject_id: str) -> list[Ticket]:
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.subject_type == subject_type, Ticket.subject_id == subject_id)
            .order_by(Ticket.created_at)
        )
    )


def _handled_by(actor: Actor) -> ColumnElement[bool]:
    """Open tickets whose current state this actor's roles handle at their organization."""
    from zhengshu.workflow.machine import MACHINES

    clauses: list[ColumnElement[bool]] = []
    for machine in MACHINES.values():
        states = [s.name for s in machine.states.values() if not s.final and actor.roles.intersection(s.handler_roles)]
        if states:
            clauses.append(and_(Ticket.kind == machine.kind, Ticket.state.in_(states)))
    if not clauses or actor.org_id is None:
        return false()
    return and_(Ticket.assignee_org_id == actor.org_id, or_(*clauses))


def todo_query(actor: Actor, *, kinds: list[str] | None = None) -> Select[tuple[Ticket]]:
    stmt = select(Ticket).where(Ticket.closed_at.is_(None), _handled_by(actor))
    if kinds:
        stmt = stmt.where(Ticket.kind.in_(kinds))
    return stmt.order_by(Ticket.due_on.is_(None), Ticket.due_on, Ticket.created_at)


def todo(session: Session, *, actor: Actor, kinds: list[str] | None = None, limit: int = 200) -> list[Ticket]:
    return list(session.scalars(todo_query(actor, kinds=kinds).limit(limit)))


def overdue_query(
    *, as_of: date | None = None, org_id: str | None = None, kinds: list[str] | None = None
) -> Select[tuple[Ticket]]:
    today = as_of or local_today()
    stmt = select(Ticket).where(Ticket.closed_at.is_(None), Ticket.due_on.is_not(None), Ticket.due_on < today)
    if org_id:
        stmt = stmt.where(Ticket.assignee_org_id == org_id)
    if kinds:
        stmt = stmt.where(Ticket.kind.in_(kinds))
    return stmt.order_by(Ticket.due_on)


def overdue(
    session: Session,
    *,
    as_of: date | None = None,
    org_id: str | None = None,
    kinds: list[str] | None = None,
    limit: int = 500,
) -> list[Ticket]:
    return list(session.scalars(overdue_query(as_of=as_of, org_id=org_id, kinds=kinds).limit(limit)))


def recompute_due_dates(session: Session, *, year: int, actor: Actor) -> int:
    """Recompute open due dates touching ``year`` after its schedule changed; each change is in the history."""
    changed = 0
    open_tickets = session.scalars(select(Ticket).where(Ticket.closed_at.is_(None), Ticket.sla_days.is_not(None)))
    for ticket in open_tickets:
        if ticket.due_on is None or not (ticket.state_entered_on.year <= year <= ticket.due_on.year + 1):
            continue
        old_due, old_prov = ticket.due_on, ticket.due_provisional
        _apply_due(ticket)
        if (ticket.due_on, ticket.due_provisional) != (old_due, old_prov):
            changed += 1
            _event(
                ticket,
                actor,
                "due_recomputed",
                "重算期限",
                from_state=ticket.state,
                to_state=ticket.state,
                comment=f"{year}年节假日安排更新，办理期限由 {old_due} 调整为 {ticket.due_on}",
                data={
                    "old_due_on": old_due.isoformat(),
                    "new_due_on": ticket.due_on.isoformat() if ticket.due_on else None,
                },
            )
    session.flush()
    return changed


@consumer("calendar.schedule_changed", "workflow.recompute_due_dates")
def _on_schedule_changed(session: Session, event: OutboxEvent) -> None:
    from zhengshu.security.actor import SYSTEM_ACTOR

    recompute_due_dates(session, year=int(event.payload["year"]), actor=SYSTEM_ACTOR)


def visible(actor: Actor, ticket: Ticket) -> bool:
    return actor.is_admin or (
        actor.org_id is not None and actor.org_id in (ticket.assignee_org_id, ticket.requester_org_id)
    )


def get_visible(session: Session, *, actor: Actor, ticket_id: str) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not visible(actor, ticket):
        raise NotFound("未找到该工单", code="workflow.ticket_not_found")
    return ticket


def backdate(session: Session, *, ticket: Ticket, entered_on: date) -> Ticket:
    """Set when the current state was entered (tickets migrated from a legacy system, the demo's history)
    and recompute the due date from it."""
    ticket.state_entered_on = entered_on
    for ev in ticket.events:
        if ev.to_state == ticket.state:
            ev.at = ev.at.replace(year=entered_on.year, month=entered_on.month, day=entered_on.day)
    _apply_due(ticket)
    session.flush()
    return ticket
