"""Table exchange tables: consumer targets, sync jobs, their runs and the quarantine of unconvertible values.

Progress that makes a run exactly-once lives in the target itself (``zs_sync_checkpoint``, or the Parquet
manifest), committed with each batch; :class:`SyncRun` mirrors it for display.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow
from zhengshu.org.models import Organization


class SyncTarget(IdMixin, TimestampMixin, Base):
    """A consumer's receiving store (目标库): a PostgreSQL or MySQL database, a DuckDB file or a Parquet
    directory. The password is encrypted with SM4 and never returned."""

    __tablename__ = "sync_target"
    __table_args__ = (UniqueConstraint("owner_org_id", "name", name="uq_sync_target_owner_org_id_name"),)

    owner_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # postgresql | mysql | duckdb | parquet
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None]
    database: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(128))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    schema_name: Mapped[str | None] = mapped_column(String(128))
    path: Mapped[str | None] = mapped_column(String(1000))  # DuckDB file or Parquet directory
    description: Mapped[str] = mapped_column(String(2000), default="")

    owner: Mapped[Organization] = relationship(lazy="joined")


class SyncJob(IdMixin, TimestampMixin, Base):
    """Delivery of an authorization's items from the provider's mounted table into a consumer target."""

    __tablename__ = "sync_job"
    __table_args__ = (
        Index("ix_sync_job_consumer", "consumer_org_id", "enabled"),
        Index("ix_sync_job_provider", "provider_org_id"),
        Index("ix_sync_job_due", "enabled", "next_run_at"),
    )

    name: Mapped[str] = mapped_column(String(200))
    authorization_id: Mapped[str] = mapped_column(ForeignKey("share_authorization.id"), index=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"))
    resource_id: Mapped[str] = mapped_column(ForeignKey("catalog_mounted_resource.id"))
    consumer_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    target_id: Mapped[str] = mapped_column(ForeignKey("sync_target.id"))
    target_table: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(12))  # full | incremental | cdc
    key_items: Mapped[list[Any]] = mapped_column(default=list)  # item keys forming the primary key
    cursor_column: Mapped[str | None] = mapped_column(String(128))  # source column (incremental)
    batch_size: Mapped[int] = mapped_column(default=100_000)
    schedule: Mapped[str | None] = mapped_column(String(100))  # cron expression, Beijing time
    working_days_only: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None]
    last_run_id: Mapped[str | None] = mapped_column(String(32))
    last_status: Mapped[str | None] = mapped_column(String(12))
    last_run_at: Mapped[datetime | None]
    running_run_id: Mapped[str | None] = mapped_column(String(32))  # set while a run holds the job
    created_by: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(2000), default="")

    target: Mapped[SyncTarget] = relationship(lazy="joined")
    consumer: Mapped[Organization] = relationship(foreign_keys=[consumer_org_id], lazy="joined")
    provider: Mapped[Organization] = relationship(foreign_keys=[provider_org_id], lazy="joined")


class SyncRun(IdMixin, Base):
    """One run of a job. Status: queued, running, succeeded, failed, refused (the authorization did not allow
    it), abandoned (its process died; the next run resumes from the target's checkpoint)."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_job_started", "job_id", "started_at"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("sync_job.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(12))  # manual | schedule | cli
    triggered_by: Mapped[str] = mapped_column(String(60))
    mode: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(120))  # host:pid of the process running it
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_written: Mapped[int] = mapped_column(default=0)
    rows_deleted: Mapped[int] = mapped_column(default=0)
    rows_quarantined: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(default=0)
    batches: Mapped[int] = mapped_column(default=0)
    rows_total: Mapped[int | None]
    duration_ms: Mapped[int | None]
    resumed_from: Mapped[str | None] = mapped_column(String(32))
    cursor_value: Mapped[str | None] = mapped_column(String(200))
    columns_added: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(60))


class SyncQuarantine(IdMixin, Base):
    """A value that could not be converted to its item's type; its row was not delivered."""

    __tablename__ = "sync_quarantine"
    __table_args__ = (Index("ix_sync_quarantine_job", "job_id", "created_at"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("sync_job.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(ForeignKey("sync_run.id", ondelete="CASCADE"), index=True)
    row_key: Mapped[str] = mapped_column(String(500))
    column_name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
