"""Regions (GB/T 2260), organizations, users and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin


class Region(Base):
    """Administrative division, versioned by validity years (codes get abolished and reused)."""

    __tablename__ = "region"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    level: Mapped[str] = mapped_column(String(10))  # province | city | county
    parent_code: Mapped[str | None] = mapped_column(String(6), index=True)
    valid_from: Mapped[int | None]
    valid_to: Mapped[int | None]  # None = still current

    @property
    def is_current(self) -> bool:
        return self.valid_to is None


class Organization(IdMixin, TimestampMixin, Base):
    __tablename__ = "organization"

    name: Mapped[str] = mapped_column(String(120), unique=True)
    short_name: Mapped[str] = mapped_column(String(60), default="")
    uscc: Mapped[str] = mapped_column(String(18), unique=True)  # 统一社会信用代码
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    # True for the data authority of its region (数据局 / 大数据中心): its reviewers review that region's entries.
    is_data_authority: Mapped[bool] = mapped_column(default=False)
    dept_number: Mapped[str | None] = mapped_column(String(4))  # 部门类目录的"项"号
    active: Mapped[bool] = mapped_column(default=True)

    # Loaded when read (the organization list asks for it in its query): every application, objection and
    # token carries organizations, and none of their reads needs the region's row.
    region: Mapped[Region] = relationship()


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "app_user"

    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(60))
    password_hash: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    roles: Mapped[list[Any]] = mapped_column(default=list)
    phone: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(120), default="")
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]

    org: Mapped[Organization] = relationship(lazy="joined")


class ApiToken(IdMixin, Base):
    """Bearer token for the API; only its SM3 digest is stored."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_digest", "token_digest", unique=True),)

    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    token_digest: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship(lazy="joined")
