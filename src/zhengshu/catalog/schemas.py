"""API and import shapes of catalog entries (one family per entity)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from zhengshu.catalog.enums import (
    DataType,
    EntryLevel,
    OpeningType,
    ResourceFormat,
    Sensitivity,
    SharingType,
    SharingWay,
    UpdateCycle,
)

Name = Annotated[str, Field(min_length=1, max_length=200)]
ClassCode = Annotated[str, Field(pattern=r"^[1-3]\d{2}\d{3}\d*$", description="分类码：类1位+项2位+目3位+细目")]


class DataItemBase(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_enum_values=True)

    name: Name = Field(description="信息项名称")
    column_name: str | None = Field(default=None, max_length=128, description="挂接表中的字段名（英文）")
    data_type: DataType = Field(description="数据类型代码 C/N/Y/D/T/L/M/G/B/I/F")
    length: int | None = Field(default=None, ge=1, le=10_000_000, description="数据长度（字节）")
    description: str = Field(default="", max_length=1000)
    sharing_type: SharingType | None = Field(default=None, description="为空时沿用目录的共享类型")
    opening_type: OpeningType | None = None
    sensitivity: Sensitivity = Sensitivity.GENERAL1


class DataItemIn(DataItemBase):
    pass


class DataItemRead(DataItemBase):
    id: str
    position: int


class EntryBase(BaseModel):
    model_config = ConfigDict(from_attributes=True, use_enum_values=True)

    name: Name = Field(description="信息资源名称")
    class_code: ClassCode = Field(description="信息资源分类码")
    summary: str = Field(min_length=1, max_length=4000, description="摘要")
    resource_format: ResourceFormat = Field(description="资源格式")
    format_detail: str = Field(default="", max_length=100, description="格式细类，如 XLSX、OFD")
    sharing_type: SharingType
    sharing_condition: str = Field(
        default="", max_length=2000, validate_default=True, description="共享条件（有条件共享必填）"
    )
    not_shared_basis: str = Field(default="", max_length=2000, validate_default=True, description="不予共享的法律依据")
    sharing_way: SharingWay = SharingWay.API
    opening_type: OpeningType = OpeningType.NOT_OPEN
    opening_condition: str = Field(default="", max_length=2000, validate_default=True)
    update_cycle: UpdateCycle
    level: EntryLevel = EntryLevel.DEPARTMENT
    tags: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list)
    related_codes: list[str] = Field(default_factory=list, description="关联资源代码")
    duty_basis: str = Field(default="", max_length=2000, description="职责依据（三定方案、法规条款）")

    # Field validators (not a model validator) so an error names the field that must be filled in; each
    # runs after the type it depends on, which is declared before it.
    @field_validator("sharing_condition")
    @classmethod
    def _sharing_condition(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("sharing_type") == SharingType.CONDITIONAL and not value.strip():
            raise ValueError("有条件共享的目录必须填写共享条件")
        return value

    @field_validator("not_shared_basis")
    @classmethod
    def _not_shared_basis(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("sharing_type") == SharingType.NOT_SHARED and not value.strip():
            raise ValueError("不予共享的目录必须提供法律、行政法规或党中央、国务院政策依据")
        return value

    @field_validator("opening_condition")
    @classmethod
    def _opening_condition(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("opening_type") == OpeningType.CONDITIONAL and not value.strip():
            raise ValueError("有条件开放的目录必须填写开放条件")
        return value


class EntryIn(EntryBase):
    """What a department officer compiles (create or edit)."""

    items: list[DataItemIn] = Field(min_length=1, description="信息项")
    provider_org_id: str | None = Field(default=None, description="提供方；为空时为当前用户所在部门")

    @field_validator("items")
    @classmethod
    def _unique_items(cls, items: list[DataItemIn]) -> list[DataItemIn]:
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise ValueError(f"信息项名称重复：{item.name}")
            seen.add(item.name)
        return items


class EntryRead(EntryBase):
    id: str
    code: str | None
    status: str
    status_label: str
    version: int
    provider_org_id: str
    provider_name: str
    provider_code: str
    region_code: str
    published_on: date | None
    created_at: datetime
    updated_at: datetime
    items: list[DataItemRead] = Field(default_factory=list)
    has_pending_revision: bool = False
    withdrawn_reason: str | None = None


class EntrySummary(BaseModel):
    """A row of the catalog list (一本账)."""

    id: str
    code: str
    name: str
    status: str
    status_label: str
    provider_org_id: str
    provider_name: str
    region_code: str
    class_code: str
    sharing_type: str
    opening_type: str
    update_cycle: str
    published_on: date | None
    summary: str = ""
    score: float | None = None


class EntryUpdateIn(EntryIn):
    change_note: str = Field(default="", max_length=1000, description="修订说明")


class CommentIn(BaseModel):
    comment: str = Field(default="", max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="理由（必填）")


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: int
    state: str
    name: str
    change_note: str
    created_by: str
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None


class FieldChangeRead(BaseModel):
    field: str
    old: object
    new: object


class DiffRead(BaseModel):
    from_version: int
    to_version: int
    changes: list[FieldChangeRead]
    items_added: list[dict[str, object]]
    items_removed: list[dict[str, object]]
    items_changed: list[dict[str, object]]


class TicketEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    actor_org_name: str
    action: str
    action_label: str
    from_state: str | None
    to_state: str | None
    comment: str


class MountedResourceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    source_id: str | None
    table_schema: str | None
    table_name: str | None
    api_endpoint: str | None
    api_method: str | None
    api_params: list[dict[str, object]]
    row_count: int | None
    last_updated: datetime | None
    last_updated_basis: str
    checked_at: datetime | None
    check_ok: bool
    check_problems: list[dict[str, object]]
    active: bool


class SearchFacetValue(BaseModel):
    value: str
    label: str
    count: int


class SearchResponse(BaseModel):
    items: list[EntrySummary]
    next_cursor: str | None = None
    total: int
    facets: dict[str, list[SearchFacetValue]]


class ImportErrorRead(BaseModel):
    row: int
    column: str
    message: str


class ImportResultRead(BaseModel):
    created: list[str]
    updated: list[str]
    skipped_entries: int
    errors: list[ImportErrorRead]


class DutyChangeIn(BaseModel):
    description: str = Field(min_length=1, max_length=2000, description="职责或法律依据变化的说明")
