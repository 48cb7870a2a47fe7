"""Demo data of the open portal's public side, made through the real services: registered accounts (a person and
two companies, password ``DEMO_PASSWORD``), conditional-open applications (one approved, one waiting in the
provider's to-do list), showcase applications (one shown, one waiting for moderation) and this year's
responsibility list (the departments' published datasets plus planned ones not yet open).

Called by the demo builder after the open datasets are published (``seed(session, …)``); idempotent per
database only in the sense that it refuses to run twice (the accounts already exist).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.core.timeutil import local_today
from zhengshu.opendata import accounts, conditional, responsibility, showcase
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.opendata.public_schemas import AccessApplicationIn, AccountIn, DecisionIn, ResponsibilityIn, ShowcaseIn
from zhengshu.security.actor import Actor

DEMO_ACCOUNTS = ("li.hua", "ganpo-data", "hongcheng-tech")


def _accounts(session: Session, password: str, rng: random.Random) -> list[PublicAccount]:
    from zhengshu.demo.identities import resident_id, uscc

    person = AccountIn(
        kind="person",
        username="li.hua",
        password=password,
        display_name="李华",
        phone="13907910001",
        id_number=resident_id(rng, area_code="360102", birth=date(1992, 5, 17), male=True),
    )
    companies = [
        AccountIn(
            kind="company",
            username="ganpo-data",
            password=password,
            display_name="陈经办",
            email="open@ganpo-data.example.cn",
            company_name="江西赣鄱数据科技有限公司",
            uscc=uscc(rng, region_code="360100", authority="9", org_type="1"),
        ),
        AccountIn(
            kind="company",
            username="hongcheng-tech",
            password=password,
            display_name="周经办",
            email="data@hongcheng.example.cn",
            company_name="南昌洪城信息技术有限公司",
            uscc=uscc(rng, region_code="360100", authority="9", org_type="1"),
        ),
    ]
    return [accounts.register(session, account_in=a) for a in (person, *companies)]


def seed(
    session: Session,
    *,
    password: str,
    reviewer: Actor,
    officer_of: Callable[[str], Actor | None],
    data_dir: Path,
    today: date | None = None,
) -> dict[str, Any]:
    """``officer_of(org_id)`` gives a data officer of that provider (to decide its applications)."""
    if session.scalars(select(PublicAccount).where(PublicAccount.username.in_(DEMO_ACCOUNTS))).first():
        return {"accounts": 0}
    today = today or local_today()
    rng = random.Random(2026)
    person, ganpo, hongcheng = _accounts(session, password, rng)
    for account in (ganpo, hongcheng):
        accounts.issue_key(session, account=account, name="演示脚本")
    datasets = list(
        session.scalars(select(OpenDataset).where(OpenDataset.status == "published").order_by(OpenDataset.title))
    )
    conditional_sets = [d for d in datasets if d.opening_type == "有条件开放"]
    applied = 0
    for n, dataset in enumerate(conditional_sets[:2]):
        columns = [i.column_name for i in dataset.items]
        applicant = ganpo if n == 0 else hongcheng
        app = conditional.apply(
            session,
            account=applicant,
            application_in=AccessApplicationIn(
                dataset_id=dataset.id,
                items=columns[: max(1, len(columns) - 1)],
                purpose="用于企业经营风险评估模型的训练与验证，数据仅在本单位内部使用，不对外提供",
                scenario="金融机构贷前尽调辅助",
                requested_days=180,
            ),
        )
        applied += 1
        officer = officer_of(dataset.provider_org_id)
        if n == 0 and officer is not None:
            conditional.approve(session, actor=officer, application_id=app.id, decision_in=DecisionIn(reason="同意"))
    shown = 0
    if datasets:
        first = showcase.submit(
            session,
            account=ganpo,
            showcase_in=ShowcaseIn(
                name="赣企通·企业信息查询",
                description="基于开放的市场主体登记数据，提供企业名称、行业、注册资本的检索与分布地图",
                link="https://ganpo-data.example.cn/qitong",
                dataset_ids=[d.id for d in datasets[:2]],
            ),
            data_dir=data_dir,
        )
        showcase.approve(session, actor=reviewer, showcase_id=first.id, reason="数据引用规范，展示")
        showcase.submit(
            session,
            account=person,
            showcase_in=ShowcaseIn(
                name="出行助手（个人作品）",
                description="整合公共服务类开放数据，为市民提供周边便民设施查询",
                link="https://example.cn/lihua/trip",
                dataset_ids=[datasets[-1].id],
            ),
            data_dir=data_dir,
        )
        shown = 2
    planned = 0
    year_end = date(today.year, 12, 31)
    for org_id in dict.fromkeys(d.provider_org_id for d in datasets):
        own = [d for d in datasets if d.provider_org_id == org_id]
        for d in own:
            responsibility.add(
                session,
                actor=reviewer,
                item_in=ResponsibilityIn(
                    year=today.year,
                    org_id=org_id,
                    title=d.title,
                    entry_id=d.entry_id,
                    opening_type=d.opening_type,
                    field=d.field,
                    planned_on=min(year_end, date(today.year, 6, 30)),
                ),
            )
            planned += 1
        responsibility.add(
            session,
            actor=reviewer,
            item_in=ResponsibilityIn(
                year=today.year,
                org_id=org_id,
                title=f"{own[0].provider.short_name or own[0].provider.name}年度统计公报数据",
                opening_type="无条件开放",
                field="government",
                planned_on=max(date(today.year, 1, 31), min(year_end, today + timedelta(days=45))),
                note="计划随年度统计公报同步开放",
            ),
        )
        planned += 1
    session.flush()
    return {"accounts": 3, "applications": applied, "showcase": shown, "responsibility_items": planned}
