"""API shapes of the gateway control plane (services, versions, apps, credentials, calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

ServiceCode = Field(
    min_length=3,
    max_length=60,
    pattern=r"^[a-z0-9][a-z0-9_-]*$",
    description="调用路径中的服务代码（小写字母、数字、-、_）",
)


class GatewayInput(BaseModel):
    """What callers send: text with a NUL character is refused here (PostgreSQL cannot store it)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("不能包含空字符（\\0）")
        return value


class UpstreamParam(GatewayInput):
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    location: Literal["query", "path"] = "query"
    required: bool = False
    description: str = Field(default="", max_length=200)


class ProxyConfigIn(GatewayInput):
    upstream_url: HttpUrl = Field(description="上游接口地址；路径参数写作 {name}")
    method: Literal["GET", "POST"] = "GET"
    params: list[UpstreamParam] = Field(default_factory=list, max_length=50)
    fields: dict[str, str] = Field(min_length=1, description="上游响应字段 → 信息项（名称或 key）；未映射的字段不返回")
    result_path: str = Field(default="", max_length=100, description="结果所在的 JSON 路径，如 data.items；空为根")
    timeout_s: float = Field(default=5.0, gt=0, le=120)


class TableConfigIn(GatewayInput):
    resource_id: str | None = Field(default=None, description="目录已挂接的库表资源；为空时取第一个库表资源")
    key_items: list[str] = Field(min_length=1, max_length=5, description="按其查询单条的信息项（名称或 key）")
    filter_items: list[str] = Field(default_factory=list, max_length=20, description="列表查询可按其筛选的信息项")
    timeout_s: float = Field(default=5.0, gt=0, le=120)


class ServiceIn(GatewayInput):
    entry_id: str = Field(min_length=1, max_length=32)
    code: str = ServiceCode
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    kind: Literal["proxy", "table"]
    proxy: ProxyConfigIn | None = None
    table: TableConfigIn | None = None
    rate_per_s: int | None = Field(default=None, ge=1, le=1_000_000, description="服务总速率上限（次/秒）")
    app_rate_per_s: int | None = Field(default=None, ge=1, le=1_000_000, description="每个应用的速率上限（次/秒）")
    app_daily_quota: int | None = Field(default=None, ge=1, le=1_000_000_000, description="每个应用每日配额")


class VersionIn(GatewayInput):
    proxy: ProxyConfigIn | None = None
    table: TableConfigIn | None = None
    note: str = Field(default="", max_length=2000, description="版本说明")


class ServiceUpdate(GatewayInput):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    status: Literal["active", "disabled"] | None = None
    current_version: int | None = Field(default=None, ge=1, description="对外提供的版本")
    rate_per_s: int | None = Field(default=None, ge=0, le=1_000_000, description="0 表示改用默认值")
    app_rate_per_s: int | None = Field(default=None, ge=0, le=1_000_000)
    app_daily_quota: int | None = Field(default=None, ge=0, le=1_000_000_000)


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    config: dict[str, Any]
    note: str
    created_at: datetime
    created_by: str


class ServiceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    code: str
    name: str
    description: str
    entry_id: str
    entry_name: str = ""
    provider_org_id: str
    provider_name: str = ""
    kind: str
    status: str
    current_version: int
    rate_per_s: int | None
    app_rate_per_s: int | None
    app_daily_quota: int | None
    call_url: str = ""
    created_at: datetime
    updated_at: datetime
    versions: list[VersionRead] = Field(default_factory=list)


class AppIn(GatewayInput):
    name: str = Field(min_length=1, max_length=200, description="应用（业务系统）名称")
    description: str = Field(default="", max_length=2000)
    contact_name: str = Field(default="", max_length=60)
    contact_phone: str = Field(default="", max_length=30)
    org_id: str | None = Field(default=None, description="所属部门；默认为本人所在部门（管理员可代登记）")


class AppUpdate(GatewayInput):
    description: str | None = Field(default=None, max_length=2000)
    contact_name: str | None = Field(default=None, max_length=60)
    contact_phone: str | None = Field(default=None, max_length=30)
    status: Literal["active", "disabled"] | None = None
    rate_per_s: int | None = Field(default=None, ge=0, le=1_000_000, description="0 表示改用默认值")
    daily_quota: int | None = Field(default=None, ge=0, le=1_000_000_000, description="0 表示改用默认值")


class CredentialRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    access_key: str
    status: str
    created_at: datetime
    expires_at: datetime | None


class AppRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    org_id: str
    org_name: str = ""
    name: str
    description: str
    contact_name: str
    contact_phone: str
    status: str
    rate_per_s: int | None
    daily_quota: int | None
    created_at: datetime
    credentials: list[CredentialRead] = Field(default_factory=list)


class SecretIssued(BaseModel):
    """The secret is shown only in this answer; the platform keeps it encrypted and never shows it again."""

    app_id: str
    access_key: str
    secret: str
    previous_valid_until: datetime | None = None


class RotateIn(GatewayInput):
    overlap_hours: int | None = Field(
        default=None, ge=0, le=24 * 30, description="旧密钥继续有效的小时数；默认按系统设置，0 为立即失效"
    )


class CallRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    at: datetime
    request_id: str
    app_id: str | None
    org_id: str | None
    service_id: str | None
    service_version: int | None
    method: str
    path: str
    params_hash: str
    status: int
    code: str
    rows: int
    latency_ms: float
    upstream_ms: float | None
    source_ip: str | None
