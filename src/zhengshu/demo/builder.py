"""Builds the demo province on the embedded stores through the real services (under a minute)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog import mounting
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry
from zhengshu.catalog.schemas import EntryIn
from zhengshu.core import clock, migrate
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.core.events import process_pending
from zhengshu.core.timeutil import local_today
from zhengshu.demo import (
    catalog_seed,
    files_seed,
    gateway_seed,
    open_public_seed,
    opendata_seed,
    source_data,
    sync_seed,
    workflow_seed,
)
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn
from zhengshu.org import service as org_service
from zhengshu.org.divisions import divisions_by_code
from zhengshu.org.models import Organization, Region, User
from zhengshu.security.actor import SYSTEM_ACTOR, Role
from zhengshu.security.passwords import hash_password
from zhengshu.workflow import service as workflow

DEMO_PASSWORD = "Zhengshu@2026"

PRINTED_USERS = [
    "admin",
    "reviewer",
    "reviewer_360100",
    "officer_scjg",
    "officer_rst",
    "officer_gat",
    "officer_mzt",
    "officer_sw",
    "officer_360100_ga",
    "user_scjg",
]


def load_regions(session: Session, *, province_prefix: str = "36") -> int:
    """The province, its cities and counties (current and historical codes) from GB/T 2260."""
    rows = divisions_by_code(province_prefix)
    for row in sorted(rows, key=lambda r: (len(r.code.rstrip("0")), r.code)):
        region = session.get(Region, row.code) or Region(code=row.code)
        region.name, region.level, region.parent_code = row.name, row.level, row.parent_code
        region.valid_from, region.valid_to = row.valid_from, row.valid_to
        session.add(region)
    session.flush()
    return len(rows)


def _create_orgs(session: Session) -> dict[str, Organization]:
    orgs: dict[str, Organization] = {}
    provincial_by_number = {d.number: d.key for d in catalog_seed.provincial_departments()}
    for dept in catalog_seed.all_departments():
        org = Organization(
            name=dept.name,
            short_name=dept.short_name,
            uscc=dept.uscc,
            region_code=dept.region_code,
            is_data_authority=dept.kind == "data_authority",
            dept_number=dept.number,
        )
        session.add(org)
        orgs[dept.key] = org
    session.flush()
    # a city department's parent is the provincial department of the same line (业务指导关系)
    for dept in catalog_seed.all_departments():
        parent_key = None if dept.region_code.endswith("0000") else provincial_by_number.get(dept.number)
        if parent_key is not None:
            orgs[dept.key].parent_id = orgs[parent_key].id
    session.flush()
    return orgs


def _create_users(session: Session, orgs: dict[str, Organization]) -> list[User]:
    # One argon2 hash for the shared demo password keeps the build fast.
    pw_hash = hash_password(DEMO_PASSWORD)
    users: list[User] = []

    def add(username: str, display: str, org: Organization, roles: list[Role]) -> None:
        users.append(
            User(
                username=username,
                display_name=display,
                password_hash=pw_hash,
                org_id=org.id,
                roles=[r.value for r in roles],
            )
        )

    add("admin", "平台管理员", orgs["prov.sjj"], [Role.ADMIN])
    add("reviewer", "王审核（省数据局）", orgs["prov.sjj"], [Role.REVIEWER])
    for key, org in orgs.items():
        region, _, abbr = key.partition(".")
        if region == "prov":
            add(f"officer_{abbr}", f"{org.short_name}数据专员", org, [Role.OFFICER])
            add(f"user_{abbr}", f"{org.short_name}业务人员", org, [Role.USER])
        else:
            if abbr == "sjj":
                add(f"reviewer_{region}", f"{org.name}审核员", org, [Role.REVIEWER])
            add(f"officer_{region}_{abbr}", f"{org.name}数据专员", org, [Role.OFFICER])
    session.add_all(users)
    session.flush()
    return users


def build_demo(
    database: Database, *, settings: Settings, seed: int = 2026, console: Console | None = None
) -> dict[str, Any]:
    console = console or Console()
    rng = random.Random(seed)
    migrate.upgrade(database)
    today = local_today()
    with console.status("正在建立演示省…") as status, database.session() as session:
        status.update("行政区划与组织机构")
        load_regions(session)
        orgs = _create_orgs(session)
        users = {u.username: u for u in _create_users(session, orgs)}
        officers = {u.org_id: u for u in users.values() if "officer" in u.roles}
        reviewers = {u.org_id: u for u in users.values() if "reviewer" in u.roles}

        status.update("编制目录")
        entries: list[CatalogEntry] = []
        specs = catalog_seed.seed_entries(rng)
        by_name: dict[str, CatalogEntry] = {}
        for spec in specs:
            provider = orgs[spec["provider_key"]]
            data = {k: v for k, v in spec.items() if k != "provider_key"}
            officer = org_service.actor_for(officers[provider.id])
            entry = catalog_service.create(session, actor=officer, entry_in=EntryIn.model_validate(data))
            entries.append(entry)
            by_name.setdefault(entry.name, entry)

        status.update("审核与发布")
        mounted_names = {name for name, _, _ in source_data.MOUNTS} | {"企业登记信息"}
        counts: dict[str, int] = {}
        for i, entry in enumerate(entries):
            officer = org_service.actor_for(officers[entry.provider_org_id])
            authority = org_service.data_authority_for(session, region_code=entry.region_code)
            assert authority is not None
            reviewer = org_service.actor_for(reviewers[authority.id])
            roll = 0.0 if entry.name in mounted_names and entry.provider.region_code == "360000" else rng.random()
            if roll < 0.70:
                catalog_service.submit(session, actor=officer, entry_id=entry.id)
                catalog_service.approve(session, actor=reviewer, entry_id=entry.id, comment="符合编目要求")
                published_on = today - timedelta(days=rng.randint(20, 400))
                entry.published_on = published_on
                entry.last_rechecked_on = published_on
                entry.next_recheck_on = (
                    published_on.replace(year=published_on.year + 1)
                    if not (published_on.month == 2 and published_on.day == 29)
                    else published_on + timedelta(days=365)
                )
                state = "published"
                if roll > 0.66:
                    catalog_service.withdraw(
                        session, actor=officer, entry_id=entry.id, reason="业务职能调整，该数据不再产生"
                    )
                    state = "withdrawn"
            elif roll < 0.82:
                catalog_service.submit(session, actor=officer, entry_id=entry.id)
                ticket = catalog_service.review_ticket(session, entry)
                workflow.backdate(session, ticket=ticket, entered_on=today - timedelta(days=rng.randint(0, 14)))
                state = "submitted"
            elif roll < 0.88:
                catalog_service.submit(session, actor=officer, entry_id=entry.id)
                catalog_service.return_for_revision(
                    session,
                    actor=reviewer,
                    entry_id=entry.id,
                    reason=rng.choice(
                        [
                            "摘要过于简略，请补充数据范围和口径",
                            "共享条件超出法律法规规定，请修改",
                            "信息项数据长度与实际不符",
                        ]
                    ),
                )
                state = "returned"
            else:
                state = "draft"
            counts[state] = counts.get(state, 0) + 1
            if i % 25 == 0:
                status.update(f"审核与发布（{i + 1}/{len(entries)}）")

        status.update("修订、职责变更与年度复核")
        published = [e for e in entries if e.status == "published"]
        for entry in rng.sample(published, min(12, len(published))):
            if entry.name in mounted_names:
                continue
            officer = org_service.actor_for(officers[entry.provider_org_id])
            v = catalog_service.display_version(session, entry)
            content = catalog_service.version_content(v)
            content["summary"] = content["summary"] + "（按最新职责补充数据口径）"
            content["update_cycle"] = rng.choice(["每日", "每周", "每月"])
            catalog_service.update(
                session,
                actor=officer,
                entry_id=entry.id,
                entry_in=EntryIn.model_validate(content),
                change_note="职责调整后修订",
            )
            if rng.random() < 0.6:
                catalog_service.submit(session, actor=officer, entry_id=entry.id, comment="请审核修订")
        provincial_reviewer = org_service.actor_for(users["reviewer"])
        for entry in [e for e in published if e.region_code == "360000" and not e.working_version_id][:6]:
            ticket = catalog_service.register_duty_change(
                session,
                actor=provincial_reviewer,
                entry_id=entry.id,
                description="《江西省公共数据管理办法》修订，相关数据的共享范围调整",
            )
            workflow.backdate(session, ticket=ticket, entered_on=today - timedelta(days=rng.randint(3, 25)))
        for entry in rng.sample(published, min(15, len(published))):
            entry.next_recheck_on = today + timedelta(days=rng.randint(-20, 25))
        catalog_service.open_due_rechecks(session, actor=SYSTEM_ACTOR, today=today)

        status.update("演示数据源与挂接")
        sources_dir = settings.data_dir / "sources"
        paths = source_data.build_source_databases(sources_dir, rng=rng)
        admin = org_service.actor_for(users["admin"])
        for entry_name, source_key, table in source_data.MOUNTS:
            provider = orgs[source_data.MOUNT_PROVIDERS[entry_name]]
            entry = next(e for e in entries if e.name == entry_name and e.provider_org_id == provider.id)
            source = lake_service.register_source(
                session,
                actor=admin,
                data_dir=settings.data_dir,
                source_in=DataSourceIn.model_validate(
                    {
                        "name": f"{provider.short_name}前置库"
                        if source_data.SOURCE_KINDS[source_key] in ("sqlite", "duckdb")
                        else f"{provider.short_name}文件交换区：{paths[source_key].name}",
                        "kind": source_data.SOURCE_KINDS[source_key],
                        "owner_org_id": provider.id,
                        "options": {"path": str(paths[source_key])},
                    }
                ),
            )
            officer = org_service.actor_for(officers[provider.id])
            mounting.mount_table(
                session,
                actor=officer,
                entry_id=entry.id,
                mount_in=mounting.TableMountIn(source_id=source.id, table=table, allow_problems=True),
            )
        status.update("共享申请、授权、数据需求与数据异议")
        workflow_seed.seed_workflows(
            session, orgs=orgs, users=users, entries=entries, settings=settings, rng=rng, today=today
        )
        status.update("文件交换")
        files_seed.seed_files(session, orgs=orgs, users=users, settings=settings, rng=rng)
        status.update("接口服务与应用")
        gateway_seed.seed(session)
        status.update("库表交换任务")
        sync_job_ids = sync_seed.seed_sync_jobs(session, settings=settings)
        status.update("数据开放")
        opendata_seed.seed(session, settings=settings, rng=rng, today=today)
        open_public_seed.seed(
            session,
            password=DEMO_PASSWORD,
            reviewer=provincial_reviewer,
            officer_of=lambda org_id: org_service.actor_for(officers[org_id]) if org_id in officers else None,
            data_dir=settings.data_dir,
            today=today,
        )
        status.update("建立检索索引")
    process_pending(database.session_factory, limit=100_000)
    with console.status("首次运行库表交换任务…"):
        sync_seed.run_seeded_jobs(database, job_ids=sync_job_ids, settings=settings)
    provisional = clock.is_provisional(date(today.year + 1, 1, 1))
    with database.session() as session:
        printed = []
        for username in PRINTED_USERS:
            user = session.scalars(select(User).where(User.username == username)).one()
            printed.append(
                {
                    "username": user.username,
                    "display_name": user.display_name,
                    "org": user.org.name,
                    "roles": "、".join(Role(r).label for r in user.roles),
                }
            )
    return {"entries": len(entries), "states": counts, "users": printed, "next_year_calendar_provisional": provisional}
