"""API shapes of the open-data portal (publishing side and public reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ItemChoice(BaseModel):
    item_key: str = Field(min_length=1, max_length=32, description="目录信息项的 key")
    masking_rule: str | None = Field(default=None, description="脱敏规则代码；缺省按信息项名称与分级取默认规则")


class PublishIn(BaseModel):
    entry_id: str = Field(description="已发布的目录 id")
    resource_id: str | None = Field(default=None, description="挂接资源 id；缺省取该目录唯一的库表/文件资源")
    title: str | None = Field(default=None, max_length=200, description="数据集名称；缺省为目录名称")
    description: str | None = Field(default=None, max_length=4000, description="数据集简介；缺省为目录摘要")
    field: str = Field(default="other", description="领域代码（见 vocab.FIELDS）")
    tags: list[str] = Field(default_factory=list, max_length=20)
    licence: str | None = Field(default=None, description="开放许可代码；缺省为政府数据开放许可协议")
    update_cycle: str | None = Field(default=None, description="更新周期；缺省为目录的更新周期")
    contact: str = Field(default="", max_length=200)
    items: list[ItemChoice] = Field(min_length=1, description="开放的信息项与各自的脱敏规则")
    key_item: str | None = Field(default=None, description="主键信息项 key：开放副本按它排序，按它筛选最快")


class DatasetUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    field: str | None = None
    tags: list[str] | None = Field(default=None, max_length=20)
    licence: str | None = None
    update_cycle: str | None = None
    contact: str | None = Field(default=None, max_length=200)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=2, max_length=1000)


class RefreshIn(BaseModel):
    note: str = Field(default="", max_length=1000)


class ItemRead(BaseModel):
    column: str
    name: str
    data_type: str
    description: str
    masking_rule: str
    masking_label: str
    is_key: bool


class VersionRead(BaseModel):
    number: int
    row_count: int
    byte_size: int
    checksum: str
    quality_score: float | None
    note: str
    created_at: datetime


class DatasetSummary(BaseModel):
    id: str
    slug: str
    title: str
    description: str
    provider_org_id: str
    provider: str
    field: str
    field_label: str
    opening_type: str
    update_cycle: str
    licence: str
    row_count: int
    status: str
    published_at: datetime | None
    refreshed_at: datetime | None
    view_count: int
    download_count: int
    api_call_count: int


class DatasetRead(DatasetSummary):
    entry_id: str
    entry_code: str
    tags: list[str]
    opening_condition: str
    licence_label: str
    licence_url: str
    contact: str
    version: int
    byte_size: int
    quality_score: float | None
    items: list[ItemRead]
    versions: list[VersionRead]
    downloads: dict[str, str]
    api: dict[str, Any]
