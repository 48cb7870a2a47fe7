"""Demo table exchange: for the demo province's 库表 authorizations, the consumer's data officer registers a
DuckDB target in its exchange area and a nightly working-day job; the jobs then run once so the pages show real
run history. Everything stays on the embedded stores (the demo's sources are SQLite, DuckDB and files).

The builder calls :func:`seed_sync_jobs` inside its transaction and :func:`run_seeded_jobs` after the commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.core.errors import ZhengshuError
from zhengshu.demand import authorizations as authorization_service
from zhengshu.demand.models import Authorization
from zhengshu.exchange.tables import runner
from zhengshu.exchange.tables import service as sync_service
from zhengshu.exchange.tables.models import SyncTarget
from zhengshu.exchange.tables.schemas import SyncJobIn, SyncTargetIn
from zhengshu.org import service as org_service
from zhengshu.org.models import User

# Items that identify a record on their own, in order of preference (the job's primary key).
KEY_NAMES = ("统一社会信用代码", "公民身份号码", "身份证号码", "身份证号", "编号", "证照编号", "代码")


def _key_item(auth: Authorization) -> str | None:
    plain = [i for i in auth.items if i.masking_rule == "none"]
    for wanted in KEY_NAMES:
        for item in plain:
            if item.name == wanted or item.name.endswith(wanted):
                return item.item_key
    return None


def _officer(session: Session, org_id: str) -> Any:
    users = session.scalars(select(User).where(User.org_id == org_id, User.active.is_(True)).order_by(User.username))
    for user in users:
        if "officer" in (user.roles or []):
            return org_service.actor_for(user, via="job")
    return None


def _target_for(session: Session, actor: Any, settings: Settings) -> str:
    existing = session.scalars(
        select(SyncTarget).where(SyncTarget.owner_org_id == actor.org_id, SyncTarget.kind == "duckdb")
    ).first()
    if existing is not None:
        return existing.id
    target_in = SyncTargetIn(
        name=f"{actor.org_name or '本部门'}交换库", kind="duckdb", description="演示：本部门的交换目标库"
    )
    return sync_service.create_target(session, actor=actor, target_in=target_in, data_dir=settings.data_dir).id


def seed_sync_jobs(session: Session, *, settings: Settings, limit: int = 6) -> list[str]:
    """Jobs for up to ``limit`` active 库表 authorizations whose entry has a mounted table; returns their ids.
    An authorization whose plan does not fit its table (the demo mounts some tables with known problems) is
    skipped, as the create form would refuse it."""
    session.flush()
    job_ids: list[str] = []
    auths = session.scalars(
        select(Authorization)
        .where(Authorization.delivery_way == sync_service.TABLE_DELIVERY)
        .order_by(Authorization.id)
    )
    for auth in auths:
        if len(job_ids) >= limit:
            break
        if authorization_service.effective_status(auth) != "active":
            continue
        entry = session.get(CatalogEntry, auth.entry_id)
        key = _key_item(auth)
        actor = _officer(session, auth.consumer_org_id)
        if entry is None or key is None or actor is None:
            continue
        mode = "cdc" if len(job_ids) % 2 == 0 else "full"
        try:
            with session.begin_nested():
                job = sync_service.create_job(
                    session,
                    actor=actor,
                    job_in=SyncJobIn(
                        name=f"{entry.name}（每日同步）",
                        authorization_id=auth.id,
                        target_id=_target_for(session, actor, settings),
                        target_table=f"sync_{len(job_ids) + 1:02d}",
                        mode=mode,  # type: ignore[arg-type]
                        key_items=[key],
                        schedule="30 2 * * *",
                        working_days_only=True,
                        description="演示：每个工作日凌晨 2:30 从提供部门前置库同步授权的信息项",
                    ),
                    settings=settings,
                )
        except ZhengshuError:
            continue
        job_ids.append(job.id)
    return job_ids


def run_seeded_jobs(database: Database, *, job_ids: list[str], settings: Settings) -> dict[str, str]:
    """Run each seeded job once, as its consumer's officer; returns job id → run status."""
    outcomes: dict[str, str] = {}
    for job_id in job_ids:
        with database.session() as session:
            job = session.get(sync_service.SyncJob, job_id)
            actor = _officer(session, job.consumer_org_id) if job is not None else None
        if actor is None:
            continue
        try:
            outcomes[job_id] = runner.run_job(
                database, actor=actor, job_id=job_id, trigger="manual", settings=settings
            ).status
        except ZhengshuError as exc:
            outcomes[job_id] = exc.code
    return outcomes
