"""API shapes of data sources, table descriptions and mount checks. The secret is write-only."""

from __future__ import annotations

import codecs
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, computed_field, field_validator

from zhengshu.catalog.enums import DATA_TYPE_LABELS

SourceKind = Literal["postgresql", "mysql", "sqlite", "duckdb", "csv", "xlsx", "parquet"]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class SourceOptions(BaseModel):
    """Kind-specific settings, stored as the source's ``options`` JSON (keys as named by the aliases)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_name: str | None = Field(
        default=None, alias="schema", max_length=128, description="默认模式（PostgreSQL、DuckDB、MySQL 库名）"
    )
    path: str | None = Field(default=None, max_length=1000, description="文件路径（文件、SQLite、DuckDB）")
    sheet: str | None = Field(default=None, max_length=100, description="只使用该工作表（XLSX）")
    delimiter: str | None = Field(default=None, min_length=1, max_length=1, description="分隔符（CSV，默认逗号）")
    encoding: str | None = Field(default=None, max_length=40, description="字符编码（CSV，如 gbk；默认自动识别）")
    text_columns: list[str] = Field(default_factory=list, description="按文本读取的列（CSV，保留前导零）")
    timeout_s: float | None = Field(default=None, ge=1, le=600, description="连接与语句超时（秒，默认 10）")
    max_rows: int | None = Field(default=None, ge=1, description="单次读取的最大行数")
    updated_column: str | dict[str, str] | None = Field(
        default=None, description="表示更新时间的字段；可按表名分别指定"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"不支持的字符编码：{value}") from None
        return value

    def stored(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


class DataSourceBase(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: Name = Field(description="数据源名称")
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, max_length=255)
    username: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", max_length=2000)


class DataSourceIn(DataSourceBase):
    kind: SourceKind
    owner_org_id: str | None = Field(default=None, description="所属部门；为空时为当前用户所在部门")
    password: SecretStr | None = Field(default=None, exclude=True, description="口令（只写，加密保存）")
    options: SourceOptions = Field(default_factory=SourceOptions)


class DataSourceUpdate(BaseModel):
    """Partial update; ``password`` None keeps the stored secret, ``clear_password`` removes it."""

    name: Name | None = None
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, max_length=255)
    username: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=2000)
    password: SecretStr | None = Field(default=None, exclude=True)
    clear_password: bool = False
    options: SourceOptions | None = None


class DataSourceRead(DataSourceBase):
    id: str
    kind: str
    kind_label: str
    owner_org_id: str
    options: dict[str, Any]
    has_secret: bool
    last_checked_at: datetime | None
    last_check_ok: bool | None
    last_check_message: str | None
    created_at: datetime
    updated_at: datetime


class TableRefRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    schema_name: str | None = Field(validation_alias="schema", serialization_alias="schema")
    name: str
    kind: str


class ColumnInfoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    native_type: str
    type_code: str
    length: int | None
    nullable: bool
    comment: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def type_label(self) -> str:
        return DATA_TYPE_LABELS.get(self.type_code, self.type_code)


class TableDescriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    table: TableRefRead
    columns: list[ColumnInfoRead]
    row_count: int
    last_updated: datetime | None
    last_updated_basis: str


class MountMatchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item: str
    column: str
    item_type: str
    column_type: str


class MountProblemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item: str | None
    column: str | None
    kind: Literal["missing_column", "type_mismatch", "length_exceeded", "extra_column"]
    message: str
    blocking: bool


class MountCheckRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ok: bool
    matched: list[MountMatchRead]
    problems: list[MountProblemRead]
