"""Tickets: every reviewed or time-limited piece of work (catalog review, applications, objections …)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow


class Ticket(IdMixin, TimestampMixin, Base):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_open_assignee", "closed_at", "assignee_org_id"),
        Index("ix_ticket_subject", "subject_type", "subject_id"),
        Index("ix_ticket_due", "closed_at", "due_on"),
    )

    kind: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(300))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    requester_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    assignee_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    opened_by: Mapped[str | None] = mapped_column(String(60))
    state_entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    state_entered_on: Mapped[date]  # Asia/Shanghai date the SLA counts from
    sla_days: Mapped[int | None]  # working days allowed in the current state
    due_on: Mapped[date | None]
    due_provisional: Mapped[bool] = mapped_column(default=False)
    closed_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.at", cascade="all, delete-orphan"
    )


class TicketEvent(IdMixin, Base):
    """One line of a ticket's history: a transition, a comment, a recomputed due date."""

    __tablename__ = "ticket_event"

    ticket_id: Mapped[str] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_user_id: Mapped[str | None] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(60))
    actor_org_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(40))
    action_label: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str | None] = mapped_column(String(30))
    comment: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")
