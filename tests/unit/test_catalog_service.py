"""Catalog service: the life of an entry (compile, submit, return, publish, revise, withdraw, discard, recall),
codes, versions and diffs, the annual re-check, duty changes, authorization and what each actor may see."""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import World, entry_in, published_entry
from zhengshu.catalog import indexing, workflows
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, DataItem, EntryVersion
from zhengshu.core import clock
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent, process_pending
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.security.passwords import hash_password
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket

D = dt.date
MARKET = "market_officer"


def _create(s: Session, world: World, who: str = MARKET, **overrides: Any) -> CatalogEntry:
    return catalog_service.create(s, actor=world[who], entry_in=entry_in(**overrides))


def _review(s: Session, entry_id: str) -> Ticket | None:
    return workflow.open_for_subject(s, kind=workflows.REVIEW, subject_type="catalog_entry", subject_id=entry_id)


def _revised_items() -> list[dict[str, Any]]:
    return [
        {"name": "统一社会信用代码", "column_name": "tyshxydm", "data_type": "C", "length": 18},
        {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 300},  # longer
        {"name": "成立日期", "column_name": "clrq", "data_type": "D"},  # new; 法定代表人 dropped
    ]


def _count(s: Session, model: Any) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The world has eight users with one password: hash it once instead of eight times per test."""
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


# ---- compile, codes -------------------------------------------------------------------------------------


def test_create_makes_a_draft_with_a_code_and_a_review_ticket(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world)
        assert re.fullmatch(r"102001/\d{5}", entry.code) and entry.code == "102001/00001"
        assert entry.status == "draft" and entry.published_version_id is None
        assert entry.provider_org_id == world.orgs["market"] and entry.region_code == "360000"
        assert entry.name == "企业登记信息" and entry.sharing_type == "有条件共享"
        v = catalog_service.working_version(s, entry)
        assert v is not None and v.number == 1 and v.state == "draft" and v.created_by == MARKET
        assert [i.name for i in v.items] == ["统一社会信用代码", "企业名称", "法定代表人"]
        assert [i.position for i in v.items] == [1, 2, 3]
        assert len({i.key for i in v.items}) == 3
        ticket = _review(s, entry.id)
        assert ticket is not None and ticket.state == "draft"
        assert ticket.assignee_org_id == world.orgs["market"] and ticket.due_on is None
        names = [e.name for e in s.scalars(select(OutboxEvent))]
        assert "catalog.entry.changed" in names and "ticket.opened" in names


def test_codes_are_sequential_and_unique_within_a_class(db: Database, world: World) -> None:
    with db.session() as s:
        a = _create(s, world)
        b = _create(s, world, name="企业年报信息")
        c = _create(s, world, name="人口基本信息", class_code="101001")
        d = _create(s, world, who="hrss_officer", name="社保参保信息")
        assert [a.code, b.code, d.code] == ["102001/00001", "102001/00002", "102001/00003"]
        assert c.code == "101001/00001"
        # a longer 分类码 (with 细目) has a sequence of its own
        e = _create(s, world, name="企业变更信息", class_code="10200101")
        assert e.code == "10200101/00001"
    with db.session() as s:
        codes = list(s.scalars(select(CatalogEntry.code)))
        assert len(codes) == len(set(codes)) == 5


def test_department_class_takes_the_provider_dept_number(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world, class_code="312001", name="市场监管内部资源")
        assert entry.code == "312001/00001"
        with pytest.raises(ValidationFailed) as exc:
            _create(s, world, class_code="313001", name="别的部门编号")
        assert [e.field for e in exc.value.errors] == ["class_code"]
        assert "12" in exc.value.errors[0].message


def test_validation_names_fields_and_writes_nothing(db: Database, world: World) -> None:
    with db.session() as s:
        with pytest.raises(ValidationFailed) as exc:
            _create(s, world, class_code="199001", related_codes=["102001/99999"])
        assert exc.value.code == "catalog.invalid"
        assert {e.field for e in exc.value.errors} == {"class_code", "related_codes[0]"}
        assert all(e.message for e in exc.value.errors)
        assert exc.value.problem()["title"] == "提交的数据未通过校验"
    with db.session() as s:
        assert _count(s, CatalogEntry) == 0 and _count(s, Ticket) == 0 and _count(s, EntryVersion) == 0


def test_related_codes_must_exist(db: Database, world: World) -> None:
    with db.session() as s:
        first = _create(s, world)
        second = _create(s, world, name="企业年报信息", related_codes=[first.code])
        assert catalog_service.working_version(s, second).related_codes == [first.code]  # type: ignore[union-attr]


# ---- the review cycle -----------------------------------------------------------------------------------


def test_draft_submitted_published(db: Database, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.catalog.service.local_today", lambda: D(2026, 6, 15))
    with db.session() as s:
        entry = _create(s, world)
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id, comment="请审核")
        assert entry.status == "submitted"
        v1 = catalog_service.working_version(s, entry)
        assert v1 is not None and v1.state == "submitted" and v1.submitted_at is not None
        ticket = _review(s, entry.id)
        assert ticket is not None and ticket.state == "submitted"
        assert ticket.assignee_org_id == world.orgs["authority"] and ticket.due_on is not None

        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry.id, comment="同意发布")
        assert entry.status == "published"
        assert entry.published_version_id == v1.id and entry.working_version_id is None
        assert v1.state == "published" and v1.decided_by == "reviewer" and v1.decided_at is not None
        assert entry.published_on == D(2026, 6, 15)
        assert entry.last_rechecked_on == D(2026, 6, 15) and entry.next_recheck_on == D(2027, 6, 15)
        assert _review(s, entry.id) is None  # the review ticket is closed
        published = [
            e.payload for e in s.scalars(select(OutboxEvent).where(OutboxEvent.name == "catalog.entry.published"))
        ]
        assert published == [{"entry_id": entry.id, "version": 1}]
        # nothing left to review
        with pytest.raises(Conflict) as exc:
            catalog_service.approve(s, actor=world["reviewer"], entry_id=entry.id)
        assert exc.value.code == "catalog.nothing_to_review"


def test_returned_with_reason_then_resubmitted_and_published(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world)
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        with pytest.raises(ValidationFailed) as exc:
            catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=entry.id, reason="  ")
        assert [e.field for e in exc.value.errors] == ["reason"]
        catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=entry.id, reason="摘要请写明数据范围")
        assert entry.status == "returned"
        ticket = _review(s, entry.id)
        assert ticket is not None and ticket.state == "returned"
        assert ticket.assignee_org_id == world.orgs["market"]
        # the officer revises the returned draft and submits again
        catalog_service.update(
            s,
            actor=world[MARKET],
            entry_id=entry.id,
            entry_in=entry_in(summary="全省企业登记信息，范围为省本级登记的企业"),
        )
        assert entry.status == "returned"
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        assert entry.status == "submitted"
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry.id)
        assert entry.status == "published"
        assert catalog_service.display_version(s, entry).summary.startswith("全省企业登记信息，范围")
        assert [v.number for v in entry.versions] == [1]  # a never-published draft is revised in place

        events = catalog_service.history(s, actor=world[MARKET], entry_id=entry.id)
        assert [e.action for e in events] == ["open", "submit", "return", "submit", "approve"]
        returned = events[2]
        assert returned.comment == "摘要请写明数据范围" and returned.actor_name == "省数据局审核员"
        assert returned.actor_org_name == "江西省数据局"


def test_submit_twice_and_approving_a_draft_are_refused(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world)
        with pytest.raises(Conflict):
            catalog_service.approve(s, actor=world["reviewer"], entry_id=entry.id)
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        with pytest.raises(Conflict) as exc:
            catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        assert exc.value.code == "workflow.invalid_transition"
        with pytest.raises(Conflict) as exc:
            catalog_service.update(s, actor=world[MARKET], entry_id=entry.id, entry_in=entry_in())
        assert exc.value.code == "catalog.under_review"


def test_recall_returns_a_submission_to_draft(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world)
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        catalog_service.recall(s, actor=world[MARKET], entry_id=entry.id, comment="还要修改")
        assert entry.status == "draft"
        assert catalog_service.working_version(s, entry).state == "draft"  # type: ignore[union-attr]
        ticket = _review(s, entry.id)
        assert ticket is not None and ticket.state == "draft" and ticket.assignee_org_id == world.orgs["market"]
        assert ticket.due_on is None
        with pytest.raises(Conflict):  # nothing submitted to recall
            catalog_service.recall(s, actor=world[MARKET], entry_id=entry.id)
        # the reviewer no longer has it
        assert workflow.todo(s, actor=world["reviewer"], kinds=[workflows.REVIEW]) == []
        catalog_service.update(s, actor=world[MARKET], entry_id=entry.id, entry_in=entry_in(name="企业登记信息（新）"))
        assert entry.name == "企业登记信息（新）"


def test_recall_of_a_revision_keeps_the_entry_published(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="新摘要"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        entry = catalog_service.recall(s, actor=world[MARKET], entry_id=entry_id)
        assert entry.status == "published"
        assert catalog_service.working_version(s, entry).state == "draft"  # type: ignore[union-attr]


# ---- revisions of a published entry ---------------------------------------------------------------------


def test_editing_a_published_entry_creates_a_version_under_review(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        entry = catalog_service.get(s, actor=world[MARKET], entry_id=entry_id)
        v1 = catalog_service.display_version(s, entry)
        v1_keys = {i.name: i.key for i in v1.items}
        catalog_service.update(
            s,
            actor=world[MARKET],
            entry_id=entry_id,
            change_note="增加成立日期",
            entry_in=entry_in(summary="修订后的摘要", tags=["企业", "个体工商户"], items=_revised_items()),
        )
        v2 = catalog_service.working_version(s, entry)
        assert v2 is not None and v2.number == 2 and v2.state == "draft" and v2.change_note == "增加成立日期"
        # version 1 stays published and is what everyone sees
        assert entry.status == "published" and entry.published_version_id == v1.id and v1.state == "published"
        assert catalog_service.display_version(s, entry).id == v1.id
        shown = catalog_service.to_read(s, entry)
        assert shown["version"] == 1 and shown["summary"] != "修订后的摘要" and shown["has_pending_revision"]
        assert catalog_service.to_read(s, entry, v2)["version"] == 2
        # items keep their key across versions; a new item gets a new one
        v2_keys = {i.name: i.key for i in v2.items}
        assert v2_keys["统一社会信用代码"] == v1_keys["统一社会信用代码"]
        assert v2_keys["企业名称"] == v1_keys["企业名称"]
        assert v2_keys["成立日期"] not in v1_keys.values()
        # a second edit of the draft revises version 2 in place and still keeps the keys
        catalog_service.update(
            s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="再次修订", items=_revised_items())
        )
        assert [v.number for v in entry.versions] == [1, 2]
        assert {i.name: i.key for i in v2.items} == v2_keys

        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        assert entry.status == "published"  # still published while v2 is reviewed
        assert v2.state == "submitted"
        assert {t.subject_id for t in workflow.todo(s, actor=world["reviewer"])} == {entry_id}

        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id)
        assert v1.state == "superseded" and v2.state == "published"
        assert entry.published_version_id == v2.id and entry.working_version_id is None
        assert catalog_service.to_read(s, entry)["summary"] == "再次修订"
        assert not catalog_service.to_read(s, entry)["has_pending_revision"]
        assert s.scalar(select(func.count()).select_from(DataItem).where(DataItem.entry_id == entry_id)) == 6


def test_diff_lists_changed_fields_and_items(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.update(
            s,
            actor=world[MARKET],
            entry_id=entry_id,
            entry_in=entry_in(summary="修订后的摘要", tags=["企业", "个体工商户"], items=_revised_items()),
        )
        v1 = catalog_service.get_version(s, actor=world[MARKET], entry_id=entry_id, number=1)
        v2 = catalog_service.get_version(s, actor=world[MARKET], entry_id=entry_id, number=2)
        d = catalog_service.diff_versions(v1, v2)
        assert {c.field for c in d.changes} == {"summary", "tags"}
        tags = next(c for c in d.changes if c.field == "tags")
        assert tags.old == ["企业", "登记"] and tags.new == ["企业", "个体工商户"]
        assert [i["name"] for i in d.items_added] == ["成立日期"]
        assert [i["name"] for i in d.items_removed] == ["法定代表人"]
        assert len(d.items_changed) == 1
        name, changes = d.items_changed[0]
        assert name == "企业名称" and [(c.field, c.old, c.new) for c in changes] == [("length", 200, 300)]
        assert not d.empty and catalog_service.diff_versions(v1, v1).empty
        with pytest.raises(NotFound) as exc:
            catalog_service.get_version(s, actor=world[MARKET], entry_id=entry_id, number=9)
        assert exc.value.code == "catalog.version_not_found"


def test_provider_cannot_be_changed_by_an_edit(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        with pytest.raises(ValidationFailed) as exc:
            catalog_service.update(
                s, actor=world["admin"], entry_id=entry_id, entry_in=entry_in(provider_org_id=world.orgs["hrss"])
            )
        assert [e.field for e in exc.value.errors] == ["provider_org_id"]


# ---- withdraw and discard -------------------------------------------------------------------------------


def test_withdraw_needs_a_reason_and_keeps_it(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        with pytest.raises(ValidationFailed):
            catalog_service.withdraw(s, actor=world[MARKET], entry_id=entry_id, reason=" ")
        with pytest.raises(Forbidden):
            catalog_service.withdraw(s, actor=world["hrss_officer"], entry_id=entry_id, reason="不是我的")
        entry = catalog_service.withdraw(s, actor=world[MARKET], entry_id=entry_id, reason="职能划转，数据不再产生")
        assert entry.status == "withdrawn" and entry.withdrawn_reason == "职能划转，数据不再产生"
        assert entry.next_recheck_on is None
        assert catalog_service.display_version(s, entry).state == "withdrawn"
        assert catalog_service.to_read(s, entry)["withdrawn_reason"] == "职能划转，数据不再产生"
        events = catalog_service.history(s, actor=world[MARKET], entry_id=entry_id)
        assert events[-1].comment == "目录下架：职能划转，数据不再产生" and events[-1].actor_name == "市场监管数据专员"
        with pytest.raises(Conflict) as exc:
            catalog_service.withdraw(s, actor=world[MARKET], entry_id=entry_id, reason="再下架一次")
        assert exc.value.code == "catalog.not_published"
        with pytest.raises(Conflict) as exc:
            catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in())
        assert exc.value.code == "catalog.withdrawn"
    # a withdrawn entry is no longer visible to other departments
    with db.session() as s, pytest.raises(NotFound):
        catalog_service.get(s, actor=world["hrss_officer"], entry_id=entry_id)


def test_reviewer_may_withdraw_and_pending_revision_is_discarded(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="修订中"))
        with pytest.raises(Forbidden):
            catalog_service.withdraw(s, actor=world["nc_reviewer"], entry_id=entry_id, reason="不在辖区")
        entry = catalog_service.withdraw(s, actor=world["reviewer"], entry_id=entry_id, reason="数据已停止更新")
        assert entry.status == "withdrawn" and entry.working_version_id is None
        assert [v.state for v in entry.versions] == ["withdrawn", "discarded"]
        assert _review(s, entry_id) is None


def test_withdrawing_discards_a_revision_under_review_so_approval_cannot_revive_it(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="修订中"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        entry = catalog_service.withdraw(s, actor=world[MARKET], entry_id=entry_id, reason="职能划转")
        assert entry.working_version_id is None and _review(s, entry_id) is None
        assert [v.state for v in entry.versions] == ["withdrawn", "discarded"]
        with pytest.raises(Conflict):
            catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id)
        assert entry.status == "withdrawn"


def test_discard_a_never_published_draft(db: Database, world: World) -> None:
    with db.session() as s:
        entry = _create(s, world)
        catalog_service.discard_draft(s, actor=world[MARKET], entry_id=entry.id, comment="重复编制")
        assert entry.status == "withdrawn" and entry.working_version_id is None
        assert entry.versions[0].state == "discarded"
        ticket = workflow.tickets_for_subject(s, subject_type="catalog_entry", subject_id=entry.id)[0]
        assert ticket.state == "discarded" and ticket.closed_at is not None
        with pytest.raises(Conflict):
            catalog_service.discard_draft(s, actor=world[MARKET], entry_id=entry.id)


def test_discard_a_revision_keeps_the_published_version(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="不要了"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        with pytest.raises(Conflict) as exc:  # under review: recall first
            catalog_service.discard_draft(s, actor=world[MARKET], entry_id=entry_id)
        assert exc.value.code == "catalog.cannot_discard"
        catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=entry_id, reason="无需修订")
        entry = catalog_service.get(s, actor=world[MARKET], entry_id=entry_id)
        assert entry.status == "published"  # a returned revision leaves the entry published
        catalog_service.discard_draft(s, actor=world[MARKET], entry_id=entry_id)
        assert entry.status == "published" and entry.working_version_id is None
        assert [v.state for v in entry.versions] == ["published", "discarded"]
        assert catalog_service.to_read(s, entry)["summary"] != "不要了"
        # a new edit starts version 3
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="第三版"))
        assert catalog_service.working_version(s, entry).number == 3  # type: ignore[union-attr]


# ---- authorization --------------------------------------------------------------------------------------


def test_other_departments_cannot_edit_and_cannot_see_drafts(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        draft = _create(s, world, name="企业年报信息")
        draft_id = draft.id
    with db.session() as s:
        with pytest.raises(Forbidden) as exc:
            catalog_service.update(s, actor=world["hrss_officer"], entry_id=entry_id, entry_in=entry_in())
        assert exc.value.code == "auth.forbidden"
        for fn in (catalog_service.get, catalog_service.submit, catalog_service.discard_draft):
            with pytest.raises(NotFound) as nf:
                fn(s, actor=world["hrss_officer"], entry_id=draft_id)
            assert nf.value.code == "catalog.not_found"
        with pytest.raises(NotFound):
            catalog_service.update(s, actor=world["hrss_officer"], entry_id=draft_id, entry_in=entry_in())
        with pytest.raises(NotFound):
            catalog_service.get_by_code(s, actor=world["hrss_officer"], code=draft.code)
        # the published entry is visible to everyone, including plain users of other departments
        assert catalog_service.get(s, actor=world["hrss_officer"], entry_id=entry_id).id == entry_id
        assert catalog_service.get_by_code(s, actor=world["market_user"], code="102001/00001").id == entry_id
        # an officer may not compile for another department
        with pytest.raises(Forbidden):
            catalog_service.create(
                s, actor=world["hrss_officer"], entry_in=entry_in(provider_org_id=world.orgs["market"])
            )
    with db.session() as s:
        assert _count(s, CatalogEntry) == 2


def test_plain_users_cannot_compile_and_reviewers_cannot_edit(db: Database, world: World) -> None:
    with db.session() as s:
        with pytest.raises(Forbidden):
            _create(s, world, who="market_user")
        with pytest.raises(Forbidden):
            _create(s, world, who="reviewer")
        assert _count(s, CatalogEntry) == 0
        entry = _create(s, world)
        with pytest.raises(Forbidden):
            catalog_service.submit(s, actor=world["market_user"], entry_id=entry.id)
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry.id)
        with pytest.raises(Forbidden):  # an officer may not approve their own entry
            catalog_service.approve(s, actor=world[MARKET], entry_id=entry.id)
        assert entry.status == "submitted"


def test_reviewers_only_review_their_region(db: Database, world: World) -> None:
    with db.session() as s:
        provincial = _create(s, world)
        catalog_service.submit(s, actor=world[MARKET], entry_id=provincial.id)
        nanchang = _create(s, world, who="nc_police_officer", name="人口户籍信息", class_code="101001")
        catalog_service.submit(s, actor=world["nc_police_officer"], entry_id=nanchang.id)
        assert _review(s, nanchang.id).assignee_org_id == world.orgs["nc_authority"]  # type: ignore[union-attr]
        # a submitted entry outside the reviewer's region is invisible to them
        with pytest.raises(NotFound):
            catalog_service.approve(s, actor=world["nc_reviewer"], entry_id=provincial.id)
        with pytest.raises(NotFound):
            catalog_service.approve(s, actor=world["reviewer"], entry_id=nanchang.id)
        with pytest.raises(NotFound):
            catalog_service.return_for_revision(s, actor=world["jj_reviewer"], entry_id=nanchang.id, reason="x")
        catalog_service.approve(s, actor=world["nc_reviewer"], entry_id=nanchang.id)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=provincial.id)
        # once published they can see each other's entries, yet still not review a revision
        catalog_service.update(s, actor=world[MARKET], entry_id=provincial.id, entry_in=entry_in(summary="修订"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=provincial.id)
        catalog_service.update(
            s,
            actor=world["nc_police_officer"],
            entry_id=nanchang.id,
            entry_in=entry_in(name="人口户籍信息", class_code="101001", summary="修订"),
        )
        catalog_service.submit(s, actor=world["nc_police_officer"], entry_id=nanchang.id)
        with pytest.raises(Forbidden) as exc:
            catalog_service.approve(s, actor=world["nc_reviewer"], entry_id=provincial.id)
        assert exc.value.code == "auth.forbidden"
        with pytest.raises(Forbidden):
            catalog_service.approve(s, actor=world["reviewer"], entry_id=nanchang.id)
        with pytest.raises(Forbidden):
            catalog_service.return_for_revision(s, actor=world["jj_reviewer"], entry_id=nanchang.id, reason="x")
        assert catalog_service.approve(s, actor=world["nc_reviewer"], entry_id=nanchang.id).status == "published"


def test_list_query_shows_only_what_the_actor_may_see(db: Database, world: World) -> None:
    published = published_entry(db, world)
    with db.session() as s:
        draft = _create(s, world, name="企业年报信息").id
        hrss_draft = _create(s, world, who="hrss_officer", name="社保参保信息").id
        nc_draft = _create(s, world, who="nc_police_officer", name="人口户籍信息", class_code="101001").id

    def visible(who: str, **filters: Any) -> set[str]:
        stmt = catalog_service.list_query(world[who], catalog_service.EntryFilters(**filters))
        with db.session() as s:
            return {e.id for e in s.scalars(stmt)}

    assert visible("hrss_officer") == {published, hrss_draft}
    assert visible(MARKET) == {published, draft}
    assert visible("market_user") == {published, draft}
    assert visible("jj_reviewer") == {published}
    assert visible("nc_reviewer") == {published, nc_draft}
    assert visible("admin") == {published, draft, hrss_draft, nc_draft}
    assert visible(MARKET, status=["draft"]) == {draft}
    assert visible("admin", region_code=["360100"]) == {nc_draft}
    assert visible("admin", class_code=["101"]) == {nc_draft}
    assert visible("admin", provider_org_id=[world.orgs["hrss"]]) == {hrss_draft}


def test_counts_by_provider_respect_visibility(db: Database, world: World) -> None:
    published_entry(db, world)
    with db.session() as s:
        _create(s, world, name="企业年报信息")
        _create(s, world, who="hrss_officer", name="社保参保信息")
    with db.session() as s:
        hrss = {
            (n, st): c for _, n, st, c in catalog_service.counts_by_provider_and_status(s, actor=world["hrss_officer"])
        }
        assert hrss == {("省市场监管局", "published"): 1, ("省人社厅", "draft"): 1}
        admin = {(n, st): c for _, n, st, c in catalog_service.counts_by_provider_and_status(s, actor=world["admin"])}
        assert admin == {("省市场监管局", "published"): 1, ("省市场监管局", "draft"): 1, ("省人社厅", "draft"): 1}


def test_search_index_follows_the_catalog_and_hides_drafts(db: Database, world: World) -> None:
    published = published_entry(db, world)
    with db.session() as s:
        draft = _create(s, world, name="企业年报信息").id
    process_pending(db.session_factory)

    def found(who: str, q: str | None) -> set[str]:
        with db.session() as s:
            return {h.doc_id for h in indexing.search(s, actor=world[who], q=q).hits}

    assert found("hrss_officer", "企业") == {published}
    assert found(MARKET, "企业") == {published, draft}
    assert found("hrss_officer", "qydj") == {published}
    assert found("hrss_officer", "法定代表人") == {published}
    with db.session() as s:
        facets = indexing.search(s, actor=world["hrss_officer"], q=None).facets
        assert facets["status"] == [("published", 1)]
        assert facets["org_id"] == [(world.orgs["market"], 1)]
    # a revision under review does not change what the index shows until it is published
    with db.session() as s:
        catalog_service.update(s, actor=world[MARKET], entry_id=published, entry_in=entry_in(name="个体工商户名录"))
    process_pending(db.session_factory)
    assert found("hrss_officer", "个体工商户") == set()
    with db.session() as s:
        catalog_service.submit(s, actor=world[MARKET], entry_id=published)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=published)
    process_pending(db.session_factory)
    assert found("hrss_officer", "个体工商户") == {published}
    with db.session() as s:
        catalog_service.withdraw(s, actor=world[MARKET], entry_id=published, reason="停止产生")
    process_pending(db.session_factory)
    assert found("hrss_officer", "个体工商户") == set()
    assert found(MARKET, "个体工商户") == {published}


# ---- duty changes and the annual re-check ---------------------------------------------------------------


def test_duty_change_ticket_closed_by_a_revision(db: Database, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    entry_id = published_entry(db, world)
    monkeypatch.setattr("zhengshu.workflow.service.local_today", lambda: D(2026, 9, 21))
    with db.session() as s:
        with pytest.raises(Forbidden):
            catalog_service.register_duty_change(s, actor=world[MARKET], entry_id=entry_id, description="x")
        with pytest.raises(Forbidden):
            catalog_service.register_duty_change(s, actor=world["nc_reviewer"], entry_id=entry_id, description="x")
        ticket = catalog_service.register_duty_change(
            s, actor=world["reviewer"], entry_id=entry_id, description="《市场主体登记管理条例》修订"
        )
        assert ticket.kind == workflows.DUTY_UPDATE and ticket.state == "open"
        assert ticket.assignee_org_id == world.orgs["market"]
        assert ticket.requester_org_id == world.orgs["authority"]
        assert ticket.sla_days == 10 and ticket.due_on == clock.add_working_days(D(2026, 9, 21), 10)
        assert ticket.due_on == D(2026, 10, 12)  # over Mid-Autumn and the National Day holiday
        assert ticket.events[0].comment == "《市场主体登记管理条例》修订"
        assert [t.id for t in workflow.todo(s, actor=world[MARKET], kinds=[workflows.DUTY_UPDATE])] == [ticket.id]
        assert workflow.overdue(s, as_of=D(2026, 10, 13), kinds=[workflows.DUTY_UPDATE])[0].id == ticket.id

        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="依新条例修订"))
        assert ticket.state == "open"  # a draft alone does not fulfil the duty
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        assert ticket.state == "updated" and ticket.closed_at is not None
        assert workflow.todo(s, actor=world[MARKET], kinds=[workflows.DUTY_UPDATE]) == []


def test_duty_change_confirmed_without_change(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        ticket = catalog_service.register_duty_change(
            s, actor=world["reviewer"], entry_id=entry_id, description="机构更名"
        )
        with pytest.raises(Forbidden):
            catalog_service.confirm_no_change(s, actor=world["hrss_officer"], ticket_id=ticket.id, comment="x")
        with pytest.raises(Conflict) as second:
            catalog_service.register_duty_change(s, actor=world["reviewer"], entry_id=entry_id, description="又一次")
        assert second.value.code == "catalog.duty_change_open"
        catalog_service.confirm_no_change(s, actor=world[MARKET], ticket_id=ticket.id, comment="目录内容不受影响")
        assert ticket.state == "no_change" and ticket.closed_at is not None


def test_annual_recheck(db: Database, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.catalog.service.local_today", lambda: D(2026, 3, 10))
    entry_id = published_entry(db, world)
    other = published_entry(db, world, name="企业年报信息")
    with db.session() as s:
        # published later: not due yet
        s.get(CatalogEntry, other).next_recheck_on = D(2027, 9, 1)  # type: ignore[union-attr]
    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None and entry.next_recheck_on == D(2027, 3, 10)
        assert catalog_service.recheck_status(entry, today=D(2026, 12, 1)) == "未到期"
        assert catalog_service.recheck_status(entry, today=D(2027, 2, 20)) == "即将到期"
        assert catalog_service.recheck_status(entry, today=D(2027, 3, 11)) == "已逾期"
        assert catalog_service.open_due_rechecks(s, actor=SYSTEM_ACTOR, today=D(2027, 1, 1)) == 0
        assert catalog_service.open_due_rechecks(s, actor=SYSTEM_ACTOR, today=D(2027, 2, 20)) == 1
        assert catalog_service.open_due_rechecks(s, actor=SYSTEM_ACTOR, today=D(2027, 2, 21)) == 0  # once
        ticket = workflow.open_for_subject(s, kind=workflows.RECHECK, subject_type="catalog_entry", subject_id=entry_id)
        assert ticket is not None and ticket.due_on == D(2027, 3, 10)
        assert ticket.assignee_org_id == world.orgs["market"]
        assert [t.id for t in workflow.todo(s, actor=world[MARKET], kinds=[workflows.RECHECK])] == [ticket.id]
        with pytest.raises(Forbidden):
            catalog_service.confirm_recheck(s, actor=world["hrss_officer"], entry_id=entry_id)

        monkeypatch.setattr("zhengshu.catalog.service.local_today", lambda: D(2027, 2, 25))
        catalog_service.confirm_recheck(s, actor=world[MARKET], entry_id=entry_id, comment="内容无变化")
        assert ticket.state == "confirmed" and ticket.closed_at is not None
        assert entry.last_rechecked_on == D(2027, 2, 25) and entry.next_recheck_on == D(2028, 2, 25)
        assert ticket.events[-1].comment == "内容无变化"


def test_a_published_revision_closes_the_recheck(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None and entry.next_recheck_on is not None
        today = entry.next_recheck_on - dt.timedelta(days=5)
        assert catalog_service.open_due_rechecks(s, actor=SYSTEM_ACTOR, today=today) == 1
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="复核后修订"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id)
        tickets = [
            t
            for t in workflow.tickets_for_subject(s, subject_type="catalog_entry", subject_id=entry_id)
            if t.kind == workflows.RECHECK
        ]
        assert [t.state for t in tickets] == ["revised"]


def test_history_spans_every_ticket_of_the_entry(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    with db.session() as s:
        catalog_service.register_duty_change(s, actor=world["reviewer"], entry_id=entry_id, description="职责调整")
        catalog_service.update(s, actor=world[MARKET], entry_id=entry_id, entry_in=entry_in(summary="修订"))
        catalog_service.submit(s, actor=world[MARKET], entry_id=entry_id)
        events = catalog_service.history(s, actor=world["hrss_officer"], entry_id=entry_id)
        actions = [e.action for e in events]
        assert actions[:3] == ["open", "submit", "approve"]
        assert "fulfil" in actions and actions.count("open") == 3
        assert [e.at for e in events] == sorted(e.at for e in events)
