"""Catalog entries, their versions and data items, mounted resources and the code sequences."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin
from zhengshu.org.models import Organization


class CatalogEntry(IdMixin, TimestampMixin, Base):
    """The stable identity of a catalog entry. Filterable fields mirror its display version
    (the published one if any, else the working draft) so lists never join versions."""

    __tablename__ = "catalog_entry"
    __table_args__ = (
        Index("ix_catalog_entry_provider_status", "provider_org_id", "status"),
        Index("ix_catalog_entry_region_status", "region_code", "status"),
    )

    code: Mapped[str] = mapped_column(String(40), unique=True)
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    region_code: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    class_code: Mapped[str] = mapped_column(String(20), index=True)
    sharing_type: Mapped[str] = mapped_column(String(10))
    opening_type: Mapped[str] = mapped_column(String(10))
    update_cycle: Mapped[str] = mapped_column(String(10))
    published_version_id: Mapped[str | None] = mapped_column(String(32))
    working_version_id: Mapped[str | None] = mapped_column(String(32))
    published_on: Mapped[date | None]
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    next_recheck_on: Mapped[date | None]
    last_rechecked_on: Mapped[date | None]
    origin_node: Mapped[str | None] = mapped_column(String(20))  # set when synced from another node

    provider: Mapped[Organization] = relationship(lazy="joined")
    versions: Mapped[list[EntryVersion]] = relationship(
        back_populates="entry", order_by="EntryVersion.number", cascade="all, delete-orphan"
    )
    resources: Mapped[list[MountedResource]] = relationship(
        back_populates="entry", order_by="MountedResource.created_at", cascade="all, delete-orphan"
    )


class EntryVersion(IdMixin, TimestampMixin, Base):
    """One version of an entry's metadata. States: draft, submitted, returned, published, superseded,
    withdrawn, discarded."""

    __tablename__ = "catalog_entry_version"
    __table_args__ = (UniqueConstraint("entry_id", "number"),)

    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    state: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    class_code: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)
    resource_format: Mapped[str] = mapped_column(String(20))
    format_detail: Mapped[str] = mapped_column(String(100), default="")
    sharing_type: Mapped[str] = mapped_column(String(10))
    sharing_condition: Mapped[str] = mapped_column(Text, default="")
    not_shared_basis: Mapped[str] = mapped_column(Text, default="")
    sharing_way: Mapped[str] = mapped_column(String(10))
    opening_type: Mapped[str] = mapped_column(String(10))
    opening_condition: Mapped[str] = mapped_column(Text, default="")
    update_cycle: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(10))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    related_codes: Mapped[list[Any]] = mapped_column(default=list)
    duty_basis: Mapped[str] = mapped_column(Text, default="")
    change_note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(60))
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(60))

    entry: Mapped[CatalogEntry] = relationship(back_populates="versions")
    items: Mapped[list[DataItem]] = relationship(
        back_populates="version", order_by="DataItem.position", cascade="all, delete-orphan"
    )


class DataItem(IdMixin, Base):
    """信息项. ``key`` is stable across versions so authorizations and objections can refer to an item."""

    __tablename__ = "catalog_data_item"
    __table_args__ = (UniqueConstraint("version_id", "name"),)

    version_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry_version.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[str] = mapped_column(String(32), index=True)
    key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    column_name: Mapped[str | None] = mapped_column(String(128))
    data_type: Mapped[str] = mapped_column(String(1))
    length: Mapped[int | None]
    description: Mapped[str] = mapped_column(Text, default="")
    sharing_type: Mapped[str | None] = mapped_column(String(10))
    opening_type: Mapped[str | None] = mapped_column(String(10))
    sensitivity: Mapped[str] = mapped_column(String(10))

    version: Mapped[EntryVersion] = relationship(back_populates="items")


class MountedResource(IdMixin, TimestampMixin, Base):
    """A real resource behind an entry (挂接): a table or file of a registered source, or an API."""

    __tablename__ = "catalog_mounted_resource"

    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # table | file | api
    source_id: Mapped[str | None] = mapped_column(ForeignKey("data_source.id"))
    table_schema: Mapped[str | None] = mapped_column(String(128))
    table_name: Mapped[str | None] = mapped_column(String(300))
    api_endpoint: Mapped[str | None] = mapped_column(String(500))
    api_method: Mapped[str | None] = mapped_column(String(10))
    api_params: Mapped[list[Any]] = mapped_column(default=list)
    row_count: Mapped[int | None]
    last_updated: Mapped[datetime | None]
    last_updated_basis: Mapped[str] = mapped_column(String(60), default="")
    checked_at: Mapped[datetime | None]
    check_ok: Mapped[bool] = mapped_column(default=False)
    check_problems: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(default=True)

    entry: Mapped[CatalogEntry] = relationship(back_populates="resources")


class CodeSequence(Base):
    """Last 顺序码 used under a 分类码; row-locked while a code is allocated."""

    __tablename__ = "catalog_code_sequence"

    prefix: Mapped[str] = mapped_column(String(30), primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)
