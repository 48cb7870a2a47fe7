"""Open-data tables for the public side: registered accounts, API keys, conditional-access applications and grants,
showcase, responsibility lists, problem reports."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow


class PublicAccount(IdMixin, TimestampMixin, Base):
    """A registered member of the public (person) or a company; separate from government users."""

    __tablename__ = "open_account"

    kind: Mapped[str] = mapped_column(String(10))  # person | company
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(120), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    # person: the resident ID is kept only masked plus its SM3 digest (enough to detect a second registration)
    id_number_masked: Mapped[str] = mapped_column(String(18), default="")
    id_number_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    id_verified: Mapped[bool] = mapped_column(default=False)
    # company: 统一社会信用代码 and the person acting for it
    company_name: Mapped[str] = mapped_column(String(200), default="")
    uscc: Mapped[str | None] = mapped_column(String(18), index=True)
    contact_name: Mapped[str] = mapped_column(String(60), default="")
    daily_quota: Mapped[int | None]  # None: the platform default (setting open_quota_per_day)
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]


class PublicApiKey(IdMixin, Base):
    """An API key of a registered account; only its SM3 digest is stored (shown once when issued)."""

    __tablename__ = "open_api_key"
    __table_args__ = (Index("ix_open_api_key_digest", "key_digest", unique=True),)

    account_id: Mapped[str] = mapped_column(ForeignKey("open_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    key_digest: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(12))
    daily_quota: Mapped[int | None]  # None: the account's quota
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)

    account: Mapped[PublicAccount] = relationship(lazy="joined")


class OpenAccessApplication(IdMixin, TimestampMixin, Base):
    """An account's application for a conditionally open dataset (有条件开放申请), reviewed by the provider as a
    ticket of the workflow engine."""

    __tablename__ = "open_access_application"
    __table_args__ = (Index("ix_open_access_application_dataset_state", "dataset_id", "state"),)

    account_id: Mapped[str] = mapped_column(ForeignKey("open_account.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    dataset_title: Mapped[str] = mapped_column(String(300))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    items: Mapped[list[Any]] = mapped_column(default=list)  # item names asked for
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text, default="")  # 应用场景
    requested_days: Mapped[int]
    state: Mapped[str] = mapped_column(String(20))  # pending | approved | refused | withdrawn
    ticket_id: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(60))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="")
    grant_id: Mapped[str | None] = mapped_column(String(32))

    account: Mapped[PublicAccount] = relationship(lazy="joined")


class OpenAccessGrant(IdMixin, Base):
    """What an approved application grants: these items of this dataset to this account for a period."""

    __tablename__ = "open_access_grant"
    __table_args__ = (Index("ix_open_access_grant_account_dataset", "account_id", "dataset_id"),)

    account_id: Mapped[str] = mapped_column(ForeignKey("open_account.id"))
    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("open_access_application.id"))
    items: Mapped[list[Any]] = mapped_column(default=list)
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | revoked
    revoked_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShowcaseApp(IdMixin, TimestampMixin, Base):
    """优秀应用: an application built on open data, submitted by an account and moderated."""

    __tablename__ = "open_showcase_app"

    account_id: Mapped[str] = mapped_column(ForeignKey("open_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(500))
    dataset_ids: Mapped[list[Any]] = mapped_column(default=list)
    screenshot_path: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending | approved | rejected
    moderation_reason: Mapped[str] = mapped_column(Text, default="")
    moderated_by: Mapped[str | None] = mapped_column(String(60))
    moderated_at: Mapped[datetime | None]

    account: Mapped[PublicAccount] = relationship(lazy="joined")


class ResponsibilityItem(IdMixin, TimestampMixin, Base):
    """One planned dataset of a department's annual open-responsibility list (年度开放责任清单)."""

    __tablename__ = "open_responsibility_item"
    __table_args__ = (UniqueConstraint("year", "org_id", "title"),)

    year: Mapped[int] = mapped_column(index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[str | None] = mapped_column(String(32))  # the catalog entry to open, when already catalogued
    opening_type: Mapped[str] = mapped_column(String(10))
    field: Mapped[str] = mapped_column(String(40), default="")  # 领域
    planned_on: Mapped[date]  # open by this date
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(60))


class ProblemReport(IdMixin, Base):
    """A member of the public's "report a problem" (问题反馈), forwarded as a data objection to the provider."""

    __tablename__ = "open_problem_report"

    dataset_id: Mapped[str] = mapped_column(String(32), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("open_account.id"))
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(60), default="")
    contact: Mapped[str] = mapped_column(String(120), default="")
    objection_id: Mapped[str | None] = mapped_column(String(32))
    source_ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
