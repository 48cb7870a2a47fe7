"""Vocabularies and API shapes of objections (one family per entity)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ObjectionKind(StrEnum):
    WRONG = "wrong"
    MISSING = "missing"
    OUTDATED = "outdated"
    INCONSISTENT = "inconsistent"


KIND_LABELS = {
    ObjectionKind.WRONG.value: "数据错误",
    ObjectionKind.MISSING.value: "数据缺失",
    ObjectionKind.OUTDATED.value: "数据过时",
    ObjectionKind.INCONSISTENT.value: "与其他来源不一致",
}


class TargetType(StrEnum):
    ENTRY = "entry"
    ITEM = "item"
    RECORD = "record"


TARGET_LABELS = {"entry": "目录", "item": "信息项", "record": "数据记录"}


class Resolution(StrEnum):
    CORRECTED = "corrected"
    NOT_ERROR = "not_error"


RESOLUTION_LABELS = {"corrected": "已更正", "not_error": "经核实无误"}


class Decision(StrEnum):
    UPHOLD_CORRECTION = "uphold_correction"
    ORDER_CORRECTION = "order_correction"
    DISMISS = "dismiss"


DECISION_LABELS = {
    "uphold_correction": "维持提供部门的更正",
    "order_correction": "责令更正",
    "dismiss": "驳回异议",
}

Text2000 = Field(default="", max_length=2000)


class ObjectionIn(BaseModel):
    """What a department (or the platform) raises. The target is the entry, one of its items (``item_key``),
    or one record of a mounted resource (``resource_id`` + ``record_key``, optionally naming the item)."""

    model_config = ConfigDict(use_enum_values=True, str_strip_whitespace=True)

    entry_id: str = Field(min_length=1, max_length=32, description="目录 id")
    item_key: str | None = Field(default=None, max_length=32, description="信息项标识（DataItem.key）")
    resource_id: str | None = Field(default=None, max_length=32, description="挂接资源 id（针对具体记录时）")
    record_key: str | None = Field(
        default=None, max_length=500, description="记录主键值，如统一社会信用代码；多个主键字段以 | 分隔"
    )
    kind: ObjectionKind = Field(description="异议类型：wrong 错误 / missing 缺失 / outdated 过时 / inconsistent 不一致")
    other_source: str = Field(default="", max_length=200, description="不一致时，另一数据来源（必填）")
    claimed_value: str = Field(default="", max_length=2000, description="异议方认为正确的值")
    description: str = Field(min_length=1, max_length=4000, description="异议说明")

    @model_validator(mode="before")
    @classmethod
    def _blank_to_none(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("item_key", "resource_id", "record_key"):
                if isinstance(data.get(key), str) and not data[key].strip():
                    data[key] = None
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ObjectionIn:
        if self.kind == ObjectionKind.INCONSISTENT.value and not self.other_source:
            raise ValueError("异议类型为“与其他来源不一致”时，须注明另一数据来源")
        if (self.resource_id is None) != (self.record_key is None):
            raise ValueError("针对具体记录提出异议时，须同时指定挂接资源和记录主键值")
        return self

    @property
    def target_type(self) -> str:
        if self.record_key is not None:
            return TargetType.RECORD.value
        if self.item_key is not None:
            return TargetType.ITEM.value
        return TargetType.ENTRY.value


class CommentIn(BaseModel):
    comment: str = Text2000


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="理由（必填）")


class AnswerIn(BaseModel):
    """The provider's answer: corrected (value and effective date) or not an error (reasons)."""

    model_config = ConfigDict(use_enum_values=True, str_strip_whitespace=True)

    resolution: Resolution
    corrected_value: str | None = Field(default=None, max_length=2000, description="更正后的值（已更正时必填）")
    old_value: str | None = Field(default=None, max_length=2000, description="更正前的值（如已知）")
    effective_from: date | None = Field(default=None, description="更正生效日期，默认为答复当日")
    item_key: str | None = Field(default=None, max_length=32, description="更正的信息项，默认取异议指向的信息项")
    note: str = Field(default="", max_length=2000, description="核实情况；经核实无误时须说明理由")

    @model_validator(mode="after")
    def _consistent(self) -> AnswerIn:
        if self.resolution == Resolution.CORRECTED.value and not self.corrected_value:
            raise ValueError("答复“已更正”时须填写更正后的值")
        if self.resolution == Resolution.NOT_ERROR.value and not self.note:
            raise ValueError("答复“经核实无误”时须说明理由")
        return self


class ForwardIn(BaseModel):
    to_org_id: str = Field(min_length=1, max_length=32, description="实际数据来源部门")
    reason: str = Field(min_length=1, max_length=2000, description="转办理由")


class ArbitrateIn(BaseModel):
    model_config = ConfigDict(use_enum_values=True, str_strip_whitespace=True)

    decision: Decision
    reason: str = Field(min_length=1, max_length=2000, description="裁定理由")
    corrected_value: str | None = Field(default=None, max_length=2000, description="责令更正时的正确值")
    effective_from: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ArbitrateIn:
        if self.decision == Decision.ORDER_CORRECTION.value and not self.corrected_value:
            raise ValueError("裁定“责令更正”时须填写正确的值")
        return self


# ---- read shapes --------------------------------------------------------------------------------------


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    file_type: str
    content_type: str
    size: int
    sm3: str
    uploaded_by: str
    created_at: datetime
    download_url: str = ""


class FlagRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    group_id: str
    objection_id: str
    target_type: str
    entry_id: str
    item_key: str | None
    resource_id: str | None
    record_key: str | None
    item_keys: list[str]
    kinds: list[str]
    note: str
    opened_at: datetime
    closed_at: datetime | None


class CorrectionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    objection_id: str
    target_type: str
    entry_id: str
    item_key: str | None
    item_name: str | None
    resource_id: str | None
    record_key: str | None
    old_value: str | None
    corrected_value: str
    effective_from: date
    corrected_by: str
    corrected_by_name: str
    corrected_by_org_id: str | None
    corrected_by_org_name: str = ""
    ordered_by_org_id: str | None
    note: str
    created_at: datetime


class TimelineEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    actor_org_name: str
    action: str
    action_label: str
    from_state: str | None
    to_state: str | None
    comment: str


class ObjectionSummary(BaseModel):
    id: str
    title: str
    target_type: str
    entry_id: str
    entry_name: str
    item_key: str | None
    item_name: str | None
    resource_id: str | None
    record_key: str | None
    kind: str
    kind_label: str
    state: str
    state_label: str
    objector_org_id: str | None
    objector_name: str
    source: str | None
    provider_org_id: str
    handler_org_id: str
    handler_name: str
    group_id: str
    raised_on: date
    due_on: date | None
    due_provisional: bool
    overdue: bool
    created_at: datetime


class ObjectionRead(ObjectionSummary):
    other_source: str
    claimed_value: str
    description: str
    raised_by: str
    raised_by_name: str
    authority_org_id: str | None
    ticket_id: str | None
    resolution: str | None
    resolution_label: str | None
    answer_note: str
    corrected_value: str | None
    effective_from: date | None
    answered_on: date | None
    answered_by: str | None
    answered_on_time: bool | None
    decision: str | None
    decision_label: str | None
    decision_note: str
    closed_at: datetime | None
    group_members: list[str]
    actions: list[str] = Field(description="当前用户可执行的操作")
    attachments: list[AttachmentRead]
    timeline: list[TimelineEventRead]
    flags: list[FlagRead]
    corrections: list[CorrectionRead]


class StateCountRead(BaseModel):
    state: str
    state_label: str
    count: int


class SupervisionRowRead(BaseModel):
    month: str
    org_id: str
    org_name: str
    raised: int
    open: int
    answered: int
    on_time: int
    on_time_rate: float | None
    avg_handling_days: float | None
    by_state: dict[str, int]
