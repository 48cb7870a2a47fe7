"""Data objections (数据异议): raise, accept and flag, answer (correct / not an error / forward), confirm or
dispute, arbitrate, withdraw, escalate when overdue; flags and corrections other modules read.

Every function takes the session and the acting user; authorization is checked here so the API, the pages,
the CLI and other modules (governance raises objections through :func:`raise_system_objection`) enforce the
same rules. Functions flush; the caller owns the transaction.

Grouping: objections against the same target (same resource + record key, or same entry + item, or the same
entry as a whole) join the open group while the provider has not answered. The provider's actions (accept,
answer, forward) and the data authority's (urge, arbitrate) move every member of the group that is in the
same step; each objector confirms, disputes or withdraws their own objection. The flag stays until the last
member of the group is closed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload, lazyload

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import EntryStatus
from zhengshu.catalog.models import CatalogEntry, DataItem, MountedResource
from zhengshu.core import clock
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, InvalidTransition, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today
from zhengshu.objection import attachments as files
from zhengshu.objection import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.objection import workflows as wf
from zhengshu.objection.models import Correction, Objection, ObjectionAttachment, RecordFlag
from zhengshu.objection.schemas import (
    DECISION_LABELS,
    KIND_LABELS,
    RESOLUTION_LABELS,
    TARGET_LABELS,
    AnswerIn,
    ArbitrateIn,
    Decision,
    ForwardIn,
    ObjectionIn,
    Resolution,
    TargetType,
)
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import SYSTEM_ACTOR, Actor
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket, TicketEvent

SUBJECT = "objection"


# ---- lookups ------------------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, objection_id: str) -> Objection:
    obj = session.get(Objection, objection_id)
    if obj is None or not authz.allowed(actor, "objection.view", obj):
        # objections the actor may not see look exactly like missing ones
        raise NotFound("未找到该数据异议", code="objection.not_found")
    return obj


def _locked(session: Session, *, actor: Actor, objection_id: str) -> Objection:
    """Load for a change: the row is locked (PostgreSQL) so concurrent decisions queue instead of racing."""
    obj = (
        session.scalars(
            select(Objection)
            .where(Objection.id == objection_id)
            .options(joinedload(Objection.attachments))  # the read model lists them: no query of their own
            .with_for_update(of=Objection)
            .execution_options(populate_existing=True)
        )
        .unique()
        .first()
    )
    if obj is None or not authz.allowed(actor, "objection.view", obj):
        raise NotFound("未找到该数据异议", code="objection.not_found")
    return obj


def ticket_of(session: Session, obj: Objection, *, refresh: bool = True) -> Ticket:
    """The objection's ticket; ``refresh`` re-reads it even when the session holds it (a change loads it
    after locking the objection). Read models pass ``refresh=False``: what this transaction loaded is current."""
    ticket = session.get(Ticket, obj.ticket_id, populate_existing=refresh) if obj.ticket_id else None
    if ticket is None:
        raise Conflict("该异议缺少办理流程记录，请联系平台管理员", code="objection.no_ticket")
    return ticket


def tickets_with_history(session: Session, objs: Sequence[Objection]) -> dict[str, Ticket]:
    """The tickets of ``objs`` (by objection id) re-read with their histories, in one query: a change reads
    them after locking the objections, and appends to the histories."""
    ids = [o.ticket_id for o in objs if o.ticket_id]
    found: dict[str, Ticket] = {}
    if ids:
        stmt = (
            select(Ticket)
            .where(Ticket.id.in_(ids))
            .options(joinedload(Ticket.events))
            .execution_options(populate_existing=True)
        )
        found = {t.id: t for t in session.scalars(stmt).unique()}
    tickets = {}
    for o in objs:
        ticket = found.get(o.ticket_id) if o.ticket_id else None
        if ticket is None:
            raise Conflict("该异议缺少办理流程记录，请联系平台管理员", code="objection.no_ticket")
        tickets[o.id] = ticket
    return tickets


def group_members(session: Session, obj: Objection, *, states: Sequence[str] | None = None) -> list[Objection]:
    """The objections of ``obj``'s group (``obj`` included), oldest first; locked when states are given."""
    stmt = select(Objection).where(Objection.group_id == obj.group_id)
    if states is not None:
        stmt = (
            stmt.where(Objection.state.in_(list(states)))
            .with_for_update(of=Objection)
            .execution_options(populate_existing=True)
        )
    return list(session.scalars(stmt.order_by(Objection.created_at, Objection.id)))


# What the current transaction has read of a group, so a step and the read model after it read it once: the
# members' ids and the flags, open and closed, with those the step added. Only what this transaction has read
# or written is kept, and only for this transaction (a new one reads again).
_GROUP_SEEN = "zhengshu.objection.group_seen"


@dataclass
class _GroupSeen:
    transaction: Any
    member_ids: dict[str, list[str]] = field(default_factory=dict)  # group → its members' ids, oldest first
    flags: dict[str, list[RecordFlag]] = field(default_factory=dict)  # group → its flags


def _group_seen(session: Session) -> _GroupSeen:
    transaction = session.get_transaction()
    seen = session.info.get(_GROUP_SEEN)
    if not isinstance(seen, _GroupSeen) or seen.transaction is not transaction:
        seen = session.info[_GROUP_SEEN] = _GroupSeen(transaction)
    return seen


def _read_members(session: Session, group_id: str) -> list[tuple[str, bool]]:
    """The group's members as (id, still open), oldest first; their ids are kept for this transaction."""
    rows = session.execute(
        select(Objection.id, Objection.closed_at.is_(None))
        .where(Objection.group_id == group_id)
        .order_by(Objection.created_at, Objection.id)
    ).all()
    _group_seen(session).member_ids[group_id] = [str(i) for i, _ in rows]
    return [(str(i), bool(still_open)) for i, still_open in rows]


def group_member_ids(session: Session, obj: Objection) -> list[str]:
    """Ids of ``obj``'s group, oldest first (:func:`group_members` without loading the objections)."""
    ids = _group_seen(session).member_ids.get(obj.group_id)
    return list(ids) if ids is not None else [i for i, _ in _read_members(session, obj.group_id)]


def _flags_of_group(session: Session, group_id: str, entry_id: str, *, lock: bool = False) -> list[RecordFlag]:
    """The group's flags, read once per transaction; ``lock`` reads (and locks) them again."""
    seen = _group_seen(session)
    flags = seen.flags.get(group_id)
    if lock or flags is None or any(f not in session for f in flags):  # a rolled-back savepoint took one away
        stmt = select(RecordFlag).where(RecordFlag.group_id == group_id, RecordFlag.entry_id == entry_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        flags = list(session.scalars(stmt))
        seen.flags[group_id] = flags
    return flags


def group_flags(session: Session, obj: Objection) -> list[RecordFlag]:
    """The flags (open and closed) of ``obj``'s group, newest first, as :func:`flags_for` orders them; by the
    group's index, not every flag of the entry."""
    flags = _flags_of_group(session, obj.group_id, obj.entry_id)
    by_id = sorted(flags, key=lambda f: f.id)
    return sorted(by_id, key=lambda f: f.opened_at, reverse=True)


def timeline(session: Session, obj: Objection) -> list[TicketEvent]:
    if not obj.ticket_id:
        return []
    return list(
        session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == obj.ticket_id).order_by(TicketEvent.at))
    )


@dataclass
class ObjectionFilters:
    box: str = "all"  # all | mine | todo | provider | arbitration
    q: str | None = None
    state: list[str] | None = None
    kind: list[str] | None = None
    target_type: list[str] | None = None
    entry_id: str | None = None
    group_id: str | None = None
    record_key: str | None = None
    handler_org_id: list[str] | None = None
    objector_org_id: list[str] | None = None


BOXES = {
    "all": "全部可见的异议",
    "mine": "我部门提出的异议",
    "todo": "待我部门处理",
    "provider": "针对我部门数据的异议",
    "arbitration": "待数据主管部门督办与仲裁",
}

SORTS = {
    "created_at": Objection.created_at,
    "raised_on": Objection.raised_on,
    "answer_due_on": Objection.answer_due_on,
    "state": Objection.state,
    "updated_at": Objection.updated_at,
}


def list_query(actor: Actor, filters: ObjectionFilters) -> Select[tuple[Objection]]:
    """Objections this actor may see (default deny), narrowed to a box and filters."""
    stmt = select(Objection).where(authz.scope(actor, "objection.view"))
    box = filters.box
    if box == "mine":
        stmt = stmt.where(authz.scope(actor, "objection.confirm"))
    elif box == "todo":
        stmt = stmt.where(authz.scope(actor, "objection.answer"), Objection.state.in_(sorted(wf.PRE_ANSWER)))
    elif box == "provider":
        stmt = stmt.where(Objection.provider_org_id == (actor.org_id or ""))
    elif box == "arbitration":
        stmt = stmt.where(
            authz.scope(actor, "objection.arbitrate"), Objection.state.in_([wf.ARBITRATING, wf.ESCALATED])
        )
    elif box != "all":
        raise ValidationFailed(f"不支持的列表：{box}", code="objection.bad_box")
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(
            or_(Objection.title.ilike(like), Objection.description.ilike(like), Objection.record_key.ilike(like))
        )
    if filters.state:
        stmt = stmt.where(Objection.state.in_(filters.state))
    if filters.kind:
        stmt = stmt.where(Objection.kind.in_(filters.kind))
    if filters.target_type:
        stmt = stmt.where(Objection.target_type.in_(filters.target_type))
    if filters.entry_id:
        stmt = stmt.where(Objection.entry_id == filters.entry_id)
    if filters.group_id:
        stmt = stmt.where(Objection.group_id == filters.group_id)
    if filters.record_key:
        stmt = stmt.where(Objection.record_key == filters.record_key)
    if filters.handler_org_id:
        stmt = stmt.where(Objection.handler_org_id.in_(filters.handler_org_id))
    if filters.objector_org_id:
        stmt = stmt.where(Objection.objector_org_id.in_(filters.objector_org_id))
    return stmt


# ---- raising ------------------------------------------------------------------------------------------


def _item(session: Session, entry: CatalogEntry, item_key: str) -> DataItem | None:
    shown = catalog_service.display_version(session, entry)
    return next((i for i in shown.items if i.key == item_key), None)


def _target_clause(
    *, target_type: str, entry_id: str, item_key: str | None, resource_id: str | None, record_key: str | None
) -> Any:
    if target_type == TargetType.RECORD.value:
        return and_(
            Objection.target_type == target_type,
            Objection.resource_id == resource_id,
            Objection.record_key == record_key,
        )
    if target_type == TargetType.ITEM.value:
        return and_(
            Objection.target_type == target_type, Objection.entry_id == entry_id, Objection.item_key == item_key
        )
    return and_(Objection.target_type == target_type, Objection.entry_id == entry_id)


def _open_group_leader(session: Session, objection_in: ObjectionIn) -> Objection | None:
    clause = _target_clause(
        target_type=objection_in.target_type,
        entry_id=objection_in.entry_id,
        item_key=objection_in.item_key,
        resource_id=objection_in.resource_id,
        record_key=objection_in.record_key,
    )
    return session.scalars(
        select(Objection)
        # only columns of the leader are read; skipping the joined organizations and entry (wrapped in a
        # subquery because of LIMIT) saves most of this query's cost
        .options(lazyload("*"))
        .where(clause, Objection.state.in_(sorted(wf.PRE_ANSWER)))
        .order_by(Objection.created_at, Objection.id)
        .with_for_update(of=Objection)
        .limit(1)
    ).first()


def _title(entry: CatalogEntry, item: DataItem | None, record_key: str | None) -> str:
    parts = [entry.name]
    if item is not None:
        parts.append(item.name)
    if record_key:
        parts.append(f"记录 {record_key}")
    return "数据异议：" + " · ".join(parts)


def _check_target(session: Session, entry: CatalogEntry, objection_in: ObjectionIn) -> DataItem | None:
    errors = ErrorCollector()
    item = None
    if objection_in.item_key is not None:
        item = _item(session, entry, objection_in.item_key)
        if item is None:
            errors.add("item_key", "该目录没有这个信息项")
    if objection_in.resource_id is not None:
        resource = session.get(MountedResource, objection_in.resource_id)
        if resource is None or resource.entry_id != entry.id or not resource.active:
            errors.add("resource_id", "该目录没有挂接这个资源")
    errors.raise_if_any(code="objection.invalid")
    return item


def raise_objection(
    session: Session,
    *,
    actor: Actor,
    objection_in: ObjectionIn,
    attachments: Sequence[files.Upload | tuple[str, bytes]] = (),
    source: str | None = None,
    settings: Settings | None = None,
    today: date | None = None,
) -> Objection:
    """Raise an objection; it is routed to the entry's provider (or joins the open group on the same target).

    Attachments are checked (type by content signature, size) before anything is written.
    """
    settings = settings or get_settings()
    today = today or local_today()
    authz.ensure(actor, "objection.create")
    entry = catalog_service.get(session, actor=actor, entry_id=objection_in.entry_id)
    if entry.status != EntryStatus.PUBLISHED.value:
        raise Conflict("只能对已发布的目录提出数据异议", code="objection.entry_not_published")
    if source is None and actor.org_id == entry.provider_org_id:
        raise Conflict("不能对本部门提供的数据提出异议，请直接核实更正", code="objection.own_entry")
    item = _check_target(session, entry, objection_in)
    checked = files.check_all(list(attachments), limit=files.max_bytes(settings))

    leader = _open_group_leader(session, objection_in)
    leader_ticket = ticket_of(session, leader) if leader is not None else None
    authority = org_service.data_authority_for(session, region_code=entry.region_code)
    obj = Objection(
        id=new_id(),
        title=_title(entry, item, objection_in.record_key),
        target_type=objection_in.target_type,
        entry_id=entry.id,
        item_key=objection_in.item_key,
        item_name=item.name if item is not None else None,
        resource_id=objection_in.resource_id,
        record_key=objection_in.record_key,
        kind=objection_in.kind,
        other_source=objection_in.other_source,
        claimed_value=objection_in.claimed_value,
        description=objection_in.description,
        source=source,
        objector_org_id=None if source else actor.org_id,
        raised_by=actor.username,
        raised_by_name=actor.display_name,
        provider_org_id=entry.provider_org_id,
        handler_org_id=leader.handler_org_id if leader else entry.provider_org_id,
        authority_org_id=authority.id if authority else None,
        region_code=entry.region_code,
        state=wf.RAISED,
        raised_on=today,
        assigned_on=leader.assigned_on if leader else today,
    )
    obj.group_id = leader.group_id if leader else obj.id
    # read before anything is added: the query's autoflush then writes nothing, and the request's rows go
    # out together in the one flush below (a new group has no flag yet)
    flag = _open_flag(session, obj.group_id, obj.entry_id) if leader is not None else None
    obj.ticket_id = new_id()  # named now, so the objection is inserted with it (no update after)
    if not checked:
        obj.attachments = []  # known empty: the read model does not query for them
    session.add(obj)

    # a joining member counts its limit from the group's, so the group keeps one due date
    counts_from = leader_ticket.state_entered_on if leader_ticket is not None else today
    ticket = workflow.open_ticket(
        session,
        actor=actor,
        kind=wf.KIND,
        title=obj.title,
        subject_type=SUBJECT,
        subject_id=obj.id,
        assignee_org_id=obj.handler_org_id,
        requester_org_id=obj.objector_org_id,
        comment=objection_in.description,
        data={"group_id": obj.group_id, "kind": obj.kind, "source": source},
        today=counts_from if leader is not None and leader.state == wf.RAISED else today,
        ticket_id=obj.ticket_id,
        flush=False,
    )
    if leader is not None and leader_ticket is not None and leader.state != wf.RAISED:
        _follow_leader(session, obj=obj, ticket=ticket, leader=leader, leader_ticket=leader_ticket)
    obj.answer_due_on = leader.answer_due_on if leader is not None else ticket.due_on
    obj.state = ticket.state
    if flag is not None:
        _add_to_flag(flag, obj)
    emit(
        session,
        "objection.raised",
        objection_id=obj.id,
        group_id=obj.group_id,
        entry_id=entry.id,
        joined=leader is not None,
        source=source,
    )
    if checked:
        files.store(session, actor=actor, objection=obj, files=checked, data_dir=settings.data_dir)
    session.flush()  # the objection, its ticket, flag and events in one flush
    return obj


def _follow_leader(
    session: Session, *, obj: Objection, ticket: Ticket, leader: Objection, leader_ticket: Ticket
) -> None:
    """Bring a new member to the step its group is at (the platform moves it, so the history says so)."""
    note = f"并入同一对象的异议组（{leader.title}），随组办理"
    if leader.state == wf.VERIFYING:
        workflow.transition(
            session,
            actor=SYSTEM_ACTOR,
            ticket=ticket,
            name="accept",
            comment=note,
            today=leader_ticket.state_entered_on,
            flush=False,  # written with the new member, in raise_objection's flush
        )
    elif leader.state == wf.ESCALATED:
        workflow.transition(
            session,
            actor=SYSTEM_ACTOR,
            ticket=ticket,
            name="escalate",
            comment=note,
            assignee_org_id=leader_ticket.assignee_org_id,
            today=leader_ticket.state_entered_on,
            flush=False,
        )
        obj.escalated = True


def raise_system_objection(
    session: Session,
    *,
    source: str,
    entry_id: str,
    kind: str,
    description: str,
    item_key: str | None = None,
    resource_id: str | None = None,
    record_key: str | None = None,
    claimed_value: str = "",
    other_source: str = "",
    attachments: Sequence[files.Upload | tuple[str, bytes]] = (),
    settings: Settings | None = None,
    today: date | None = None,
) -> Objection:
    """Raise an objection on behalf of the platform (e.g. ``source="governance.cross_source_check"``).

    It is routed to the provider like any other; the data authority covering the entry speaks for the
    platform when the answer is to be confirmed or disputed.
    """
    if not source.strip():
        raise ValidationFailed("请注明发起异议的系统功能", code="objection.invalid")
    objection_in = ObjectionIn.model_validate(
        {
            "entry_id": entry_id,
            "item_key": item_key,
            "resource_id": resource_id,
            "record_key": record_key,
            "kind": kind,
            "claimed_value": claimed_value,
            "other_source": other_source,
            "description": description,
        }
    )
    return raise_objection(
        session,
        actor=SYSTEM_ACTOR,
        objection_in=objection_in,
        attachments=attachments,
        source=source.strip(),
        settings=settings,
        today=today,
    )


# ---- flags and corrections ----------------------------------------------------------------------------


def _open_flag(session: Session, group_id: str, entry_id: str) -> RecordFlag | None:
    return next((f for f in _flags_of_group(session, group_id, entry_id) if f.closed_at is None), None)


def _add_to_flag(flag: RecordFlag, obj: Objection) -> None:
    if obj.item_key and obj.item_key not in flag.item_keys:
        flag.item_keys = [*flag.item_keys, obj.item_key]
    if obj.kind not in flag.kinds:
        flag.kinds = [*flag.kinds, obj.kind]


def _flag(session: Session, *, actor: Actor, leader: Objection, members: Sequence[Objection]) -> RecordFlag:
    """标注 the group's target (once): every reader of it sees it is under objection."""
    flag = _open_flag(session, leader.group_id, leader.entry_id)
    if flag is None:
        flag = RecordFlag(
            id=new_id(),  # known now: the insert goes out with the request's other writes
            group_id=leader.group_id,
            objection_id=leader.group_id,
            target_type=leader.target_type,
            entry_id=leader.entry_id,
            item_key=leader.item_key if leader.target_type == TargetType.ITEM.value else None,
            resource_id=leader.resource_id,
            record_key=leader.record_key,
            item_keys=[],
            kinds=[],
            note=f"{TARGET_LABELS[leader.target_type]}存在数据异议，正在核实处理",
            opened_at=utcnow(),
            opened_by_org_id=actor.org_id,
        )
        for m in members:  # before the insert: one statement, not an insert and an update
            _add_to_flag(flag, m)
        session.add(flag)
        _group_seen(session).flags.setdefault(leader.group_id, []).append(flag)
        emit(session, "objection.flag.opened", flag_id=flag.id, group_id=flag.group_id, entry_id=flag.entry_id)
        return flag
    for m in members:
        _add_to_flag(flag, m)
    return flag


def _close_flag_when_done(session: Session, obj: Objection, reason: str) -> None:
    """The flag is removed when the last objection of the group is closed (archived or withdrawn)."""
    group_id = obj.group_id
    # The group's flags are locked before its members are counted: two members closed at the same moment would
    # otherwise each count the other as open (neither committed yet) and the flag would stay for good. The
    # second now waits here until the first commits, then counts it closed and removes the flag.
    session.flush()  # this step's closing is written before the group is counted
    flags = _flags_of_group(session, group_id, obj.entry_id, lock=True)
    if any(still_open for _, still_open in _read_members(session, group_id)):
        return
    for flag in [f for f in flags if f.closed_at is None]:
        flag.closed_at = utcnow()
        flag.close_reason = reason
        emit(session, "objection.flag.closed", flag_id=flag.id, group_id=group_id, entry_id=flag.entry_id)


def flags_for(
    session: Session, *, entry_id: str, record_keys: Sequence[str] | None = None, include_closed: bool = False
) -> list[RecordFlag]:
    """Open flags (标注) on an entry. With ``record_keys``: the flags on those records plus the entry- and
    item-level flags, which concern every record. Callers check the reader may see the entry."""
    stmt = select(RecordFlag).where(RecordFlag.entry_id == entry_id)
    if not include_closed:
        stmt = stmt.where(RecordFlag.closed_at.is_(None))
    if record_keys is not None:
        stmt = stmt.where(
            or_(
                RecordFlag.target_type != TargetType.RECORD.value,
                RecordFlag.record_key.in_(list(record_keys)),
            )
        )
    return list(session.scalars(stmt.order_by(RecordFlag.opened_at.desc(), RecordFlag.id)))


def corrections_for(
    session: Session, *, entry_id: str, record_key: str | None = None, item_key: str | None = None
) -> list[Correction]:
    """Corrections made on an entry (newest first), optionally of one record and/or one item: what was
    corrected, to what, from when, by whom. Callers check the reader may see the entry."""
    stmt = select(Correction).where(Correction.entry_id == entry_id)
    if record_key is not None:
        stmt = stmt.where(Correction.record_key == record_key)
    if item_key is not None:
        stmt = stmt.where(Correction.item_key == item_key)
    return list(session.scalars(stmt.order_by(Correction.created_at.desc(), Correction.id)))


def _record_correction(
    session: Session,
    *,
    actor: Actor,
    obj: Objection,
    corrected_value: str,
    old_value: str | None,
    effective_from: date,
    item_key: str | None,
    corrected_by_org_id: str | None,
    ordered_by_org_id: str | None = None,
    note: str = "",
) -> Correction:
    item_name = obj.item_name
    if item_key and item_key != obj.item_key:
        item = _item(session, obj.entry, item_key)
        if item is None:
            errors = ErrorCollector()
            errors.add("item_key", "该目录没有这个信息项")
            errors.raise_if_any(code="objection.invalid")
        item_name = item.name if item is not None else None
    correction = Correction(
        id=new_id(),  # known now: the insert goes out with the request's other writes
        objection_id=obj.id,
        group_id=obj.group_id,
        target_type=obj.target_type,
        entry_id=obj.entry_id,
        item_key=item_key or obj.item_key,
        item_name=item_name,
        resource_id=obj.resource_id,
        record_key=obj.record_key,
        old_value=old_value,
        corrected_value=corrected_value,
        effective_from=effective_from,
        corrected_by=actor.username,
        corrected_by_name=actor.display_name,
        corrected_by_org_id=corrected_by_org_id,
        ordered_by_org_id=ordered_by_org_id,
        note=note,
        created_at=utcnow(),
    )
    session.add(correction)
    emit(
        session,
        "objection.corrected",
        correction_id=correction.id,
        objection_id=obj.id,
        entry_id=obj.entry_id,
        resource_id=obj.resource_id,
        record_key=obj.record_key,
        item_key=correction.item_key,
    )
    return correction


# ---- moving through the machine -----------------------------------------------------------------------


def _move(
    session: Session,
    *,
    actor: Actor,
    obj: Objection,
    name: str,
    comment: str = "",
    assignee_org_id: str | None = None,
    data: dict[str, Any] | None = None,
    today: date | None = None,
    ticket: Ticket | None = None,
) -> Ticket:
    ticket = ticket if ticket is not None else ticket_of(session, obj)
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
    obj.state = ticket.state
    obj.closed_at = ticket.closed_at
    obj.updated_at = utcnow()
    return ticket


def _ensure_can(obj: Objection, name: str) -> None:
    """Refuse an illegal step before anything moves (the engine would too, one ticket later)."""
    if not wf.MACHINE.can(name, obj.state):
        current = wf.MACHINE.state(obj.state).label
        raise InvalidTransition(f"当前状态为「{current}」，不能执行「{wf.MACHINE.transitions[name].label}」")


def _lock_for_group(
    session: Session, *, actor: Actor, objection_id: str, name: str
) -> tuple[Objection, list[Objection]]:
    """Load for a group action: the members transition ``name`` moves are locked first, oldest first, then the
    objection itself if it is not one of them. Every group action takes its locks in this one order, so two
    deciders on one group queue instead of deadlocking (each holding its own objection while waiting for the
    other's). Returns the objection (fresh) and the members, the objection first."""
    # the group found and its members locked in one query (the group id read by a subquery)
    group_id = select(Objection.group_id).where(Objection.id == objection_id).scalar_subquery()
    members = list(
        session.scalars(
            select(Objection)
            .where(Objection.group_id == group_id, Objection.state.in_(sorted(wf.MACHINE.transitions[name].sources)))
            .options(joinedload(Objection.attachments))  # the read model lists them: no query of their own
            .with_for_update(of=Objection)
            .execution_options(populate_existing=True)
            .order_by(Objection.created_at, Objection.id)
        ).unique()
    )
    obj = next((m for m in members if m.id == objection_id), None)
    if obj is None:
        obj = _locked(session, actor=actor, objection_id=objection_id)  # its current state, for the refusal
    elif not authz.allowed(actor, "objection.view", obj):
        raise NotFound("未找到该数据异议", code="objection.not_found")
    return obj, sorted(members, key=lambda m: m.id != obj.id)


def _tickets_of(session: Session, members: Sequence[Objection]) -> dict[str, Ticket]:
    """The members' tickets with their histories, read before the action changes anything: a read after a
    change would flush it early, and the request's writes could no longer go out together."""
    return tickets_with_history(session, members)


def _objector_side(obj: Objection) -> str | None:
    """Who confirms an answer: the objector's organization, or the data authority for the platform's own."""
    return obj.objector_org_id or obj.authority_org_id


def accept(
    session: Session, *, actor: Actor, objection_id: str, comment: str = "", today: date | None = None
) -> Objection:
    """受理: the handler takes the objection (and its group) on; the disputed target is flagged. The answer
    limit keeps counting from when the handler received it."""
    obj, members = _lock_for_group(session, actor=actor, objection_id=objection_id, name="accept")
    authz.ensure(actor, "objection.accept", obj)
    _ensure_can(obj, "accept")
    tickets = _tickets_of(session, members)
    _flag(session, actor=actor, leader=_leader(session, obj), members=members)
    for m in members:
        ticket = tickets[m.id]
        _move(session, actor=actor, obj=m, name="accept", comment=comment, today=ticket.state_entered_on, ticket=ticket)
    for m in members:
        emit(session, "objection.accepted", objection_id=m.id, group_id=m.group_id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def _leader(session: Session, obj: Objection) -> Objection:
    leader = session.get(Objection, obj.group_id)
    return leader if leader is not None else obj


def answer(
    session: Session, *, actor: Actor, objection_id: str, answer_in: AnswerIn, today: date | None = None
) -> Objection:
    """答复 the group once: corrected (value, effective date; a correction is recorded) or not an error."""
    today = today or local_today()
    obj, members = _lock_for_group(session, actor=actor, objection_id=objection_id, name="answer")
    authz.ensure(actor, "objection.answer", obj)
    _ensure_can(obj, "answer")
    tickets = _tickets_of(session, members)
    _flag(session, actor=actor, leader=_leader(session, obj), members=members)
    correction = None
    if answer_in.resolution == Resolution.CORRECTED.value:
        assert answer_in.corrected_value is not None
        correction = _record_correction(
            session,
            actor=actor,
            obj=obj,
            corrected_value=answer_in.corrected_value,
            old_value=answer_in.old_value,
            effective_from=answer_in.effective_from or today,
            item_key=answer_in.item_key,
            corrected_by_org_id=actor.org_id,
            note=answer_in.note,
        )
    label = RESOLUTION_LABELS[answer_in.resolution]
    text = label
    if correction is not None:
        text += f"：更正为“{correction.corrected_value}”，自 {correction.effective_from.isoformat()} 起生效"
    if answer_in.note:
        text += f"。{answer_in.note}"
    now = utcnow()
    for m in members:
        m.resolution = answer_in.resolution
        m.answer_note = answer_in.note
        m.corrected_value = answer_in.corrected_value if correction is not None else None
        m.effective_from = correction.effective_from if correction is not None else None
        m.answered_on = today
        m.answered_at = now
        m.answered_by = actor.username
        m.answered_by_org_id = actor.org_id
        m.answered_on_time = not m.escalated and (m.answer_due_on is None or today <= m.answer_due_on)
        _move(
            session,
            actor=actor,
            obj=m,
            name="answer",
            comment=text,
            assignee_org_id=_objector_side(m),
            data={"resolution": answer_in.resolution, "correction_id": correction.id if correction else None},
            today=today,
            ticket=tickets[m.id],
        )
    for m in members:
        emit(session, "objection.answered", objection_id=m.id, group_id=m.group_id, resolution=answer_in.resolution)
    session.flush()  # the step's rows and its events in one flush
    return obj


def forward(
    session: Session, *, actor: Actor, objection_id: str, forward_in: ForwardIn, today: date | None = None
) -> Objection:
    """转办 to the department that really holds the data (the data authority may route it too): the ticket
    is reassigned and the answer limit starts again."""
    today = today or local_today()
    obj, members = _lock_for_group(session, actor=actor, objection_id=objection_id, name="forward")
    authz.ensure(actor, "objection.forward", obj)
    _ensure_can(obj, "forward")
    target = session.get(Organization, forward_in.to_org_id)
    errors = ErrorCollector()
    if target is None or not target.active:
        errors.add("to_org_id", "未找到该部门")
    elif target.id == obj.handler_org_id:
        errors.add("to_org_id", "不能转办给当前办理部门")
    errors.raise_if_any(code="objection.invalid")
    assert target is not None
    from_name = obj.handler_org.name
    for m in members:
        ticket = _move(
            session,
            actor=actor,
            obj=m,
            name="forward",
            comment=f"由{from_name}转至{target.name}：{forward_in.reason}",
            assignee_org_id=target.id,
            data={"from_org_id": m.handler_org_id, "to_org_id": target.id},
            today=today,
        )
        m.handler_org_id = target.id
        m.handler_org = target
        m.assigned_on = today
        m.answer_due_on = ticket.due_on
        m.escalated = False  # a new handler, a new limit
    for m in members:
        emit(session, "objection.forwarded", objection_id=m.id, group_id=m.group_id, to_org_id=target.id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def urge(
    session: Session, *, actor: Actor, objection_id: str, comment: str = "", today: date | None = None
) -> Objection:
    """督办: the data authority sends an overdue objection back to the handler with a new limit."""
    today = today or local_today()
    obj, members = _lock_for_group(session, actor=actor, objection_id=objection_id, name="urge")
    authz.ensure(actor, "objection.urge", obj)
    _ensure_can(obj, "urge")
    for m in members:
        ticket = _move(
            session, actor=actor, obj=m, name="urge", comment=comment, assignee_org_id=m.handler_org_id, today=today
        )
        m.answer_due_on = ticket.due_on
    _flag(session, actor=actor, leader=_leader(session, obj), members=members)
    for m in members:
        emit(session, "objection.urged", objection_id=m.id, group_id=m.group_id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def confirm(
    session: Session, *, actor: Actor, objection_id: str, comment: str = "", today: date | None = None
) -> Objection:
    """The objector accepts the answer: archived; the flag goes when the group's last objection closes."""
    obj = _locked(session, actor=actor, objection_id=objection_id)
    authz.ensure(actor, "objection.confirm", obj)
    _ensure_can(obj, "confirm")
    ticket = tickets_with_history(session, [obj])[obj.id]
    _move(session, actor=actor, obj=obj, name="confirm", comment=comment, today=today, ticket=ticket)
    _close_flag_when_done(session, obj, "异议已办结")
    emit(session, "objection.confirmed", objection_id=obj.id, group_id=obj.group_id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def dispute(session: Session, *, actor: Actor, objection_id: str, reason: str, today: date | None = None) -> Objection:
    """The objector disputes the answer: the data authority arbitrates within the coordination limit."""
    if not reason.strip():
        errors = ErrorCollector()
        errors.add("reason", "提请仲裁时须说明理由")
        errors.raise_if_any()
    obj = _locked(session, actor=actor, objection_id=objection_id)
    authz.ensure(actor, "objection.dispute", obj)
    _ensure_can(obj, "dispute")
    if obj.authority_org_id is None:
        raise Conflict("未找到负责仲裁的数据主管部门，请联系平台管理员", code="objection.no_authority")
    ticket = tickets_with_history(session, [obj])[obj.id]
    _move(
        session,
        actor=actor,
        obj=obj,
        name="dispute",
        comment=reason,
        assignee_org_id=obj.authority_org_id,
        today=today,
        ticket=ticket,
    )
    emit(session, "objection.disputed", objection_id=obj.id, group_id=obj.group_id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def arbitrate(
    session: Session, *, actor: Actor, objection_id: str, arbitrate_in: ArbitrateIn, today: date | None = None
) -> Objection:
    """The data authority decides the disputed members of the group: uphold the correction, order a
    correction (recorded like the provider's), or dismiss the objection. All are archived."""
    today = today or local_today()
    obj, members = _lock_for_group(session, actor=actor, objection_id=objection_id, name="arbitrate")
    authz.ensure(actor, "objection.arbitrate", obj)
    _ensure_can(obj, "arbitrate")
    if arbitrate_in.decision == Decision.UPHOLD_CORRECTION.value and obj.resolution != Resolution.CORRECTED.value:
        raise Conflict("提供部门未作更正，不能裁定“维持更正”", code="objection.nothing_to_uphold")
    correction = None
    if arbitrate_in.decision == Decision.ORDER_CORRECTION.value:
        assert arbitrate_in.corrected_value is not None
        correction = _record_correction(
            session,
            actor=actor,
            obj=obj,
            corrected_value=arbitrate_in.corrected_value,
            old_value=obj.corrected_value,
            effective_from=arbitrate_in.effective_from or today,
            item_key=None,
            corrected_by_org_id=obj.handler_org_id,
            ordered_by_org_id=actor.org_id,
            note=f"数据主管部门裁定责令更正：{arbitrate_in.reason}",
        )
    label = DECISION_LABELS[arbitrate_in.decision]
    now = utcnow()
    for m in members:
        m.decision = arbitrate_in.decision
        m.decision_note = arbitrate_in.reason
        m.decided_at = now
        m.decided_by = actor.username
        _move(
            session,
            actor=actor,
            obj=m,
            name="arbitrate",
            comment=f"{label}：{arbitrate_in.reason}",
            data={"decision": arbitrate_in.decision, "correction_id": correction.id if correction else None},
            today=today,
        )
    _close_flag_when_done(session, obj, f"数据主管部门已裁定：{label}")
    for m in members:
        emit(session, "objection.arbitrated", objection_id=m.id, group_id=m.group_id, decision=arbitrate_in.decision)
    session.flush()  # the step's rows and its events in one flush
    return obj


def withdraw(
    session: Session, *, actor: Actor, objection_id: str, reason: str = "", today: date | None = None
) -> Objection:
    obj = _locked(session, actor=actor, objection_id=objection_id)
    authz.ensure(actor, "objection.withdraw", obj)
    _ensure_can(obj, "withdraw")
    ticket = tickets_with_history(session, [obj])[obj.id]
    _move(session, actor=actor, obj=obj, name="withdraw", comment=reason, today=today, ticket=ticket)
    _close_flag_when_done(session, obj, "异议已撤回")
    emit(session, "objection.withdrawn", objection_id=obj.id, group_id=obj.group_id)
    session.flush()  # the step's rows and its events in one flush
    return obj


def escalate_overdue(session: Session, *, actor: Actor, today: date | None = None) -> int:
    """Daily job: objections not answered within the limit go to the data authority (逾期督办).
    Returns how many were escalated."""
    today = today or local_today()
    tickets = list(
        session.scalars(
            workflow.overdue_query(as_of=today, kinds=[wf.KIND]).where(Ticket.state.in_(sorted(wf.OVERDUE_ESCALATES)))
        )
    )
    escalated = 0
    for ticket in tickets:
        obj = session.get(Objection, ticket.subject_id)
        if obj is None or obj.state not in wf.OVERDUE_ESCALATES:
            continue
        _move(
            session,
            actor=actor,
            obj=obj,
            name="escalate",
            comment=f"超过答复期限（{ticket.due_on.isoformat() if ticket.due_on else ''}）未答复，提交数据主管部门督办",
            assignee_org_id=obj.authority_org_id,
            today=today,
        )
        obj.escalated = True
        emit(session, "objection.escalated", objection_id=obj.id, group_id=obj.group_id)
        escalated += 1
    session.flush()
    return escalated


# ---- attachments --------------------------------------------------------------------------------------


def add_attachments(
    session: Session,
    *,
    actor: Actor,
    objection_id: str,
    attachments: Sequence[files.Upload | tuple[str, bytes]],
    settings: Settings | None = None,
) -> list[ObjectionAttachment]:
    """More evidence from the objector or the handler while the objection is open."""
    settings = settings or get_settings()
    obj = _locked(session, actor=actor, objection_id=objection_id)
    authz.ensure(actor, "objection.attach", obj)
    if not obj.is_open:
        raise Conflict("异议已办结，不能再上传材料", code="objection.closed")
    if not attachments:
        raise ValidationFailed("请选择要上传的文件", code="objection.invalid")
    checked = files.check_all(list(attachments), limit=files.max_bytes(settings), existing=len(obj.attachments))
    rows = files.store(session, actor=actor, objection=obj, files=checked, data_dir=settings.data_dir)
    workflow.comment(
        session,
        actor=actor,
        ticket=ticket_of(session, obj),
        text="上传佐证材料：" + "、".join(r.filename for r in rows),
    )
    emit(session, "objection.attachments_added", objection_id=obj.id, attachment_ids=[r.id for r in rows])
    return rows


def attachment_file(
    session: Session, *, actor: Actor, objection_id: str, attachment_id: str, data_dir: Path | None = None
) -> tuple[ObjectionAttachment, Path]:
    """An attachment and its file, for the parties only (others get 404)."""
    obj = get(session, actor=actor, objection_id=objection_id)
    if not authz.allowed(actor, "objection.download", obj):
        raise NotFound("未找到该附件", code="objection.attachment_not_found")
    row = next((a for a in obj.attachments if a.id == attachment_id), None)
    if row is None:
        raise NotFound("未找到该附件", code="objection.attachment_not_found")
    data_dir = data_dir if data_dir is not None else get_settings().data_dir
    return row, files.path_of(objection_id=obj.id, stored_name=row.stored_name, data_dir=data_dir)


# ---- what the actor may do ----------------------------------------------------------------------------

USER_ACTIONS = ("accept", "answer", "forward", "urge", "confirm", "dispute", "arbitrate", "withdraw")


def available_actions(actor: Actor, obj: Objection) -> list[str]:
    out = [
        name
        for name in USER_ACTIONS
        if wf.MACHINE.can(name, obj.state) and authz.allowed(actor, f"objection.{name}", obj)
    ]
    if obj.is_open and authz.allowed(actor, "objection.attach", obj):
        out.append("attach")
    return out


# ---- supervision --------------------------------------------------------------------------------------


def counts_by_state(session: Session, *, actor: Actor) -> list[tuple[str, str, int]]:
    """(state, label, count) over the objections the actor supervises."""
    authz.ensure(actor, "objection.stats")
    rows = dict(
        session.execute(
            select(Objection.state, func.count()).where(authz.scope(actor, "objection.stats")).group_by(Objection.state)
        ).all()
    )
    return [(state, label, int(rows.get(state, 0))) for state, label in wf.STATE_LABELS.items()]


@dataclass
class SupervisionRow:
    month: str  # YYYY-MM of raising
    org_id: str  # the department handling (or that answered)
    org_name: str
    raised: int = 0
    open: int = 0
    answered: int = 0
    on_time: int = 0
    handling_days_total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)

    @property
    def on_time_rate(self) -> float | None:
        return round(self.on_time / self.answered, 4) if self.answered else None

    @property
    def avg_handling_days(self) -> float | None:
        return round(self.handling_days_total / self.answered, 2) if self.answered else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "org_id": self.org_id,
            "org_name": self.org_name,
            "raised": self.raised,
            "open": self.open,
            "answered": self.answered,
            "on_time": self.on_time,
            "on_time_rate": self.on_time_rate,
            "avg_handling_days": self.avg_handling_days,
            "by_state": dict(self.by_state),
        }


def supervision_rows(
    session: Session, *, actor: Actor, date_from: date | None = None, date_to: date | None = None
) -> list[SupervisionRow]:
    """Per handling department and month raised: counts by state, answers on time, and the average time
    from receipt to answer in working days (``clock.working_days_between``)."""
    authz.ensure(actor, "objection.stats")
    stmt = select(
        Objection.raised_on,
        Objection.state,
        func.coalesce(Objection.answered_by_org_id, Objection.handler_org_id),
        Objection.assigned_on,
        Objection.answered_on,
        Objection.answered_on_time,
    ).where(authz.scope(actor, "objection.stats"))
    if date_from is not None:
        stmt = stmt.where(Objection.raised_on >= date_from)
    if date_to is not None:
        stmt = stmt.where(Objection.raised_on <= date_to)
    raw = session.execute(stmt).all()
    org_ids = {r[2] for r in raw}
    names = (
        {
            o.id: o.short_name or o.name
            for o in session.scalars(select(Organization).where(Organization.id.in_(org_ids)))
        }
        if org_ids
        else {}
    )
    rows: dict[tuple[str, str], SupervisionRow] = {}
    by_state: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for raised_on, state, org_id, assigned_on, answered_on, on_time in raw:
        key = (f"{raised_on.year:04d}-{raised_on.month:02d}", org_id)
        row = rows.setdefault(key, SupervisionRow(month=key[0], org_id=org_id, org_name=names.get(org_id, "")))
        row.raised += 1
        by_state[key][state] = by_state[key].get(state, 0) + 1
        if state in wf.OPEN_STATES:
            row.open += 1
        if answered_on is not None:
            row.answered += 1
            row.on_time += 1 if on_time else 0
            row.handling_days_total += max(0, clock.working_days_between(assigned_on, answered_on))
    for key, row in rows.items():
        row.by_state = by_state[key]
    return [rows[k] for k in sorted(rows)]


# ---- read models --------------------------------------------------------------------------------------


def tickets_by_id(session: Session, objections: Sequence[Objection]) -> dict[str, Ticket]:
    ids = [o.ticket_id for o in objections if o.ticket_id]
    if not ids:
        return {}
    return {t.id: t for t in session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}


def objector_name(obj: Objection) -> str:
    if obj.objector_org is not None:
        return obj.objector_org.short_name or obj.objector_org.name
    return f"平台（{obj.source}）" if obj.source else "平台"


def to_summary(obj: Objection, ticket: Ticket | None, *, today: date | None = None) -> dict[str, Any]:
    today = today or local_today()
    due = ticket.due_on if ticket is not None else None
    return {
        "id": obj.id,
        "title": obj.title,
        "target_type": obj.target_type,
        "entry_id": obj.entry_id,
        "entry_name": obj.entry.name,
        "item_key": obj.item_key,
        "item_name": obj.item_name,
        "resource_id": obj.resource_id,
        "record_key": obj.record_key,
        "kind": obj.kind,
        "kind_label": KIND_LABELS.get(obj.kind, obj.kind),
        "state": obj.state,
        "state_label": wf.STATE_LABELS.get(obj.state, obj.state),
        "objector_org_id": obj.objector_org_id,
        "objector_name": objector_name(obj),
        "source": obj.source,
        "provider_org_id": obj.provider_org_id,
        "handler_org_id": obj.handler_org_id,
        "handler_name": obj.handler_org.short_name or obj.handler_org.name,
        "group_id": obj.group_id,
        "raised_on": obj.raised_on,
        "due_on": due,
        "due_provisional": bool(ticket.due_provisional) if ticket is not None else False,
        "overdue": bool(due is not None and obj.is_open and due < today),
        "created_at": obj.created_at,
    }


def correction_read(c: Correction) -> dict[str, Any]:
    data = {
        k: getattr(c, k)
        for k in (
            "id",
            "objection_id",
            "target_type",
            "entry_id",
            "item_key",
            "item_name",
            "resource_id",
            "record_key",
            "old_value",
            "corrected_value",
            "effective_from",
            "corrected_by",
            "corrected_by_name",
            "corrected_by_org_id",
            "ordered_by_org_id",
            "note",
            "created_at",
        )
    }
    org = c.corrected_by_org
    data["corrected_by_org_name"] = (org.short_name or org.name) if org is not None else ""
    return data


def to_read(
    session: Session, obj: Objection, *, actor: Actor, url_prefix: str = "/api/v1", just_raised: bool = False
) -> dict[str, Any]:
    """The objection as the API returns it. ``just_raised``: raised in this transaction; when it also leads
    its group, the group is new (only it, no flag, no correction yet) and those are not queried."""
    new_group = just_raised and obj.group_id == obj.id
    ticket = ticket_of(session, obj, refresh=False)
    data = to_summary(obj, ticket)
    data.update(
        other_source=obj.other_source,
        claimed_value=obj.claimed_value,
        description=obj.description,
        raised_by=obj.raised_by,
        raised_by_name=obj.raised_by_name,
        authority_org_id=obj.authority_org_id,
        ticket_id=obj.ticket_id,
        resolution=obj.resolution,
        resolution_label=RESOLUTION_LABELS.get(obj.resolution) if obj.resolution else None,
        answer_note=obj.answer_note,
        corrected_value=obj.corrected_value,
        effective_from=obj.effective_from,
        answered_on=obj.answered_on,
        answered_by=obj.answered_by,
        answered_on_time=obj.answered_on_time,
        decision=obj.decision,
        decision_label=DECISION_LABELS.get(obj.decision) if obj.decision else None,
        decision_note=obj.decision_note,
        closed_at=obj.closed_at,
        group_members=[obj.id] if new_group else group_member_ids(session, obj),
        actions=available_actions(actor, obj),
        attachments=[
            {
                **{k: getattr(a, k) for k in ("id", "filename", "file_type", "content_type", "size", "sm3")},
                "uploaded_by": a.uploaded_by,
                "created_at": a.created_at,
                "download_url": f"{url_prefix}/objections/{obj.id}/attachments/{a.id}",
            }
            for a in obj.attachments
        ],
        timeline=list(ticket.events),  # the relationship is ordered by time, like timeline(); loaded once
        flags=[] if new_group else group_flags(session, obj),
        corrections=[]
        if new_group
        else [
            correction_read(c)
            for c in session.scalars(
                select(Correction).where(Correction.group_id == obj.group_id).order_by(Correction.created_at)
            )
        ],
    )
    return data
