"""Objections (数据异议), their evidence files, the flags they raise on disputed data and the corrections made."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow
from zhengshu.org.models import Organization
from zhengshu.workflow.models import Ticket


class Objection(IdMixin, TimestampMixin, Base):
    """One department's objection against an entry, a data item, or one record of a mounted resource.

    Objections against the same target share a ``group_id`` (the first one's id) while the provider has not
    answered yet; the provider answers the group once and its members move together. The workflow ticket
    (``ticket_id``) holds the state history; ``state`` mirrors it so lists never join tickets.
    """

    __tablename__ = "objection"
    __table_args__ = (
        Index("ix_objection_record", "resource_id", "record_key"),
        Index("ix_objection_entry_item", "entry_id", "item_key"),
        Index("ix_objection_handler_state", "handler_org_id", "state"),
        Index("ix_objection_objector_state", "objector_org_id", "state"),
    )

    title: Mapped[str] = mapped_column(String(300))
    target_type: Mapped[str] = mapped_column(String(10))  # entry | item | record
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"), index=True)
    item_key: Mapped[str | None] = mapped_column(String(32))  # DataItem.key, stable across versions
    item_name: Mapped[str | None] = mapped_column(String(200))  # as shown when raised
    resource_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_mounted_resource.id"))
    record_key: Mapped[str | None] = mapped_column(String(500))  # value(s) of the resource's key column(s)
    kind: Mapped[str] = mapped_column(String(20))  # wrong | missing | outdated | inconsistent
    other_source: Mapped[str] = mapped_column(String(200), default="")
    claimed_value: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(80))  # set when the platform raised it (governance …)

    objector_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    raised_by: Mapped[str] = mapped_column(String(60))
    raised_by_name: Mapped[str] = mapped_column(String(60))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    handler_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))  # changes when forwarded
    authority_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    region_code: Mapped[str] = mapped_column(String(6), index=True)  # the entry's, for the authority's scope

    group_id: Mapped[str] = mapped_column(String(32), index=True)
    ticket_id: Mapped[str | None] = mapped_column(ForeignKey("ticket.id"))
    state: Mapped[str] = mapped_column(String(30), index=True)

    raised_on: Mapped[date]
    assigned_on: Mapped[date]  # when the current handler received it (raise or forward): handling time counts from here
    answer_due_on: Mapped[date | None]
    escalated: Mapped[bool] = mapped_column(default=False)  # the answer was ever overdue

    resolution: Mapped[str | None] = mapped_column(String(20))  # corrected | not_error
    answer_note: Mapped[str] = mapped_column(Text, default="")
    corrected_value: Mapped[str | None] = mapped_column(Text)
    effective_from: Mapped[date | None]
    answered_on: Mapped[date | None]
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(60))
    answered_by_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    answered_on_time: Mapped[bool | None]

    decision: Mapped[str | None] = mapped_column(String(30))  # uphold_correction | order_correction | dismiss
    decision_note: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(60))
    closed_at: Mapped[datetime | None]

    entry: Mapped[CatalogEntry] = relationship(lazy="joined")
    objector_org: Mapped[Organization | None] = relationship(foreign_keys=[objector_org_id], lazy="joined")
    provider_org: Mapped[Organization] = relationship(foreign_keys=[provider_org_id], lazy="joined")
    handler_org: Mapped[Organization] = relationship(foreign_keys=[handler_org_id], lazy="joined")
    attachments: Mapped[list[ObjectionAttachment]] = relationship(
        back_populates="objection", order_by="ObjectionAttachment.created_at", cascade="all, delete-orphan"
    )
    # Never loaded (reading it raises; use service.ticket_of): it only tells the flush that the ticket row goes
    # in before the objection naming it, so both are inserted in one flush with ``ticket_id`` set (no update).
    ticket_row: Mapped[Ticket | None] = relationship(lazy="raise", foreign_keys=[ticket_id])

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class ObjectionAttachment(IdMixin, Base):
    """An evidence file, stored under ``<data_dir>/attachments/<objection id>/<stored_name>``."""

    __tablename__ = "objection_attachment"

    objection_id: Mapped[str] = mapped_column(ForeignKey("objection.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))  # the uploader's name, for display only
    stored_name: Mapped[str] = mapped_column(String(60))  # generated; never derived from user input
    file_type: Mapped[str] = mapped_column(String(10))  # pdf | ofd | jpg | png | xlsx | docx | txt | csv
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sm3: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(60))
    uploaded_by_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    objection: Mapped[Objection] = relationship(back_populates="attachments")


class RecordFlag(IdMixin, Base):
    """标注: the disputed entry, item or record is marked for every reader while its objection group is open."""

    __tablename__ = "objection_flag"
    __table_args__ = (
        Index("ix_objection_flag_entry_open", "entry_id", "closed_at"),
        Index("ix_objection_flag_record", "resource_id", "record_key"),
    )

    group_id: Mapped[str] = mapped_column(String(32), index=True)
    objection_id: Mapped[str] = mapped_column(ForeignKey("objection.id"))  # the group's first objection
    target_type: Mapped[str] = mapped_column(String(10))  # entry | item | record
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"))
    item_key: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_mounted_resource.id"))
    record_key: Mapped[str | None] = mapped_column(String(500))
    item_keys: Mapped[list[Any]] = mapped_column(default=list)  # items the group's objections name
    kinds: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str] = mapped_column(String(300), default="")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_by_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str] = mapped_column(String(300), default="")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class Correction(IdMixin, Base):
    """A correction made in answer to an objection (or ordered by the data authority): what, when, by whom."""

    __tablename__ = "objection_correction"
    __table_args__ = (
        Index("ix_objection_correction_entry", "entry_id", "created_at"),
        Index("ix_objection_correction_record", "resource_id", "record_key"),
    )

    objection_id: Mapped[str] = mapped_column(ForeignKey("objection.id"), index=True)
    group_id: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(10))
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"))
    item_key: Mapped[str | None] = mapped_column(String(32))
    item_name: Mapped[str | None] = mapped_column(String(200))
    resource_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_mounted_resource.id"))
    record_key: Mapped[str | None] = mapped_column(String(500))
    old_value: Mapped[str | None] = mapped_column(Text)
    corrected_value: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date]
    corrected_by: Mapped[str] = mapped_column(String(60))  # username
    corrected_by_name: Mapped[str] = mapped_column(String(60))
    corrected_by_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))
    ordered_by_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"))  # arbitration
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    corrected_by_org: Mapped[Organization | None] = relationship(foreign_keys=[corrected_by_org_id], lazy="joined")
