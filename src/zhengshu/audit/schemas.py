"""API shapes of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AuditRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="记录序号（递增，可能有间隔）")
    at: datetime = Field(description="发生时间")
    actor_user_id: str | None = Field(description="操作用户 ID")
    actor_username: str = Field(description="操作用户名")
    actor_org_id: str | None = Field(description="操作用户所属单位 ID")
    via: str = Field(description="操作途径：web/api/cli/job")
    source_ip: str | None = Field(description="来源地址")
    action: str = Field(description="事件类型，如 catalog.entry.update")
    target_type: str = Field(description="操作对象类型")
    target_id: str = Field(description="操作对象 ID")
    outcome: Literal["success", "failure"] = Field(description="结果：成功或失败")
    detail: dict[str, Any] = Field(default_factory=dict, description="事件详情")
    prev_hash: str = Field(description="前一条记录的 SM3 哈希（仅 0004 迁移前的记录；此后为空，链接记在审计链中）")
    hash: str = Field(description="本条记录内容的 SM3 哈希")


class VerifyReportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ok: bool = Field(description="审计链是否完整")
    checked: int = Field(description="已校验的记录数")
    first_bad_seq: int | None = Field(default=None, description="第一条有问题的记录序号")
    reason: str = Field(default="", description="问题说明")
    unsealed: int = Field(default=0, description="超过时限仍未封链的记录数")
