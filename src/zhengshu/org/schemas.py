"""API shapes of regions, organizations and users."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from zhengshu.security.actor import Role


class RegionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: str
    parent_code: str | None
    valid_from: int | None
    valid_to: int | None


class RegionIn(BaseModel):
    code: str = Field(pattern=r"^\d{6}$", description="6 位行政区划代码")
    name: str = Field(min_length=1, max_length=60)
    level: str = Field(pattern=r"^(province|city|county)$")
    parent_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    valid_from: int | None = None
    valid_to: int | None = None


class OrganizationIn(BaseModel):
    name: str = Field(min_length=2, max_length=120)
    short_name: str = Field(default="", max_length=60)
    uscc: str = Field(min_length=18, max_length=18, description="统一社会信用代码")
    region_code: str = Field(pattern=r"^\d{6}$")
    parent_id: str | None = None
    is_data_authority: bool = False
    dept_number: str | None = Field(default=None, pattern=r"^\d{2}$")


class OrganizationUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=2, max_length=120)
    short_name: str | None = Field(default=None, max_length=60)
    parent_id: str | None = None
    is_data_authority: bool | None = None
    dept_number: str | None = Field(default=None, pattern=r"^\d{2}$")
    active: bool | None = None


class OrganizationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    short_name: str
    uscc: str
    region_code: str
    parent_id: str | None
    is_data_authority: bool
    dept_number: str | None
    active: bool


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[a-zA-Z0-9_.-]{3,60}$")
    display_name: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=8, max_length=200)
    org_id: str
    roles: list[Role] = Field(min_length=1)
    phone: str = ""
    email: str = ""


class UserUpdate(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=60)
    password: str | None = Field(default=None, min_length=8, max_length=200)
    org_id: str | None = None
    roles: list[Role] | None = None
    phone: str | None = None
    email: str | None = None
    active: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    display_name: str
    org_id: str
    roles: list[str]
    phone: str
    email: str
    active: bool
    last_login_at: datetime | None


class TokenIn(BaseModel):
    username: str
    password: str
    name: str = Field(default="api", max_length=60)
    expires_days: int | None = Field(default=90, ge=1, le=3650)


class TokenRead(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime | None
