"""API shapes of applications and authorizations (one family per entity)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class DeliveryWay(StrEnum):
    """The ways an authorization is delivered through the sharing platform."""

    API = "接口"
    TABLE = "库表"
    FILE = "文件"


ItemKey = Annotated[str, Field(min_length=1, max_length=32)]


class ApplicationIn(BaseModel):
    model_config = ConfigDict(use_enum_values=True)

    entry_id: str = Field(min_length=1, max_length=32, description="申请的目录")
    item_keys: list[ItemKey] = Field(min_length=1, max_length=500, description="申请的信息项（DataItem.key）")
    purpose: str = Field(min_length=1, max_length=2000, description="用途")
    basis: str = Field(min_length=1, max_length=2000, description="申请依据（法律法规或职责）")
    business_system: str = Field(min_length=1, max_length=200, description="使用数据的业务系统")
    start_on: date = Field(description="使用期限起")
    end_on: date = Field(description="使用期限止")
    delivery_way: DeliveryWay = Field(description="共享方式：接口、库表、文件")
    contact_name: str = Field(min_length=1, max_length=60, description="联系人")
    contact_phone: str = Field(min_length=5, max_length=30, description="联系电话")


class ItemDecisionIn(BaseModel):
    item_key: ItemKey
    decision: Literal["approve", "refuse"]
    reason: str = Field(default="", max_length=2000, description="不同意时必填")
    masking_rule: str | None = Field(default=None, max_length=20, description="覆盖默认脱敏规则")


class DecisionIn(BaseModel):
    items: list[ItemDecisionIn] = Field(min_length=1, max_length=500)
    comment: str = Field(default="", max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class CommentIn(BaseModel):
    comment: str = Field(default="", max_length=2000)


class SupplementIn(BaseModel):
    material: str = Field(min_length=1, max_length=4000, description="补充说明的材料")


class RenewIn(BaseModel):
    end_on: date = Field(description="新的到期日")
    reason: str = Field(min_length=1, max_length=2000)


class ApplicationItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_key: str
    name: str
    column_name: str | None
    sharing_type: str
    sensitivity: str
    status: str
    status_label: str = ""
    reason: str
    masking_rule: str | None
    decided_by: str | None
    decided_at: datetime | None


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


class ApplicationSummary(BaseModel):
    id: str
    entry_id: str
    entry_name: str
    consumer_org_id: str
    consumer_name: str
    provider_org_id: str
    provider_name: str
    applicant_name: str
    state: str
    state_label: str
    outcome: str | None
    submitted_on: date
    due_on: date | None
    due_provisional: bool
    item_count: int
    created_at: datetime


class ApplicationRead(ApplicationSummary):
    authority_org_id: str
    authority_name: str
    purpose: str
    basis: str
    business_system: str
    start_on: date
    end_on: date
    delivery_way: str
    contact_name: str
    contact_phone: str
    decided_on: date | None
    appeal_until: date | None
    supplement_request: str
    items: list[ApplicationItemRead]
    authorization_ids: list[str]
    actions: list[str] = Field(description="当前用户可执行的操作")
    timeline: list[TimelineEventRead]


class AuthorizationItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    item_key: str
    name: str
    column_name: str | None
    masking_rule: str


class AuthorizationEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    actor_org_name: str
    action: str
    action_label: str
    from_status: str | None
    to_status: str
    reason: str


class AuthorizationSummary(BaseModel):
    id: str
    application_id: str | None
    consumer_org_id: str
    consumer_name: str
    consumer_system: str
    entry_id: str
    entry_name: str
    provider_org_id: str
    provider_name: str
    delivery_way: str
    start_on: date
    end_on: date
    status: str = Field(description="active, suspended, revoked, expired（按到期日实时计算）")
    status_label: str
    item_count: int


class AuthorizationRead(AuthorizationSummary):
    status_reason: str
    grant_basis: str
    granted_by: str
    items: list[AuthorizationItemRead]
    history: list[AuthorizationEventRead]
    actions: list[str]


class WhoCanSeeRow(BaseModel):
    authorization_id: str
    consumer_org_id: str
    consumer_name: str
    consumer_system: str
    item_key: str
    item_name: str
    masking_rule: str
    delivery_way: str
    start_on: date
    end_on: date


class StateCountRow(BaseModel):
    provider_org_id: str
    provider_name: str
    month: str
    state: str
    state_label: str
    count: int


class TimelinessRow(BaseModel):
    provider_org_id: str
    provider_name: str
    month: str
    submitted: int
    decided: int
    on_time: int
    on_time_rate: float | None
    avg_working_days: float | None
