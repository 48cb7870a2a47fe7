"""Open-data tables: open datasets, their items, versions (published copies) and daily usage counters.

An open dataset is published by a provider from a catalog entry and its mounted resource. What the public sees
is only ever the **published copy** (a Parquet file per version under ``<data dir>/opendata/<dataset id>/``),
already filtered to the open items and masked as declared at publish time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow
from zhengshu.org.models import Organization


class OpenDataset(IdMixin, TimestampMixin, Base):
    """数据开放目录中的一个数据集. ``status``: ``published`` (visible to the public) or ``unpublished``.

    ``opening_type`` is 无条件开放 or 有条件开放 (不予开放 entries are never published). Usage totals are kept
    here as well as per day so "popular" sorts without summing the usage table."""

    __tablename__ = "opendata_dataset"
    __table_args__ = (
        Index("ix_opendata_dataset_status_published", "status", "published_at"),
        Index("ix_opendata_dataset_provider_status", "provider_org_id", "status"),
    )

    slug: Mapped[str] = mapped_column(String(100), unique=True)  # URL-safe name (CKAN ``name``)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"), index=True)
    entry_code: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_mounted_resource.id"))
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    region_code: Mapped[str] = mapped_column(String(6))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    field: Mapped[str] = mapped_column(String(40), index=True)  # 领域 (vocab.FIELDS)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    licence: Mapped[str] = mapped_column(String(40))  # vocab.LICENCES code
    update_cycle: Mapped[str] = mapped_column(String(10))
    opening_type: Mapped[str] = mapped_column(String(10))
    opening_condition: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), index=True)
    published_version_id: Mapped[str | None] = mapped_column(String(32))
    version_number: Mapped[int] = mapped_column(default=0)
    published_at: Mapped[datetime | None]  # first publication
    refreshed_at: Mapped[datetime | None]  # latest published copy
    unpublished_at: Mapped[datetime | None]
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    byte_size: Mapped[int] = mapped_column(BigInteger, default=0)
    quality_score: Mapped[float | None]
    chart_hint: Mapped[dict[str, Any]] = mapped_column(default=dict)  # chosen at publish: {"kind", "x", "y"}
    search_text: Mapped[str] = mapped_column(Text, default="")  # words, pinyin and initials for search
    view_count: Mapped[int] = mapped_column(BigInteger, default=0)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0)
    api_call_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(60))

    provider: Mapped[Organization] = relationship(lazy="joined")
    items: Mapped[list[OpenDatasetItem]] = relationship(
        back_populates="dataset", order_by="OpenDatasetItem.position", cascade="all, delete-orphan"
    )
    versions: Mapped[list[OpenDatasetVersion]] = relationship(
        back_populates="dataset", order_by="OpenDatasetVersion.number", cascade="all, delete-orphan"
    )

    @property
    def is_conditional(self) -> bool:
        return self.opening_type == "有条件开放"


class OpenDatasetItem(IdMixin, Base):
    """An open item of a dataset: a column of the published copy, masked with ``masking_rule``.

    Only items listed here ever leave; a catalog item not listed here is not in the published copy at all."""

    __tablename__ = "opendata_dataset_item"
    __table_args__ = (UniqueConstraint("dataset_id", "column_name"),)

    dataset_id: Mapped[str] = mapped_column(ForeignKey("opendata_dataset.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(32))  # catalog DataItem.key
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))  # Chinese item name
    column_name: Mapped[str] = mapped_column(String(128))  # column in the published copy and the API
    data_type: Mapped[str] = mapped_column(String(1))
    description: Mapped[str] = mapped_column(Text, default="")
    masking_rule: Mapped[str] = mapped_column(String(20), default="none")
    is_key: Mapped[bool] = mapped_column(default=False)  # the published copy is sorted by it (fast filters)

    dataset: Mapped[OpenDataset] = relationship(back_populates="items")


class OpenDatasetVersion(IdMixin, Base):
    """One published copy (每次更新). ``file_path`` is relative to the data directory."""

    __tablename__ = "opendata_dataset_version"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    dataset_id: Mapped[str] = mapped_column(ForeignKey("opendata_dataset.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    row_count: Mapped[int] = mapped_column(BigInteger)
    byte_size: Mapped[int] = mapped_column(BigInteger)
    file_path: Mapped[str] = mapped_column(String(500))
    checksum: Mapped[str] = mapped_column(String(64))  # SHA-256 of the Parquet file, hex
    columns: Mapped[list[Any]] = mapped_column(default=list)  # [{"column", "name", "masking_rule"}] as published
    quality_score: Mapped[float | None]
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dataset: Mapped[OpenDataset] = relationship(back_populates="versions")


class OpenDatasetUsage(IdMixin, Base):
    """Per dataset per day (Asia/Shanghai) counters: page views, downloads, API calls and bytes sent."""

    __tablename__ = "opendata_usage"
    __table_args__ = (
        UniqueConstraint("dataset_id", "day"),
        Index("ix_opendata_usage_provider_day", "provider_org_id", "day"),
        Index("ix_opendata_usage_day", "day"),
    )

    dataset_id: Mapped[str] = mapped_column(ForeignKey("opendata_dataset.id", ondelete="CASCADE"))
    provider_org_id: Mapped[str] = mapped_column(String(32))
    day: Mapped[date]
    views: Mapped[int] = mapped_column(BigInteger, default=0)
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    api_calls: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
