"""Data applications (共享申请): the state machine with every allowed and refused move, time limits over the
National Day holiday, rule grants, item-by-item decisions, supplement, appeal, coordination, escalation of
overdue reviews, bad input that changes nothing, list scopes and the supervision figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import World, published_entry
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry
from zhengshu.core import clock
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent
from zhengshu.demand import applications, authorizations, workflows
from zhengshu.demand.models import Authorization, DataApplication
from zhengshu.demand.schemas import ApplicationIn, DecisionIn
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.workflow.machine import get_machine
from zhengshu.workflow.models import Ticket

D = dt.date
DAY = D(2026, 9, 29)  # a Tuesday; National Day and Mid-Autumn 2026 are 1–7 October
NOT_SHARED_BASIS = "《中华人民共和国居民身份证法》第十九条"

ITEMS = [
    {
        "name": "统一社会信用代码",
        "column_name": "tyshxydm",
        "data_type": "C",
        "length": 18,
        "sharing_type": "无条件共享",
    },
    {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200, "sharing_type": "无条件共享"},
    {"name": "法定代表人", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般3"},
    {"name": "联系电话", "column_name": "lxdh", "data_type": "C", "length": 20, "sensitivity": "一般4"},
    {"name": "注册资本", "column_name": "zczb", "data_type": "N", "length": 20},
    {
        "name": "法定代表人身份证号",
        "column_name": "fddbrsfzh",
        "data_type": "C",
        "length": 18,
        "sharing_type": "不予共享",
        "sensitivity": "重要",
    },
]


# ---- helpers (also used by the authorization and API tests) -------------------------------------------------


def make_entry(db: Database, world: World, **overrides: Any) -> str:
    """A published, conditionally shared entry of 省市场监管局 with two unconditional items, three conditional
    ones and one not shared."""
    data: dict[str, Any] = {"items": ITEMS, "not_shared_basis": NOT_SHARED_BASIS}
    data.update(overrides)
    return published_entry(db, world, **data)


def keys_of(db: Database, entry_id: str) -> dict[str, str]:
    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None
        return {i.name: i.key for i in catalog_service.display_version(s, entry).items}


def app_in(entry_id: str, keys: list[str], **overrides: Any) -> ApplicationIn:
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "item_keys": keys,
        "purpose": "办理企业职工社会保险登记时核验企业身份",
        "basis": "《社会保险法》第五十七条；本厅“三定”方案规定的社会保险登记职责",
        "business_system": "江西省社会保险信息系统",
        "start_on": D(2026, 10, 8),
        "end_on": D(2027, 10, 7),
        "delivery_way": "接口",
        "contact_name": "王晓",
        "contact_phone": "0791-88888888",
    }
    data.update(overrides)
    return ApplicationIn.model_validate(data)


def submit(
    db: Database,
    world: World,
    entry_id: str,
    names: list[str],
    *,
    who: str = "hrss_officer",
    today: dt.date = DAY,
    **overrides: Any,
) -> str:
    keys = keys_of(db, entry_id)
    with db.session() as s:
        app = applications.create(
            s, actor=world[who], application_in=app_in(entry_id, [keys[n] for n in names], **overrides), today=today
        )
        return app.id


def create_as(db: Database, world: World, who: str, application_in: ApplicationIn, today: dt.date = DAY) -> str:
    with db.session() as s:
        return applications.create(s, actor=world[who], application_in=application_in, today=today).id


def decision(db: Database, app_id: str, choices: dict[str, str | tuple[str, str]], **kw: Any) -> DecisionIn:
    """``choices``: item name → "approve" | ("refuse", reason) | ("approve", masking rule)."""
    with db.session() as s:
        app = s.get(DataApplication, app_id)
        assert app is not None
        by_name = {i.name: i.item_key for i in app.items}
    items = []
    for name, choice in choices.items():
        if isinstance(choice, tuple):
            verb, extra = choice
            item = {"item_key": by_name[name], "decision": verb}
            item["reason" if verb == "refuse" else "masking_rule"] = extra
        else:
            item = {"item_key": by_name[name], "decision": choice}
        items.append(item)
    return DecisionIn.model_validate({"items": items, **kw})


def load(db: Database, app_id: str) -> tuple[DataApplication, Ticket]:
    with db.session() as s:
        app = s.get(DataApplication, app_id)
        assert app is not None
        ticket = s.get(Ticket, app.ticket_id)
        assert ticket is not None
        app.items, ticket.events  # load while the session is open  # noqa: B018
        return app, ticket


def act(db: Database, fn: Callable[..., Any], world: World, who: str, app_id: str, **kw: Any) -> Any:
    with db.session() as s:
        return fn(s, actor=world[who], application_id=app_id, **kw)


def count(db: Database, model: Any) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def assert_valid_path(ticket: Ticket) -> None:
    """Every event of the ticket's history is a legal move of its machine, one after the other."""
    machine = get_machine(ticket.kind)
    state = None
    for ev in ticket.events:
        if ev.action == "open":
            assert ev.to_state == machine.initial
        elif ev.action not in ("comment", "due_recomputed"):
            assert ev.from_state == state, (ev.action, ev.from_state, state)
            assert machine.can(ev.action, ev.from_state), (ev.action, ev.from_state)
            assert machine.transitions[ev.action].target == ev.to_state
        state = ev.to_state
    assert state == ticket.state


@pytest.fixture
def entry_id(db: Database, world: World) -> str:
    return make_entry(db, world)


COND = ["法定代表人", "联系电话", "注册资本"]


# ---- submission and limits ---------------------------------------------------------------------------------


def test_submission_opens_a_compliance_review_due_after_the_national_day_holiday(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = submit(db, world, entry_id, ["统一社会信用代码", "法定代表人"])
    app, ticket = load(db, app_id)
    assert app.state == ticket.state == "compliance"
    assert ticket.assignee_org_id == world.orgs["authority"] == app.authority_org_id
    assert ticket.requester_org_id == world.orgs["hrss"] == app.consumer_org_id
    assert app.provider_org_id == world.orgs["market"]
    # 2 working days from Tuesday 29 September: Wednesday the 30th, then the first day after 1–7 October
    assert ticket.due_on == D(2026, 10, 8)
    assert all(not clock.is_working_day(D(2026, 10, d)) for d in range(1, 8))
    assert [i.status for i in app.items] == ["pending", "pending"]
    assert [i.sharing_type for i in app.items] == ["无条件共享", "有条件共享"]
    with db.session() as s:
        assert s.scalar(select(func.count()).where(OutboxEvent.name == "application.submitted")) == 1


def test_reviewer_of_the_data_authority_sees_it_in_the_to_do_list(db: Database, world: World, entry_id: str) -> None:
    from zhengshu.workflow import service as workflow

    app_id = submit(db, world, entry_id, ["法定代表人"])
    with db.session() as s:
        assert [t.subject_id for t in workflow.todo(s, actor=world["reviewer"])] == [app_id]
        assert workflow.todo(s, actor=world["market_officer"]) == []
        assert workflow.todo(s, actor=world["nc_reviewer"]) == []
        link = get_machine(workflows.APPLICATION).link
        assert link is not None and link(workflows.SUBJECT, app_id) == f"/applications/{app_id}"


# ---- compliance and rule grants -----------------------------------------------------------------------------


def test_compliance_grants_unconditional_items_by_rule_and_sends_the_rest_to_the_provider(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = submit(db, world, entry_id, ["统一社会信用代码", "企业名称", "法定代表人", "联系电话"])
    act(db, applications.comply, world, "reviewer", app_id, comment="用途与职责相符", today=D(2026, 9, 30))
    app, ticket = load(db, app_id)
    assert app.state == "provider_review" and ticket.assignee_org_id == world.orgs["market"]
    assert ticket.due_on == clock.add_working_days(D(2026, 9, 30), 5) == D(2026, 10, 13)
    statuses = {i.name: i.status for i in app.items}
    assert statuses == {
        "统一社会信用代码": "granted",
        "企业名称": "granted",
        "法定代表人": "pending",
        "联系电话": "pending",
    }
    labels = [e.action_label for e in ticket.events]
    assert labels == ["创建", "合规审查通过", "规则自动授权"]
    assert_valid_path(ticket)
    keys = keys_of(db, entry_id)
    with db.session() as s:
        auths = authorizations.for_application(s, application_id=app_id)
        assert len(auths) == 1 and auths[0].grant_basis == "rule"
        assert {i.item_key for i in auths[0].items} == {keys["统一社会信用代码"], keys["企业名称"]}
        on = D(2026, 10, 8)
        ok = authorizations.is_authorized
        hrss = world.orgs["hrss"]
        assert ok(s, consumer_org_id=hrss, entry_id=entry_id, item_keys=[keys["企业名称"]], on=on)
        assert not ok(
            s, consumer_org_id=hrss, entry_id=entry_id, item_keys=[keys["企业名称"], keys["法定代表人"]], on=on
        )
        # not before the period of use starts
        assert not ok(s, consumer_org_id=hrss, entry_id=entry_id, item_keys=[keys["企业名称"]], on=D(2026, 10, 7))


def test_an_application_for_unconditional_items_only_is_approved_at_compliance(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = submit(db, world, entry_id, ["统一社会信用代码", "企业名称"])
    act(db, applications.comply, world, "reviewer", app_id, today=D(2026, 9, 30))
    app, ticket = load(db, app_id)
    assert app.state == "approved" and ticket.closed_at is not None
    assert app.outcome == "all" and app.decided_on == D(2026, 9, 30)
    assert ticket.events[-1].action_label == "规则自动授权"
    assert_valid_path(ticket)


def test_compliance_rejection_needs_a_reason_and_closes_the_application(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = submit(db, world, entry_id, ["法定代表人"])
    with pytest.raises(ValidationFailed) as exc:
        act(db, applications.reject, world, "reviewer", app_id, reason="  ")
    assert exc.value.errors[0].field == "reason"
    assert load(db, app_id)[0].state == "compliance"
    act(db, applications.reject, world, "reviewer", app_id, reason="申请用途超出职责范围", today=DAY)
    app, ticket = load(db, app_id)
    assert app.state == "rejected" and app.outcome == "none" and ticket.closed_at is not None
    assert app.items[0].status == "refused" and app.items[0].reason == "申请用途超出职责范围"
    with pytest.raises(Conflict):
        act(db, applications.withdraw, world, "hrss_officer", app_id)
    assert count(db, Authorization) == 0


# ---- provider review ----------------------------------------------------------------------------------------


def _to_provider(db: Database, world: World, entry_id: str, names: list[str]) -> str:
    app_id = submit(db, world, entry_id, names)
    act(db, applications.comply, world, "reviewer", app_id, today=D(2026, 9, 30))
    return app_id


def test_partial_approval_creates_an_authorization_for_exactly_the_approved_items(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = _to_provider(db, world, entry_id, COND)
    d = decision(
        db,
        app_id,
        {"法定代表人": ("approve", "name_first"), "联系电话": "approve", "注册资本": ("refuse", "涉及企业经营秘密")},
    )
    act(db, applications.decide, world, "market_officer", app_id, decision_in=d, today=D(2026, 10, 9))
    app, ticket = load(db, app_id)
    assert app.state == "decided" and app.outcome == "partial"
    assert app.decided_on == D(2026, 10, 9)
    assert app.appeal_until == clock.add_working_days(D(2026, 10, 9), workflows.appeal_days())
    assert ticket.assignee_org_id == world.orgs["hrss"]
    assert "注册资本（涉及企业经营秘密）" in ticket.events[-1].comment
    with db.session() as s:  # the applicant's turn: appeal or accept
        from zhengshu.workflow import service as workflow

        assert [t.id for t in workflow.todo(s, actor=world["hrss_officer"])] == [ticket.id]
    keys = keys_of(db, entry_id)
    with db.session() as s:
        [auth] = authorizations.for_application(s, application_id=app_id)
        assert auth.grant_basis == "provider" and auth.status == "active"
        assert {i.item_key: i.masking_rule for i in auth.items} == {
            keys["法定代表人"]: "name_first",  # the provider's override
            keys["联系电话"]: "mobile_3_4",  # the default for a telephone number
        }
        assert (auth.consumer_org_id, auth.consumer_system, auth.delivery_way) == (
            world.orgs["hrss"],
            "江西省社会保险信息系统",
            "接口",
        )
        assert (auth.start_on, auth.end_on) == (D(2026, 10, 8), D(2027, 10, 7))
        on = D(2026, 10, 12)
        hrss = world.orgs["hrss"]
        assert authorizations.is_authorized(
            s, consumer_org_id=hrss, entry_id=entry_id, item_keys=[keys["法定代表人"], keys["联系电话"]], on=on
        )
        assert not authorizations.is_authorized(
            s, consumer_org_id=hrss, entry_id=entry_id, item_keys=[keys["注册资本"]], on=on
        )
    assert_valid_path(ticket)


def test_approving_every_item_finishes_the_application(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["企业名称", "法定代表人"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"法定代表人": "approve"}),
        today=D(2026, 10, 9),
    )
    app, ticket = load(db, app_id)
    assert app.state == "approved" and app.outcome == "all" and ticket.closed_at is not None
    with db.session() as s:
        assert len(authorizations.for_application(s, application_id=app_id)) == 2  # rule + provider


@pytest.mark.parametrize(
    ("choices", "field"),
    [
        ({"法定代表人": "approve", "联系电话": "approve", "注册资本": ("refuse", " ")}, "items[2].reason"),
        ({"法定代表人": "approve", "联系电话": "approve"}, "items"),
        ({"法定代表人": ("approve", "rot13"), "联系电话": "approve", "注册资本": "approve"}, "items[0].masking_rule"),
    ],
    ids=["refusal-without-reason", "item-left-undecided", "unknown-masking-rule"],
)
def test_bad_decisions_change_nothing(
    db: Database, world: World, entry_id: str, choices: dict[str, Any], field: str
) -> None:
    app_id = _to_provider(db, world, entry_id, COND)
    with pytest.raises(ValidationFailed) as exc:
        act(db, applications.decide, world, "market_officer", app_id, decision_in=decision(db, app_id, choices))
    assert field in [e.field for e in exc.value.errors]
    app, _ = load(db, app_id)
    assert app.state == "provider_review" and all(i.status == "pending" for i in app.items)
    assert count(db, Authorization) == 0


def test_decision_on_an_item_of_another_application_is_refused(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人"])
    keys = keys_of(db, entry_id)
    d = DecisionIn.model_validate(
        {
            "items": [
                {"item_key": keys["法定代表人"], "decision": "approve"},
                {"item_key": keys["注册资本"], "decision": "approve"},
            ]
        }
    )
    with pytest.raises(ValidationFailed) as exc:
        act(db, applications.decide, world, "market_officer", app_id, decision_in=d)
    assert exc.value.errors[0].field == "items[1].item_key"


# ---- supplement ---------------------------------------------------------------------------------------------


def test_supplement_round_trip_pauses_the_clock(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人"])
    act(
        db,
        applications.request_supplement,
        world,
        "market_officer",
        app_id,
        reason="请提供职责依据文件",
        today=D(2026, 10, 9),
    )
    app, ticket = load(db, app_id)
    assert app.state == "supplement" and ticket.assignee_org_id == world.orgs["hrss"]
    assert ticket.due_on == clock.add_working_days(D(2026, 10, 9), workflows.supplement_days())
    assert app.supplement_request == "请提供职责依据文件"
    with pytest.raises(Forbidden):
        act(db, applications.supplement, world, "market_officer", app_id, material="x")
    act(
        db,
        applications.supplement,
        world,
        "hrss_officer",
        app_id,
        material="已上传三定方案第三条",
        today=D(2026, 10, 14),
    )
    app, ticket = load(db, app_id)
    assert app.state == "provider_review" and ticket.assignee_org_id == world.orgs["market"]
    assert ticket.due_on == clock.add_working_days(D(2026, 10, 14), 5)
    # Saturday 10 October 2026 is a swapped working day: 10, 12, 13 and 14 October
    assert app.paused_days == clock.working_days_between(D(2026, 10, 9), D(2026, 10, 14)) == 4
    assert [e.action for e in ticket.events][-2:] == ["request_supplement", "supplement"]
    assert_valid_path(ticket)


def test_an_application_not_supplemented_in_time_lapses_and_refuses_further_actions(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人"])
    act(db, applications.request_supplement, world, "market_officer", app_id, reason="请补充依据", today=D(2026, 10, 9))
    due = load(db, app_id)[1].due_on
    assert due is not None
    with db.session() as s:
        assert applications.close_lapsed(s, actor=SYSTEM_ACTOR, today=due) == 0
    with pytest.raises(Conflict) as late:
        act(
            db,
            applications.supplement,
            world,
            "hrss_officer",
            app_id,
            material="迟到的材料",
            today=due + dt.timedelta(days=1),
        )
    assert late.value.code == "application.supplement_expired"
    with db.session() as s:
        assert applications.close_lapsed(s, actor=SYSTEM_ACTOR, today=due + dt.timedelta(days=1)) == 1
    app, ticket = load(db, app_id)
    assert app.state == "expired" and ticket.closed_at is not None
    assert app.items[0].status == "withdrawn"
    for fn, who, kw in [
        (applications.supplement, "hrss_officer", {"material": "材料"}),
        (applications.withdraw, "hrss_officer", {}),
        (applications.decide, "market_officer", {"decision_in": decision(db, app_id, {"法定代表人": "approve"})}),
    ]:
        with pytest.raises(Conflict) as exc:
            act(db, fn, world, who, app_id, **kw)
        assert exc.value.code == "application.closed"
    assert_valid_path(ticket)


# ---- withdrawal ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["compliance", "provider_review", "supplement"])
def test_the_applicant_can_withdraw_before_the_decision(db: Database, world: World, entry_id: str, stage: str) -> None:
    app_id = submit(db, world, entry_id, ["法定代表人"])
    if stage != "compliance":
        act(db, applications.comply, world, "reviewer", app_id, today=DAY)
    if stage == "supplement":
        act(db, applications.request_supplement, world, "market_officer", app_id, reason="请补充", today=DAY)
    assert load(db, app_id)[0].state == stage
    with pytest.raises(Forbidden):
        act(db, applications.withdraw, world, "market_officer", app_id)
    act(db, applications.withdraw, world, "hrss_officer", app_id, reason="业务调整，不再需要", today=DAY)
    app, ticket = load(db, app_id)
    assert app.state == "withdrawn" and ticket.closed_at is not None
    assert app.items[0].status == "withdrawn"
    assert_valid_path(ticket)


def test_withdrawal_after_the_decision_is_refused(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"法定代表人": ("refuse", "无法定职责依据")}),
        today=D(2026, 10, 9),
    )
    assert load(db, app_id)[0].state == "decided"
    with pytest.raises(InvalidTransition):
        act(db, applications.withdraw, world, "hrss_officer", app_id)


# ---- appeal and coordination --------------------------------------------------------------------------------


def test_appeal_of_a_refusal_goes_to_the_data_authority_which_decides_for_the_provider(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人", "注册资本"])
    refuse = {"法定代表人": "approve", "注册资本": ("refuse", "涉及企业经营秘密")}
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, refuse),
        today=D(2026, 10, 9),
    )
    with pytest.raises(ValidationFailed):
        act(db, applications.appeal, world, "hrss_officer", app_id, reason="")
    with pytest.raises(Forbidden):
        act(db, applications.appeal, world, "market_officer", app_id, reason="x")
    act(
        db,
        applications.appeal,
        world,
        "hrss_officer",
        app_id,
        reason="注册资本为核定缴费基数所必需",
        today=D(2026, 10, 12),
    )
    app, ticket = load(db, app_id)
    assert app.state == "coordination" and ticket.assignee_org_id == world.orgs["authority"]
    assert ticket.due_on == clock.add_working_days(D(2026, 10, 12), 5)
    # the provider may no longer decide; another city's reviewer cannot even see it
    with pytest.raises(Conflict):
        act(
            db,
            applications.decide,
            world,
            "market_officer",
            app_id,
            decision_in=decision(db, app_id, {"注册资本": "approve"}),
        )
    with pytest.raises(NotFound):
        act(
            db,
            applications.coordinate,
            world,
            "jj_reviewer",
            app_id,
            decision_in=decision(db, app_id, {"注册资本": "approve"}),
        )
    # an appeal cannot be withdrawn like an application
    with pytest.raises(Conflict):
        act(db, applications.withdraw, world, "hrss_officer", app_id)
    act(
        db,
        applications.coordinate,
        world,
        "reviewer",
        app_id,
        decision_in=decision(db, app_id, {"注册资本": "approve"}),
        today=D(2026, 10, 13),
    )
    app, ticket = load(db, app_id)
    assert app.state == "approved" and app.outcome == "all"
    assert app.decided_on == D(2026, 10, 9)  # handling ended with the first answer on every item
    with db.session() as s:
        auths = authorizations.for_application(s, application_id=app_id)
        assert [a.grant_basis for a in auths] == ["provider", "coordination"]
        assert [len(a.items) for a in auths] == [1, 1]
    assert_valid_path(ticket)


def test_coordination_that_upholds_the_refusal_closes_the_application(
    db: Database, world: World, entry_id: str
) -> None:
    app_id = _to_provider(db, world, entry_id, ["注册资本"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"注册资本": ("refuse", "涉密")}),
        today=D(2026, 10, 9),
    )
    assert load(db, app_id)[0].outcome == "none"
    act(db, applications.appeal, world, "hrss_officer", app_id, reason="请协调", today=D(2026, 10, 9))
    act(
        db,
        applications.coordinate,
        world,
        "reviewer",
        app_id,
        decision_in=decision(db, app_id, {"注册资本": ("refuse", "经协调，维持不予共享")}),
        today=D(2026, 10, 10),
    )
    app, ticket = load(db, app_id)
    assert app.state == "closed" and app.outcome == "none" and ticket.closed_at is not None
    assert app.items[0].reason == "经协调，维持不予共享"
    assert count(db, Authorization) == 0


def test_coordination_can_send_the_application_back_to_the_provider(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["注册资本"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"注册资本": ("refuse", "涉密")}),
        today=D(2026, 10, 9),
    )
    act(db, applications.appeal, world, "hrss_officer", app_id, reason="请协调", today=D(2026, 10, 9))
    act(
        db,
        applications.remand,
        world,
        "reviewer",
        app_id,
        reason="请提供方说明涉密依据后重新审核",
        today=D(2026, 10, 12),
    )
    app, ticket = load(db, app_id)
    assert app.state == "provider_review" and ticket.assignee_org_id == world.orgs["market"]
    assert app.items[0].status == "pending" and app.outcome is None
    assert_valid_path(ticket)


def test_accepting_the_answer_or_letting_the_appeal_window_pass_closes_it(
    db: Database, world: World, entry_id: str
) -> None:
    first = _to_provider(db, world, entry_id, ["注册资本"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        first,
        decision_in=decision(db, first, {"注册资本": ("refuse", "涉密")}),
        today=D(2026, 10, 9),
    )
    act(db, applications.accept, world, "hrss_officer", first, comment="接受", today=D(2026, 10, 9))
    assert load(db, first)[0].state == "closed"

    second = _to_provider(db, world, entry_id, ["联系电话"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        second,
        decision_in=decision(db, second, {"联系电话": ("refuse", "个人信息")}),
        today=D(2026, 10, 9),
    )
    until = load(db, second)[0].appeal_until
    assert until is not None
    with pytest.raises(Conflict) as exc:
        act(db, applications.appeal, world, "hrss_officer", second, reason="迟到", today=until + dt.timedelta(days=1))
    assert exc.value.code == "application.appeal_expired"
    with db.session() as s:
        assert applications.close_lapsed(s, actor=SYSTEM_ACTOR, today=until) == 0
        assert applications.close_lapsed(s, actor=SYSTEM_ACTOR, today=until + dt.timedelta(days=1)) == 1
    app, ticket = load(db, second)
    assert app.state == "closed" and ticket.events[-1].action == "close"
    assert_valid_path(ticket)


# ---- escalation ---------------------------------------------------------------------------------------------


def test_an_overdue_provider_review_escalates_to_the_data_authority(db: Database, world: World, entry_id: str) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人", "注册资本"])
    due = load(db, app_id)[1].due_on
    assert due == D(2026, 10, 13)
    with db.session() as s:
        assert applications.escalate_overdue(s, actor=SYSTEM_ACTOR, today=due) == 0
    with db.session() as s:
        assert applications.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 14)) == 1
    app, ticket = load(db, app_id)
    assert app.state == "coordination" and app.escalated and ticket.assignee_org_id == world.orgs["authority"]
    assert ticket.events[-1].action == "escalate" and ticket.events[-1].actor_name == "系统"
    assert "2026-10-13" in ticket.events[-1].comment
    with db.session() as s:  # a second run finds nothing more to do
        assert applications.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 15)) == 0
    # before any decision the applicant may still withdraw; here the authority decides instead
    act(
        db,
        applications.coordinate,
        world,
        "reviewer",
        app_id,
        decision_in=decision(db, app_id, {"法定代表人": "approve", "注册资本": ("refuse", "无职责依据")}),
        today=D(2026, 10, 15),
    )
    app, ticket = load(db, app_id)
    assert app.state == "closed" and app.outcome == "partial"
    with db.session() as s:
        [auth] = authorizations.for_application(s, application_id=app_id)
        assert auth.grant_basis == "coordination" and [i.name for i in auth.items] == ["法定代表人"]
    assert_valid_path(ticket)


# ---- who may act --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("market_officer", Forbidden),  # the provider does not do compliance review
        ("hrss_officer", Forbidden),  # nor does the applicant
        ("market_user", Forbidden),
        ("nc_reviewer", NotFound),  # another authority: the application is invisible
        ("jj_reviewer", NotFound),
    ],
)
def test_only_the_data_authority_covering_the_provider_reviews_compliance(
    db: Database, world: World, entry_id: str, who: str, error: type[Exception]
) -> None:
    app_id = submit(db, world, entry_id, ["法定代表人"])
    with pytest.raises(error):
        act(db, applications.comply, world, who, app_id)
    assert load(db, app_id)[0].state == "compliance"
    act(db, applications.comply, world, "admin", app_id, today=DAY)  # administrators may act for anyone
    assert load(db, app_id)[0].state == "provider_review"


@pytest.mark.parametrize(
    ("who", "error"),
    [("market_user", Forbidden), ("reviewer", Forbidden), ("hrss_officer", Forbidden), ("nc_police_officer", NotFound)],
)
def test_only_the_providers_officer_decides(
    db: Database, world: World, entry_id: str, who: str, error: type[Exception]
) -> None:
    app_id = _to_provider(db, world, entry_id, ["法定代表人"])
    with pytest.raises(error):
        act(db, applications.decide, world, who, app_id, decision_in=decision(db, app_id, {"法定代表人": "approve"}))
    assert load(db, app_id)[0].state == "provider_review"


def test_moves_in_the_wrong_state_are_refused(db: Database, world: World, entry_id: str) -> None:
    app_id = submit(db, world, entry_id, ["法定代表人"])
    d = decision(db, app_id, {"法定代表人": "approve"})
    with pytest.raises(Conflict):
        act(db, applications.decide, world, "market_officer", app_id, decision_in=d)
    with pytest.raises(InvalidTransition):
        act(db, applications.appeal, world, "hrss_officer", app_id, reason="x")
    with pytest.raises(InvalidTransition):
        act(db, applications.supplement, world, "hrss_officer", app_id, material="x")
    with pytest.raises(Conflict):
        act(db, applications.coordinate, world, "reviewer", app_id, decision_in=d)
    act(db, applications.comply, world, "reviewer", app_id, today=DAY)
    with pytest.raises(InvalidTransition):
        act(db, applications.comply, world, "reviewer", app_id)
    _, ticket = load(db, app_id)
    assert [e.action for e in ticket.events] == ["open", "comply"]


# ---- bad input changes nothing ------------------------------------------------------------------------------


def _refused(db: Database, world: World, fn: Callable[[], Any]) -> ValidationFailed:
    before = (count(db, DataApplication), count(db, Ticket), count(db, OutboxEvent))
    with pytest.raises(ValidationFailed) as exc:
        fn()
    assert (count(db, DataApplication), count(db, Ticket), count(db, OutboxEvent)) == before
    return exc.value


def test_a_not_shared_item_cannot_be_applied_for_and_the_error_gives_the_legal_basis(
    db: Database, world: World, entry_id: str
) -> None:
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["企业名称", "法定代表人身份证号"]))
    assert err.code == "application.invalid"
    [e] = err.errors
    assert e.field == "item_keys" and "法定代表人身份证号" in e.message and NOT_SHARED_BASIS in e.message


def test_an_entry_not_shared_at_all_cannot_be_applied_for(db: Database, world: World) -> None:
    entry = published_entry(
        db,
        world,
        name="企业年报信息",
        sharing_type="不予共享",
        sharing_condition="",
        not_shared_basis="《企业信息公示暂行条例》",
    )
    err = _refused(db, world, lambda: submit(db, world, entry, ["企业名称"]))
    assert "不予共享" in err.errors[0].message and "企业信息公示暂行条例" in err.errors[0].message


def test_another_departments_draft_looks_like_a_missing_entry(db: Database, world: World) -> None:
    from tests.factories import entry_in

    with db.session() as s:
        draft = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in(name="草稿目录"))
        draft_id = draft.id
        key = draft.versions[0].items[0].key
    for target in (draft_id, "0" * 24):
        err = _refused(db, world, lambda t=target: create_as(db, world, "hrss_officer", app_in(t, [key])))  # type: ignore[misc]
        assert [e.field for e in err.errors] == ["entry_id"]
        assert "尚未发布" in err.errors[0].message


def test_an_entry_under_review_or_withdrawn_cannot_be_applied_for(db: Database, world: World, entry_id: str) -> None:
    keys = keys_of(db, entry_id)
    with db.session() as s:
        catalog_service.withdraw(s, actor=world["reviewer"], entry_id=entry_id, reason="数据源停用")
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["企业名称"]))
    assert err.errors[0].field == "entry_id"
    assert keys  # the items existed; the entry's status is what refuses


def test_applying_for_ones_own_entry_is_refused(db: Database, world: World, entry_id: str) -> None:
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["法定代表人"], who="market_user"))
    assert "本部门" in err.errors[0].message


def test_a_duplicate_pending_application_for_the_same_items_is_refused(
    db: Database, world: World, entry_id: str
) -> None:
    submit(db, world, entry_id, ["法定代表人", "注册资本"])
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["注册资本"], business_system="另一系统"))
    assert "注册资本" in err.errors[0].message and "办理中" in err.errors[0].message
    # another department may apply for the same items
    submit(db, world, entry_id, ["注册资本"], who="nc_police_officer")


def test_items_already_authorized_to_the_same_system_are_refused(db: Database, world: World, entry_id: str) -> None:
    app_id = submit(db, world, entry_id, ["企业名称"])
    act(db, applications.comply, world, "reviewer", app_id, today=DAY)
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["企业名称"], today=DAY))
    assert "已授权" in err.errors[0].message and "续期" in err.errors[0].message
    submit(db, world, entry_id, ["企业名称"], business_system="就业创业服务系统")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start_on": D(2026, 9, 28)}, "start_on"),
        ({"end_on": D(2026, 10, 8)}, "end_on"),
        ({"end_on": D(2030, 1, 1)}, "end_on"),
        ({"contact_phone": "call me maybe"}, "contact_phone"),
        ({"purpose": "   "}, "purpose"),
    ],
)
def test_bad_periods_and_contacts_are_refused(
    db: Database, world: World, entry_id: str, overrides: dict[str, Any], field: str
) -> None:
    err = _refused(db, world, lambda: submit(db, world, entry_id, ["法定代表人"], **overrides))
    assert field in [e.field for e in err.errors]


def test_an_unknown_item_key_is_refused(db: Database, world: World, entry_id: str) -> None:
    err = _refused(db, world, lambda: create_as(db, world, "hrss_officer", app_in(entry_id, ["f" * 24])))
    assert err.errors[0].field == "item_keys" and "不属于" in err.errors[0].message


def test_reviewers_cannot_apply(db: Database, world: World, entry_id: str) -> None:
    with pytest.raises(Forbidden):
        submit(db, world, entry_id, ["法定代表人"], who="reviewer")


# ---- lists and visibility -----------------------------------------------------------------------------------


def _visible(db: Database, world: World, who: str, **filters: Any) -> set[str]:
    with db.session() as s:
        stmt = applications.list_query(world[who], applications.ApplicationFilters(**filters))
        return {a.id for a in s.scalars(stmt)}


def test_each_party_sees_its_own_applications(db: Database, world: World, entry_id: str) -> None:
    hrss = submit(db, world, entry_id, ["法定代表人"])
    police = submit(db, world, entry_id, ["法定代表人"], who="nc_police_officer")
    assert _visible(db, world, "hrss_officer") == {hrss}
    assert _visible(db, world, "nc_police_officer") == {police}
    assert _visible(db, world, "market_user") == {hrss, police}  # the provider
    assert _visible(db, world, "reviewer") == {hrss, police}  # the authority covering the provider
    assert _visible(db, world, "nc_reviewer") == set()
    assert _visible(db, world, "admin") == {hrss, police}
    assert _visible(db, world, "hrss_officer", box="provider") == set()
    assert _visible(db, world, "market_user", box="provider", state=["compliance"]) == {hrss, police}
    assert _visible(db, world, "reviewer", box="authority", consumer_org_id=world.orgs["hrss"]) == {hrss}
    with db.session() as s:
        with pytest.raises(NotFound):
            applications.get(s, actor=world["nc_reviewer"], application_id=hrss)
        with pytest.raises(NotFound):
            applications.get(s, actor=world["hrss_officer"], application_id=police)


def test_apply_options_disable_not_shared_and_pending_items(db: Database, world: World, entry_id: str) -> None:
    submit(db, world, entry_id, ["注册资本"])
    with db.session() as s:
        _, _, options = applications.apply_options(s, actor=world["hrss_officer"], entry_id=entry_id)
        reasons = {o.name: o.disabled_reason for o in options}
        masks = {o.name: o.masking_rule for o in options}
    assert reasons["法定代表人身份证号"] is not None and NOT_SHARED_BASIS in reasons["法定代表人身份证号"]
    assert reasons["注册资本"] == "已在办理中的申请中"
    assert reasons["企业名称"] is None and reasons["法定代表人"] is None
    assert masks["联系电话"] == "mobile_3_4" and masks["法定代表人身份证号"] == "id_6_4"
    with db.session() as s, pytest.raises(Conflict):
        applications.apply_options(s, actor=world["market_officer"], entry_id=entry_id)


def test_available_actions_follow_state_and_party(db: Database, world: World, entry_id: str) -> None:
    app_id = submit(db, world, entry_id, ["法定代表人"])

    def actions(who: str) -> list[str]:
        with db.session() as s:
            app = applications.get(s, actor=world[who], application_id=app_id)
            return applications.available_actions(world[who], app, today=DAY)

    assert actions("reviewer") == ["comply", "reject"]
    assert actions("hrss_officer") == ["withdraw"]
    assert actions("market_officer") == []
    act(db, applications.comply, world, "reviewer", app_id, today=DAY)
    assert actions("market_officer") == ["decide", "request_supplement"]
    assert actions("market_user") == []
    assert actions("reviewer") == []


# ---- supervision --------------------------------------------------------------------------------------------


def test_supervision_counts_on_time_rate_and_average_handling_time(db: Database, world: World, entry_id: str) -> None:
    # on time: submitted 29 Sep, compliance 30 Sep, provider answers 9 Oct (due 13 Oct) → 3 working days
    on_time = _to_provider(db, world, entry_id, ["法定代表人"])
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        on_time,
        decision_in=decision(db, on_time, {"法定代表人": "approve"}),
        today=D(2026, 10, 9),
    )
    # late: escalated on 14 Oct, coordinated on 16 Oct → 9 working days
    late = _to_provider(db, world, entry_id, ["注册资本"])
    with db.session() as s:
        applications.escalate_overdue(s, actor=SYSTEM_ACTOR, today=D(2026, 10, 14))
    act(
        db,
        applications.coordinate,
        world,
        "reviewer",
        late,
        decision_in=decision(db, late, {"注册资本": "approve"}),
        today=D(2026, 10, 16),
    )
    # still pending, another month
    submit(db, world, entry_id, ["联系电话"], today=D(2026, 11, 2), start_on=D(2026, 11, 2))

    with db.session() as s:
        rows = applications.timeliness(s, actor=world["reviewer"])
        counts = applications.counts_by_state(s, actor=world["reviewer"])
        nobody = applications.timeliness(s, actor=world["nc_reviewer"])
        with pytest.raises(Forbidden):
            applications.timeliness(s, actor=world["hrss_officer"])
    assert nobody == []
    assert [(r["month"], r["submitted"], r["decided"], r["on_time"]) for r in rows] == [
        ("2026-09", 2, 2, 1),
        ("2026-11", 1, 0, 0),
    ]
    sep = rows[0]
    assert sep["provider_name"] == "江西省市场监督管理局" and sep["on_time_rate"] == 0.5
    assert clock.working_days_between(DAY, D(2026, 10, 9)) == 3
    assert clock.working_days_between(DAY, D(2026, 10, 16)) == 9  # Saturday 10 October is a working day
    assert sep["avg_working_days"] == 6.0
    assert rows[1]["on_time_rate"] is None and rows[1]["avg_working_days"] is None
    assert {(c["month"], c["state"], c["count"]) for c in counts} == {
        ("2026-09", "approved", 2),
        ("2026-11", "compliance", 1),
    }
    assert all(c["state_label"] for c in counts)


def test_handling_time_does_not_count_the_wait_for_supplements() -> None:
    assert applications.handling_days(DAY, D(2026, 10, 16), paused_days=3) == 9 - 3
    assert applications.handling_days(DAY, DAY) == 0
