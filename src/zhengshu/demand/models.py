"""Tables of the supply–demand feature.

Sections: data applications (共享申请) and their items, authorizations (共享授权) with their items and history;
data requests (数据需求) follow in their own section below.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow
from zhengshu.org.models import Organization

# ---- data applications (共享申请) ------------------------------------------------------------------------


class DataApplication(IdMixin, TimestampMixin, Base):
    """A consumer department's application for items of a published catalog entry.

    ``state`` mirrors the state of its ``data_application`` ticket so lists filter without a join."""

    __tablename__ = "data_application"
    __table_args__ = (
        Index("ix_data_application_consumer_state", "consumer_org_id", "state"),
        Index("ix_data_application_provider_state", "provider_org_id", "state"),
        Index("ix_data_application_authority_state", "authority_org_id", "state"),
        Index("ix_data_application_entry", "entry_id", "consumer_org_id"),
    )

    consumer_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    applicant_user_id: Mapped[str | None] = mapped_column(String(32))
    applicant_name: Mapped[str] = mapped_column(String(60))
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"))
    entry_version_id: Mapped[str] = mapped_column(String(32))  # the published version applied for
    entry_name: Mapped[str] = mapped_column(String(200))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    authority_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    purpose: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text)  # 依据: the law or duty the use serves
    business_system: Mapped[str] = mapped_column(String(200))
    start_on: Mapped[date]
    end_on: Mapped[date]
    delivery_way: Mapped[str] = mapped_column(String(10))
    contact_name: Mapped[str] = mapped_column(String(60))
    contact_phone: Mapped[str] = mapped_column(String(30))

    state: Mapped[str] = mapped_column(String(30), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(10))  # all | partial | none, once decided
    submitted_on: Mapped[date]
    decided_on: Mapped[date | None]  # first decision on every item (the end of handling)
    decided_at: Mapped[datetime | None]
    appeal_until: Mapped[date | None]  # a refusal may be appealed until this day
    supplement_request: Mapped[str] = mapped_column(Text, default="")
    supplement_since: Mapped[date | None]
    paused_days: Mapped[int] = mapped_column(default=0)  # working days spent waiting for the applicant
    late_steps: Mapped[int] = mapped_column(default=0)  # review steps finished after their due date
    escalated: Mapped[bool] = mapped_column(default=False)

    consumer: Mapped[Organization] = relationship(foreign_keys=[consumer_org_id], lazy="joined")
    provider: Mapped[Organization] = relationship(foreign_keys=[provider_org_id], lazy="joined")
    authority: Mapped[Organization] = relationship(foreign_keys=[authority_org_id], lazy="joined")
    items: Mapped[list[ApplicationItem]] = relationship(
        back_populates="application", order_by="ApplicationItem.position", cascade="all, delete-orphan"
    )


class ApplicationItem(IdMixin, Base):
    """One data item applied for, with its decision. Status: pending, granted (by rule), approved, refused,
    withdrawn."""

    __tablename__ = "data_application_item"
    __table_args__ = (UniqueConstraint("application_id", "item_key"),)

    application_id: Mapped[str] = mapped_column(ForeignKey("data_application.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    column_name: Mapped[str | None] = mapped_column(String(128))
    sharing_type: Mapped[str] = mapped_column(String(10))  # effective type when applied for
    sensitivity: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    masking_rule: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(60))
    decided_at: Mapped[datetime | None]

    application: Mapped[DataApplication] = relationship(back_populates="items")


# ---- authorizations (共享授权) ---------------------------------------------------------------------------


class Authorization(IdMixin, TimestampMixin, Base):
    """Who may use which items of an entry, how and until when. Status: active, suspended, revoked, expired
    (an active or suspended authorization past ``end_on`` reads as expired before the job marks it)."""

    __tablename__ = "share_authorization"
    __table_args__ = (
        Index("ix_share_authorization_consumer_entry", "consumer_org_id", "entry_id", "status"),
        Index("ix_share_authorization_entry_status", "entry_id", "status"),
        Index("ix_share_authorization_provider", "provider_org_id", "status"),
    )

    application_id: Mapped[str | None] = mapped_column(ForeignKey("data_application.id"), index=True)
    consumer_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    consumer_system: Mapped[str] = mapped_column(String(200))
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"))
    entry_name: Mapped[str] = mapped_column(String(200))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    authority_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    delivery_way: Mapped[str] = mapped_column(String(10))
    start_on: Mapped[date]
    end_on: Mapped[date]
    status: Mapped[str] = mapped_column(String(12), default="active")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    grant_basis: Mapped[str] = mapped_column(String(20))  # rule | provider | coordination
    granted_by: Mapped[str] = mapped_column(String(60))

    consumer: Mapped[Organization] = relationship(foreign_keys=[consumer_org_id], lazy="joined")
    provider: Mapped[Organization] = relationship(foreign_keys=[provider_org_id], lazy="joined")
    items: Mapped[list[AuthorizationItem]] = relationship(
        back_populates="authorization", order_by="AuthorizationItem.position", cascade="all, delete-orphan"
    )
    events: Mapped[list[AuthorizationEvent]] = relationship(
        back_populates="authorization", order_by="AuthorizationEvent.at", cascade="all, delete-orphan"
    )


class AuthorizationItem(IdMixin, Base):
    __tablename__ = "share_authorization_item"
    __table_args__ = (
        UniqueConstraint("authorization_id", "item_key"),
        Index("ix_share_authorization_item_key", "item_key"),
    )

    authorization_id: Mapped[str] = mapped_column(ForeignKey("share_authorization.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    column_name: Mapped[str | None] = mapped_column(String(128))
    masking_rule: Mapped[str] = mapped_column(String(20))

    authorization: Mapped[Authorization] = relationship(back_populates="items")


class AuthorizationEvent(IdMixin, Base):
    """One line of an authorization's history: granted, suspended, resumed, renewed, revoked, expired."""

    __tablename__ = "share_authorization_event"

    authorization_id: Mapped[str] = mapped_column(ForeignKey("share_authorization.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(60))
    actor_org_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(20))
    action_label: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    authorization: Mapped[Authorization] = relationship(back_populates="events")


# ---- data requests (数据需求) ------------------------------------------------------------------------------
# (maintained with demand/requests.py)


class DataRequest(IdMixin, TimestampMixin, Base):
    """A department's need for data nobody has catalogued (数据需求), answered by the probable provider.

    ``state`` mirrors the state of its ``data_request`` ticket so lists filter without a join. The reply limit
    restarts when the request is redirected to another provider (``assigned_on``/``reply_due_on``)."""

    __tablename__ = "data_request"
    __table_args__ = (
        Index("ix_data_request_requester_state", "requester_org_id", "state"),
        Index("ix_data_request_provider_state", "provider_org_id", "state"),
        Index("ix_data_request_authority_state", "authority_org_id", "state"),
    )

    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    items_text: Mapped[str] = mapped_column(Text)  # the data items needed, as the requester describes them
    purpose: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text)  # 依据: the law or duty the use serves
    business_system: Mapped[str] = mapped_column(String(200))
    urgency: Mapped[str] = mapped_column(String(10))
    requester_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    requester_user_id: Mapped[str | None] = mapped_column(String(32))
    requester_name: Mapped[str] = mapped_column(String(60))
    region_code: Mapped[str] = mapped_column(String(6), index=True)  # the requester's region
    provider_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    authority_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))  # coordinates it

    state: Mapped[str] = mapped_column(String(30), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(String(20))  # linked | compiling | not_held | not_shareable
    answer_note: Mapped[str] = mapped_column(Text, default="")
    legal_basis: Mapped[str] = mapped_column(Text, default="")  # why it cannot be shared
    entry_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_entry.id"), index=True)  # published entry
    pending_entry_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_entry.id"), index=True)  # compiling
    assigned_on: Mapped[date]  # the current provider received it (or the authority, when none was named)
    reply_due_on: Mapped[date | None]
    answered_on: Mapped[date | None]  # the current provider's first answer
    closed_on: Mapped[date | None]
    escalated: Mapped[bool] = mapped_column(default=False)
    redirects: Mapped[int] = mapped_column(default=0)

    requester: Mapped[Organization] = relationship(foreign_keys=[requester_org_id], lazy="joined")
    provider: Mapped[Organization | None] = relationship(foreign_keys=[provider_org_id], lazy="joined")
    authority: Mapped[Organization | None] = relationship(foreign_keys=[authority_org_id], lazy="joined")
