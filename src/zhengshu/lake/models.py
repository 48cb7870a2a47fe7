"""Registered data sources: a department's front-end database (前置库) or an uploaded file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.core.db import Base, IdMixin, TimestampMixin

SOURCE_KIND_LABELS = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL / MariaDB",
    "sqlite": "SQLite",
    "duckdb": "DuckDB",
    "csv": "CSV 文件",
    "xlsx": "Excel 文件（XLSX）",
    "parquet": "Parquet 文件",
}


class DataSource(IdMixin, TimestampMixin, Base):
    __tablename__ = "data_source"
    __table_args__ = (UniqueConstraint("owner_org_id", "name", name="uq_data_source_owner_org_id_name"),)

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # postgresql | mysql | sqlite | duckdb | csv | xlsx | parquet
    owner_org_id: Mapped[str] = mapped_column(String(32), ForeignKey("organization.id"), index=True)
    host: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None]
    database: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(128))
    # Encrypted by zhengshu.security.crypto; never returned by any schema.
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # schema, path, sheet, delimiter, encoding, text_columns, timeout_s, max_rows, updated_column
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(String(2000), default="")
    last_checked_at: Mapped[datetime | None]
    last_check_ok: Mapped[bool | None]
    last_check_message: Mapped[str | None] = mapped_column(String(2000))

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def kind_label(self) -> str:
        return SOURCE_KIND_LABELS.get(self.kind, self.kind)
