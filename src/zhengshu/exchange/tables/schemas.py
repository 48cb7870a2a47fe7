"""API shapes of sync targets, jobs, runs and quarantined values. Target passwords are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

TargetKind = Literal["postgresql", "mysql", "duckdb", "parquet"]
Mode = Literal["full", "incremental", "cdc"]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class SyncTargetIn(BaseModel):
    name: Name = Field(description="目标库名称")
    kind: TargetKind = Field(description="postgresql、mysql、duckdb 或 parquet")
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, max_length=255)
    username: str | None = Field(default=None, max_length=128)
    password: SecretStr | None = Field(default=None, description="只写；加密保存")
    schema_name: str | None = Field(default=None, max_length=128, description="写入的模式（PostgreSQL）")
    path: str | None = Field(
        default=None, max_length=1000, description="DuckDB 文件或 Parquet 目录；留空时放在本部门的交换区"
    )
    owner_org_id: str | None = Field(default=None, description="所属部门（管理员代登记时填写）")
    description: str = Field(default="", max_length=2000)


class SyncTargetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    kind_label: str = ""
    owner_org_id: str
    owner_name: str = ""
    host: str | None
    port: int | None
    database: str | None
    username: str | None
    has_password: bool = False
    schema_name: str | None
    path: str | None
    description: str
    created_at: datetime


class SyncJobIn(BaseModel):
    name: Name = Field(description="作业名称")
    authorization_id: str = Field(min_length=1, max_length=32, description="依据的共享授权（共享方式为库表）")
    target_id: str = Field(min_length=1, max_length=32, description="消费方目标库")
    target_table: str = Field(min_length=1, max_length=63, description="目标表名")
    mode: Mode = Field(default="incremental", description="full 全量、incremental 增量、cdc 变更比对")
    key_items: list[str] = Field(min_length=1, max_length=8, description="构成主键的信息项（DataItem.key），须不脱敏")
    cursor_column: str | None = Field(default=None, max_length=128, description="增量游标字段（源表字段名）")
    resource_id: str | None = Field(default=None, max_length=32, description="挂接资源；默认目录的第一个库表资源")
    batch_size: int | None = Field(default=None, ge=100, le=1_000_000, description="每批行数")
    schedule: str | None = Field(default=None, max_length=100, description="cron 表达式（北京时间）；空为手动")
    working_days_only: bool = Field(default=False, description="只在工作日运行")
    enabled: bool = True
    description: str = Field(default="", max_length=2000)


class SyncJobUpdate(BaseModel):
    name: Name | None = None
    mode: Mode | None = None
    cursor_column: str | None = Field(default=None, max_length=128)
    batch_size: int | None = Field(default=None, ge=100, le=1_000_000)
    schedule: str | None = Field(default=None, max_length=100, description="空字符串表示改为手动运行")
    working_days_only: bool | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=2000)


class SyncRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    trigger: str
    triggered_by: str
    mode: str
    status: str
    status_label: str = ""
    started_at: datetime
    finished_at: datetime | None
    rows_read: int
    rows_written: int
    rows_deleted: int
    rows_quarantined: int
    bytes: int
    batches: int
    rows_total: int | None
    duration_ms: int | None
    resumed_from: str | None
    cursor_value: str | None
    columns_added: list[str]
    error: str | None
    error_code: str | None


class SyncJobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    authorization_id: str
    entry_id: str
    entry_name: str = ""
    resource_id: str
    consumer_org_id: str
    consumer_name: str = ""
    provider_org_id: str
    provider_name: str = ""
    direction: str = ""
    target_id: str
    target_name: str = ""
    target_table: str
    mode: str
    mode_label: str = ""
    key_items: list[str]
    cursor_column: str | None
    batch_size: int
    schedule: str | None
    schedule_label: str = ""
    working_days_only: bool
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    running_run_id: str | None
    description: str
    created_by: str
    created_at: datetime


class QuarantineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    run_id: str
    row_key: str
    column_name: str
    value: str | None
    reason: str
    created_at: datetime


class RunRequest(BaseModel):
    wait: bool = Field(default=True, description="true：在本请求内运行完再返回；false：交给后台任务")
