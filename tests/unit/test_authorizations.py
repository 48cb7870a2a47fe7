"""Authorizations (共享授权): suspend, resume, renew and revoke with reasons and history; expiry computed on
read and marked by the daily job; ``is_authorized`` and "who can see field X of entry Y"; default masking."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from tests.factories import World
from tests.unit.test_applications import DAY, act, decision, keys_of, make_entry, submit
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent
from zhengshu.demand import applications, authorizations
from zhengshu.demand.models import Authorization
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.security.masking import RULES, default_rule, default_rule_for

D = dt.date
ON = D(2026, 11, 2)


@pytest.fixture
def entry_id(db: Database, world: World) -> str:
    return make_entry(db, world)


def granted(db: Database, world: World, entry_id: str, *, who: str = "hrss_officer", **overrides: Any) -> str:
    """An application for 法定代表人 and 联系电话, both approved by the provider; returns the authorization."""
    app_id = submit(db, world, entry_id, ["法定代表人", "联系电话"], who=who, **overrides)
    act(db, applications.comply, world, "reviewer", app_id, today=DAY)
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"法定代表人": "approve", "联系电话": "approve"}),
        today=DAY,
    )
    with db.session() as s:
        [auth] = authorizations.for_application(s, application_id=app_id)
        return auth.id


def change(db: Database, world: World, fn: Any, who: str, auth_id: str, **kw: Any) -> Authorization:
    with db.session() as s:
        return fn(s, actor=world[who], authorization_id=auth_id, **kw)


def allowed(db: Database, world: World, entry_id: str, names: list[str], on: dt.date = ON, org: str = "hrss") -> bool:
    keys = keys_of(db, entry_id)
    with db.session() as s:
        return authorizations.is_authorized(
            s, consumer_org_id=world.orgs[org], entry_id=entry_id, item_keys=[keys[n] for n in names], on=on
        )


def history(db: Database, auth_id: str) -> list[tuple[str, str | None, str, str]]:
    with db.session() as s:
        auth = s.get(Authorization, auth_id)
        assert auth is not None
        return [(e.action, e.from_status, e.to_status, e.reason) for e in auth.events]


def test_suspend_resume_renew_and_revoke_each_with_a_reason_and_history(
    db: Database, world: World, entry_id: str
) -> None:
    auth_id = granted(db, world, entry_id)
    assert allowed(db, world, entry_id, ["法定代表人", "联系电话"])

    change(db, world, authorizations.suspend, "market_officer", auth_id, reason="接口调用异常，核查中", today=ON)
    assert not allowed(db, world, entry_id, ["法定代表人"])
    change(db, world, authorizations.resume, "reviewer", auth_id, reason="核查完毕", today=ON)
    assert allowed(db, world, entry_id, ["法定代表人"])

    change(
        db, world, authorizations.renew, "market_officer", auth_id, end_on=D(2028, 10, 7), reason="业务延续", today=ON
    )
    assert allowed(db, world, entry_id, ["法定代表人"], on=D(2028, 1, 5))

    change(db, world, authorizations.revoke, "market_officer", auth_id, reason="申请方违规转供数据", today=ON)
    assert not allowed(db, world, entry_id, ["法定代表人"])
    assert not allowed(db, world, entry_id, ["联系电话"])

    steps = history(db, auth_id)
    assert [(a, f, t) for a, f, t, _ in steps] == [
        ("grant", None, "active"),
        ("suspend", "active", "suspended"),
        ("resume", "suspended", "active"),
        ("renew", "active", "active"),
        ("revoke", "active", "revoked"),
    ]
    assert steps[1][3] == "接口调用异常，核查中"
    assert "2027-10-07 → 2028-10-07" in steps[3][3]
    with db.session() as s:
        names = [e.name for e in s.scalars(select(OutboxEvent).where(OutboxEvent.name.like("authorization.%")))]
        auth = s.get(Authorization, auth_id)
        assert auth is not None and auth.status == "revoked" and auth.status_reason == "申请方违规转供数据"
    assert names == [
        "authorization.granted",
        "authorization.suspend",
        "authorization.resume",
        "authorization.renew",
        "authorization.revoke",
    ]
    # revoked is the end: nothing more
    for fn, kw in [
        (authorizations.resume, {"reason": "x"}),
        (authorizations.suspend, {"reason": "x"}),
        (authorizations.revoke, {"reason": "x"}),
        (authorizations.renew, {"reason": "x", "end_on": D(2029, 1, 1)}),
    ]:
        with pytest.raises(Conflict):
            change(db, world, fn, "market_officer", auth_id, today=ON, **kw)


def test_changes_need_a_reason_and_change_nothing_without_one(db: Database, world: World, entry_id: str) -> None:
    auth_id = granted(db, world, entry_id)
    for fn in (authorizations.suspend, authorizations.revoke):
        with pytest.raises(ValidationFailed) as exc:
            change(db, world, fn, "market_officer", auth_id, reason="  ", today=ON)
        assert exc.value.errors[0].field == "reason"
    with pytest.raises(ValidationFailed) as exc:
        change(db, world, authorizations.renew, "market_officer", auth_id, end_on=D(2027, 1, 1), reason="x", today=ON)
    assert exc.value.errors[0].field == "end_on"
    with pytest.raises(ValidationFailed):
        change(db, world, authorizations.renew, "market_officer", auth_id, end_on=D(2031, 1, 1), reason="x", today=ON)
    assert len(history(db, auth_id)) == 1
    assert allowed(db, world, entry_id, ["法定代表人"])


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("hrss_officer", Forbidden),  # the consumer sees it but may not manage it
        ("market_user", Forbidden),  # the provider's plain users neither
        ("nc_reviewer", NotFound),  # another authority does not see it
        ("nc_police_officer", NotFound),
    ],
)
def test_only_the_providers_officer_or_the_data_authority_manage_it(
    db: Database, world: World, entry_id: str, who: str, error: type[Exception]
) -> None:
    auth_id = granted(db, world, entry_id)
    with pytest.raises(error):
        change(db, world, authorizations.suspend, who, auth_id, reason="试图暂停", today=ON)
    assert allowed(db, world, entry_id, ["法定代表人"])


def test_wrong_status_moves_are_refused(db: Database, world: World, entry_id: str) -> None:
    auth_id = granted(db, world, entry_id)
    with pytest.raises(Conflict):
        change(db, world, authorizations.resume, "market_officer", auth_id, reason="x", today=ON)
    change(db, world, authorizations.suspend, "market_officer", auth_id, reason="核查", today=ON)
    with pytest.raises(Conflict):
        change(db, world, authorizations.suspend, "market_officer", auth_id, reason="again", today=ON)


def test_expiry_is_computed_on_read_and_marked_by_the_daily_job(db: Database, world: World, entry_id: str) -> None:
    auth_id = granted(db, world, entry_id)
    end = D(2027, 10, 7)
    after = end + dt.timedelta(days=1)
    assert allowed(db, world, entry_id, ["法定代表人"], on=end)
    assert not allowed(db, world, entry_id, ["法定代表人"], on=after)
    with db.session() as s:
        auth = s.get(Authorization, auth_id)
        assert auth is not None and auth.status == "active"
        assert authorizations.effective_status(auth, end) == "active"
        assert authorizations.effective_status(auth, after) == "expired"  # before any job ran
        assert authorizations.to_summary(auth, today=after)["status_label"] == "已到期"
        expired = authorizations.AuthorizationFilters(status=["expired"])
        active = authorizations.AuthorizationFilters(status=["active"])
        actor = world["hrss_officer"]
        assert [a.id for a in s.scalars(authorizations.list_query(actor, expired, on=after))] == [auth_id]
        assert [a.id for a in s.scalars(authorizations.list_query(actor, active, on=after))] == []
        assert [a.id for a in s.scalars(authorizations.list_query(actor, active, on=end))] == [auth_id]
        assert authorizations.available_actions(world["market_officer"], auth, after) == ["renew", "revoke"]
    with db.session() as s:
        assert authorizations.expire_due(s, today=end) == 0
        assert authorizations.expire_due(s, today=after) == 1
        assert authorizations.expire_due(s, today=after) == 0
    assert history(db, auth_id)[-1][:3] == ("expire", "active", "expired")
    # renewing an expired authorization brings it back
    change(db, world, authorizations.renew, "reviewer", auth_id, end_on=D(2028, 12, 31), reason="续用", today=after)
    assert allowed(db, world, entry_id, ["法定代表人"], on=D(2028, 6, 1))
    with db.session() as s:
        auth = s.get(Authorization, auth_id)
        assert auth is not None and auth.status == "active"


def test_is_authorized_combines_authorizations_and_needs_every_item(db: Database, world: World, entry_id: str) -> None:
    app_id = submit(db, world, entry_id, ["企业名称", "法定代表人"])
    act(db, applications.comply, world, "reviewer", app_id, today=DAY)  # 企业名称 by rule
    act(
        db,
        applications.decide,
        world,
        "market_officer",
        app_id,
        decision_in=decision(db, app_id, {"法定代表人": "approve"}),
        today=DAY,
    )
    assert allowed(db, world, entry_id, ["企业名称", "法定代表人"])  # from two authorizations
    assert not allowed(db, world, entry_id, ["企业名称", "联系电话"])
    assert not allowed(db, world, entry_id, ["企业名称"], org="nc_police")
    with db.session() as s:
        assert not authorizations.is_authorized(
            s, consumer_org_id=world.orgs["hrss"], entry_id=entry_id, item_keys=[], on=ON
        )


def test_who_can_see_a_field_is_one_list_of_consumers_in_force(db: Database, world: World, entry_id: str) -> None:
    hrss = granted(db, world, entry_id)
    police = granted(db, world, entry_id, who="nc_police_officer", business_system="南昌市警务综合平台")
    suspended = granted(db, world, entry_id, business_system="就业创业服务系统")
    change(db, world, authorizations.suspend, "market_officer", suspended, reason="暂停", today=ON)
    keys = keys_of(db, entry_id)

    def who(actor: str, item: str, on: dt.date = ON) -> list[authorizations.WhoCanSee]:
        with db.session() as s:
            return authorizations.who_can_see(s, actor=world[actor], entry_id=entry_id, item_key=keys[item], on=on)

    rows = who("market_officer", "联系电话")
    assert {(r.authorization_id, r.consumer_name, r.consumer_system) for r in rows} == {
        (hrss, "江西省人力资源和社会保障厅", "江西省社会保险信息系统"),
        (police, "南昌市公安局", "南昌市警务综合平台"),
    }
    assert {r.masking_rule for r in rows} == {"mobile_3_4"}
    assert who("reviewer", "注册资本") == []
    assert who("admin", "联系电话", on=D(2026, 10, 7)) == []  # before the period of use
    change(db, world, authorizations.revoke, "reviewer", police, reason="撤销", today=ON)
    assert [r.authorization_id for r in who("reviewer", "联系电话")] == [hrss]
    for outsider in ("hrss_officer", "market_user", "nc_reviewer"):
        with pytest.raises(Forbidden):
            who(outsider, "联系电话")


def test_consumers_and_providers_see_their_authorizations_only(db: Database, world: World, entry_id: str) -> None:
    hrss = granted(db, world, entry_id)
    police = granted(db, world, entry_id, who="nc_police_officer", business_system="南昌市警务综合平台")

    def visible(who: str) -> set[str]:
        with db.session() as s:
            stmt = authorizations.list_query(world[who], authorizations.AuthorizationFilters(), on=ON)
            return {a.id for a in s.scalars(stmt)}

    assert visible("hrss_officer") == {hrss}
    assert visible("nc_police_officer") == {police}
    assert visible("market_user") == visible("reviewer") == visible("admin") == {hrss, police}
    assert visible("nc_reviewer") == set()
    with db.session() as s, pytest.raises(NotFound):
        authorizations.get(s, actor=world["hrss_officer"], authorization_id=police)


def test_expiry_job_skips_what_is_not_due_and_suspended_ones_expire_too(
    db: Database, world: World, entry_id: str
) -> None:
    short = granted(db, world, entry_id, end_on=D(2026, 12, 31))
    long = granted(db, world, entry_id, business_system="就业创业服务系统")
    change(db, world, authorizations.suspend, "market_officer", short, reason="核查", today=ON)
    with db.session() as s:
        assert authorizations.expire_due(s, actor=SYSTEM_ACTOR, today=D(2027, 1, 1)) == 1
    with db.session() as s:
        statuses = {a.id: a.status for a in s.scalars(select(Authorization))}
    assert statuses == {short: "expired", long: "active"}


# ---- masking defaults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sensitivity", "rule"),
    [
        ("公民身份号码", "重要", "id_6_4"),
        ("法定代表人身份证号", "一般3", "id_6_4"),
        ("手机号码", "一般2", "mobile_3_4"),
        ("联系电话", "一般1", "mobile_3_4"),
        ("姓名", "一般2", "name_first"),
        ("银行卡号", "重要", "bank_4_4"),
        ("对公账号", "一般3", "bank_4_4"),
        ("住所", "一般2", "address_county"),
        ("经营地址", "一般1", "address_county"),
        ("电子邮箱", "一般2", "email_first"),
        ("企业名称", "一般1", "none"),
        ("注册资本", "一般2", "none"),
        ("纳税信用等级", "一般3", "suppress"),
        ("病历摘要", "重要", "suppress"),
        ("基因序列", "核心", "suppress"),
    ],
)
def test_default_masking_rule_from_name_and_sensitivity(name: str, sensitivity: str, rule: str) -> None:
    class Item:
        def __init__(self) -> None:
            self.name, self.sensitivity = name, sensitivity

    assert default_rule_for(name, sensitivity) == rule
    assert default_rule(Item()) == rule
    assert rule in RULES


def test_withdrawing_the_entry_suspends_its_authorizations(db: Database, world: World, entry_id: str) -> None:
    from zhengshu.catalog import service as catalog_service
    from zhengshu.core.events import process_pending

    auth_id = granted(db, world, entry_id)
    assert allowed(db, world, entry_id, ["法定代表人"])
    with db.session() as s:
        catalog_service.withdraw(s, actor=world["market_officer"], entry_id=entry_id, reason="职能划转")
    process_pending(db.session_factory)
    assert not allowed(db, world, entry_id, ["法定代表人"])
    with db.session() as s:
        auth = s.get(Authorization, auth_id)
        assert auth is not None and auth.status == "suspended"
        assert "目录已下架：职能划转" in auth.status_reason
