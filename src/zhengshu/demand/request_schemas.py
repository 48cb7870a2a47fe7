"""API shapes of data requests (数据需求)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Urgency = Literal["一般", "紧急", "特急"]


class DataRequestIn(BaseModel):
    title: str = Field(min_length=1, max_length=200, description="需求名称")
    description: str = Field(min_length=1, max_length=4000, description="需求描述：需要什么数据、覆盖范围")
    items_text: str = Field(min_length=1, max_length=4000, description="所需信息项（自由填写）")
    purpose: str = Field(min_length=1, max_length=2000, description="用途")
    basis: str = Field(min_length=1, max_length=2000, description="依据：所履行的法定职责或法规条款")
    business_system: str = Field(min_length=1, max_length=200, description="使用数据的业务系统")
    urgency: Urgency = Field(default="一般", description="紧急程度")
    provider_org_id: str | None = Field(default=None, description="可能的提供部门；为空时由数据主管部门协调指定")


class CommentIn(BaseModel):
    comment: str = Field(default="", max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="理由（必填）")


class LinkEntryIn(BaseModel):
    entry_id: str = Field(description="已发布的目录；编目中可为本部门尚未发布的目录，发布后自动对接")
    comment: str = Field(default="", max_length=2000)


class CompileIn(BaseModel):
    entry_id: str | None = Field(default=None, description="正在编制的目录（可稍后关联）")
    comment: str = Field(default="", max_length=2000)


class RefuseIn(BaseModel):
    legal_basis: str = Field(min_length=1, max_length=2000, description="不予共享的法律、法规依据（必填）")
    reason: str = Field(default="", max_length=2000)


class ProviderIn(BaseModel):
    provider_org_id: str = Field(description="新的提供部门")
    comment: str = Field(default="", max_length=2000)


class DataRequestRead(BaseModel):
    id: str
    title: str
    description: str
    items_text: str
    purpose: str
    basis: str
    business_system: str
    urgency: str
    requester_org_id: str
    requester_name: str = Field(description="需求部门")
    requester_user_name: str
    provider_org_id: str | None
    provider_name: str | None
    authority_org_id: str | None
    authority_name: str | None
    state: str
    state_label: str
    answer: str | None
    answer_label: str | None
    answer_note: str
    legal_basis: str
    entry_id: str | None = Field(description="对接的已发布目录")
    pending_entry_id: str | None = Field(description="编目中的目录")
    assigned_on: date
    reply_due_on: date | None
    answered_on: date | None
    closed_on: date | None
    due_on: date | None = Field(description="当前环节的办理期限")
    due_provisional: bool
    overdue: bool
    escalated: bool
    redirects: int
    ticket_id: str | None
    created_at: datetime
    updated_at: datetime
    actions: list[str] = Field(default_factory=list, description="当前用户可执行的操作")


class SuggestedEntry(BaseModel):
    id: str
    code: str
    name: str


class ProviderSuggestionRead(BaseModel):
    org_id: str
    org_name: str
    score: float = Field(description="各关键词命中的已发布目录中该部门所占份额的平均值（0–1）")
    matches: int
    entries: list[SuggestedEntry]


class TimelineItemRead(BaseModel):
    at: datetime
    stage: str = Field(description="need 需求, entry 目录, application 申请, authorization 授权")
    stage_label: str
    title: str
    actor_name: str
    actor_org_name: str
    comment: str
    link: str | None


class RequestStatsRow(BaseModel):
    provider_org_id: str | None
    provider_name: str
    month: str = Field(description="收到需求的月份 YYYY-MM")
    total: int
    by_state: dict[str, int]
    answered: int
    answered_on_time: int
    on_time_rate: float | None = Field(description="按期答复率（已答复或已逾期者为分母）")
    avg_handling_days: float | None = Field(description="平均答复用时（工作日）")


class RequestStatsRead(BaseModel):
    by_state: dict[str, int] = Field(description="各状态的需求数")
    rows: list[RequestStatsRow] = Field(description="按提供部门和月份")
