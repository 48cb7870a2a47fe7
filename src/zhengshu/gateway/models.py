"""Gateway tables: services and their versions, consumer apps and their credentials, the call log, and the
generation counter every gateway process polls to notice changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow
from zhengshu.org.models import Organization

SERVICE_KINDS = {"proxy": "代理已有接口", "table": "库表生成接口"}
STATUS_LABELS = {"active": "启用", "disabled": "停用"}


class GatewayService(IdMixin, TimestampMixin, Base):
    """An interface service of a catalog entry. ``code`` is the path segment callers use (``/gw/{code}``)."""

    __tablename__ = "gateway_service"
    __table_args__ = (Index("ix_gateway_service_provider", "provider_org_id", "status"),)

    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entry.id"), index=True)
    provider_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    kind: Mapped[str] = mapped_column(String(10))  # proxy | table
    status: Mapped[str] = mapped_column(String(10), default="active")
    current_version: Mapped[int] = mapped_column(default=1)
    rate_per_s: Mapped[int | None]  # total over all callers; None = the setting
    app_rate_per_s: Mapped[int | None]  # per calling app; None = the setting
    app_daily_quota: Mapped[int | None]
    created_by: Mapped[str] = mapped_column(String(60))

    provider: Mapped[Organization] = relationship(lazy="joined")
    versions: Mapped[list[ServiceVersion]] = relationship(
        back_populates="service", order_by="ServiceVersion.number", cascade="all, delete-orphan"
    )


class ServiceVersion(IdMixin, Base):
    """One version of a service's definition. ``config`` holds, for a proxy: ``upstream_url``, ``method``,
    ``params`` [{name, location, required, description}], ``fields`` {upstream field: item key},
    ``result_path``, ``timeout_s``; for a table: ``resource_id``, ``source_id``, ``schema``, ``table``,
    ``key_items`` [item key], ``filter_items`` [item key], ``timeout_s``; both: ``items`` [{key, name, field,
    column}] as the entry defined them when the version was made."""

    __tablename__ = "gateway_service_version"
    __table_args__ = (UniqueConstraint("service_id", "number"),)

    service_id: Mapped[str] = mapped_column(ForeignKey("gateway_service.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(60))

    service: Mapped[GatewayService] = relationship(back_populates="versions")


class GatewayApp(IdMixin, TimestampMixin, Base):
    """A consumer department's application system (应用) that calls interface services."""

    __tablename__ = "gateway_app"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_gateway_app_org_id_name"),)

    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contact_name: Mapped[str] = mapped_column(String(60), default="")
    contact_phone: Mapped[str] = mapped_column(String(30), default="")
    status: Mapped[str] = mapped_column(String(10), default="active")
    rate_per_s: Mapped[int | None]  # per service; None = the setting
    daily_quota: Mapped[int | None]
    created_by: Mapped[str] = mapped_column(String(60))

    org: Mapped[Organization] = relationship(lazy="joined")
    credentials: Mapped[list[AppCredential]] = relationship(
        back_populates="app", order_by="AppCredential.created_at", cascade="all, delete-orphan"
    )


class AppCredential(IdMixin, Base):
    """An access key and its secret (SM4-encrypted: HMAC needs it server-side). A rotated credential keeps
    working until ``expires_at`` (the overlap window); a revoked one stops at once."""

    __tablename__ = "gateway_credential"

    app_id: Mapped[str] = mapped_column(ForeignKey("gateway_app.id", ondelete="CASCADE"), index=True)
    access_key: Mapped[str] = mapped_column(String(40), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="active")  # active | retiring | revoked
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(60))

    app: Mapped[GatewayApp] = relationship(back_populates="credentials")


class GatewayCall(Base):
    """One call through the gateway. Parameters are kept only as a keyed SM3 digest."""

    __tablename__ = "gateway_call"
    __table_args__ = (
        Index("ix_gateway_call_service_at", "service_id", "at"),
        Index("ix_gateway_call_app_at", "app_id", "at"),
        Index("ix_gateway_call_provider_at", "provider_org_id", "at"),
        Index("ix_gateway_call_org_at", "org_id", "at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime]
    request_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str | None] = mapped_column(String(32))
    org_id: Mapped[str | None] = mapped_column(String(32))
    service_id: Mapped[str | None] = mapped_column(String(32))
    service_version: Mapped[int | None] = mapped_column(Integer)
    entry_id: Mapped[str | None] = mapped_column(String(32))
    provider_org_id: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    params_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(60))  # ok or the problem code
    rows: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float]
    upstream_ms: Mapped[float | None]
    response_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    source_ip: Mapped[str | None] = mapped_column(String(64))


class GatewayGeneration(Base):
    """One row whose value changes whenever what the gateway serves may have changed (services, apps,
    credentials, authorizations). Every gateway process polls it and reloads its snapshot when it moves."""

    __tablename__ = "gateway_generation"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
