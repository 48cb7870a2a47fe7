"""The workflow engine: declared machines, working-day due dates, history, to-do lists, overdue work and the
recomputation of due dates when an official holiday schedule arrives."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import World, entry_in
from zhengshu.calendar import service as calendar_service
from zhengshu.calendar.schemas import HolidayDayIn, HolidayYearIn
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog import workflows
from zhengshu.core import clock
from zhengshu.core.db import Database
from zhengshu.core.errors import InvalidTransition, NotFound
from zhengshu.core.events import OutboxEvent, process_pending
from zhengshu.security.actor import SYSTEM_ACTOR, Role
from zhengshu.security.passwords import hash_password
from zhengshu.workflow import service as workflow
from zhengshu.workflow.machine import State, declare, get_machine
from zhengshu.workflow.models import Ticket, TicketEvent

D = dt.date
KIND = "test_wf_machine"

# A small machine of our own, so the engine is tested apart from the catalog's use of it.
MACHINE = declare(
    KIND,
    "测试流程",
    states=[
        State("new", "新建", frozenset({Role.OFFICER}), sla_days=lambda: 3),
        State("review", "审核中", frozenset({Role.REVIEWER}), sla_days=lambda: 5),
        State("parked", "暂停", frozenset({Role.OFFICER})),
        State("done", "已办结", final=True),
        State("cancelled", "已取消", final=True),
    ],
    transitions=[
        ("send", "送审", {"new"}, "review"),
        ("back", "退回", {"review"}, "new"),
        ("park", "暂停", {"new"}, "parked"),
        ("finish", "办结", {"review"}, "done"),
        ("cancel", "取消", "*", "cancelled"),
    ],
    initial="new",
)


def _open(s: Any, world: World, *, today: dt.date, assignee: str = "market", **kw: Any) -> Ticket:
    return workflow.open_ticket(
        s,
        actor=world["market_officer"],
        kind=KIND,
        title="测试工单",
        subject_type="test",
        subject_id="s1",
        assignee_org_id=world.orgs[assignee],
        requester_org_id=world.orgs["market"],
        today=today,
        **kw,
    )


def _first_provisional_year() -> int:
    """The first year the holiday library does not know (2027 with today's chinese_calendar)."""
    return next(y for y in range(2026, 2100) if clock.year_status(y) == "provisional")


_cached_hash = functools.lru_cache(hash_password)


@pytest.fixture(autouse=True)
def _fast_password_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The world has eight users with one password: hash it once instead of eight times per test."""
    monkeypatch.setattr("zhengshu.org.service.hash_password", _cached_hash)


# ---- the declared machine -------------------------------------------------------------------------------


def test_declare_rejects_unknown_states_and_star_means_every_open_state() -> None:
    with pytest.raises(ValueError, match="unknown states"):
        declare(
            "test_wf_broken", "坏流程", states=[State("a", "甲")], transitions=[("go", "走", {"a"}, "b")], initial="a"
        )
    cancel = MACHINE.transitions["cancel"]
    assert cancel.sources == {"new", "review", "parked"}
    assert get_machine(KIND) is MACHINE
    assert [t.name for t in MACHINE.available("review")] == ["back", "finish", "cancel"]
    assert MACHINE.can("send", "new") and not MACHINE.can("send", "review") and not MACHINE.can("nope", "new")


def test_illegal_transitions_are_refused_and_change_nothing(db: Database, world: World) -> None:
    with db.session() as s:
        ticket = _open(s, world, today=D(2026, 3, 2))
        for name in ("finish", "back", "no_such_transition"):
            with pytest.raises(InvalidTransition) as exc:
                workflow.transition(s, actor=world["reviewer"], ticket=ticket, name=name)
            assert exc.value.code == "workflow.invalid_transition"
            assert exc.value.status == 409
            assert "新建" in exc.value.detail
        assert ticket.state == "new" and len(ticket.events) == 1
        workflow.transition(s, actor=world["market_officer"], ticket=ticket, name="cancel", today=D(2026, 3, 3))
        # a final state accepts nothing, not even the "*" transition
        with pytest.raises(InvalidTransition):
            workflow.transition(s, actor=world["market_officer"], ticket=ticket, name="cancel")
        assert ticket.closed_at is not None and ticket.due_on is None and ticket.sla_days is None


# ---- due dates ------------------------------------------------------------------------------------------


def test_due_dates_count_working_days_over_the_national_day_holiday(db: Database, world: World) -> None:
    with db.session() as s:
        ticket = _open(s, world, today=D(2026, 9, 28))
        # 3 working days from Monday 28 September: 29, 30 September, then 8 October after the holiday
        assert ticket.due_on == D(2026, 10, 8) and ticket.sla_days == 3 and not ticket.due_provisional
        workflow.transition(s, actor=world["market_officer"], ticket=ticket, name="send", today=D(2026, 9, 29))
        assert ticket.state_entered_on == D(2026, 9, 29)
        # 5 working days: 30 Sep, 8, 9, 10 (a swapped Saturday), 12 October
        assert ticket.due_on == D(2026, 10, 12) == clock.add_working_days(D(2026, 9, 29), 5)
        assert ticket.sla_days == 5
        workflow.transition(s, actor=world["reviewer"], ticket=ticket, name="back", today=D(2026, 10, 9))
        workflow.transition(s, actor=world["market_officer"], ticket=ticket, name="park", today=D(2026, 10, 9))
        # a state without a time limit has no due date
        assert ticket.state == "parked" and ticket.due_on is None and ticket.closed_at is None


def test_catalog_review_due_date_after_national_day(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zhengshu.workflow.service.local_today", lambda: D(2026, 9, 29))
    with db.session() as s:
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in())
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry.id)
        ticket = catalog_service.review_ticket(s, entry)
        assert ticket.state == "submitted" and ticket.sla_days == 5
        assert ticket.due_on == D(2026, 10, 12)
        assert ticket.due_provisional is False
        assert ticket.assignee_org_id == world.orgs["authority"]


def test_explicit_due_date_overrides_the_sla(db: Database, world: World) -> None:
    with db.session() as s:
        ticket = _open(s, world, today=D(2026, 3, 2), due_on=D(2026, 12, 31))
        assert ticket.due_on == D(2026, 12, 31)


def test_due_date_in_an_unknown_year_is_provisional(db: Database, world: World) -> None:
    year = _first_provisional_year()
    start = D(year - 1, 12, 31)
    while not clock.is_working_day(start):
        start -= dt.timedelta(days=1)
    with db.session() as s:
        ticket = _open(s, world, today=start)
        assert ticket.due_on is not None and ticket.due_on.year == year
        assert ticket.due_provisional is True
        inside = _open(s, world, today=D(year - 1, 3, 2))
        assert inside.due_provisional is False


# ---- history --------------------------------------------------------------------------------------------


def test_history_records_actor_comment_and_time(db: Database, world: World) -> None:
    before = dt.datetime.now(dt.UTC)
    with db.session() as s:
        ticket = _open(s, world, today=D(2026, 3, 2), comment="请审核")
        workflow.transition(s, actor=world["market_officer"], ticket=ticket, name="send", comment="已完善")
        workflow.comment(s, actor=world["reviewer"], ticket=ticket, text="请补充字段说明")
        workflow.transition(s, actor=world["reviewer"], ticket=ticket, name="back", comment="字段说明不全")
        ticket_id = ticket.id
    with db.session() as s:
        events = list(s.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.at)))
        assert [e.action for e in events] == ["open", "send", "comment", "back"]
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, "new"),
            ("new", "review"),
            ("review", "review"),
            ("review", "new"),
        ]
        assert [e.comment for e in events] == ["请审核", "已完善", "请补充字段说明", "字段说明不全"]
        assert events[0].actor_name == "市场监管数据专员"
        assert events[0].actor_org_name == "江西省市场监督管理局"
        assert events[3].actor_name == "省数据局审核员" and events[3].actor_org_name == "江西省数据局"
        assert events[3].actor_user_id == world["reviewer"].user_id
        assert events[1].action_label == "送审"
        assert all(before <= e.at <= dt.datetime.now(dt.UTC) for e in events)
        emitted = [
            e.payload
            for e in s.scalars(select(OutboxEvent).where(OutboxEvent.name == "ticket.transitioned"))
            if e.payload["ticket_id"] == ticket_id
        ]
        assert [p["transition"] for p in emitted] == ["send", "back"]


def test_get_and_visibility(db: Database, world: World) -> None:
    with db.session() as s:
        ticket = _open(s, world, today=D(2026, 3, 2), assignee="authority")
        assert workflow.get(s, ticket_id=ticket.id) is ticket
        with pytest.raises(NotFound) as exc:
            workflow.get(s, ticket_id="missing")
        assert exc.value.code == "workflow.ticket_not_found"
        assert workflow.get_visible(s, actor=world["reviewer"], ticket_id=ticket.id) is ticket  # assignee
        assert workflow.get_visible(s, actor=world["market_user"], ticket_id=ticket.id) is ticket  # requester
        assert workflow.get_visible(s, actor=world["admin"], ticket_id=ticket.id) is ticket
        with pytest.raises(NotFound):
            workflow.get_visible(s, actor=world["hrss_officer"], ticket_id=ticket.id)


# ---- to-do and overdue ----------------------------------------------------------------------------------


def _submitted(s: Any, world: World, officer: str, **overrides: Any) -> str:
    entry = catalog_service.create(s, actor=world[officer], entry_in=entry_in(**overrides))
    catalog_service.submit(s, actor=world[officer], entry_id=entry.id)
    return entry.id


def _todo_subjects(s: Any, world: World, who: str) -> set[str]:
    return {t.subject_id for t in workflow.todo(s, actor=world[who], kinds=[workflows.REVIEW])}


def test_todo_per_user(db: Database, world: World) -> None:
    with db.session() as s:
        provincial = _submitted(s, world, "market_officer")
        nanchang = _submitted(s, world, "nc_police_officer", name="人口户籍信息", class_code="101001")
        returned = _submitted(s, world, "market_officer", name="食品经营许可信息", class_code="204001")
        catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=returned, reason="摘要过于简单")
        hrss = _submitted(s, world, "hrss_officer", name="社保参保信息", class_code="203001")
        catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=hrss, reason="请补充信息项")

        # reviewers see submitted entries of the region their authority covers, and only those
        assert _todo_subjects(s, world, "reviewer") == {provincial}
        assert _todo_subjects(s, world, "nc_reviewer") == {nanchang}
        assert _todo_subjects(s, world, "jj_reviewer") == set()
        # officers see what was returned to their own organization
        assert _todo_subjects(s, world, "market_officer") == {returned}
        assert _todo_subjects(s, world, "hrss_officer") == {hrss}
        assert _todo_subjects(s, world, "nc_police_officer") == set()
        # a plain user handles no state; nobody without an organization has a to-do list
        assert _todo_subjects(s, world, "market_user") == set()
        assert workflow.todo(s, actor=SYSTEM_ACTOR) == []
        # the kinds filter
        assert workflow.todo(s, actor=world["reviewer"], kinds=["no_such_kind"]) == []


def test_todo_is_ordered_by_due_date(db: Database, world: World) -> None:
    with db.session() as s:
        late = _open(s, world, today=D(2026, 5, 11))
        early = _open(s, world, today=D(2026, 3, 2))
        no_due = _open(s, world, today=D(2026, 3, 2))
        workflow.transition(s, actor=world["market_officer"], ticket=no_due, name="park")
        mine = [t.id for t in workflow.todo(s, actor=world["market_officer"], kinds=[KIND])]
        assert mine == [early.id, late.id, no_due.id]


def test_overdue_query(db: Database, world: World) -> None:
    with db.session() as s:
        a = _open(s, world, today=D(2026, 3, 2))  # due 5 March
        b = _open(s, world, today=D(2026, 3, 9), assignee="hrss")  # due 12 March
        closed = _open(s, world, today=D(2026, 3, 2))
        workflow.transition(s, actor=world["market_officer"], ticket=closed, name="cancel")
        assert a.due_on == D(2026, 3, 5) and b.due_on == D(2026, 3, 12)

        def ids(**kw: Any) -> list[str]:
            return [t.id for t in workflow.overdue(s, kinds=[KIND], **kw)]

        assert ids(as_of=D(2026, 3, 5)) == []  # due today is not overdue yet
        assert ids(as_of=D(2026, 3, 6)) == [a.id]
        assert ids(as_of=D(2026, 3, 13)) == [a.id, b.id]
        assert ids(as_of=D(2026, 3, 13), org_id=world.orgs["hrss"]) == [b.id]
        assert workflow.overdue(s, as_of=D(2026, 3, 13), kinds=["other"]) == []


# ---- an official schedule for a provisional year ----------------------------------------------------------


def test_importing_an_official_schedule_recomputes_open_due_dates(
    db: Database, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    year = _first_provisional_year()
    start = D(year - 1, 12, 31)
    while not clock.is_working_day(start):
        start -= dt.timedelta(days=1)
    monkeypatch.setattr("zhengshu.workflow.service.local_today", lambda: start)
    with db.session() as s:
        entry_id = _submitted(s, world, "market_officer")
        unaffected = _open(s, world, today=D(year - 1, 3, 2))
        closed = _open(s, world, today=start)
        workflow.transition(s, actor=world["market_officer"], ticket=closed, name="cancel")
        unaffected_id, closed_id = unaffected.id, closed.id
    with db.session() as s:
        ticket = workflow.open_for_subject(s, kind=workflows.REVIEW, subject_type="catalog_entry", subject_id=entry_id)
        assert ticket is not None and ticket.due_provisional is True
        old_due = ticket.due_on
        assert old_due is not None and old_due.year == year
        ticket_id = ticket.id

    # The official notice: a long New Year holiday over the first working week, paid back on a Saturday.
    holidays = [D(year, 1, d) for d in range(1, 11) if D(year, 1, d).weekday() < 5 or d <= 3]
    saturday = next(D(year, 1, d) for d in range(12, 31) if D(year, 1, d).weekday() == 5)
    year_in = HolidayYearIn(
        year=year,
        source="国务院办公厅通知",
        days=[
            *[HolidayDayIn(date=d, kind="holiday", name="元旦") for d in holidays],
            HolidayDayIn(date=saturday, kind="workday", name="元旦"),
        ],
    )
    with db.session() as s:
        calendar_service.import_schedule(s, actor=world["admin"], year_in=year_in)
    assert process_pending(db.session_factory) >= 1

    with db.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        assert ticket.due_provisional is False
        assert ticket.due_on == clock.add_working_days(start, 5)
        assert ticket.due_on != old_due and ticket.due_on > old_due
        recomputed = [e for e in ticket.events if e.action == "due_recomputed"]
        assert len(recomputed) == 1
        assert recomputed[0].data == {"old_due_on": old_due.isoformat(), "new_due_on": ticket.due_on.isoformat()}
        assert recomputed[0].actor_name == "系统" and str(year) in recomputed[0].comment
        assert ticket.state == "submitted"
        for other in (unaffected_id, closed_id):
            t = s.get(Ticket, other)
            assert t is not None and not any(e.action == "due_recomputed" for e in t.events)

    # Processing again (or a second identical import) changes nothing further.
    with db.session() as s:
        assert workflow.recompute_due_dates(s, year=year, actor=SYSTEM_ACTOR) == 0
