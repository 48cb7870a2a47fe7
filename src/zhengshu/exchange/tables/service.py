"""Table exchange service: consumer targets, sync jobs and the plan a run follows.

A job belongs to the consumer organization of a 库表 authorization. Every run re-checks that authorization
(revoked, suspended, expired or not yet started → the run is refused), selects only its items that are not
suppressed, maps each to the mounted table's column, and masks it with the item's rule before the data leaves.
Runs themselves span many transactions and are driven by ``runner.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, FieldError, Forbidden, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today
from zhengshu.demand import authorizations as authorization_service
from zhengshu.demand.models import Authorization
from zhengshu.exchange.tables import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.exchange.tables import schedule as schedules
from zhengshu.exchange.tables.models import SyncJob, SyncQuarantine, SyncRun, SyncTarget
from zhengshu.exchange.tables.plan import (
    MODE_LABELS,
    TARGET_KIND_LABELS,
    ColumnPlan,
    SyncSpec,
    TargetConfig,
    delivered_type,
)
from zhengshu.exchange.tables.readers import source_columns
from zhengshu.exchange.tables.schemas import SyncJobIn, SyncJobUpdate, SyncTargetIn
from zhengshu.lake import service as lake_service
from zhengshu.lake.connectors import TableDescription, TableRef
from zhengshu.lake.models import DataSource
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import decrypt_secret, encrypt_secret

RUN_STATUS_LABELS = {
    "queued": "排队中",
    "running": "运行中",
    "succeeded": "成功",
    "failed": "失败",
    "refused": "已拒绝",
    "abandoned": "已中断",
}
TABLE_DELIVERY = "库表"
_IDENT = re.compile(r"^[^\W\d]\w{0,62}$")
_SAFE_NAME = re.compile(r"[^\w.-]+")
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


class SyncRefused(Conflict):
    code = "sync.authorization_inactive"
    title = "共享授权不允许本次交换"


def run_status_label(status: str | None) -> str:
    return RUN_STATUS_LABELS.get(status or "", status or "未运行")


# ---- targets ----------------------------------------------------------------------------------------------


def exchange_dir(data_dir: Path, org_id: str) -> Path:
    """Where an organization's embedded targets (DuckDB files, Parquet directories) live by default."""
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", org_id):
        raise ValidationFailed("部门标识无效", code="sync.invalid_org")
    return Path(data_dir) / "exchange" / org_id


def create_target(
    session: Session, *, actor: Actor, target_in: SyncTargetIn, data_dir: Path | None = None
) -> SyncTarget:
    owner = target_in.owner_org_id if actor.is_admin and target_in.owner_org_id else actor.org_id
    if not owner or session.get(Organization, owner) is None:
        raise ValidationFailed(code="sync.invalid_target", errors=[FieldError("owner_org_id", "请指定存在的所属部门")])
    target = SyncTarget(
        id=new_id(),
        owner_org_id=owner,
        name=target_in.name.strip(),
        kind=target_in.kind,
        host=(target_in.host or "").strip() or None,
        port=target_in.port or DEFAULT_PORTS.get(target_in.kind),
        database=(target_in.database or "").strip() or None,
        username=(target_in.username or "").strip() or None,
        schema_name=(target_in.schema_name or "").strip() or None,
        description=target_in.description,
    )
    authz.ensure(actor, "sync.target", target)
    errors = ErrorCollector()
    if target.kind in ("postgresql", "mysql"):
        for field_name, label in (("host", "服务器地址"), ("database", "数据库名"), ("username", "用户名")):
            if not getattr(target, field_name):
                errors.add(field_name, f"请填写{label}")
        if target.schema_name and not _IDENT.match(target.schema_name):
            errors.add("schema_name", "模式名只能包含字母、数字和下划线")
    else:
        root = exchange_dir(data_dir or get_settings().data_dir, owner).resolve()
        raw = (target_in.path or "").strip()
        default_name = _SAFE_NAME.sub("_", target.name).strip("._") or "target"
        path: Path | None
        try:
            path = (
                Path(raw).expanduser()
                if raw
                else root / (default_name + (".duckdb" if target.kind == "duckdb" else ""))
            )
            path = (root / path if not path.is_absolute() else path).resolve()
        except (ValueError, OSError, RuntimeError):  # NUL bytes, unknown ~user, symlink loops
            path = None
        # officers write only inside their organization's exchange area; administrators may choose any path
        if path is None:
            errors.add("path", "路径无效")
        elif not actor.is_admin and not path.is_relative_to(root):
            errors.add("path", "目标文件须位于本部门的交换区，请填写相对路径或留空")
        elif target.kind == "duckdb" and path.exists() and path.is_dir():
            errors.add("path", "DuckDB 目标应为文件，不能是目录")
        elif target.kind == "parquet" and path.exists() and not path.is_dir():
            errors.add("path", "Parquet 目标应为目录")
        target.path = str(path) if path is not None else None
    errors.raise_if_any(code="sync.invalid_target")
    if session.scalar(select(SyncTarget.id).where(SyncTarget.owner_org_id == owner, SyncTarget.name == target.name)):
        raise Conflict(f"本部门已有名为“{target.name}”的目标库", code="sync.duplicate_target")
    password = target_in.password.get_secret_value() if target_in.password else ""
    target.secret_encrypted = encrypt_secret(password) if password else None
    session.add(target)
    session.flush()
    emit(session, "sync.target_created", target_id=target.id, org_id=owner, kind=target.kind)
    return target


def get_target(session: Session, *, actor: Actor, target_id: str) -> SyncTarget:
    target = session.get(SyncTarget, target_id)
    if target is None or not authz.allowed(actor, "sync.target", target):
        raise NotFound("未找到该目标库", code="sync.target_not_found")
    return target


def list_targets(session: Session, *, actor: Actor) -> list[SyncTarget]:
    stmt = (
        select(SyncTarget).where(authz.scope(actor, "sync.target")).order_by(SyncTarget.owner_org_id, SyncTarget.name)
    )
    return list(session.scalars(stmt))


def delete_target(session: Session, *, actor: Actor, target_id: str) -> None:
    target = get_target(session, actor=actor, target_id=target_id)
    if session.scalar(select(SyncJob.id).where(SyncJob.target_id == target.id).limit(1)):
        raise Conflict("仍有交换作业写入该目标库，请先删除这些作业", code="sync.target_in_use")
    session.delete(target)
    session.flush()
    emit(session, "sync.target_deleted", target_id=target_id)


def target_config(target: SyncTarget) -> TargetConfig:
    """The only place a target's password is decrypted."""
    return TargetConfig(
        kind=target.kind,
        host=target.host,
        port=target.port,
        database=target.database,
        username=target.username,
        password=decrypt_secret(target.secret_encrypted) if target.secret_encrypted else None,
        schema=target.schema_name,
        path=target.path,
    )


def target_to_read(target: SyncTarget) -> dict[str, Any]:
    return {
        "id": target.id,
        "name": target.name,
        "kind": target.kind,
        "kind_label": TARGET_KIND_LABELS.get(target.kind, target.kind),
        "owner_org_id": target.owner_org_id,
        "owner_name": target.owner.name if target.owner else "",
        "host": target.host,
        "port": target.port,
        "database": target.database,
        "username": target.username,
        "has_password": bool(target.secret_encrypted),
        "schema_name": target.schema_name,
        "path": target.path,
        "description": target.description,
        "created_at": target.created_at,
    }


# ---- jobs -------------------------------------------------------------------------------------------------


def _table_resource(session: Session, entry: CatalogEntry, resource_id: str | None) -> MountedResource:
    candidates = [r for r in entry.resources if r.active and r.kind in ("table", "file") and r.source_id]
    if resource_id:
        candidates = [r for r in candidates if r.id == resource_id]
    if not candidates:
        raise ValidationFailed("该目录没有可用于库表交换的挂接资源（数据库表或文件）", code="sync.no_resource")
    return candidates[0]


def _validate_schedule(errors: ErrorCollector, expression: str | None) -> str | None:
    expression = (expression or "").strip() or None
    if expression and not schedules.is_valid(expression):
        errors.add("schedule", "cron 表达式无效，例如每天凌晨 2 点为“0 2 * * *”")
    return expression


def create_job(
    session: Session, *, actor: Actor, job_in: SyncJobIn, settings: Settings | None = None, today: date | None = None
) -> SyncJob:
    """A job for an authorization the actor's organization holds; the plan is checked against the source now,
    so a job that could not run is refused at once with the reason."""
    settings = settings or get_settings()
    auth = authorization_service.get(session, actor=actor, authorization_id=job_in.authorization_id)
    target = get_target(session, actor=actor, target_id=job_in.target_id)
    entry = session.get(CatalogEntry, auth.entry_id)
    assert entry is not None
    job = SyncJob(
        id=new_id(),
        name=job_in.name.strip(),
        authorization_id=auth.id,
        entry_id=auth.entry_id,
        consumer_org_id=auth.consumer_org_id,
        provider_org_id=auth.provider_org_id,
        target_id=target.id,
        target_table=job_in.target_table.strip(),
        mode=job_in.mode,
        key_items=list(dict.fromkeys(job_in.key_items)),
        cursor_column=(job_in.cursor_column or "").strip() or None,
        batch_size=job_in.batch_size or settings.sync_batch_size,
        working_days_only=job_in.working_days_only,
        enabled=job_in.enabled,
        created_by=actor.username,
        description=job_in.description,
        resource_id="",
    )
    authz.ensure(actor, "sync.manage", job)
    errors = ErrorCollector()
    if target.owner_org_id != auth.consumer_org_id:
        errors.add("target_id", "目标库须属于授权的使用部门")
    if auth.delivery_way != TABLE_DELIVERY:
        errors.add("authorization_id", f"该授权的共享方式为“{auth.delivery_way}”，不能用于库表交换")
    if not _IDENT.match(job.target_table):
        errors.add("target_table", "目标表名须以字母开头，只含字母、数字和下划线，最长 63 个字符")
    if job.mode == "incremental" and not job.cursor_column:
        errors.add("cursor_column", "增量模式须指定游标字段（更新时间或递增编号）")
    job.schedule = _validate_schedule(errors, job_in.schedule)
    errors.raise_if_any(code="sync.invalid_job")
    job.resource_id = _table_resource(session, entry, job_in.resource_id).id
    _ensure_runnable(session, auth, today)
    build_spec(session, job=job, run_id="check", settings=settings, auth=auth)  # refuses an unworkable plan
    if job.schedule and job.enabled:
        job.next_run_at = schedules.next_run_after(job.schedule, utcnow(), working_days_only=job.working_days_only)
    session.add(job)
    session.flush()
    emit(
        session,
        "sync.job_created",
        job_id=job.id,
        authorization_id=auth.id,
        consumer_org_id=job.consumer_org_id,
        provider_org_id=job.provider_org_id,
    )
    return job


def get_job(session: Session, *, actor: Actor, job_id: str) -> SyncJob:
    job = session.get(SyncJob, job_id)
    if job is None or not authz.allowed(actor, "sync.view", job):
        raise NotFound("未找到该库表交换作业", code="sync.job_not_found")
    return job


@dataclass
class JobFilters:
    q: str | None = None
    mode: str | None = None
    enabled: bool | None = None
    last_status: str | None = None
    authorization_id: str | None = None


SORTS: dict[str, Any] = {
    "created_at": SyncJob.created_at,
    "name": SyncJob.name,
    "next_run_at": SyncJob.next_run_at,
    "last_run_at": SyncJob.last_run_at,
}


def list_query(actor: Actor, filters: JobFilters, sort: str = "-created_at") -> Select[tuple[SyncJob]]:
    stmt = select(SyncJob).where(authz.scope(actor, "sync.view"))
    if filters.q:
        like = f"%{filters.q.strip()}%"
        stmt = stmt.where(or_(SyncJob.name.like(like), SyncJob.target_table.like(like)))
    if filters.mode:
        stmt = stmt.where(SyncJob.mode == filters.mode)
    if filters.enabled is not None:
        stmt = stmt.where(SyncJob.enabled.is_(filters.enabled))
    if filters.last_status:
        stmt = stmt.where(SyncJob.last_status == filters.last_status)
    if filters.authorization_id:
        stmt = stmt.where(SyncJob.authorization_id == filters.authorization_id)
    column = SORTS.get(sort.lstrip("-"))
    if column is None:
        raise ValidationFailed(f"不支持按“{sort}”排序", code="sync.bad_sort")
    return stmt.order_by(column.desc() if sort.startswith("-") else column.asc(), SyncJob.id)


def update_job(
    session: Session, *, actor: Actor, job_id: str, job_in: SyncJobUpdate, settings: Settings | None = None
) -> SyncJob:
    job = get_job(session, actor=actor, job_id=job_id)
    authz.ensure(actor, "sync.manage", job)
    given = job_in.model_fields_set
    errors = ErrorCollector()
    if "schedule" in given:
        job.schedule = _validate_schedule(errors, job_in.schedule)
    for name in ("name", "mode", "batch_size", "working_days_only", "enabled", "description"):
        value = getattr(job_in, name)
        if name in given and value is not None:
            setattr(job, name, value.strip() if isinstance(value, str) and name == "name" else value)
    if "cursor_column" in given:
        job.cursor_column = (job_in.cursor_column or "").strip() or None
    if job.mode == "incremental" and not job.cursor_column:
        errors.add("cursor_column", "增量模式须指定游标字段（更新时间或递增编号）")
    errors.raise_if_any(code="sync.invalid_job")
    if given & {"mode", "cursor_column"}:
        auth = session.get(Authorization, job.authorization_id)
        assert auth is not None
        build_spec(session, job=job, run_id="check", settings=settings or get_settings(), auth=auth)
    job.next_run_at = (
        schedules.next_run_after(job.schedule, utcnow(), working_days_only=job.working_days_only)
        if job.schedule and job.enabled
        else None
    )
    job.updated_at = utcnow()
    session.flush()
    emit(session, "sync.job_updated", job_id=job.id, fields=sorted(given))
    return job


def delete_job(session: Session, *, actor: Actor, job_id: str) -> None:
    job = get_job(session, actor=actor, job_id=job_id)
    authz.ensure(actor, "sync.manage", job)
    if job.running_run_id:
        run = session.get(SyncRun, job.running_run_id)
        if run is not None and run.status == "running":
            raise Conflict("作业正在运行，请待本次运行结束后再删除", code="sync.running")
    for model in (SyncQuarantine, SyncRun):
        for row in session.scalars(select(model).where(model.job_id == job.id)):
            session.delete(row)
    session.delete(job)
    session.flush()
    emit(session, "sync.job_deleted", job_id=job_id)


# ---- the plan of a run -------------------------------------------------------------------------------------


def _ensure_runnable(session: Session, auth: Authorization, today: date | None = None) -> None:
    today = today or local_today()
    status = authorization_service.effective_status(auth, today)
    if status != "active":
        label = authorization_service.status_label(status)
        reason = f"：{auth.status_reason}" if auth.status_reason and status != "expired" else ""
        raise SyncRefused(f"共享授权{label}{reason}，库表交换已停止")
    if auth.start_on > today:
        raise SyncRefused(f"共享授权自 {auth.start_on.isoformat()} 起生效，尚不能交换")


def build_spec(
    session: Session,
    *,
    job: SyncJob,
    run_id: str,
    settings: Settings,
    auth: Authorization | None = None,
    today: date | None = None,
) -> SyncSpec:
    """What a run of ``job`` reads and writes, decided now from the authorization in force: its items (less
    those suppressed) mapped to the mounted table's columns, their masking rules and delivered types."""
    auth = auth or session.get(Authorization, job.authorization_id)
    if auth is None:
        raise SyncRefused("作业依据的共享授权已不存在")
    _ensure_runnable(session, auth, today)
    entry = session.get(CatalogEntry, job.entry_id)
    resource = session.get(MountedResource, job.resource_id)
    if entry is None or entry.status == "withdrawn":
        raise SyncRefused("目录已下架，库表交换已停止", code="sync.entry_withdrawn")
    if resource is None or not resource.active or resource.source_id is None:
        raise Conflict("挂接资源已撤销，请重新选择", code="sync.resource_unavailable")
    source = session.get(DataSource, resource.source_id)
    if source is None:
        raise Conflict("挂接资源的数据源已删除", code="sync.resource_unavailable")
    config = lake_service.connector_for(source).config
    table = TableRef(schema=resource.table_schema, name=resource.table_name or "")
    columns = source_columns(config, table)
    items = {i.key: i for i in catalog_service.display_version(session, entry).items}
    wanted = [ai for ai in auth.items if ai.masking_rule != "suppress" and ai.item_key in items]
    check = lake_service.check_items_against_table(
        [items[ai.item_key] for ai in wanted], TableDescription(table, columns, 0, None, "")
    )
    matched = {m.item: m.column for m in check.matched}
    by_name = {c.name: c for c in columns}
    plans: list[ColumnPlan] = []
    errors = ErrorCollector()
    seen: set[str] = set()
    for ai in wanted:
        item = items[ai.item_key]
        column = matched.get(item.name)
        if column is None:
            errors.add("items", f"信息项“{item.name}”在源表中找不到对应字段")
            continue
        if column in seen:
            continue
        seen.add(column)
        if not _IDENT.match(column):
            errors.add("items", f"字段“{column}”不能用作目标表的列名")
            continue
        plans.append(
            ColumnPlan(
                source=column,
                target=column,
                item_key=ai.item_key,
                item_name=item.name,
                code=item.data_type,
                length=item.length,
                rule=ai.masking_rule,
                arrow_type=delivered_type(item.data_type, by_name[column], ai.masking_rule),
                is_key=ai.item_key in job.key_items,
            )
        )
    authorized = {ai.item_key: ai for ai in auth.items}
    for key in job.key_items:
        ai = authorized.get(key)
        if ai is None:
            errors.add("key_items", "主键信息项须在授权范围内")
        elif ai.masking_rule != "none":
            errors.add("key_items", f"主键信息项“{ai.name}”经过脱敏，不能作为主键")
    if job.mode == "incremental" and job.cursor_column and job.cursor_column not in by_name:
        errors.add("cursor_column", f"源表中没有游标字段“{job.cursor_column}”")
    if not plans:
        errors.add("items", "授权中没有可交换的信息项")
    errors.raise_if_any("交换作业的配置与授权或源表不符", code="sync.invalid_job")
    target = session.get(SyncTarget, job.target_id)
    assert target is not None
    return SyncSpec(
        job_id=job.id,
        run_id=run_id,
        mode=job.mode,
        source=config,
        source_table=table,
        columns=plans,
        target=target_config(target),
        target_table=job.target_table,
        cursor=job.cursor_column if job.mode == "incremental" else None,
        batch_size=job.batch_size,
        pause_s=settings.sync_batch_pause_ms / 1000,
    )


# ---- read models ------------------------------------------------------------------------------------------


def direction(job: SyncJob) -> str:
    """数据回流 when an upper level delivers to a lower one (province → city), else 共享."""
    provider_region = job.provider.region_code if job.provider else ""
    consumer_region = job.consumer.region_code if job.consumer else ""
    if provider_region != consumer_region and provider_region.endswith("0000") and not consumer_region.endswith("0000"):
        return "数据回流"
    return "共享交换"


def to_read(session: Session, job: SyncJob) -> dict[str, Any]:
    entry = session.get(CatalogEntry, job.entry_id)
    return {
        **{c.key: getattr(job, c.key) for c in SyncJob.__table__.columns},
        "entry_name": entry.name if entry else "",
        "consumer_name": job.consumer.name if job.consumer else "",
        "provider_name": job.provider.name if job.provider else "",
        "direction": direction(job),
        "target_name": job.target.name if job.target else "",
        "mode_label": MODE_LABELS.get(job.mode, job.mode),
        "schedule_label": schedules.describe(job.schedule, job.working_days_only),
    }


def run_to_read(run: SyncRun) -> dict[str, Any]:
    return {
        **{c.key: getattr(run, c.key) for c in SyncRun.__table__.columns},
        "status_label": run_status_label(run.status),
    }


def runs_query(job_id: str) -> Select[tuple[SyncRun]]:
    return select(SyncRun).where(SyncRun.job_id == job_id).order_by(SyncRun.started_at.desc(), SyncRun.id.desc())


def quarantine_query(job_id: str, run_id: str | None = None) -> Select[tuple[SyncQuarantine]]:
    stmt = select(SyncQuarantine).where(SyncQuarantine.job_id == job_id)
    if run_id:
        stmt = stmt.where(SyncQuarantine.run_id == run_id)
    return stmt.order_by(SyncQuarantine.created_at.desc(), SyncQuarantine.id)


def due_clause(now: datetime) -> ColumnElement[bool]:
    return (SyncJob.enabled.is_(True)) & (SyncJob.next_run_at.is_not(None)) & (SyncJob.next_run_at <= now)


def ensure_can_run(actor: Actor, job: SyncJob) -> None:
    if not authz.allowed(actor, "sync.run", job):
        raise Forbidden("只有使用部门的数据专员可以运行该作业", code="sync.forbidden")
