"""Catalog entries: compile, submit, review, publish, revise, withdraw, mount, re-check.

Every function takes the session and the acting user; authorization is checked here so the API, the pages
and the CLI enforce the same rules. Functions flush; the caller owns the transaction.
"""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, object_session

from zhengshu.catalog import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.catalog import workflows
from zhengshu.catalog.enums import ENTRY_STATUS_LABELS, RESOURCE_CLASSES, EntryStatus
from zhengshu.catalog.models import CatalogEntry, CodeSequence, DataItem, EntryVersion
from zhengshu.catalog.schemas import EntryIn
from zhengshu.core.config import get_settings
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket

VERSION_FIELDS = (
    "name",
    "class_code",
    "summary",
    "resource_format",
    "format_detail",
    "sharing_type",
    "sharing_condition",
    "not_shared_basis",
    "sharing_way",
    "opening_type",
    "opening_condition",
    "update_cycle",
    "level",
    "tags",
    "related_codes",
    "duty_basis",
)
ITEM_FIELDS = (
    "name",
    "column_name",
    "data_type",
    "length",
    "description",
    "sharing_type",
    "opening_type",
    "sensitivity",
)


# ---- lookups ------------------------------------------------------------------------------------------


def get(session: Session, *, actor: Actor, entry_id: str) -> CatalogEntry:
    entry = session.get(CatalogEntry, entry_id)
    if entry is None or not authz.allowed(actor, "catalog.view", entry):
        # Entries the actor may not see look exactly like missing ones.
        raise NotFound("未找到该目录", code="catalog.not_found")
    return entry


def get_by_code(session: Session, *, actor: Actor, code: str) -> CatalogEntry:
    entry = session.scalars(select(CatalogEntry).where(CatalogEntry.code == code)).first()
    if entry is None:
        raise NotFound(f"未找到资源代码为 {code} 的目录", code="catalog.not_found")
    return get(session, actor=actor, entry_id=entry.id)


def version(session: Session, *, version_id: str | None) -> EntryVersion | None:
    return session.get(EntryVersion, version_id) if version_id else None


def display_version(session: Session, entry: CatalogEntry) -> EntryVersion:
    """The version a reader sees: the published one, else the working draft, else (a discarded draft) the
    latest one."""
    v = version(session, version_id=entry.published_version_id or entry.working_version_id)
    if v is None:
        v = entry.versions[-1]
    return v


def working_version(session: Session, entry: CatalogEntry) -> EntryVersion | None:
    return version(session, version_id=entry.working_version_id)


@dataclass
class EntryFilters:
    q: str | None = None
    provider_org_id: list[str] | None = None
    region_code: list[str] | None = None
    class_code: list[str] | None = None
    sharing_type: list[str] | None = None
    opening_type: list[str] | None = None
    status: list[str] | None = None
    update_cycle: list[str] | None = None


SORTS = {
    "name": CatalogEntry.name,
    "code": CatalogEntry.code,
    "published_on": CatalogEntry.published_on,
    "updated_at": CatalogEntry.updated_at,
    "created_at": CatalogEntry.created_at,
}


def list_query(actor: Actor, filters: EntryFilters) -> Select[tuple[CatalogEntry]]:
    """Entries this actor may see, filtered (without ``q``: full-text goes through the search index)."""
    stmt = select(CatalogEntry).where(authz.scope(actor, "catalog.view"))
    if filters.provider_org_id:
        stmt = stmt.where(CatalogEntry.provider_org_id.in_(filters.provider_org_id))
    if filters.region_code:
        stmt = stmt.where(or_(*[CatalogEntry.region_code.startswith(r.rstrip("0") or r) for r in filters.region_code]))
    if filters.class_code:
        stmt = stmt.where(or_(*[CatalogEntry.class_code.startswith(c) for c in filters.class_code]))
    if filters.sharing_type:
        stmt = stmt.where(CatalogEntry.sharing_type.in_(filters.sharing_type))
    if filters.opening_type:
        stmt = stmt.where(CatalogEntry.opening_type.in_(filters.opening_type))
    if filters.status:
        stmt = stmt.where(CatalogEntry.status.in_(filters.status))
    if filters.update_cycle:
        stmt = stmt.where(CatalogEntry.update_cycle.in_(filters.update_cycle))
    return stmt


# ---- codes --------------------------------------------------------------------------------------------


def validate_class_code(class_code: str, provider: Organization) -> str | None:
    major, item = class_code[0], class_code[1:3]
    if major not in RESOURCE_CLASSES:
        return f"分类码首位（类）{major} 无效"
    name, items = RESOURCE_CLASSES[major]
    if major == "3":
        if provider.dept_number and item != provider.dept_number:
            return f"部门信息资源的“项”应为提供方的部门编号 {provider.dept_number}"
    elif item not in items:
        return f"{name}下没有编号为 {item} 的项"
    return None


def allocate_code(session: Session, *, class_code: str) -> str:
    """Next ``{分类码}/{顺序码}``; the sequence row is locked so concurrent allocations never collide."""
    seq = session.scalars(select(CodeSequence).where(CodeSequence.prefix == class_code).with_for_update()).first()
    if seq is None:
        seq = CodeSequence(prefix=class_code, last_value=0)
        session.add(seq)
    seq.last_value += 1
    session.flush()
    return f"{class_code}/{seq.last_value:05d}"


# ---- compile and edit ---------------------------------------------------------------------------------


def _check_entry_in(session: Session, entry_in: EntryIn, provider: Organization) -> None:
    errors = ErrorCollector()
    if (msg := validate_class_code(entry_in.class_code, provider)) is not None:
        errors.add("class_code", msg)
    for i, code in enumerate(entry_in.related_codes):
        if not session.scalars(select(CatalogEntry.id).where(CatalogEntry.code == code)).first():
            errors.add(f"related_codes[{i}]", f"关联资源代码 {code} 不存在")
    errors.raise_if_any(code="catalog.invalid")


def _fill_version(v: EntryVersion, entry_in: EntryIn, *previous: EntryVersion | None) -> None:
    data = entry_in.model_dump()
    for field in VERSION_FIELDS:
        setattr(v, field, data[field])
    # an item keeps its key when its name was in the published version or in the draft being edited
    keys = {item.name: item.key for p in previous if p is not None for item in p.items}
    v.items.clear()
    if (session := object_session(v)) is not None:
        session.flush()  # delete the old rows first: (version_id, name) is unique
    for position, item_in in enumerate(entry_in.items, start=1):
        item_data = item_in.model_dump()
        v.items.append(
            DataItem(
                id=new_id(),
                entry_id=v.entry_id,
                key=keys.get(item_in.name) or new_id(),
                position=position,
                **{f: item_data[f] for f in ITEM_FIELDS},
            )
        )


def _mirror(entry: CatalogEntry, v: EntryVersion) -> None:
    for field in ("name", "class_code", "sharing_type", "opening_type", "update_cycle"):
        setattr(entry, field, getattr(v, field))
    entry.updated_at = utcnow()


def _resolve_provider(session: Session, actor: Actor, provider_org_id: str | None) -> Organization:
    org_id = provider_org_id or actor.org_id
    if org_id is None:
        raise Conflict("请指定提供方", code="catalog.no_provider")
    return org_service.get_organization(session, org_id=org_id)


def create(session: Session, *, actor: Actor, entry_in: EntryIn, change_note: str = "") -> CatalogEntry:
    provider = _resolve_provider(session, actor, entry_in.provider_org_id)
    probe = CatalogEntry(provider_org_id=provider.id, region_code=provider.region_code)
    authz.ensure(actor, "catalog.edit", probe)
    _check_entry_in(session, entry_in, provider)
    entry = CatalogEntry(
        id=new_id(),
        code=allocate_code(session, class_code=entry_in.class_code),
        provider_org_id=provider.id,
        region_code=provider.region_code,
        status=EntryStatus.DRAFT.value,
    )
    v = EntryVersion(
        id=new_id(),
        entry_id=entry.id,
        number=1,
        state="draft",
        created_by=actor.username,
        change_note=change_note or "新编目录",
    )
    _fill_version(v, entry_in, None)
    entry.versions.append(v)
    entry.working_version_id = v.id
    _mirror(entry, v)
    session.add(entry)
    session.flush()
    workflow.open_ticket(
        session,
        actor=actor,
        kind=workflows.REVIEW,
        title=f"目录审核：{v.name}",
        subject_type="catalog_entry",
        subject_id=entry.id,
        assignee_org_id=provider.id,
        requester_org_id=provider.id,
        data={"version_id": v.id, "version": 1},
    )
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="created")
    return entry


def update(session: Session, *, actor: Actor, entry_id: str, entry_in: EntryIn, change_note: str = "") -> CatalogEntry:
    """Edit the working draft, or start a new version of a published entry (the old one stays published)."""
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.edit", entry)
    provider = entry.provider
    if entry_in.provider_org_id and entry_in.provider_org_id != entry.provider_org_id:
        errors = ErrorCollector()
        errors.add("provider_org_id", "不能变更目录的提供方，请由新提供方重新编制")
        errors.raise_if_any(code="catalog.invalid")
    _check_entry_in(session, entry_in, provider)
    if entry.status == EntryStatus.WITHDRAWN.value:
        raise Conflict("已下架的目录不能修改，请重新编制", code="catalog.withdrawn")
    working = working_version(session, entry)
    if working is not None and working.state == "submitted":
        raise Conflict("该目录的修订正在审核中，请先撤回再修改", code="catalog.under_review")
    if working is None:
        published = display_version(session, entry)
        number = max(v.number for v in entry.versions) + 1
        working = EntryVersion(
            id=new_id(),
            entry_id=entry.id,
            number=number,
            state="draft",
            created_by=actor.username,
            change_note=change_note or "修订",
        )
        _fill_version(working, entry_in, published)
        entry.versions.append(working)
        entry.working_version_id = working.id
        session.flush()
        workflow.open_ticket(
            session,
            actor=actor,
            kind=workflows.REVIEW,
            title=f"目录修订审核：{working.name}",
            subject_type="catalog_entry",
            subject_id=entry.id,
            assignee_org_id=provider.id,
            requester_org_id=provider.id,
            data={"version_id": working.id, "version": number},
        )
    else:
        published = display_version(session, entry) if entry.published_version_id else None
        _fill_version(working, entry_in, published, working)
        if change_note:
            working.change_note = change_note
        working.updated_at = utcnow()
    if entry.published_version_id is None:
        _mirror(entry, working)
    entry.updated_at = utcnow()
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="edited")
    return entry


def review_ticket(session: Session, entry: CatalogEntry) -> Ticket:
    ticket = workflow.open_for_subject(
        session, kind=workflows.REVIEW, subject_type="catalog_entry", subject_id=entry.id
    )
    if ticket is None:
        raise Conflict("该目录当前没有待办的审核流程", code="catalog.no_open_review")
    return ticket


def submit(session: Session, *, actor: Actor, entry_id: str, comment: str = "") -> CatalogEntry:
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.submit", entry)
    working = working_version(session, entry)
    if working is None:
        raise Conflict("该目录没有待提交的草稿", code="catalog.nothing_to_submit")
    authority = org_service.data_authority_for(session, region_code=entry.region_code)
    if authority is None:
        raise Conflict("未找到负责审核的数据主管部门，请联系平台管理员", code="catalog.no_authority")
    ticket = review_ticket(session, entry)
    workflow.transition(
        session, actor=actor, ticket=ticket, name="submit", comment=comment, assignee_org_id=authority.id
    )
    working.state = "submitted"
    working.submitted_at = utcnow()
    if entry.published_version_id is None:
        entry.status = EntryStatus.SUBMITTED.value
    entry.updated_at = utcnow()
    _close_duty_updates(session, actor=actor, entry=entry)
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="submitted")
    return entry


def recall(session: Session, *, actor: Actor, entry_id: str, comment: str = "") -> CatalogEntry:
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.submit", entry)
    working = working_version(session, entry)
    ticket = review_ticket(session, entry)
    workflow.transition(
        session, actor=actor, ticket=ticket, name="recall", comment=comment, assignee_org_id=entry.provider_org_id
    )
    assert working is not None
    working.state = "draft"
    if entry.published_version_id is None:
        entry.status = EntryStatus.DRAFT.value
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="recalled")
    return entry


def _add_months(d: date, months: int) -> date:
    month = d.month - 1 + months
    year, month = d.year + month // 12, month % 12 + 1
    return date(year, month, min(d.day, _cal.monthrange(year, month)[1]))


def _decide(
    session: Session,
    *,
    actor: Actor,
    entry_id: str,
    transition: str,
    comment: str,
    version_state: str,
    back_to_provider: bool = False,
) -> tuple[CatalogEntry, EntryVersion]:
    """A reviewer's decision on the version under review: approve or return."""
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.review", entry)
    working = working_version(session, entry)
    if working is None or working.state != "submitted":
        raise Conflict("该目录没有待审核的版本", code="catalog.nothing_to_review")
    workflow.transition(
        session,
        actor=actor,
        ticket=review_ticket(session, entry),
        name=transition,
        comment=comment,
        assignee_org_id=entry.provider_org_id if back_to_provider else None,
    )
    working.state = version_state
    working.decided_at = utcnow()
    working.decided_by = actor.username
    return entry, working


def approve(session: Session, *, actor: Actor, entry_id: str, comment: str = "") -> CatalogEntry:
    entry, working = _decide(
        session, actor=actor, entry_id=entry_id, transition="approve", comment=comment, version_state="published"
    )
    today = local_today()
    old = version(session, version_id=entry.published_version_id)  # still the previous one here
    if old is not None:
        old.state = "superseded"
    entry.published_version_id = working.id
    entry.working_version_id = None
    entry.status = EntryStatus.PUBLISHED.value
    entry.published_on = today
    entry.withdrawn_reason = None
    entry.last_rechecked_on = today
    entry.next_recheck_on = _add_months(today, get_settings().catalog_recheck_months)
    _mirror(entry, working)
    _close_rechecks(session, actor=actor, entry=entry, transition="revise")
    session.flush()
    emit(session, "catalog.entry.published", entry_id=entry.id, version=working.number)
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="published")
    return entry


def return_for_revision(session: Session, *, actor: Actor, entry_id: str, reason: str) -> CatalogEntry:
    if not reason.strip():
        errors = ErrorCollector()
        errors.add("reason", "退回时必须说明理由")
        errors.raise_if_any()
    entry, _ = _decide(
        session,
        actor=actor,
        entry_id=entry_id,
        transition="return",
        comment=reason,
        version_state="returned",
        back_to_provider=True,
    )
    if entry.published_version_id is None:
        entry.status = EntryStatus.RETURNED.value
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="returned")
    return entry


def discard_draft(session: Session, *, actor: Actor, entry_id: str, comment: str = "") -> CatalogEntry | None:
    """Drop a pending revision (the published version stays) or delete a never-published entry."""
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.edit", entry)
    working = working_version(session, entry)
    if working is None or working.state == "submitted":
        raise Conflict("只有草稿或已退回的版本可以作废", code="catalog.cannot_discard")
    ticket = review_ticket(session, entry)
    workflow.transition(session, actor=actor, ticket=ticket, name="discard", comment=comment)
    working.state = "discarded"
    entry.working_version_id = None
    if entry.published_version_id is None:
        entry.status = EntryStatus.WITHDRAWN.value
        entry.withdrawn_reason = comment or "草稿已作废"
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="discarded")
    return entry


def withdraw(session: Session, *, actor: Actor, entry_id: str, reason: str) -> CatalogEntry:
    """下架: the entry stops being available; the reason is kept and shown."""
    if not reason.strip():
        errors = ErrorCollector()
        errors.add("reason", "下架时必须说明理由")
        errors.raise_if_any()
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.withdraw", entry)
    if entry.status != EntryStatus.PUBLISHED.value:
        raise Conflict("只有已发布的目录可以下架", code="catalog.not_published")
    published = version(session, version_id=entry.published_version_id)
    assert published is not None
    published.state = "withdrawn"
    entry.status = EntryStatus.WITHDRAWN.value
    entry.withdrawn_reason = reason
    entry.next_recheck_on = None
    working = working_version(session, entry)
    if working is not None:
        # a revision, even one under review, would otherwise bring the withdrawn entry back on approval
        ticket = review_ticket(session, entry)
        workflow.transition(session, actor=actor, ticket=ticket, name="discard", comment="目录下架，修订作废")
        working.state = "discarded"
        entry.working_version_id = None
    _close_rechecks(session, actor=actor, entry=entry, transition="revise", comment="目录已下架")
    # history lives on a ticket too, so the timeline shows who withdrew it and why
    workflow.comment(session, actor=actor, ticket=_latest_review(session, entry), text=f"目录下架：{reason}")
    session.flush()
    emit(session, "catalog.entry.withdrawn", entry_id=entry.id, reason=reason)
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="withdrawn")
    return entry


def _latest_review(session: Session, entry: CatalogEntry) -> Ticket:
    tickets = [
        t
        for t in workflow.tickets_for_subject(session, subject_type="catalog_entry", subject_id=entry.id)
        if t.kind == workflows.REVIEW
    ]
    return tickets[-1]


# ---- duty changes and re-checks -----------------------------------------------------------------------


def register_duty_change(session: Session, *, actor: Actor, entry_id: str, description: str) -> Ticket:
    """A change of law or duty: the provider must update the entry within the update limit (10 working days)."""
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.duty_change")
    authz.ensure(actor, "catalog.review", entry)
    if workflow.open_for_subject(
        session, kind=workflows.DUTY_UPDATE, subject_type="catalog_entry", subject_id=entry.id
    ):
        raise Conflict("该目录已有未完成的职责变更更新任务", code="catalog.duty_change_open")
    if entry.status != EntryStatus.PUBLISHED.value:
        raise Conflict("只有已发布的目录需要登记职责变更", code="catalog.not_published")
    return workflow.open_ticket(
        session,
        actor=actor,
        kind=workflows.DUTY_UPDATE,
        title=f"职责变更，需更新目录：{entry.name}",
        subject_type="catalog_entry",
        subject_id=entry.id,
        assignee_org_id=entry.provider_org_id,
        requester_org_id=actor.org_id,
        comment=description,
        data={"description": description},
    )


def confirm_no_change(session: Session, *, actor: Actor, ticket_id: str, comment: str) -> Ticket:
    ticket = workflow.get(session, ticket_id=ticket_id)
    entry = get(session, actor=actor, entry_id=ticket.subject_id)
    authz.ensure(actor, "catalog.edit", entry)
    return workflow.transition(session, actor=actor, ticket=ticket, name="confirm_no_change", comment=comment)


def _close_duty_updates(session: Session, *, actor: Actor, entry: CatalogEntry) -> None:
    ticket = workflow.open_for_subject(
        session, kind=workflows.DUTY_UPDATE, subject_type="catalog_entry", subject_id=entry.id
    )
    if ticket is not None:
        workflow.transition(session, actor=actor, ticket=ticket, name="fulfil", comment="已提交目录修订")


def _close_rechecks(session: Session, *, actor: Actor, entry: CatalogEntry, transition: str, comment: str = "") -> None:
    ticket = workflow.open_for_subject(
        session, kind=workflows.RECHECK, subject_type="catalog_entry", subject_id=entry.id
    )
    if ticket is not None:
        workflow.transition(session, actor=actor, ticket=ticket, name=transition, comment=comment)


def open_due_rechecks(session: Session, *, actor: Actor, today: date | None = None, lead_days: int = 30) -> int:
    """Daily job: open a re-check ticket for every published entry whose annual re-check falls due soon."""
    today = today or local_today()
    horizon = date.fromordinal(today.toordinal() + lead_days)
    entries = session.scalars(
        select(CatalogEntry).where(
            CatalogEntry.status == EntryStatus.PUBLISHED.value,
            CatalogEntry.next_recheck_on.is_not(None),
            CatalogEntry.next_recheck_on <= horizon,
        )
    )
    opened = 0
    for entry in entries:
        if workflow.open_for_subject(
            session, kind=workflows.RECHECK, subject_type="catalog_entry", subject_id=entry.id
        ):
            continue
        workflow.open_ticket(
            session,
            actor=actor,
            kind=workflows.RECHECK,
            title=f"年度复核：{entry.name}",
            subject_type="catalog_entry",
            subject_id=entry.id,
            assignee_org_id=entry.provider_org_id,
            due_on=entry.next_recheck_on,
        )
        opened += 1
    return opened


def confirm_recheck(session: Session, *, actor: Actor, entry_id: str, comment: str = "") -> CatalogEntry:
    entry = get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "catalog.recheck", entry)
    if entry.status != EntryStatus.PUBLISHED.value:
        raise Conflict("只有已发布的目录需要年度复核", code="catalog.not_published")
    today = local_today()
    entry.last_rechecked_on = today
    entry.next_recheck_on = _add_months(today, get_settings().catalog_recheck_months)
    _close_rechecks(session, actor=actor, entry=entry, transition="confirm", comment=comment or "复核无变化")
    session.flush()
    emit(session, "catalog.entry.changed", entry_id=entry.id, change="rechecked")
    return entry


def recheck_status(entry: CatalogEntry, *, today: date | None = None) -> str:
    """未到期 / 即将到期 / 已逾期 / 不适用 — shown on the entry page and in lists."""
    today = today or local_today()
    if entry.next_recheck_on is None:
        return "不适用"
    if entry.next_recheck_on < today:
        return "已逾期"
    if (entry.next_recheck_on - today).days <= 30:
        return "即将到期"
    return "未到期"


# ---- versions and diffs -------------------------------------------------------------------------------


def version_content(v: EntryVersion) -> dict[str, Any]:
    content: dict[str, Any] = {f: getattr(v, f) for f in VERSION_FIELDS}
    content["items"] = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in v.items]
    return content


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass
class VersionDiff:
    changes: list[FieldChange]
    items_added: list[dict[str, Any]]
    items_removed: list[dict[str, Any]]
    items_changed: list[tuple[str, list[FieldChange]]]

    @property
    def empty(self) -> bool:
        return not (self.changes or self.items_added or self.items_removed or self.items_changed)


def diff_versions(old: EntryVersion, new: EntryVersion) -> VersionDiff:
    a, b = version_content(old), version_content(new)
    changes = [FieldChange(f, a[f], b[f]) for f in VERSION_FIELDS if a[f] != b[f]]
    old_items = {i["name"]: i for i in a["items"]}
    new_items = {i["name"]: i for i in b["items"]}
    added = [new_items[n] for n in new_items if n not in old_items]
    removed = [old_items[n] for n in old_items if n not in new_items]
    changed = []
    for name in new_items.keys() & old_items.keys():
        fc = [
            FieldChange(f, old_items[name][f], new_items[name][f])
            for f in ITEM_FIELDS
            if old_items[name][f] != new_items[name][f]
        ]
        if fc:
            changed.append((name, fc))
    return VersionDiff(changes, added, removed, sorted(changed))


# Versions never published are drafts: only the provider and its reviewers see them.
UNPUBLISHED_STATES = frozenset({"draft", "submitted", "returned", "discarded"})


def visible_versions(session: Session, *, actor: Actor, entry_id: str) -> list[EntryVersion]:
    entry = get(session, actor=actor, entry_id=entry_id)
    drafts = authz.allowed(actor, "catalog.view_draft", entry)
    return [v for v in entry.versions if drafts or v.state not in UNPUBLISHED_STATES]


def get_version(session: Session, *, actor: Actor, entry_id: str, number: int) -> EntryVersion:
    for v in visible_versions(session, actor=actor, entry_id=entry_id):
        if v.number == number:
            return v
    raise NotFound(f"该目录没有第 {number} 版", code="catalog.version_not_found")


def get_working(session: Session, *, actor: Actor, entry_id: str) -> tuple[CatalogEntry, EntryVersion]:
    """The draft or revision under review, for those who may see drafts."""
    entry = get(session, actor=actor, entry_id=entry_id)
    working = working_version(session, entry)
    if working is None or not authz.allowed(actor, "catalog.view_draft", entry):
        raise NotFound("该目录没有待审或编辑中的版本", code="catalog.no_working_version")
    return entry, working


# ---- statistics ---------------------------------------------------------------------------------------


def counts_by_provider_and_status(session: Session, *, actor: Actor) -> list[tuple[str, str, str, int]]:
    authz.ensure(actor, "catalog.stats")
    rows = session.execute(
        select(Organization.id, Organization.short_name, CatalogEntry.status, func.count())
        .join(Organization, Organization.id == CatalogEntry.provider_org_id)
        .where(authz.scope(actor, "catalog.view"))
        .group_by(Organization.id, Organization.short_name, CatalogEntry.status)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def status_label(status: str) -> str:
    return ENTRY_STATUS_LABELS.get(status, status)


# ---- read models --------------------------------------------------------------------------------------


def to_read(session: Session, entry: CatalogEntry, v: EntryVersion | None = None) -> dict[str, Any]:
    """The API shape of an entry as shown (published version unless ``v`` is given)."""
    v = v or display_version(session, entry)
    data = {f: getattr(v, f) for f in VERSION_FIELDS}
    data.update(
        id=entry.id,
        code=entry.code,
        status=entry.status,
        status_label=status_label(entry.status),
        version=v.number,
        provider_org_id=entry.provider_org_id,
        provider_name=entry.provider.name,
        provider_code=entry.provider.uscc,
        region_code=entry.region_code,
        published_on=entry.published_on,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        items=[{"id": i.id, "position": i.position, **{f: getattr(i, f) for f in ITEM_FIELDS}} for i in v.items],
        has_pending_revision=entry.working_version_id is not None and entry.published_version_id is not None,
        withdrawn_reason=entry.withdrawn_reason,
    )
    return data


def to_summary(entry: CatalogEntry, *, summary: str = "", score: float | None = None) -> dict[str, Any]:
    return {
        "id": entry.id,
        "code": entry.code,
        "name": entry.name,
        "status": entry.status,
        "status_label": status_label(entry.status),
        "provider_org_id": entry.provider_org_id,
        "provider_name": entry.provider.short_name or entry.provider.name,
        "region_code": entry.region_code,
        "class_code": entry.class_code,
        "sharing_type": entry.sharing_type,
        "opening_type": entry.opening_type,
        "update_cycle": entry.update_cycle,
        "published_on": entry.published_on,
        "summary": summary,
        "score": score,
    }


def entries_by_ids(session: Session, ids: list[str]) -> list[CatalogEntry]:
    found = {e.id: e for e in session.scalars(select(CatalogEntry).where(CatalogEntry.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def history(session: Session, *, actor: Actor, entry_id: str) -> list[Any]:
    """Every ticket event about this entry (reviews, duty updates, re-checks), oldest first."""
    get(session, actor=actor, entry_id=entry_id)
    events = [
        ev
        for t in workflow.tickets_for_subject(session, subject_type="catalog_entry", subject_id=entry_id)
        for ev in t.events
    ]
    return sorted(events, key=lambda ev: ev.at)
