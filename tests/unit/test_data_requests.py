"""Data requests (数据需求): every transition of the machine, the refused ones (wrong actor, wrong state),
limits over a holiday, redirection restarting the limit, escalation of overdue requests, the compile →
publish loop, provider suggestions from search, the whole-path timeline and the supervision figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.factories import World, entry_in, published_entry
from zhengshu.catalog import service as catalog_service
from zhengshu.core import clock
from zhengshu.core.db import Database
from zhengshu.core.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from zhengshu.core.events import process_pending
from zhengshu.core.timeutil import local_today
from zhengshu.demand import requests as request_service
from zhengshu.demand.request_schemas import DataRequestIn
from zhengshu.notify import service as notify_service
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.workflow import service as workflow


def need(**overrides: Any) -> DataRequestIn:
    data: dict[str, Any] = {
        "title": "企业法定代表人信息",
        "description": "社保参保登记需要核对企业的法定代表人",
        "items_text": "统一社会信用代码、企业名称、法定代表人",
        "purpose": "社会保险参保登记核验",
        "basis": "《社会保险法》第五十七条",
        "business_system": "社保业务经办系统",
        "urgency": "紧急",
    }
    data.update(overrides)
    return DataRequestIn.model_validate(data)


def submit(db: Database, world: World, *, provider: str | None = "market", today: dt.date | None = None) -> str:
    with db.session() as s:
        req = request_service.create(
            s,
            actor=world["hrss_officer"],
            request_in=need(provider_org_id=world.orgs[provider] if provider else None),
            today=today,
        )
        return req.id


def state_of(db: Database, world: World, request_id: str, who: str = "hrss_officer") -> Any:
    with db.session() as s:
        req = request_service.get(s, actor=world[who], request_id=request_id)
        ticket = request_service.ticket_of(s, req)
        assert ticket.state == req.state  # the request mirrors its ticket
        return req


def test_submission_goes_to_the_provider_with_a_limit_over_the_national_day(db: Database, world: World) -> None:
    request_id = submit(db, world, today=dt.date(2025, 9, 30))
    with db.session() as s:
        req = request_service.get(s, actor=world["market_officer"], request_id=request_id)
        ticket = request_service.ticket_of(s, req)
        assert (req.state, ticket.assignee_org_id, ticket.requester_org_id) == (
            "submitted",
            world.orgs["market"],
            world.orgs["hrss"],
        )
        # 10 working days after 30 Sep 2025: 1–8 Oct are off, Sat 11 Oct is a working day
        assert ticket.due_on == req.reply_due_on == dt.date(2025, 10, 21)
        assert req.authority_org_id == world.orgs["authority"] and req.urgency == "紧急"
        assert [t.id for t in workflow.todo(s, actor=world["market_officer"])] == [ticket.id]


def test_without_a_provider_the_data_authority_coordinates(db: Database, world: World) -> None:
    request_id = submit(db, world, provider=None)
    req = state_of(db, world, request_id, "reviewer")
    assert req.state == "coordination" and req.provider_org_id is None
    with db.session() as s:
        request_service.assign_provider(
            s, actor=world["reviewer"], request_id=request_id, provider_org_id=world.orgs["market"], comment="职责所在"
        )
    req = state_of(db, world, request_id, "market_officer")
    assert req.state == "submitted" and req.provider_org_id == world.orgs["market"]


@pytest.mark.parametrize(
    ("provider", "message"),
    [("hrss", "不能向本部门"), ("authority", "数据主管部门负责协调"), ("missing", "未找到该提供部门")],
)
def test_bad_provider_is_a_field_error_and_creates_nothing(
    db: Database, world: World, provider: str, message: str
) -> None:
    org_id = world.orgs.get(provider, "nope")
    with db.session() as s, pytest.raises(ValidationFailed) as exc:
        request_service.create(s, actor=world["hrss_officer"], request_in=need(provider_org_id=org_id))
    assert exc.value.errors[0].field == "provider_org_id" and message in exc.value.errors[0].message
    with db.session() as s:
        assert list(s.scalars(request_service.list_query(world["hrss_officer"]))) == []


def test_provider_links_a_published_entry(db: Database, world: World) -> None:
    entry_id = published_entry(db, world)
    request_id = submit(db, world)
    # neither the requester, a plain user of the provider nor a stranger may answer
    with db.session() as s:
        with pytest.raises(Forbidden):
            request_service.link_entry(s, actor=world["hrss_officer"], request_id=request_id, entry_id=entry_id)
        with pytest.raises(Forbidden):
            request_service.link_entry(s, actor=world["market_user"], request_id=request_id, entry_id=entry_id)
        with pytest.raises(NotFound):
            request_service.link_entry(s, actor=world["nc_police_officer"], request_id=request_id, entry_id=entry_id)
    with db.session() as s:
        request_service.link_entry(s, actor=world["market_officer"], request_id=request_id, entry_id=entry_id)
    req = state_of(db, world, request_id)
    assert (req.state, req.answer, req.entry_id) == ("fulfilled", "linked", entry_id)
    assert req.answered_on is not None and req.closed_on is not None
    # finished: nothing more can happen to it
    with db.session() as s, pytest.raises(InvalidTransition):
        request_service.withdraw(s, actor=world["hrss_officer"], request_id=request_id)


def test_linking_another_departments_entry_is_refused(db: Database, world: World) -> None:
    with db.session() as s:
        police = catalog_service.create(
            s, actor=world["nc_police_officer"], entry_in=entry_in(name="常住人口信息", class_code="101001")
        )
        police_id = police.id
    request_id = submit(db, world)
    with db.session() as s, pytest.raises(ValidationFailed) as exc:
        request_service.link_entry(s, actor=world["market_officer"], request_id=request_id, entry_id=police_id)
    assert exc.value.errors[0].field == "entry_id"
    assert state_of(db, world, request_id).state == "submitted"


def test_compiled_entry_fulfils_the_request_when_published(db: Database, world: World) -> None:
    request_id = submit(db, world)
    with db.session() as s:
        request_service.compile_entry(s, actor=world["market_officer"], request_id=request_id, comment="十日内编目")
    req = state_of(db, world, request_id)
    assert (req.state, req.answer) == ("compiling", "compiling")
    with db.session() as s:
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in())
        entry_id = entry.id
        request_service.link_entry(s, actor=world["market_officer"], request_id=request_id, entry_id=entry_id)
    req = state_of(db, world, request_id)
    assert (req.state, req.pending_entry_id, req.entry_id) == ("compiling", entry_id, None)
    with db.session() as s:
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry_id)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id)
    assert state_of(db, world, request_id).state == "compiling"  # the loop closes after commit
    process_pending(db.session_factory)
    req = state_of(db, world, request_id)
    assert (req.state, req.entry_id, req.pending_entry_id) == ("fulfilled", entry_id, None)
    with db.session() as s:
        last = request_service.ticket_of(s, req).events[-1]
        assert last.action == "catalogued" and last.actor_name == "系统"


def test_not_held_then_redirect_restarts_the_limit(db: Database, world: World) -> None:
    request_id = submit(db, world, today=dt.date(2025, 3, 3))
    with db.session() as s:
        with pytest.raises(ValidationFailed):
            request_service.answer_not_held(s, actor=world["market_officer"], request_id=request_id, reason=" ")
        request_service.answer_not_held(s, actor=world["market_officer"], request_id=request_id, reason="非本部门职责")
    req = state_of(db, world, request_id)
    assert (req.state, req.answer, req.answer_note) == ("not_held", "not_held", "非本部门职责")
    with db.session() as s:
        ticket = request_service.ticket_of(s, req)
        assert ticket.assignee_org_id == world.orgs["hrss"]  # back on the requester's to-do list
        with pytest.raises(Forbidden):  # the provider cannot redirect for the requester
            request_service.redirect(
                s, actor=world["market_officer"], request_id=request_id, provider_org_id=world.orgs["nc_police"]
            )
        with pytest.raises(ValidationFailed):  # the same provider again
            request_service.redirect(
                s, actor=world["hrss_officer"], request_id=request_id, provider_org_id=world.orgs["market"]
            )
    today = dt.date(2025, 4, 1)
    with db.session() as s:
        request_service.redirect(
            s,
            actor=world["hrss_officer"],
            request_id=request_id,
            provider_org_id=world.orgs["nc_police"],
            comment="改由公安提供",
            today=today,
        )
    req = state_of(db, world, request_id)
    assert (req.state, req.provider_org_id, req.redirects, req.answer) == (
        "submitted",
        world.orgs["nc_police"],
        1,
        None,
    )
    assert req.assigned_on == today and req.reply_due_on == clock.add_working_days(today, 10)
    # a city provider and a provincial requester: the province coordinates
    assert req.authority_org_id == world.orgs["authority"]
    with db.session() as s, pytest.raises(NotFound):  # the former provider no longer sees it
        request_service.get(s, actor=world["market_officer"], request_id=request_id)


def test_refusal_needs_a_legal_basis_and_can_be_appealed(db: Database, world: World) -> None:
    request_id = submit(db, world)
    with db.session() as s, pytest.raises(ValidationFailed) as exc:
        request_service.refuse(s, actor=world["market_officer"], request_id=request_id, legal_basis="")
    assert exc.value.errors[0].field == "legal_basis"
    with db.session() as s:
        request_service.refuse(
            s, actor=world["market_officer"], request_id=request_id, legal_basis="《个人信息保护法》第十三条"
        )
    req = state_of(db, world, request_id)
    assert (req.state, req.answer, req.legal_basis) == ("refused", "not_shareable", "《个人信息保护法》第十三条")
    with db.session() as s:
        with pytest.raises(Forbidden):
            request_service.ask_coordination(s, actor=world["market_officer"], request_id=request_id, reason="x")
        request_service.ask_coordination(s, actor=world["hrss_officer"], request_id=request_id, reason="依据不充分")
    req = state_of(db, world, request_id, "reviewer")
    assert req.state == "coordination"
    with db.session() as s:
        with pytest.raises(NotFound):  # another authority does not even see it
            request_service.close(s, actor=world["nc_reviewer"], request_id=request_id, comment="x")
        with pytest.raises(Forbidden):  # under coordination, only the authority decides
            request_service.close(s, actor=world["hrss_officer"], request_id=request_id, comment="x")
        with pytest.raises(ValidationFailed):  # a coordination decision needs its conclusion
            request_service.close(s, actor=world["reviewer"], request_id=request_id, comment="")
        request_service.close(s, actor=world["reviewer"], request_id=request_id, comment="维持不予共享的答复")
    assert state_of(db, world, request_id).state == "closed"


def test_requester_accepts_or_withdraws(db: Database, world: World) -> None:
    first = submit(db, world)
    with db.session() as s:
        request_service.answer_not_held(s, actor=world["market_officer"], request_id=first, reason="无")
        request_service.close(s, actor=world["hrss_officer"], request_id=first)
    assert state_of(db, world, first).state == "closed"
    second = submit(db, world)
    with db.session() as s:
        with pytest.raises(Forbidden):
            request_service.withdraw(s, actor=world["market_officer"], request_id=second)
        with pytest.raises(InvalidTransition):  # nothing to accept before an answer
            request_service.close(s, actor=world["hrss_officer"], request_id=second)
        request_service.withdraw(s, actor=world["hrss_officer"], request_id=second, reason="已通过其他渠道解决")
    assert state_of(db, world, second).state == "withdrawn"
    with db.session() as s, pytest.raises(InvalidTransition):
        request_service.compile_entry(s, actor=world["market_officer"], request_id=second)


def test_overdue_requests_escalate_to_the_data_authority(db: Database, world: World) -> None:
    late = submit(db, world, today=dt.date(2025, 3, 3))
    on_time = submit(db, world, today=dt.date(2025, 3, 14))
    due = clock.add_working_days(dt.date(2025, 3, 3), 10)
    with db.session() as s:
        assert request_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=due) == 0  # due today is not late
        assert request_service.escalate_overdue(s, actor=SYSTEM_ACTOR, today=due + dt.timedelta(days=1)) == 1
    req = state_of(db, world, late, "reviewer")
    assert req.state == "coordination" and req.escalated
    with db.session() as s:
        ticket = request_service.ticket_of(s, req)
        assert ticket.assignee_org_id == world.orgs["authority"]
        assert ticket.due_on == clock.add_working_days(due + dt.timedelta(days=1), 5)
    assert state_of(db, world, on_time).state == "submitted"
    with db.session() as s:  # the authority decides who must answer
        request_service.assign_provider(
            s, actor=world["reviewer"], request_id=late, provider_org_id=world.orgs["nc_police"]
        )
    assert state_of(db, world, late).state == "submitted"


def police_entry(db: Database, world: World, name: str, summary: str) -> str:
    with db.session() as s:
        entry = catalog_service.create(
            s,
            actor=world["nc_police_officer"],
            entry_in=entry_in(
                name=name,
                class_code="101001",
                summary=summary,
                tags=["人口"],
                items=[
                    {"name": "公民身份号码", "column_name": "sfzh", "data_type": "C", "length": 18},
                    {"name": "姓名", "column_name": "xm", "data_type": "C", "length": 50},
                ],
            ),
        )
        catalog_service.submit(s, actor=world["nc_police_officer"], entry_id=entry.id)
        catalog_service.approve(s, actor=world["nc_reviewer"], entry_id=entry.id)
        return entry.id


def test_suggested_providers_come_from_catalog_search(db: Database, world: World) -> None:
    market_entry = published_entry(db, world)
    published_entry(db, world, name="企业年报信息", summary="企业年度报告公示信息", tags=["企业", "年报"])
    police_entry(db, world, "常住人口信息", "南昌市常住人口户籍登记信息")
    process_pending(db.session_factory)  # the search index follows catalog events
    with db.session() as s:
        suggestions = request_service.suggest_providers(
            s, actor=world["hrss_officer"], text="需要企业登记信息中的法定代表人"
        )
        assert [x.org.id for x in suggestions][:1] == [world.orgs["market"]]
        top = suggestions[0]
        assert 0 < top.score <= 1 and top.matches >= 1
        assert market_entry in [e.id for e in top.entries]
        people = request_service.suggest_providers(s, actor=world["hrss_officer"], text="常住人口户籍")
        assert [x.org.id for x in people] == [world.orgs["nc_police"]]
        # one's own organization is never suggested
        own = request_service.suggest_providers(s, actor=world["market_officer"], text="企业登记信息")
        assert world.orgs["market"] not in [x.org.id for x in own]
        assert request_service.suggest_providers(s, actor=world["hrss_officer"], text="   ") == []


def test_timeline_joins_need_entry_application_and_authorization(db: Database, world: World) -> None:
    request_id = submit(db, world)
    with db.session() as s:
        request_service.compile_entry(s, actor=world["market_officer"], request_id=request_id)
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in())
        entry_id = entry.id
        request_service.link_entry(s, actor=world["market_officer"], request_id=request_id, entry_id=entry_id)
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry_id)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id)
    process_pending(db.session_factory)
    stages_expected = ["need", "entry"]
    try:
        from zhengshu.demand import applications
        from zhengshu.demand.schemas import ApplicationIn, DecisionIn
    except ImportError:  # the applications module is not built yet: the timeline degrades
        applications = None  # type: ignore[assignment]
    if applications is not None:
        with db.session() as s:
            version = catalog_service.display_version(s, catalog_service.get(s, actor=SYSTEM_ACTOR, entry_id=entry_id))
            keys = [i.key for i in version.items]
            app = applications.create(
                s,
                actor=world["hrss_officer"],
                application_in=ApplicationIn(
                    entry_id=entry_id,
                    item_keys=keys,
                    purpose="参保核验",
                    basis="《社会保险法》",
                    business_system="社保系统",
                    start_on=local_today(),  # the service's today is Beijing's
                    end_on=local_today() + dt.timedelta(days=365),
                    delivery_way="接口",
                    contact_name="张三",
                    contact_phone="0791-88888888",
                ),
            )
            app_id = app.id
            applications.comply(s, actor=world["reviewer"], application_id=app_id)
            applications.decide(
                s,
                actor=world["market_officer"],
                application_id=app_id,
                decision_in=DecisionIn(items=[{"item_key": k, "decision": "approve"} for k in keys]),
            )
        stages_expected += ["application", "authorization"]
    with db.session() as s:
        items = request_service.request_timeline(s, actor=world["hrss_officer"], request_id=request_id)
    stages = [i.stage for i in items]
    assert [st for st in dict.fromkeys(stages)] == stages_expected  # need → entry → application → authorization
    assert [i.at for i in items] == sorted(i.at for i in items)
    titles = [i.title for i in items]
    assert "数据需求：创建" in titles and "数据需求：目录已发布" in titles
    assert "目录「企业登记信息」审核通过并发布" in titles
    with db.session() as s, pytest.raises(NotFound):
        request_service.request_timeline(s, actor=world["nc_police_officer"], request_id=request_id)


def test_supervision_figures(db: Database, world: World) -> None:
    answered = submit(db, world, today=dt.date(2025, 3, 3))
    submit(db, world, today=dt.date(2025, 3, 4))  # never answered, now past its limit
    with db.session() as s:
        req = request_service.get(s, actor=world["market_officer"], request_id=answered)
        request_service.answer_not_held(s, actor=world["market_officer"], request_id=answered, reason="无")
        req.answered_on = dt.date(2025, 3, 6)  # answered three working days after it arrived
    with db.session() as s:
        rows = request_service.stats(s, actor=world["reviewer"], today=dt.date(2025, 6, 1))
        counts = request_service.counts_by_state(s, actor=world["reviewer"])
    assert counts == {"not_held": 1, "submitted": 1}
    [row] = rows
    assert (row.provider_org_id, row.month, row.total) == (world.orgs["market"], "2025-03", 2)
    assert row.by_state == {"not_held": 1, "submitted": 1}
    assert (row.answered, row.answered_on_time, row.on_time_rate) == (1, 1, 0.5)
    assert row.avg_handling_days == 3
    with db.session() as s:  # another department's figures are not the stranger's business
        assert request_service.stats(s, actor=world["nc_police_officer"]) == []


def test_the_provider_gets_a_notification(db: Database, world: World) -> None:
    request_id = submit(db, world)
    process_pending(db.session_factory)
    with db.session() as s:
        [n] = list(s.scalars(notify_service.list_query(world["market_officer"])))
        assert n.title == "新的待办：数据需求：企业法定代表人信息" and n.link == f"/requests/{request_id}"
        request_service.answer_not_held(s, actor=world["market_officer"], request_id=request_id, reason="非本部门职责")
    process_pending(db.session_factory)
    with db.session() as s:
        [n] = list(s.scalars(notify_service.list_query(world["hrss_officer"])))
        assert n.title == "答复：无此数据：数据需求：企业法定代表人信息" and "非本部门职责" in n.body
