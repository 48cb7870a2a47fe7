"""File exchange tables: packages, files, recipients, receipts; node keys; ferry export requests and the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from zhengshu.core.db import Base, IdMixin, TimestampMixin, utcnow


class NodeKey(IdMixin, TimestampMixin, Base):
    """A node's signing key (Ed25519 or SM2) and key-agreement key (X25519). This node's own keys keep their
    private halves encrypted with the platform secret; trusted peers' keys are public only."""

    __tablename__ = "exchange_node_key"

    key_id: Mapped[str] = mapped_column(String(64), unique=True)  # SM3 fingerprint of the public key document
    node_code: Mapped[str] = mapped_column(String(12), index=True)
    node_name: Mapped[str] = mapped_column(String(120), default="")
    is_local: Mapped[bool] = mapped_column(default=False)
    sig_alg: Mapped[str] = mapped_column(String(12))  # ed25519 | sm2
    sign_public: Mapped[str] = mapped_column(String(200))  # hex
    kex_public: Mapped[str] = mapped_column(String(100))  # X25519, hex
    sign_private_enc: Mapped[str | None] = mapped_column(String(400))
    kex_private_enc: Mapped[str | None] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | retired | revoked
    added_by: Mapped[str] = mapped_column(String(60), default="")
    note: Mapped[str] = mapped_column(String(300), default="")


class FilePackage(IdMixin, TimestampMixin, Base):
    """A package of files sent by one department to named recipient departments."""

    __tablename__ = "exchange_package"
    __table_args__ = (Index("ix_exchange_package_sender", "sender_org_id", "created_at"),)

    title: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    sender_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    sender_username: Mapped[str] = mapped_column(String(60))
    node_code: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="sent")  # sent | withdrawn | purged
    expires_at: Mapped[datetime]
    file_count: Mapped[int] = mapped_column(default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    manifest: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly the signed bytes
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    sig_alg: Mapped[str] = mapped_column(String(12))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)  # base64

    files: Mapped[list[PackageFile]] = relationship(
        back_populates="package", order_by="PackageFile.seq", cascade="all, delete-orphan"
    )
    recipients: Mapped[list[PackageRecipient]] = relationship(
        back_populates="package", cascade="all, delete-orphan", order_by="PackageRecipient.org_name"
    )
    receipts: Mapped[list[PackageReceipt]] = relationship(
        back_populates="package", cascade="all, delete-orphan", order_by="PackageReceipt.created_at"
    )


class PackageFile(IdMixin, Base):
    """One file of a package, stored as ``<data dir>/exchange/packages/<package id>/<stored_name>``."""

    __tablename__ = "exchange_package_file"
    __table_args__ = (UniqueConstraint("package_id", "name"),)

    package_id: Mapped[str] = mapped_column(ForeignKey("exchange_package.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    stored_name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sm3: Mapped[str] = mapped_column(String(64))
    file_type: Mapped[str] = mapped_column(String(12))
    content_type: Mapped[str] = mapped_column(String(120))

    package: Mapped[FilePackage] = relationship(back_populates="files")


class PackageRecipient(IdMixin, Base):
    __tablename__ = "exchange_package_recipient"
    __table_args__ = (UniqueConstraint("package_id", "org_id"), Index("ix_exchange_recipient_org", "org_id"))

    package_id: Mapped[str] = mapped_column(ForeignKey("exchange_package.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    org_name: Mapped[str] = mapped_column(String(120))
    first_download_at: Mapped[datetime | None]
    last_download_at: Mapped[datetime | None]
    download_count: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime | None]  # when its receipt was verified

    package: Mapped[FilePackage] = relationship(back_populates="recipients")


class PackageReceipt(IdMixin, Base):
    """A signed receipt (回执): what a recipient says it received; ``verified`` once the sender checked it."""

    __tablename__ = "exchange_package_receipt"

    package_id: Mapped[str] = mapped_column(ForeignKey("exchange_package.id", ondelete="CASCADE"), index=True)
    recipient_org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"))
    received_by: Mapped[str] = mapped_column(String(60))
    document: Mapped[str] = mapped_column(Text)  # canonical JSON, the signed bytes
    sig_alg: Mapped[str] = mapped_column(String(12))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
    complete: Mapped[bool] = mapped_column(default=False)  # every file received with the manifest's digests
    verified: Mapped[bool] = mapped_column(default=False)
    verify_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None]

    package: Mapped[FilePackage] = relationship(back_populates="receipts")


class FerryExport(IdMixin, TimestampMixin, Base):
    """A request to carry files to the other network; approved by the data authority, then written as a bundle."""

    __tablename__ = "ferry_export"

    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[str] = mapped_column(String(12))  # 非涉密 only
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id"), index=True)
    authority_org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(60))
    target_node: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(20), default="submitted")  # submitted|approved|refused|withdrawn
    ticket_id: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(60))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(Text, default="")
    bundle_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    bundle_path: Mapped[str | None] = mapped_column(String(500))
    exported_at: Mapped[datetime | None]
    files: Mapped[list[Any]] = mapped_column(default=list)  # name, stored_name, size, digests, type
    # for a data export: the entry, resource, items with their masking rule, rows (what left and how)
    data_source: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FerryLedger(IdMixin, Base):
    """Every bundle either side handled: exported, imported or refused (with the reason). A bundle id accepted
    once (``accepted_bundle_id``, unique) is never accepted again: the replay ledger."""

    __tablename__ = "ferry_ledger"
    __table_args__ = (Index("ix_ferry_ledger_at", "at"),)

    at: Mapped[datetime] = mapped_column(default=utcnow)
    direction: Mapped[str] = mapped_column(String(8))  # export | import
    outcome: Mapped[str] = mapped_column(String(12))  # exported | imported | refused
    bundle_id: Mapped[str] = mapped_column(String(64), index=True, default="")
    accepted_bundle_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source_node: Mapped[str] = mapped_column(String(12), default="")
    target_node: Mapped[str] = mapped_column(String(12), default="")
    export_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200), default="")
    file_count: Mapped[int] = mapped_column(default=0)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    reason_code: Mapped[str] = mapped_column(String(60), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    path: Mapped[str] = mapped_column(String(500), default="")
    actor: Mapped[str] = mapped_column(String(60), default="")
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
