"""Data objections: every transition of the machine, refused ones (wrong actor, wrong state, closed), limits
over a holiday, escalation of an overdue answer, grouping, forwarding, flags and corrections, evidence files
checked by content signature and size, downloads for the parties only, programmatic raising, supervision."""

from __future__ import annotations

import datetime as dt
import functools
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import World, entry_in, published_entry
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import MountedResource
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent
from zhengshu.objection import service as objection_service
from zhengshu.objection import workflows as wf
from zhengshu.objection.models import Correction, Objection, ObjectionAttachment, RecordFlag
from zhengshu.objection.schemas import AnswerIn, ArbitrateIn, ForwardIn, ObjectionIn
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.security.passwords import hash_password
from zhengshu.workflow.models import Ticket, TicketEvent

D = dt.date
# Tuesday before National Day 2026 (10-01…10-07 off, Saturday 10-10 a swapped working day)
RAISED = D(2026, 9, 29)
USCC = "91360000MA35XXXX1A"

_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


@pytest.fixture
def setup(db: Database, world: World) -> dict[str, str]:
    """A published entry of 省市场监管局 with a mounted resource; item keys by name."""
    entry_id = published_entry(db, world)
    with db.session() as s:
        resource = MountedResource(
            entry_id=entry_id, kind="api", api_endpoint="https://qy.example.gov.cn/api", created_by="market_officer"
        )
        s.add(resource)
        s.flush()
        entry = catalog_service.get(s, actor=world["market_officer"], entry_id=entry_id)
        keys = {i.name: i.key for i in catalog_service.display_version(s, entry).items}
        return {"entry_id": entry_id, "resource_id": resource.id, **keys}


def objection_in(setup: dict[str, str], **overrides: Any) -> ObjectionIn:
    data: dict[str, Any] = {
        "entry_id": setup["entry_id"],
        "resource_id": setup["resource_id"],
        "record_key": USCC,
        "item_key": setup["法定代表人"],
        "kind": "wrong",
        "claimed_value": "张三",
        "description": "法定代表人已于 2026 年 8 月变更，平台数据仍为旧值",
    }
    data.update(overrides)
    return ObjectionIn.model_validate({k: v for k, v in data.items() if v is not ...})


def raise_(
    s: Session,
    world: World,
    setup: dict[str, str],
    who: str = "hrss_officer",
    *,
    today: dt.date = RAISED,
    attachments: Any = (),
    settings: Settings | None = None,
    **overrides: Any,
) -> Objection:
    return objection_service.raise_objection(
        s,
        actor=world[who],
        objection_in=objection_in(setup, **overrides),
        attachments=attachments,
        settings=settings,
        today=today,
    )


def ticket(s: Session, obj: Objection) -> Ticket:
    return objection_service.ticket_of(s, obj)


def corrected(value: str = "张三", **kw: Any) -> AnswerIn:
    return AnswerIn.model_validate({"resolution": "corrected", "corrected_value": value, **kw})


def not_error(note: str = "经核对登记档案，原数据无误") -> AnswerIn:
    return AnswerIn.model_validate({"resolution": "not_error", "note": note})


def count(s: Session, model: Any) -> int:
    return s.scalar(select(func.count()).select_from(model)) or 0


def event_names(s: Session) -> list[str]:
    return [e.name for e in s.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


# ---- the path through the machine -----------------------------------------------------------------------


def test_raised_objection_goes_to_the_provider_with_a_limit_over_the_holiday(
    db: Database, world: World, setup: dict[str, str]
) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        t = ticket(s, obj)
        assert obj.state == t.state == wf.RAISED
        assert obj.target_type == "record" and obj.record_key == USCC and obj.item_name == "法定代表人"
        assert obj.handler_org_id == obj.provider_org_id == world.orgs["market"]
        assert obj.objector_org_id == world.orgs["hrss"]
        assert obj.authority_org_id == world.orgs["authority"]
        assert t.assignee_org_id == world.orgs["market"] and t.requester_org_id == world.orgs["hrss"]
        # 5 working days from Tue 09-29: 09-30, 10-08, 10-09, 10-10 (swapped Saturday), 10-12
        assert t.due_on == D(2026, 10, 12) == obj.answer_due_on
        assert obj.group_id == obj.id
        assert "objection.raised" in event_names(s)
        # not flagged until accepted
        assert objection_service.flags_for(s, entry_id=setup["entry_id"]) == []


def test_accept_flags_the_record_and_keeps_the_answer_limit(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id, today=D(2026, 9, 30))
        t = ticket(s, obj)
        assert obj.state == t.state == wf.VERIFYING
        assert t.due_on == D(2026, 10, 12), "accepting does not restart the answer limit"
        flags = objection_service.flags_for(s, entry_id=setup["entry_id"], record_keys=[USCC])
        assert len(flags) == 1 and flags[0].is_open
        assert flags[0].target_type == "record" and flags[0].record_key == USCC
        assert flags[0].item_keys == [setup["法定代表人"]] and flags[0].kinds == ["wrong"]
        assert objection_service.flags_for(s, entry_id=setup["entry_id"], record_keys=["OTHER"]) == []
        assert "objection.flag.opened" in event_names(s)


def test_corrected_answer_is_recorded_and_confirmation_removes_the_flag(
    db: Database, world: World, setup: dict[str, str]
) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.answer(
            s,
            actor=world["market_officer"],
            objection_id=obj.id,
            answer_in=corrected(old_value="李四", effective_from=D(2026, 10, 9), note="已按变更登记更正"),
            today=D(2026, 10, 8),
        )
        t = ticket(s, obj)
        assert obj.state == t.state == wf.ANSWERED
        assert t.assignee_org_id == world.orgs["hrss"], "the objector confirms"
        assert obj.resolution == "corrected" and obj.answered_on_time is True
        fixes = objection_service.corrections_for(s, entry_id=setup["entry_id"], record_key=USCC)
        assert len(fixes) == 1
        c = fixes[0]
        assert (c.old_value, c.corrected_value, c.effective_from) == ("李四", "张三", D(2026, 10, 9))
        assert c.corrected_by == "market_officer" and c.corrected_by_org_id == world.orgs["market"]
        assert c.item_key == setup["法定代表人"] and c.objection_id == obj.id
        assert objection_service.corrections_for(s, entry_id=setup["entry_id"], record_key="OTHER") == []
        assert objection_service.corrections_for(s, entry_id=setup["entry_id"], item_key=setup["企业名称"]) == []
        # still flagged until the objector confirms
        assert objection_service.flags_for(s, entry_id=setup["entry_id"])
        objection_service.confirm(s, actor=world["hrss_officer"], objection_id=obj.id)
        assert obj.state == wf.ARCHIVED and obj.closed_at is not None and t.closed_at is not None
        assert objection_service.flags_for(s, entry_id=setup["entry_id"]) == []
        closed = objection_service.flags_for(s, entry_id=setup["entry_id"], include_closed=True)
        assert len(closed) == 1 and closed[0].closed_at is not None
        assert "objection.corrected" in event_names(s) and "objection.flag.closed" in event_names(s)


def test_not_an_error_needs_reasons_and_corrected_needs_a_value() -> None:
    with pytest.raises(ValidationError):
        AnswerIn.model_validate({"resolution": "not_error"})
    with pytest.raises(ValidationError):
        AnswerIn.model_validate({"resolution": "corrected"})
    with pytest.raises(ValidationError):
        ArbitrateIn.model_validate({"decision": "order_correction", "reason": "应更正"})


def test_disputed_answer_goes_to_the_authority_who_orders_a_correction(
    db: Database, world: World, setup: dict[str, str]
) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=obj.id, answer_in=not_error())
        objection_service.dispute(
            s, actor=world["hrss_officer"], objection_id=obj.id, reason="工商变更登记已办结", today=D(2026, 10, 9)
        )
        t = ticket(s, obj)
        assert obj.state == t.state == wf.ARBITRATING
        assert t.assignee_org_id == world.orgs["authority"]
        # coordination limit 5 working days from Fri 10-09: 10-10 (Sat, working), 10-12 … 10-15
        assert t.due_on == D(2026, 10, 15)
        with pytest.raises(Conflict) as exc:
            objection_service.arbitrate(
                s,
                actor=world["reviewer"],
                objection_id=obj.id,
                arbitrate_in=ArbitrateIn(decision="uphold_correction", reason="维持"),
            )
        assert exc.value.code == "objection.nothing_to_uphold"
        objection_service.arbitrate(
            s,
            actor=world["reviewer"],
            objection_id=obj.id,
            arbitrate_in=ArbitrateIn(decision="order_correction", reason="以登记档案为准", corrected_value="张三"),
            today=D(2026, 10, 12),
        )
        assert obj.state == wf.ARCHIVED and obj.decision == "order_correction"
        (c,) = objection_service.corrections_for(s, entry_id=setup["entry_id"], record_key=USCC)
        assert c.corrected_value == "张三" and c.ordered_by_org_id == world.orgs["authority"]
        assert c.corrected_by_org_id == world.orgs["market"] and c.effective_from == D(2026, 10, 12)
        assert objection_service.flags_for(s, entry_id=setup["entry_id"]) == []


def test_authority_may_uphold_a_correction_or_dismiss(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        first = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=first.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=first.id, answer_in=corrected("张叁"))
        objection_service.dispute(s, actor=world["hrss_officer"], objection_id=first.id, reason="更正值仍有误")
        objection_service.arbitrate(
            s,
            actor=world["reviewer"],
            objection_id=first.id,
            arbitrate_in=ArbitrateIn(decision="uphold_correction", reason="更正值与档案一致"),
        )
        assert first.state == wf.ARCHIVED and first.decision == "uphold_correction"

        second = raise_(s, world, setup, record_key="91360000MA35YYYY2B")
        objection_service.accept(s, actor=world["market_officer"], objection_id=second.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=second.id, answer_in=not_error())
        objection_service.dispute(s, actor=world["hrss_officer"], objection_id=second.id, reason="不认可")
        objection_service.arbitrate(
            s,
            actor=world["reviewer"],
            objection_id=second.id,
            arbitrate_in=ArbitrateIn(decision="dismiss", reason="异议不成立"),
        )
        assert second.state == wf.ARCHIVED and second.decision == "dismiss"
        assert objection_service.corrections_for(s, entry_id=setup["entry_id"], record_key=second.record_key) == []


def test_forward_reassigns_and_restarts_the_limit(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.forward(
            s,
            actor=world["market_officer"],
            objection_id=obj.id,
            forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="该字段来源于公安户籍数据"),
            today=D(2026, 10, 9),
        )
        t = ticket(s, obj)
        assert obj.state == t.state == wf.RAISED
        assert obj.handler_org_id == t.assignee_org_id == world.orgs["nc_police"]
        assert obj.provider_org_id == world.orgs["market"]
        assert t.due_on == D(2026, 10, 15) == obj.answer_due_on  # 10-10 (Saturday, working), 10-12 … 10-15
        forward_event = [e for e in t.events if e.action == "forward"][-1]
        assert "南昌市公安局" in forward_event.comment and forward_event.data["to_org_id"] == world.orgs["nc_police"]
        # the former handler no longer acts; the provider still sees it; the new handler accepts
        with pytest.raises(Forbidden):
            objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        assert objection_service.get(s, actor=world["market_officer"], objection_id=obj.id) is obj
        objection_service.accept(s, actor=world["nc_police_officer"], objection_id=obj.id)
        assert obj.state == wf.VERIFYING
        # the flag opened on the first acceptance is still the only one
        assert len(objection_service.flags_for(s, entry_id=setup["entry_id"])) == 1


def test_data_authority_may_route_an_objection(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.forward(
            s,
            actor=world["reviewer"],
            objection_id=obj.id,
            forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="由数据主管部门指定办理"),
        )
        assert obj.handler_org_id == world.orgs["nc_police"]
        with pytest.raises(Forbidden):  # the objector cannot route its own objection
            objection_service.forward(
                s,
                actor=world["hrss_officer"],
                objection_id=obj.id,
                forward_in=ForwardIn(to_org_id=world.orgs["market"], reason="x"),
            )
        with pytest.raises(ValidationFailed):
            objection_service.forward(
                s,
                actor=world["reviewer"],
                objection_id=obj.id,
                forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="同一部门"),
            )


def test_withdraw_closes_and_removes_the_flag(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        with pytest.raises(Forbidden):
            objection_service.withdraw(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.withdraw(s, actor=world["hrss_officer"], objection_id=obj.id, reason="已自行核实")
        assert obj.state == wf.WITHDRAWN and obj.closed_at is not None
        assert objection_service.flags_for(s, entry_id=setup["entry_id"]) == []


def test_every_transition_of_the_machine_is_reachable(db: Database, world: World, setup: dict[str, str]) -> None:
    """Walk the paths; the ticket histories together use every declared transition, each a legal move."""
    with db.session() as s:
        a = raise_(s, world, setup)  # accept, forward, accept, answer, confirm
        objection_service.accept(s, actor=world["market_officer"], objection_id=a.id)
        objection_service.forward(
            s,
            actor=world["market_officer"],
            objection_id=a.id,
            forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="来源"),
        )
        objection_service.accept(s, actor=world["nc_police_officer"], objection_id=a.id)
        objection_service.answer(s, actor=world["nc_police_officer"], objection_id=a.id, answer_in=corrected())
        objection_service.confirm(s, actor=world["hrss_officer"], objection_id=a.id)

        b = raise_(s, world, setup, record_key="B")  # escalate, urge, answer, dispute, arbitrate
        objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 20))
        objection_service.urge(s, actor=world["reviewer"], objection_id=b.id, comment="请尽快答复")
        objection_service.answer(s, actor=world["market_officer"], objection_id=b.id, answer_in=not_error())
        objection_service.dispute(s, actor=world["hrss_officer"], objection_id=b.id, reason="不认可")
        objection_service.arbitrate(
            s, actor=world["reviewer"], objection_id=b.id, arbitrate_in=ArbitrateIn(decision="dismiss", reason="驳回")
        )

        c = raise_(s, world, setup, record_key="C")  # withdraw
        objection_service.withdraw(s, actor=world["hrss_officer"], objection_id=c.id)

        used = set()
        for obj in (a, b, c):
            events = [e for e in ticket(s, obj).events if e.action not in ("open", "comment")]
            state = wf.RAISED
            for e in events:
                assert wf.MACHINE.can(e.action, state), f"{e.action} from {state}"
                assert e.from_state == state
                state = wf.MACHINE.transitions[e.action].target
                assert e.to_state == state
                used.add(e.action)
        assert used == set(wf.MACHINE.transitions)


# ---- refused moves --------------------------------------------------------------------------------------


def test_wrong_actors_are_refused_and_outsiders_see_nothing(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        with pytest.raises(Forbidden):
            objection_service.accept(s, actor=world["hrss_officer"], objection_id=obj.id)  # the objector
        with pytest.raises(Forbidden):
            objection_service.accept(s, actor=world["market_user"], objection_id=obj.id)  # not the data officer
        with pytest.raises(Forbidden):
            objection_service.accept(s, actor=world["reviewer"], objection_id=obj.id)
        for outsider in ("nc_police_officer", "nc_reviewer", "jj_reviewer"):
            with pytest.raises(NotFound) as exc:
                objection_service.get(s, actor=world[outsider], objection_id=obj.id)
            assert exc.value.code == "objection.not_found"
            with pytest.raises(NotFound):
                objection_service.accept(s, actor=world[outsider], objection_id=obj.id)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        with pytest.raises(Forbidden):
            objection_service.answer(s, actor=world["market_user"], objection_id=obj.id, answer_in=corrected())
        objection_service.answer(s, actor=world["market_officer"], objection_id=obj.id, answer_in=corrected())
        with pytest.raises(Forbidden):
            objection_service.confirm(s, actor=world["market_officer"], objection_id=obj.id)  # the provider
        with pytest.raises(Forbidden):
            objection_service.dispute(s, actor=world["market_officer"], objection_id=obj.id, reason="x")
        objection_service.dispute(s, actor=world["hrss_officer"], objection_id=obj.id, reason="不认可")
        with pytest.raises(Forbidden):
            objection_service.arbitrate(
                s,
                actor=world["market_officer"],
                objection_id=obj.id,
                arbitrate_in=ArbitrateIn(decision="dismiss", reason="x"),
            )
        # lists answer the same question: who may see what
        for who, visible in (("hrss_officer", 1), ("market_user", 1), ("reviewer", 1), ("nc_police_officer", 0)):
            stmt = objection_service.list_query(world[who], objection_service.ObjectionFilters())
            assert len(s.scalars(stmt).all()) == visible, who


def test_wrong_state_and_closed_objections_are_refused(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        with pytest.raises(InvalidTransition):
            objection_service.answer(s, actor=world["market_officer"], objection_id=obj.id, answer_in=corrected())
        with pytest.raises(InvalidTransition):
            objection_service.confirm(s, actor=world["hrss_officer"], objection_id=obj.id)
        with pytest.raises(InvalidTransition):
            objection_service.urge(s, actor=world["reviewer"], objection_id=obj.id)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        with pytest.raises(InvalidTransition):
            objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=obj.id, answer_in=corrected())
        with pytest.raises(InvalidTransition):
            objection_service.forward(
                s,
                actor=world["market_officer"],
                objection_id=obj.id,
                forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="x"),
            )
        objection_service.confirm(s, actor=world["hrss_officer"], objection_id=obj.id)
        history = len(ticket(s, obj).events)
        for call in (
            lambda: objection_service.withdraw(s, actor=world["hrss_officer"], objection_id=obj.id),
            lambda: objection_service.dispute(s, actor=world["hrss_officer"], objection_id=obj.id, reason="迟到"),
            lambda: objection_service.confirm(s, actor=world["hrss_officer"], objection_id=obj.id),
        ):
            with pytest.raises(InvalidTransition):
                call()
        with pytest.raises(Conflict) as exc:
            objection_service.add_attachments(
                s, actor=world["hrss_officer"], objection_id=obj.id, attachments=[("a.txt", b"late")]
            )
        assert exc.value.code == "objection.closed"
        assert len(ticket(s, obj).events) == history, "refused moves leave no history"


def test_bad_raises_are_refused_and_change_nothing(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        draft = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in(name="草稿目录"))
        draft_id = draft.id
    with db.session() as s:
        with pytest.raises(Conflict) as exc:
            raise_(s, world, setup, who="market_officer")
        assert exc.value.code == "objection.own_entry"
        with pytest.raises(NotFound):  # another department's draft is invisible
            raise_(s, world, setup, entry_id=draft_id, resource_id=None, record_key=None, item_key=None)
        with pytest.raises(ValidationFailed) as vexc:
            raise_(s, world, setup, item_key="nosuchitem")
        assert vexc.value.errors[0].field == "item_key"
        with pytest.raises(ValidationFailed) as vexc:
            raise_(s, world, setup, resource_id="0" * 24)
        assert vexc.value.errors[0].field == "resource_id"
        with pytest.raises(Forbidden):
            raise_(s, world, setup, who="reviewer")
        assert count(s, Objection) == 0
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.kind == wf.KIND)) == 0
    with pytest.raises(ValidationError):
        objection_in(setup, kind="inconsistent")  # the other source must be named
    with pytest.raises(ValidationError):
        objection_in(setup, record_key=None)  # a resource without a record key
    with pytest.raises(ValidationError):
        objection_in(setup, kind="rumour")


# ---- time limits and escalation ------------------------------------------------------------------------


def test_overdue_answer_escalates_to_the_data_authority(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        assert objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 12)) == 0  # due today
        assert obj.state == wf.VERIFYING
        assert objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 13)) == 1
        t = ticket(s, obj)
        assert obj.state == t.state == wf.ESCALATED and obj.escalated
        assert t.assignee_org_id == world.orgs["authority"]
        assert t.due_on == D(2026, 10, 20)  # coordination: 5 working days from 10-13
        assert objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 30)) == 0  # once only
        # the authority sees it in its box; the provider can still answer, and the answer counts as late
        box = objection_service.ObjectionFilters(box="arbitration")
        assert [o.id for o in s.scalars(objection_service.list_query(world["reviewer"], box))] == [obj.id]
        objection_service.answer(
            s, actor=world["market_officer"], objection_id=obj.id, answer_in=corrected(), today=D(2026, 10, 14)
        )
        assert obj.state == wf.ANSWERED and obj.answered_on_time is False
        assert "objection.escalated" in event_names(s)


def test_urge_sends_it_back_with_a_new_limit(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 13))
        assert obj.state == wf.ESCALATED
        with pytest.raises(Forbidden):
            objection_service.urge(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.urge(
            s, actor=world["reviewer"], objection_id=obj.id, comment="限期答复", today=D(2026, 10, 14)
        )
        t = ticket(s, obj)
        assert obj.state == wf.VERIFYING and t.assignee_org_id == world.orgs["market"]
        assert t.due_on == D(2026, 10, 21)
        assert objection_service.flags_for(s, entry_id=setup["entry_id"]), "urging means it is being verified"


# ---- grouping ------------------------------------------------------------------------------------------


def test_objections_on_the_same_record_are_grouped_and_move_together(
    db: Database, world: World, setup: dict[str, str]
) -> None:
    with db.session() as s:
        first = raise_(s, world, setup)
        second = raise_(s, world, setup, who="nc_police_officer", item_key=setup["企业名称"], today=D(2026, 9, 30))
        other = raise_(s, world, setup, record_key="91360000MA35ZZZZ3C")
        assert second.group_id == first.id and other.group_id == other.id
        assert ticket(s, second).due_on == ticket(s, first).due_on, "one group, one due date"

        objection_service.accept(s, actor=world["market_officer"], objection_id=second.id)
        assert first.state == second.state == wf.VERIFYING and other.state == wf.RAISED
        (flag,) = objection_service.flags_for(s, entry_id=setup["entry_id"], record_keys=[USCC])
        assert set(flag.item_keys) == {setup["法定代表人"], setup["企业名称"]}

        # a third objection joins the group where it is: accepted, same due date, same flag
        third = raise_(s, world, setup, who="nc_police_officer", kind="outdated", today=D(2026, 10, 8))
        assert third.group_id == first.id and third.state == wf.VERIFYING
        assert ticket(s, third).due_on == ticket(s, first).due_on
        join = next(e for e in ticket(s, third).events if e.action == "accept")
        assert join.actor_name == "系统" and "并入" in join.comment
        assert count(s, RecordFlag) == 1 and set(flag.kinds) == {"wrong", "outdated"}

        objection_service.answer(s, actor=world["market_officer"], objection_id=first.id, answer_in=corrected())
        assert {first.state, second.state, third.state} == {wf.ANSWERED}
        assert count(s, Correction) == 1, "the group is answered once"
        assert ticket(s, second).assignee_org_id == world.orgs["nc_police"]

        # after the answer, a new objection on the record starts a new group
        late = raise_(s, world, setup, today=D(2026, 10, 12))
        assert late.group_id == late.id

        objection_service.confirm(s, actor=world["hrss_officer"], objection_id=first.id)
        objection_service.confirm(s, actor=world["nc_police_officer"], objection_id=second.id)
        assert flag.closed_at is None, "the flag stays while a member is open"
        objection_service.withdraw(s, actor=world["nc_police_officer"], objection_id=third.id)
        assert flag.closed_at is not None


def test_members_closed_at_the_same_moment_remove_the_flag(db: Database, world: World, setup: dict[str, str]) -> None:
    """Two objectors confirm the members of one group at the same moment: the flag goes with the last of them.
    Each used to count the other as still open (neither had committed), so the flag stayed for good."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: the two confirmations cannot overlap")
    with db.session() as s:
        first = raise_(s, world, setup)
        second = raise_(s, world, setup, who="nc_police_officer", item_key=setup["企业名称"], today=D(2026, 9, 30))
        objection_service.accept(s, actor=world["market_officer"], objection_id=first.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=first.id, answer_in=corrected())
        ids = (first.id, second.id)
    errors: list[BaseException] = []
    done = threading.Event()

    def confirm_second() -> None:
        try:
            with db.session() as s:
                objection_service.confirm(s, actor=world["nc_police_officer"], objection_id=ids[1])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    early = db.session_factory()
    try:
        objection_service.confirm(early, actor=world["hrss_officer"], objection_id=ids[0])  # not committed yet
        late = threading.Thread(target=confirm_second)
        late.start()
        assert not done.wait(1.0), "the second confirmation waits for the first's lock on the flag"
        early.commit()
    finally:
        early.close()
    late.join(30)
    assert errors == []
    with db.session() as s:
        (flag,) = s.scalars(select(RecordFlag).where(RecordFlag.group_id == ids[0])).all()
        assert flag.closed_at is not None
        assert {o.state for o in s.scalars(select(Objection).where(Objection.group_id == ids[0]))} == {wf.ARCHIVED}


def test_item_objections_group_by_entry_and_item(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        a = raise_(s, world, setup, resource_id=None, record_key=None)
        b = raise_(s, world, setup, who="nc_police_officer", resource_id=None, record_key=None)
        c = raise_(s, world, setup, resource_id=None, record_key=None, item_key=setup["企业名称"])
        d = raise_(s, world, setup, resource_id=None, record_key=None, item_key=None)
        assert a.target_type == "item" and b.group_id == a.id
        assert c.group_id == c.id and d.group_id == d.id and d.target_type == "entry"
        objection_service.accept(s, actor=world["market_officer"], objection_id=a.id)
        # item flags concern every record, so a record reader sees them too
        flags = objection_service.flags_for(s, entry_id=setup["entry_id"], record_keys=[USCC])
        assert [(f.target_type, f.item_key) for f in flags] == [("item", setup["法定代表人"])]


# ---- attachments ---------------------------------------------------------------------------------------

PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _xlsx() -> bytes:
    wb = Workbook()
    wb.active.append(["统一社会信用代码", "法定代表人"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_attachment_mb": 1})


def _files_under(root: Path) -> list[Path]:
    return [p for p in (root / "attachments").rglob("*") if p.is_file()] if (root / "attachments").exists() else []


def test_evidence_is_stored_with_its_sm3_digest(
    db: Database, world: World, setup: dict[str, str], small: Settings
) -> None:
    from zhengshu.security.crypto import sm3_hex

    uploads = [
        ("变更登记通知书.pdf", PDF),
        ("../../etc/截图.png", PNG),
        ("核对表.xlsx", _xlsx()),
        ("说明.txt", "法定代表人已变更".encode("gb18030")),
    ]
    with db.session() as s:
        obj = raise_(s, world, setup, attachments=uploads, settings=small)
        oid = obj.id
    with db.session() as s:
        rows = s.scalars(select(ObjectionAttachment).where(ObjectionAttachment.objection_id == oid)).all()
        assert [r.file_type for r in rows] == ["pdf", "png", "xlsx", "txt"]
        assert rows[1].filename == "截图.png", "directories are dropped from the name"
        for row, (_, content) in zip(rows, uploads, strict=True):
            assert row.sm3 == sm3_hex(content) and row.size == len(content)
            assert "/" not in row.stored_name and row.stored_name != row.filename
            _, path = objection_service.attachment_file(
                s, actor=world["market_officer"], objection_id=oid, attachment_id=row.id, data_dir=small.data_dir
            )
            assert path.parent == small.data_dir / "attachments" / oid and path.read_bytes() == content


@pytest.mark.parametrize(
    ("name", "content", "code", "reason"),
    [
        ("材料.pdf", _zip({"a.txt": b"x"}), "objection.attachment_type", "disguised"),  # a ZIP renamed .pdf
        ("材料.pdf", b"MZ\x90\x00" + b"\x00" * 200, "objection.attachment_type", "disguised"),  # an EXE renamed .pdf
        ("材料.xlsx", _zip({"a.txt": b"x"}), "objection.attachment_type", "disguised"),  # a ZIP, no workbook
        ("材料.txt", b"MZ\x90\x00\x03\x00", "objection.attachment_type", "disguised"),  # an EXE renamed .txt
        ("材料.jpg", PNG, "objection.attachment_type", "disguised"),  # right family, wrong type
        ("程序.exe", b"MZ\x90\x00", "objection.attachment_type", "extension"),
        ("空.pdf", b"", "objection.attachment_type", None),
        ("大.pdf", PDF + b"0" * (1024 * 1024), "objection.attachment_too_large", None),
    ],
    ids=["zip-as-pdf", "exe-as-pdf", "zip-as-xlsx", "exe-as-txt", "png-as-jpg", "exe", "empty", "too-large"],
)
def test_disguised_or_oversized_evidence_is_refused_and_nothing_is_written(
    db: Database,
    world: World,
    setup: dict[str, str],
    small: Settings,
    name: str,
    content: bytes,
    code: str,
    reason: str | None,
) -> None:
    with db.session() as s:
        with pytest.raises(ValidationFailed) as exc:
            raise_(s, world, setup, attachments=[("佐证.pdf", PDF), (name, content)], settings=small)
        assert exc.value.code == code
        assert exc.value.extra.get("reason") == reason
        assert exc.value.errors[0].field == "attachments"
        assert count(s, Objection) == 0 and count(s, ObjectionAttachment) == 0
    assert _files_under(small.data_dir) == []


def test_files_written_in_a_rolled_back_transaction_are_removed(
    db: Database, world: World, setup: dict[str, str], small: Settings
) -> None:
    s = db.session_factory()
    try:
        raise_(s, world, setup, attachments=[("证明.pdf", PDF)], settings=small)
        assert len(_files_under(small.data_dir)) == 1
        s.rollback()
    finally:
        s.close()
    assert _files_under(small.data_dir) == []


def test_more_evidence_later_and_downloads_only_for_the_parties(
    db: Database, world: World, setup: dict[str, str], small: Settings
) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup, settings=small)
        objection_service.add_attachments(
            s, actor=world["market_officer"], objection_id=obj.id, attachments=[("核实.pdf", PDF)], settings=small
        )
        with pytest.raises(Forbidden):
            objection_service.add_attachments(
                s, actor=world["reviewer"], objection_id=obj.id, attachments=[("x.pdf", PDF)], settings=small
            )
        (att,) = obj.attachments
        for who in ("hrss_officer", "market_officer", "market_user", "reviewer", "admin"):
            _, path = objection_service.attachment_file(
                s, actor=world[who], objection_id=obj.id, attachment_id=att.id, data_dir=small.data_dir
            )
            assert path.read_bytes() == PDF
        for outsider in ("nc_police_officer", "nc_reviewer"):
            with pytest.raises(NotFound):
                objection_service.attachment_file(
                    s, actor=world[outsider], objection_id=obj.id, attachment_id=att.id, data_dir=small.data_dir
                )
        with pytest.raises(NotFound):
            objection_service.attachment_file(
                s, actor=world["hrss_officer"], objection_id=obj.id, attachment_id="0" * 24, data_dir=small.data_dir
            )
        assert any("上传佐证材料" in e.comment for e in ticket(s, obj).events)


# ---- programmatic raising -------------------------------------------------------------------------------


def test_the_platform_raises_objections_through_the_service(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = objection_service.raise_system_objection(
            s,
            source="governance.cross_source_check",
            entry_id=setup["entry_id"],
            item_key=setup["法定代表人"],
            resource_id=setup["resource_id"],
            record_key=USCC,
            kind="inconsistent",
            other_source="省税务局纳税人登记信息",
            claimed_value="张三",
            description="多源校核：法定代表人与税务登记不一致",
            today=RAISED,
        )
        assert obj.objector_org_id is None and obj.source == "governance.cross_source_check"
        assert obj.handler_org_id == world.orgs["market"] and obj.raised_by == "system"
        assert ticket(s, obj).due_on == D(2026, 10, 12)
        with pytest.raises(NotFound):
            objection_service.get(s, actor=world["hrss_officer"], objection_id=obj.id)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.answer(s, actor=world["market_officer"], objection_id=obj.id, answer_in=corrected())
        assert ticket(s, obj).assignee_org_id == world.orgs["authority"], "the authority confirms for the platform"
        with pytest.raises(Forbidden):
            objection_service.confirm(s, actor=world["market_officer"], objection_id=obj.id)
        objection_service.confirm(s, actor=world["reviewer"], objection_id=obj.id)
        assert obj.state == wf.ARCHIVED
    with db.session() as s, pytest.raises(ValidationFailed):
        objection_service.raise_system_objection(
            s, source=" ", entry_id=setup["entry_id"], kind="wrong", description="x"
        )


# ---- supervision ---------------------------------------------------------------------------------------


def test_supervision_counts_on_time_rate_and_working_days(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        on_time = raise_(s, world, setup, record_key="A", today=RAISED)
        objection_service.accept(s, actor=world["market_officer"], objection_id=on_time.id)
        # answered on 10-09: working days after 09-29 are 09-30, 10-08, 10-09 → 3
        objection_service.answer(
            s, actor=world["market_officer"], objection_id=on_time.id, answer_in=corrected(), today=D(2026, 10, 9)
        )
        late = raise_(s, world, setup, record_key="B", today=RAISED)
        objection_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 13))
        # answered 10-14: 09-30, 10-08, 10-09, 10-10, 10-12, 10-13, 10-14 → 7
        objection_service.answer(
            s, actor=world["market_officer"], objection_id=late.id, answer_in=not_error(), today=D(2026, 10, 14)
        )
        raise_(s, world, setup, record_key="C", today=D(2026, 10, 15))  # open, October
        forwarded = raise_(s, world, setup, record_key="D", today=RAISED)
        objection_service.forward(
            s,
            actor=world["market_officer"],
            objection_id=forwarded.id,
            forward_in=ForwardIn(to_org_id=world.orgs["nc_police"], reason="来源"),
            today=D(2026, 10, 8),
        )
        objection_service.accept(s, actor=world["nc_police_officer"], objection_id=forwarded.id)
        # counted from the forward (10-08): 10-09, 10-10 → 2, and credited to the department that answered
        objection_service.answer(
            s, actor=world["nc_police_officer"], objection_id=forwarded.id, answer_in=corrected(), today=D(2026, 10, 10)
        )

        with pytest.raises(Forbidden):
            objection_service.supervision_rows(s, actor=world["market_officer"])
        rows = {(r.month, r.org_id): r for r in objection_service.supervision_rows(s, actor=world["reviewer"])}
        sept = rows[("2026-09", world.orgs["market"])]
        assert (sept.raised, sept.answered, sept.on_time, sept.open) == (2, 2, 1, 2)
        assert sept.on_time_rate == 0.5 and sept.avg_handling_days == 5.0
        assert sept.by_state == {wf.ANSWERED: 2}
        police = rows[("2026-09", world.orgs["nc_police"])]
        assert (police.answered, police.on_time, police.avg_handling_days) == (1, 1, 2.0)
        octo = rows[("2026-10", world.orgs["market"])]
        assert (octo.raised, octo.answered, octo.on_time_rate, octo.avg_handling_days) == (1, 0, None, None)
        only_oct = objection_service.supervision_rows(s, actor=world["reviewer"], date_from=D(2026, 10, 1))
        assert [(r.month, r.raised) for r in only_oct] == [("2026-10", 1)]
        # a city authority supervises nothing provincial
        assert objection_service.supervision_rows(s, actor=world["nc_reviewer"]) == []
        states = {state: n for state, _, n in objection_service.counts_by_state(s, actor=world["reviewer"])}
        assert states[wf.ANSWERED] == 3 and states[wf.RAISED] == 1 and sum(states.values()) == 4


def test_timeline_records_who_did_what(db: Database, world: World, setup: dict[str, str]) -> None:
    with db.session() as s:
        obj = raise_(s, world, setup)
        objection_service.accept(s, actor=world["market_officer"], objection_id=obj.id, comment="已受理")
        events = objection_service.timeline(s, obj)
        assert [e.action for e in events] == ["open", "accept"]
        assert isinstance(events[0], TicketEvent) and events[1].actor_name == "市场监管数据专员"
        assert events[1].comment == "已受理"
