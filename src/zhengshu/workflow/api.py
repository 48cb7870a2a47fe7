"""HTTP API of the workflow engine: to-do list, overdue report, ticket timelines, declared machines."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from zhengshu.core.timeutil import local_today
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate
from zhengshu.workflow import service as workflow
from zhengshu.workflow.machine import MACHINES, Machine, get_machine
from zhengshu.workflow.models import Ticket

router = APIRouter(prefix="/workflow", tags=["workflow"])


class TicketEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    actor_org_name: str
    action: str
    action_label: str
    from_state: str | None
    to_state: str | None
    comment: str


class TicketRead(BaseModel):
    id: str
    kind: str
    kind_label: str
    title: str
    subject_type: str
    subject_id: str
    state: str
    state_label: str
    requester_org_id: str | None
    assignee_org_id: str | None
    opened_by: str | None
    state_entered_on: date
    sla_days: int | None = Field(description="当前环节的办理时限（工作日）")
    due_on: date | None = Field(description="办理期限")
    due_provisional: bool = Field(description="期限按尚未公布的节假日安排暂定计算")
    overdue: bool
    closed_at: datetime | None
    created_at: datetime
    link: str | None = Field(description="办理页面地址")


class TicketDetailRead(TicketRead):
    events: list[TicketEventRead]


class StateRead(BaseModel):
    name: str
    label: str
    handler_roles: list[str]
    sla_days: int | None
    final: bool


class TransitionRead(BaseModel):
    name: str
    label: str
    sources: list[str]
    target: str


class MachineRead(BaseModel):
    kind: str
    label: str
    initial: str
    states: list[StateRead]
    transitions: list[TransitionRead]


def to_read(ticket: Ticket, *, today: date | None = None) -> dict[str, Any]:
    machine = get_machine(ticket.kind)
    today = today or local_today()
    return {
        "id": ticket.id,
        "kind": ticket.kind,
        "kind_label": machine.label,
        "title": ticket.title,
        "subject_type": ticket.subject_type,
        "subject_id": ticket.subject_id,
        "state": ticket.state,
        "state_label": machine.state(ticket.state).label,
        "requester_org_id": ticket.requester_org_id,
        "assignee_org_id": ticket.assignee_org_id,
        "opened_by": ticket.opened_by,
        "state_entered_on": ticket.state_entered_on,
        "sla_days": ticket.sla_days,
        "due_on": ticket.due_on,
        "due_provisional": ticket.due_provisional,
        "overdue": ticket.closed_at is None and ticket.due_on is not None and ticket.due_on < today,
        "closed_at": ticket.closed_at,
        "created_at": ticket.created_at,
        "link": machine.link(ticket.subject_type, ticket.subject_id) if machine.link else None,
    }


def machine_read(machine: Machine) -> MachineRead:
    return MachineRead(
        kind=machine.kind,
        label=machine.label,
        initial=machine.initial,
        states=[
            StateRead(
                name=s.name,
                label=s.label,
                handler_roles=sorted(r.value for r in s.handler_roles),
                sla_days=s.sla_days() if s.sla_days else None,
                final=s.final,
            )
            for s in machine.states.values()
        ],
        transitions=[
            TransitionRead(name=t.name, label=t.label, sources=sorted(t.sources), target=t.target)
            for t in machine.transitions.values()
        ],
    )


@router.get("/todo", response_model=Page[TicketRead], summary="我的待办（本单位、本人角色办理的环节）")
def todo(
    session: DbSession, actor: CurrentActor, limit: Limit = 20, cursor: Cursor = None, count: Count = False
) -> dict[str, Any]:
    rows, next_cursor, total = paginate(session, workflow.todo_query(actor), limit=limit, cursor=cursor, count=count)
    return {"items": [to_read(t) for t in rows], "next_cursor": next_cursor, "total": total}


@router.get("/overdue", response_model=Page[TicketRead], summary="逾期事项（管理员为全部，其他人为本单位承办的）")
def overdue(
    session: DbSession, actor: CurrentActor, limit: Limit = 20, cursor: Cursor = None, count: Count = False
) -> dict[str, Any]:
    stmt = workflow.overdue_query(org_id=None if actor.is_admin else actor.org_id)
    if not actor.is_admin and actor.org_id is None:
        stmt = stmt.where(Ticket.id.is_(None))  # no organization, nothing to answer for
    stmt = stmt.order_by(Ticket.id)  # a stable order for the cursor (after the due date)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [to_read(t) for t in rows], "next_cursor": next_cursor, "total": total}


@router.get("/tickets/{ticket_id}", response_model=TicketDetailRead, summary="工单详情与办理时间线")
def get_ticket(session: DbSession, actor: CurrentActor, ticket_id: str) -> dict[str, Any]:
    ticket = workflow.get_visible(session, actor=actor, ticket_id=ticket_id)
    return {**to_read(ticket), "events": ticket.events}


@router.get("/machines", response_model=Page[MachineRead], summary="已声明的流程：状态、名称与流转")
def machines(actor: CurrentActor) -> dict[str, Any]:
    items = [machine_read(m) for m in sorted(MACHINES.values(), key=lambda m: m.kind)]
    return {"items": items, "next_cursor": None, "total": len(items)}
