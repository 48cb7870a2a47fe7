"""API shapes of the public side of the open-data portal: accounts, keys, applications, showcase, lists, reports."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AccountKind(StrEnum):
    PERSON = "person"
    COMPANY = "company"


ACCOUNT_KIND_LABELS = {"person": "个人", "company": "法人（企业）"}


class AccountIn(BaseModel):
    """Registration of a member of the public (person) or a company."""

    model_config = ConfigDict(use_enum_values=True, str_strip_whitespace=True)

    kind: AccountKind = Field(description="person 个人 / company 法人")
    username: str = Field(min_length=4, max_length=60, pattern=r"^[A-Za-z0-9_.@-]+$", description="登录名")
    password: str = Field(min_length=1, max_length=200)
    display_name: str = Field(min_length=1, max_length=120, description="姓名（个人）或联系人称呼")
    email: str = Field(default="", max_length=120, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str = Field(default="", max_length=20, pattern=r"^$|^1\d{10}$|^0\d{2,3}-?\d{7,8}$")
    id_number: str = Field(default="", max_length=18, description="居民身份证号（个人，选填，用于实名核验）")
    company_name: str = Field(default="", max_length=200, description="单位名称（法人必填）")
    uscc: str = Field(default="", max_length=18, description="统一社会信用代码（法人必填）")
    contact_name: str = Field(default="", max_length=60, description="经办人（法人）")

    @model_validator(mode="after")
    def _contact(self) -> AccountIn:
        if not self.email and not self.phone:
            raise ValueError("请至少填写电子邮箱或手机号码之一")
        if self.kind == AccountKind.COMPANY.value and (not self.company_name or not self.uscc):
            raise ValueError("法人注册须填写单位名称和统一社会信用代码")
        return self


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    username: str
    display_name: str
    email: str
    phone: str
    id_number_masked: str
    id_verified: bool
    company_name: str
    uscc: str | None
    contact_name: str
    daily_quota: int | None
    active: bool
    created_at: datetime


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=1, max_length=200)


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=60, description="用途说明，如“我的分析脚本”")
    expires_days: int | None = Field(default=None, ge=1, le=3650, description="有效天数；不填为长期")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    daily_quota: int | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class ApiKeyIssued(ApiKeyRead):
    key: str = Field(description="API Key 明文，仅此一次显示，请妥善保存")


class QuotaRead(BaseModel):
    limit: int
    used: int
    remaining: int


class QuotaIn(BaseModel):
    daily_quota: int | None = Field(default=None, ge=0, le=100_000_000, description="每日额度；为空恢复平台默认")


class AccessApplicationIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    dataset_id: str = Field(min_length=1, max_length=100, description="数据集 id 或名称（slug）")
    items: list[str] = Field(default_factory=list, max_length=500, description="申请的信息项（列名）；为空表示全部")
    purpose: str = Field(min_length=5, max_length=4000, description="用途说明")
    scenario: str = Field(default="", max_length=4000, description="应用场景")
    requested_days: int = Field(default=365, ge=1, le=3650, description="申请使用期限（天）")


class DecisionIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    reason: str = Field(default="", max_length=2000, description="理由（不同意时必填）")
    days: int | None = Field(default=None, ge=1, le=3650, description="批准的使用期限（天）；默认按申请")
    items: list[str] | None = Field(default=None, description="批准的信息项；默认按申请")


class AccessApplicationRead(BaseModel):
    id: str
    dataset_id: str
    dataset_title: str
    provider_org_id: str
    provider_name: str
    account_id: str
    applicant: str
    applicant_kind: str
    items: list[str]
    purpose: str
    scenario: str
    requested_days: int
    state: str
    state_label: str
    ticket_id: str | None
    due_on: date | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str
    grant: GrantRead | None
    created_at: datetime


class GrantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    account_id: str
    dataset_id: str
    application_id: str
    items: list[str]
    starts_at: datetime
    expires_at: datetime
    status: str


class ShowcaseIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=2, max_length=120)
    description: str = Field(min_length=10, max_length=4000)
    link: str = Field(min_length=8, max_length=500, pattern=r"^https?://\S+$", description="应用访问地址")
    dataset_ids: list[str] = Field(min_length=1, max_length=50, description="使用的数据集 id")


class ShowcaseRead(BaseModel):
    id: str
    name: str
    description: str
    link: str
    datasets: list[dict[str, str]]
    submitter: str
    status: str
    status_label: str
    moderation_reason: str
    has_screenshot: bool
    created_at: datetime


class ModerateIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class ResponsibilityIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    year: int = Field(ge=2000, le=2100)
    org_id: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=2, max_length=200, description="计划开放的数据集名称")
    entry_id: str | None = Field(default=None, max_length=32, description="对应的资源目录（如已编目）")
    opening_type: str = Field(default="无条件开放", pattern="^(无条件开放|有条件开放)$")
    field: str = Field(default="", max_length=40, description="领域")
    planned_on: date = Field(description="计划开放日期")
    note: str = Field(default="", max_length=2000)


class ReportIn(BaseModel):
    """A member of the public reports a problem with an open dataset (问题反馈)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    dataset_id: str = Field(min_length=1, max_length=100)
    kind: str = Field(pattern="^(wrong|missing|outdated|inconsistent)$", description="错误/缺失/过时/不一致")
    description: str = Field(min_length=5, max_length=4000)
    contact_name: str = Field(default="", max_length=60)
    contact: str = Field(default="", max_length=120, description="联系方式（邮箱或电话），便于回复")
    item: str | None = Field(default=None, max_length=128, description="涉及的信息项（列名）")


AccessApplicationRead.model_rebuild()
