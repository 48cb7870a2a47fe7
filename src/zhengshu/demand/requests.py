"""Data requests (数据需求): a department needs data it cannot find in the catalog.

The requester describes the need and names the probable provider (or picks one of :func:`suggest_providers`);
the provider answers on the ``data_request`` ticket: it holds the data (links a published entry, or compiles
one — the request waits in 编目中 until it is published), it does not hold it (the requester may redirect the
request, and the limit restarts), or the data cannot be shared (a legal basis is required). Unanswered
requests escalate to the data authority, which assigns a provider or closes the request.

Functions take the session and the actor, check permissions and flush; the caller owns the transaction.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from zhengshu.catalog import indexing
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import EntryStatus
from zhengshu.catalog.models import CatalogEntry
from zhengshu.core import clock
from zhengshu.core.db import utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, InvalidTransition, NotFound, ZhengshuError
from zhengshu.core.events import OutboxEvent, consumer, emit
from zhengshu.core.timeutil import local_today
from zhengshu.demand import request_permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.demand.models import DataRequest
from zhengshu.demand.request_schemas import DataRequestIn
from zhengshu.demand.request_workflows import (
    ANSWER_LABELS,
    PROVIDER_STATES,
    REQUEST,
    REQUEST_MACHINE,
    STATE_LABELS,
    SUBJECT,
)
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.search.text import STOPWORDS
from zhengshu.security import authz
from zhengshu.security.actor import SYSTEM_ACTOR, Actor
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket

log = logging.getLogger(__name__)


# ---- lookups ------------------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, request_id: str) -> DataRequest:
    req = session.get(DataRequest, request_id)
    if req is None or not authz.allowed(actor, "data_request.view", req):
        # requests the actor may not see look exactly like missing ones
        raise NotFound("未找到该数据需求", code="data_request.not_found")
    return req


def ticket_of(session: Session, req: DataRequest) -> Ticket:
    if req.ticket_id is None:
        raise Conflict("该数据需求没有办理流程", code="data_request.no_ticket")
    return workflow.get(session, ticket_id=req.ticket_id)


@dataclass
class RequestFilters:
    box: str | None = None  # mine | todo | coordination
    state: list[str] | None = None
    urgency: list[str] | None = None
    provider_org_id: list[str] | None = None
    requester_org_id: list[str] | None = None
    q: str | None = None


BOXES = {"mine": "我的需求", "todo": "待我答复", "coordination": "待协调"}
SORTS = {
    "created_at": DataRequest.created_at,
    "updated_at": DataRequest.updated_at,
    "reply_due_on": DataRequest.reply_due_on,
    "title": DataRequest.title,
}


def list_query(actor: Actor, filters: RequestFilters | None = None) -> Select[tuple[DataRequest]]:
    """Requests this actor may see, narrowed to a box (mine, to answer, to coordinate) and filters."""
    f = filters or RequestFilters()
    stmt = select(DataRequest).where(authz.scope(actor, "data_request.view"))
    org = actor.org_id or ""
    if f.box == "mine":
        stmt = stmt.where(DataRequest.requester_org_id == org)
    elif f.box == "todo":
        stmt = stmt.where(DataRequest.provider_org_id == org, DataRequest.state.in_(PROVIDER_STATES))
    elif f.box == "coordination":
        stmt = stmt.where(DataRequest.authority_org_id == org, DataRequest.state == "coordination")
    if f.state:
        stmt = stmt.where(DataRequest.state.in_(f.state))
    if f.urgency:
        stmt = stmt.where(DataRequest.urgency.in_(f.urgency))
    if f.provider_org_id:
        stmt = stmt.where(DataRequest.provider_org_id.in_(f.provider_org_id))
    if f.requester_org_id:
        stmt = stmt.where(DataRequest.requester_org_id.in_(f.requester_org_id))
    if f.q and f.q.strip():
        like = f"%{f.q.strip()}%"
        stmt = stmt.where(or_(DataRequest.title.like(like), DataRequest.description.like(like)))
    return stmt


# ---- provider suggestions -----------------------------------------------------------------------------


class ProviderSuggestion(NamedTuple):
    org: Organization
    score: float  # share of the keyword matches this organization provides, 0–1
    entries: list[CatalogEntry]  # a few of its matching published entries
    matches: int


MAX_KEYWORDS = 8


def keywords(text: str) -> list[str]:
    """The words of a need that are worth searching the catalog for (TF-IDF over jieba's dictionary)."""
    from zhengshu.search.text import _jieba_module

    text = (text or "").strip()[:2000]
    if not text:
        return []
    _jieba_module()  # the same initialised dictionary the index uses
    import jieba.analyse

    words = [w for w in jieba.analyse.extract_tags(text, topK=MAX_KEYWORDS * 2) if len(w) >= 2 and w not in STOPWORDS]
    if len(text) <= 12 and text not in words:
        words.insert(0, text)  # a short phrase as typed ("企业登记") is the best query of all
    return words[:MAX_KEYWORDS]


def suggest_providers(
    session: Session, *, actor: Actor, text: str, limit: int = 5, samples: int = 3
) -> list[ProviderSuggestion]:
    """Organizations most likely to hold what ``text`` describes, ranked by how many of the published entries
    matching its keywords they provide (facet counts of catalog searches); the requester's own organization
    is left out."""
    words = keywords(text)
    if not words:
        return []
    share: dict[str, float] = defaultdict(float)
    matches: Counter[str] = Counter()
    hit_ids: list[str] = []
    for word in words:
        result = indexing.search(
            session, actor=actor, q=word, filters={"status": [EntryStatus.PUBLISHED.value]}, facets=["org_id"], limit=10
        )
        counts = [(org, n) for org, n in result.facets.get("org_id", []) if org != actor.org_id]
        total = sum(n for _, n in counts)
        for org, n in counts:
            share[org] += n / total
            matches[org] += n
        hit_ids.extend(h.doc_id for h in result.hits if h.doc_id not in hit_ids)
    ranked = sorted(share, key=lambda o: (-share[o], -matches[o], o))[:limit]
    if not ranked:
        return []
    orgs = {o.id: o for o in session.scalars(select(Organization).where(Organization.id.in_(ranked)))}
    by_org: dict[str, list[CatalogEntry]] = defaultdict(list)
    for entry in catalog_service.entries_by_ids(session, hit_ids):
        if len(by_org[entry.provider_org_id]) < samples:
            by_org[entry.provider_org_id].append(entry)
    return [
        ProviderSuggestion(orgs[o], round(share[o] / len(words), 4), by_org.get(o, []), matches[o])
        for o in ranked
        if o in orgs and orgs[o].active
    ]


# ---- create -------------------------------------------------------------------------------------------


def _provider(session: Session, errors: ErrorCollector, provider_org_id: str, requester_org_id: str) -> Organization:
    provider = session.get(Organization, provider_org_id)
    if provider is None or not provider.active:
        errors.add("provider_org_id", "未找到该提供部门")
    elif provider.id == requester_org_id:
        errors.add("provider_org_id", "不能向本部门提出数据需求")
    elif provider.is_data_authority:
        errors.add("provider_org_id", "数据主管部门负责协调，请选择具体的提供部门，或不指定提供部门由其协调")
    errors.raise_if_any(code="data_request.invalid")
    assert provider is not None
    return provider


def coordinating_authority(session: Session, requester: Organization, provider: Organization | None) -> Organization:
    """The data authority at the level both departments share: the city's when both sit in one city, else
    the province's (DOMAIN.md: escalation goes to the data authority at the same level)."""
    if provider is None or requester.region_code[:4] == provider.region_code[:4]:
        authority = org_service.data_authority_for(session, region_code=requester.region_code)
    else:
        authority = org_service.data_authority_for(session, region_code=requester.region_code[:2] + "0000")
    if authority is None:
        raise Conflict("未找到负责协调的数据主管部门，请联系平台管理员", code="data_request.no_authority")
    return authority


def create(session: Session, *, actor: Actor, request_in: DataRequestIn, today: date | None = None) -> DataRequest:
    authz.ensure(actor, "data_request.create")
    if actor.org_id is None:
        raise Conflict("请以部门用户身份提出数据需求", code="data_request.no_org")
    today = today or local_today()
    requester = org_service.get_organization(session, org_id=actor.org_id)
    errors = ErrorCollector()
    provider = (
        _provider(session, errors, request_in.provider_org_id, requester.id) if request_in.provider_org_id else None
    )
    authority = coordinating_authority(session, requester, provider)
    data = request_in.model_dump(exclude={"provider_org_id"})
    req = DataRequest(
        **data,
        requester_org_id=requester.id,
        requester_user_id=actor.user_id,
        requester_name=actor.display_name,
        region_code=requester.region_code,
        provider_org_id=provider.id if provider else None,
        authority_org_id=authority.id,
        state="submitted" if provider else "coordination",
        assigned_on=today,
    )
    session.add(req)
    session.flush()
    ticket = workflow.open_ticket(
        session,
        actor=actor,
        kind=REQUEST,
        title=f"数据需求：{req.title}",
        subject_type=SUBJECT,
        subject_id=req.id,
        assignee_org_id=provider.id if provider else authority.id,
        requester_org_id=requester.id,
        state=req.state,
        comment=f"提出需求，拟由{provider.name}提供" if provider else "提出需求，未指定提供部门，请数据主管部门协调",
        data={"provider_org_id": req.provider_org_id},
        today=today,
    )
    req.ticket_id = ticket.id
    req.reply_due_on = ticket.due_on if provider else None
    session.flush()
    emit(session, "data_request.created", request_id=req.id)
    return req


# ---- moves on the ticket ------------------------------------------------------------------------------


def _move(
    session: Session,
    *,
    actor: Actor,
    req: DataRequest,
    name: str,
    comment: str = "",
    assignee_org_id: str | None = None,
    data: dict[str, Any] | None = None,
    today: date | None = None,
) -> Ticket:
    ticket = ticket_of(session, req)
    workflow.transition(
        session,
        actor=actor,
        ticket=ticket,
        name=name,
        comment=comment,
        assignee_org_id=assignee_org_id,
        data=data,
        today=today,
    )
    req.state = ticket.state
    req.updated_at = utcnow()
    if REQUEST_MACHINE.state(ticket.state).final:
        req.closed_on = today or local_today()
    session.flush()
    emit(session, "data_request.changed", request_id=req.id, change=name)
    return ticket


def _check_state(req: DataRequest, name: str) -> None:
    """Refuse a move the machine does not allow before anything on the request changes."""
    if not REQUEST_MACHINE.can(name, req.state):
        label = REQUEST_MACHINE.transitions[name].label
        raise InvalidTransition(f"当前状态为「{STATE_LABELS.get(req.state, req.state)}」，不能执行「{label}」")


def _answered(req: DataRequest, answer: str, today: date | None) -> None:
    req.answer = answer
    if req.answered_on is None:
        req.answered_on = today or local_today()


def _own_entry(session: Session, *, actor: Actor, req: DataRequest, entry_id: str) -> CatalogEntry:
    errors = ErrorCollector()
    try:
        entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    except NotFound:
        errors.add("entry_id", "未找到该目录")
        errors.raise_if_any(code="data_request.invalid")
        raise
    if entry.provider_org_id != req.provider_org_id:
        errors.add("entry_id", "只能关联本部门提供的目录")
    elif entry.status == EntryStatus.WITHDRAWN.value:
        errors.add("entry_id", "该目录已下架，不能关联")
    errors.raise_if_any(code="data_request.invalid")
    return entry


def link_entry(
    session: Session, *, actor: Actor, request_id: str, entry_id: str, comment: str = "", today: date | None = None
) -> DataRequest:
    """The provider holds the data: link its published entry (the request is fulfilled; the requester then
    applies for it), or an entry still being compiled (the request waits until it is published)."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.answer", req)
    entry = _own_entry(session, actor=actor, req=req, entry_id=entry_id)
    if entry.status != EntryStatus.PUBLISHED.value:
        return compile_entry(
            session, actor=actor, request_id=request_id, entry_id=entry_id, comment=comment, today=today
        )
    _check_state(req, "link_entry")
    if req.state == "submitted":
        _answered(req, "linked", today)
    req.entry_id = entry.id
    req.pending_entry_id = None
    note = comment or f"关联已发布目录：{entry.name}（{entry.code}），请按共享申请流程申请使用"
    req.answer_note = note
    _move(session, actor=actor, req=req, name="link_entry", comment=note, data={"entry_id": entry.id}, today=today)
    return req


def compile_entry(
    session: Session,
    *,
    actor: Actor,
    request_id: str,
    entry_id: str | None = None,
    comment: str = "",
    today: date | None = None,
) -> DataRequest:
    """The provider holds the data but has no entry for it yet: it compiles one (编目中). ``entry_id`` names the
    draft when known; linking it later, or its publication, fulfils the request."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.answer", req)
    entry = _own_entry(session, actor=actor, req=req, entry_id=entry_id) if entry_id else None
    if entry is not None and entry.status == EntryStatus.PUBLISHED.value:
        return link_entry(session, actor=actor, request_id=request_id, entry_id=entry.id, comment=comment, today=today)
    note = comment or "本部门掌握该数据，正在编制目录，发布后即可申请"
    if req.state == "compiling":
        if entry is None:
            raise Conflict("该需求已在编目中，请关联正在编制的目录", code="data_request.already_compiling")
        req.pending_entry_id = entry.id
        req.updated_at = utcnow()
        workflow.comment(session, actor=actor, ticket=ticket_of(session, req), text=f"关联编制中的目录：{entry.name}")
        session.flush()
        return req
    _check_state(req, "compile")
    _answered(req, "compiling", today)
    req.pending_entry_id = entry.id if entry else None
    req.answer_note = note
    _move(
        session,
        actor=actor,
        req=req,
        name="compile",
        comment=note,
        data={"entry_id": entry.id} if entry else None,
        today=today,
    )
    return req


def answer_not_held(
    session: Session, *, actor: Actor, request_id: str, reason: str, today: date | None = None
) -> DataRequest:
    """We do not hold this data: back to the requester, who may redirect it to another provider."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.answer", req)
    errors = ErrorCollector()
    if not reason.strip():
        errors.add("reason", "请说明理由（如该数据不属于本部门职责）")
    errors.raise_if_any(code="data_request.invalid")
    _check_state(req, "not_held")
    _answered(req, "not_held", today)
    req.answer_note = reason.strip()
    _move(session, actor=actor, req=req, name="not_held", comment=reason.strip(), assignee_org_id=req.requester_org_id)
    return req


def refuse(
    session: Session, *, actor: Actor, request_id: str, legal_basis: str, reason: str = "", today: date | None = None
) -> DataRequest:
    """The data cannot be shared: the legal basis is required; the requester may accept or appeal."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.answer", req)
    errors = ErrorCollector()
    if not legal_basis.strip():
        errors.add("legal_basis", "不予共享必须说明法律、法规依据")
    errors.raise_if_any(code="data_request.invalid")
    _check_state(req, "refuse")
    _answered(req, "not_shareable", today)
    req.legal_basis = legal_basis.strip()
    req.answer_note = reason.strip()
    text = f"依据：{req.legal_basis}" + (f"；{req.answer_note}" if req.answer_note else "")
    _move(session, actor=actor, req=req, name="refuse", comment=text, assignee_org_id=req.requester_org_id)
    return req


def _reassign(
    session: Session,
    *,
    actor: Actor,
    req: DataRequest,
    name: str,
    provider_org_id: str,
    comment: str,
    today: date | None,
) -> DataRequest:
    errors = ErrorCollector()
    provider = _provider(session, errors, provider_org_id, req.requester_org_id)
    if provider.id == req.provider_org_id:
        errors.add("provider_org_id", "该部门已答复过此需求，请选择其他提供部门")
        errors.raise_if_any(code="data_request.invalid")
    _check_state(req, name)
    today = today or local_today()
    authority = coordinating_authority(session, req.requester, provider)
    previous = req.provider.name if req.provider else "未指定"
    req.provider_org_id = provider.id
    req.authority_org_id = authority.id
    req.answer = None
    req.answer_note = ""
    req.legal_basis = ""
    req.pending_entry_id = None
    req.assigned_on = today
    req.answered_on = None
    req.redirects += 1
    text = f"由{previous}改由{provider.name}答复" + (f"：{comment}" if comment else "")
    ticket = _move(
        session,
        actor=actor,
        req=req,
        name=name,
        comment=text,
        assignee_org_id=provider.id,
        data={"provider_org_id": provider.id},
        today=today,
    )
    req.reply_due_on = ticket.due_on  # the reply limit restarts with the new provider
    session.flush()
    return req


def redirect(
    session: Session,
    *,
    actor: Actor,
    request_id: str,
    provider_org_id: str,
    comment: str = "",
    today: date | None = None,
) -> DataRequest:
    """The requester sends the request to another provider after a "not held" or "cannot share" answer."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.manage", req)
    return _reassign(
        session, actor=actor, req=req, name="redirect", provider_org_id=provider_org_id, comment=comment, today=today
    )


def assign_provider(
    session: Session,
    *,
    actor: Actor,
    request_id: str,
    provider_org_id: str,
    comment: str = "",
    today: date | None = None,
) -> DataRequest:
    """The data authority, coordinating, decides which department must answer."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.coordinate", req)
    return _reassign(
        session, actor=actor, req=req, name="assign", provider_org_id=provider_org_id, comment=comment, today=today
    )


def ask_coordination(session: Session, *, actor: Actor, request_id: str, reason: str) -> DataRequest:
    """The requester asks the data authority to coordinate (after "not held" or a refusal it disputes)."""
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.manage", req)
    errors = ErrorCollector()
    if not reason.strip():
        errors.add("reason", "请说明提请协调的理由")
    errors.raise_if_any(code="data_request.invalid")
    _check_state(req, "ask_coordination")
    _move(
        session,
        actor=actor,
        req=req,
        name="ask_coordination",
        comment=reason.strip(),
        assignee_org_id=req.authority_org_id,
    )
    return req


def close(session: Session, *, actor: Actor, request_id: str, comment: str = "") -> DataRequest:
    """Finish the request: the requester accepts a "not held"/"cannot share" answer, or the data authority
    decides a coordination (a reason is then required)."""
    req = get(session, actor=actor, request_id=request_id)
    _check_state(req, "close")
    if req.state == "coordination":
        authz.ensure(actor, "data_request.coordinate", req)
        if not comment.strip():
            errors = ErrorCollector()
            errors.add("comment", "请写明协调结论")
            errors.raise_if_any(code="data_request.invalid")
    else:
        authz.ensure(actor, "data_request.manage", req)
    _move(session, actor=actor, req=req, name="close", comment=comment.strip() or "需求方接受答复，办结")
    return req


def withdraw(session: Session, *, actor: Actor, request_id: str, reason: str = "") -> DataRequest:
    req = get(session, actor=actor, request_id=request_id)
    authz.ensure(actor, "data_request.manage", req)
    _check_state(req, "withdraw")
    _move(session, actor=actor, req=req, name="withdraw", comment=reason.strip())
    return req


def escalate_overdue(session: Session, *, actor: Actor, today: date | None = None) -> int:
    """Daily job: requests the provider has not answered (or catalogued) in time go to the data authority."""
    today = today or local_today()
    tickets = list(session.scalars(workflow.overdue_query(as_of=today, kinds=[REQUEST])))
    moved = 0
    for ticket in tickets:
        if ticket.state not in PROVIDER_STATES:
            continue
        req = session.get(DataRequest, ticket.subject_id)
        if req is None:
            continue
        late = clock.working_days_between(ticket.due_on, today) if ticket.due_on else 0
        req.escalated = True
        _move(
            session,
            actor=actor,
            req=req,
            name="escalate",
            comment=f"提供部门逾期 {late} 个工作日未答复，转数据主管部门协调",
            assignee_org_id=req.authority_org_id,
            today=today,
        )
        moved += 1
    return moved


@consumer("catalog.entry.published", "demand.requests.entry_published")
def _on_entry_published(session: Session, event: OutboxEvent) -> None:
    """A compiled entry was published: the requests waiting for it are fulfilled."""
    entry_id = str(event.payload["entry_id"])
    waiting = session.scalars(
        select(DataRequest).where(DataRequest.pending_entry_id == entry_id, DataRequest.state == "compiling")
    )
    entry = session.get(CatalogEntry, entry_id)
    for req in waiting:
        req.entry_id = entry_id
        req.pending_entry_id = None
        name = entry.name if entry else entry_id
        _move(session, actor=SYSTEM_ACTOR, req=req, name="catalogued", comment=f"目录「{name}」已发布，可申请使用")


# ---- read models --------------------------------------------------------------------------------------


def actions_for(actor: Actor, req: DataRequest) -> list[str]:
    """What this actor may do with the request now (pages show these buttons, the API lists them)."""
    out: list[str] = []
    provider = authz.allowed(actor, "data_request.answer", req)
    requester = authz.allowed(actor, "data_request.manage", req)
    authority = authz.allowed(actor, "data_request.coordinate", req)
    if provider and req.state in PROVIDER_STATES:
        out += ["link_entry", "compile", "not_held", "refuse"]
    if requester and req.state in ("not_held", "refused"):
        out += ["redirect", "ask_coordination", "close"]
    if authority and req.state == "coordination":
        out += ["assign", "close"]
    if requester and not REQUEST_MACHINE.state(req.state).final:
        out.append("withdraw")
    return list(dict.fromkeys(out))


def to_read(session: Session, req: DataRequest, *, actor: Actor, today: date | None = None) -> dict[str, Any]:
    today = today or local_today()
    ticket = session.get(Ticket, req.ticket_id) if req.ticket_id else None
    data = {col.key: getattr(req, col.key) for col in DataRequest.__table__.columns if col.key != "requester_name"}
    data.update(
        requester_name=req.requester.name,
        requester_user_name=req.requester_name,
        provider_name=req.provider.name if req.provider else None,
        authority_name=req.authority.name if req.authority else None,
        state_label=STATE_LABELS.get(req.state, req.state),
        answer_label=ANSWER_LABELS.get(req.answer or ""),
        due_on=ticket.due_on if ticket else None,
        due_provisional=bool(ticket and ticket.due_provisional),
        overdue=bool(ticket and ticket.closed_at is None and ticket.due_on and ticket.due_on < today),
        actions=actions_for(actor, req),
    )
    return data


# ---- the whole path on one timeline (供需对接全流程可视) ----------------------------------------------


STAGE_LABELS = {"need": "需求", "entry": "目录", "application": "申请", "authorization": "授权"}


@dataclass
class TimelineItem:
    at: datetime
    stage: str  # need | entry | application | authorization
    title: str
    actor_name: str = ""
    actor_org_name: str = ""
    comment: str = ""
    link: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stage_label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage)


def _entry_items(session: Session, *, actor: Actor, req: DataRequest, entry_id: str) -> list[TimelineItem]:
    """The entry's publication and, once the request exists, the steps of its catalog review."""
    try:
        entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    except NotFound:
        return []  # a draft the requester may not see: the request's own history says it is being compiled
    items: list[TimelineItem] = []
    link = f"/catalog/{entry.id}"
    for ticket in workflow.tickets_for_subject(session, subject_type="catalog_entry", subject_id=entry.id):
        for ev in ticket.events:
            recent = ev.at >= req.created_at
            if ev.action == "approve" or (recent and ev.action not in ("comment", "due_recomputed")):
                items.append(
                    TimelineItem(
                        at=ev.at,
                        stage="entry",
                        title=f"目录「{entry.name}」{ev.action_label}",
                        actor_name=ev.actor_name,
                        actor_org_name=ev.actor_org_name,
                        comment=ev.comment,
                        link=link,
                    )
                )
    return items


def _application_items(session: Session, *, req: DataRequest, entry_id: str) -> list[TimelineItem]:
    """The requester's applications for the entry and their authorizations, when that module is installed."""
    try:
        from zhengshu.demand import applications as _applications  # noqa: F401  (present once it is built)
        from zhengshu.demand import models as demand_models
    except ImportError:
        return []
    application_cls = getattr(demand_models, "DataApplication", None)
    authorization_cls = getattr(demand_models, "Authorization", None)
    if application_cls is None:
        return []
    items: list[TimelineItem] = []
    apps = list(
        session.scalars(
            select(application_cls)
            .where(application_cls.consumer_org_id == req.requester_org_id, application_cls.entry_id == entry_id)
            .order_by(application_cls.created_at)
        )
    )
    for app in apps:
        link = f"/applications/{app.id}"
        for ticket in workflow.tickets_for_subject(session, subject_type="data_application", subject_id=app.id):
            for ev in ticket.events:
                if ev.action in ("comment", "due_recomputed"):
                    continue
                items.append(
                    TimelineItem(
                        at=ev.at,
                        stage="application",
                        title=f"共享申请：{ev.action_label}",
                        actor_name=ev.actor_name,
                        actor_org_name=ev.actor_org_name,
                        comment=ev.comment,
                        link=link,
                    )
                )
    if authorization_cls is None or not apps:
        return items
    auths = session.scalars(select(authorization_cls).where(authorization_cls.application_id.in_([a.id for a in apps])))
    for auth in auths:
        for ev in getattr(auth, "events", []):
            items.append(
                TimelineItem(
                    at=ev.at,
                    stage="authorization",
                    title=f"共享授权：{ev.action_label}",
                    actor_name=ev.actor_name,
                    actor_org_name=ev.actor_org_name,
                    comment=ev.reason,
                    link=f"/authorizations/{auth.id}",
                    extra={"status": ev.to_status},
                )
            )
    return items


def request_timeline(session: Session, *, actor: Actor, request_id: str) -> list[TimelineItem]:
    """Need → entry → application → authorization, oldest first: the request ticket's history, the linked
    entry's publication (and its review when compiled for this request), the requester's applications for
    that entry and the authorizations they produced."""
    req = get(session, actor=actor, request_id=request_id)
    items: list[TimelineItem] = []
    if req.ticket_id:
        for ev in ticket_of(session, req).events:
            if ev.action == "due_recomputed":
                continue
            items.append(
                TimelineItem(
                    at=ev.at,
                    stage="need",
                    title=f"数据需求：{ev.action_label}",
                    actor_name=ev.actor_name,
                    actor_org_name=ev.actor_org_name,
                    comment=ev.comment,
                    extra={"to_state": ev.to_state, "to_state_label": STATE_LABELS.get(ev.to_state or "", "")},
                )
            )
    entry_id = req.entry_id or req.pending_entry_id
    if entry_id:
        items += _entry_items(session, actor=actor, req=req, entry_id=entry_id)
        try:
            items += _application_items(session, req=req, entry_id=entry_id)
        except ZhengshuError:
            raise
        except Exception:  # the applications module is being built: the need and entry still show
            log.exception("timeline: applications of data request %s", req.id)
    items.sort(key=lambda i: i.at)
    return items


# ---- supervision figures ------------------------------------------------------------------------------


def counts_by_state(session: Session, *, actor: Actor) -> dict[str, int]:
    authz.ensure(actor, "data_request.stats")
    rows = session.execute(
        select(DataRequest.state, func.count())
        .where(authz.scope(actor, "data_request.stats"))
        .group_by(DataRequest.state)
    )
    return {state: int(n) for state, n in rows}


@dataclass
class RequestStats:
    provider_org_id: str | None
    provider_name: str
    month: str
    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    answered_on_time: int = 0
    late: int = 0  # answered late, or unanswered past the limit
    handling_days: list[int] = field(default_factory=list)

    @property
    def on_time_rate(self) -> float | None:
        due = self.answered_on_time + self.late
        return round(self.answered_on_time / due, 4) if due else None

    @property
    def avg_handling_days(self) -> float | None:
        return round(sum(self.handling_days) / len(self.handling_days), 2) if self.handling_days else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider_org_id": self.provider_org_id,
            "provider_name": self.provider_name,
            "month": self.month,
            "total": self.total,
            "by_state": self.by_state,
            "answered": self.answered,
            "answered_on_time": self.answered_on_time,
            "on_time_rate": self.on_time_rate,
            "avg_handling_days": self.avg_handling_days,
        }


def stats(
    session: Session,
    *,
    actor: Actor,
    since: date | None = None,
    until: date | None = None,
    provider_org_id: str | None = None,
    today: date | None = None,
) -> list[RequestStats]:
    """Per provider and month of assignment: counts by state, on-time answers (on or before the reply limit;
    unanswered requests past it count as late), average answer time in working days."""
    authz.ensure(actor, "data_request.stats")
    today = today or local_today()
    stmt = select(DataRequest).where(authz.scope(actor, "data_request.stats"))
    if since:
        stmt = stmt.where(DataRequest.assigned_on >= since)
    if until:
        stmt = stmt.where(DataRequest.assigned_on <= until)
    if provider_org_id:
        stmt = stmt.where(DataRequest.provider_org_id == provider_org_id)
    groups: dict[tuple[str | None, str], RequestStats] = {}
    for req in session.scalars(stmt):
        month = req.assigned_on.strftime("%Y-%m")
        key = (req.provider_org_id, month)
        row = groups.get(key)
        if row is None:
            name = (req.provider.short_name or req.provider.name) if req.provider else "未指定提供部门"
            row = groups[key] = RequestStats(req.provider_org_id, name, month)
        row.total += 1
        row.by_state[req.state] = row.by_state.get(req.state, 0) + 1
        if req.answered_on is not None:
            row.answered += 1
            row.handling_days.append(max(0, clock.working_days_between(req.assigned_on, req.answered_on)))
            if req.reply_due_on is None or req.answered_on <= req.reply_due_on:
                row.answered_on_time += 1
            else:
                row.late += 1
        elif req.reply_due_on is not None and req.reply_due_on < today and req.state != "withdrawn":
            row.late += 1
    return sorted(groups.values(), key=lambda r: (r.month, r.provider_name))
