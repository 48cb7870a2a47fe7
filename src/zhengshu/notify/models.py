"""In-page notifications: addressed to one user, or to an organization (optionally only some of its roles).

Read state is kept per user in :class:`NotificationRead`, so a notification sent to an organization is read
by each of its users on their own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.core.db import Base, IdMixin, utcnow


class Notification(IdMixin, Base):
    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_org_created", "org_id", "created_at"),
        Index("ix_notification_user_created", "user_id", "created_at"),
    )

    org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    # Role filter for organization notifications, stored as ",officer,reviewer," so a LIKE matches one role on
    # every backend; "" means every user of the organization.
    roles: Mapped[str] = mapped_column(String(120), default="")
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def role_list(self) -> list[str]:
        return [r for r in self.roles.split(",") if r]


class NotificationRead(Base):
    """One user has read one notification."""

    __tablename__ = "notification_read"

    notification_id: Mapped[str] = mapped_column(ForeignKey("notification.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
