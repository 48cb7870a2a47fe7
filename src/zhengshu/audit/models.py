"""Tables of the tamper-evident audit log (GB/T 22239-2019 8.1.4.3 安全审计).

A request writes its ``audit_record`` with the SM3 hash of the record's own content and nothing else: no
global lock in the request's transaction. A trigger queues the record in ``audit_pending``; once committed,
a sealer (one at a time) appends a link per record to ``audit_chain`` — position, record seq, record hash,
previous link's hash, own hash — and moves ``audit_head`` to the last link. A changed record no longer
matches its hash or its link; a removed record leaves a link pointing at nothing; a changed or removed link
breaks the chain; removed links at the end fall short of the head. Triggers make records and links
append-only and the head forward-only at the database, not only in the code.

Records written before the change (migration 0004) also carry ``prev_hash``: their hash covers seq and the
previous record's hash, as then. Newer records have ``prev_hash = ''``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, BigInteger, Identity, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.core.db import Base

GENESIS_HASH = "0" * 64
_BIGINT = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid


class AuditRecord(Base):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_at", "at"),
        Index("ix_audit_record_actor", "actor_user_id", "seq"),
        Index("ix_audit_record_actor_username", "actor_username", "seq"),
        Index("ix_audit_record_action", "action", "seq"),
        Index("ix_audit_record_target", "target_type", "target_id", "seq"),
    )

    # Assigned by the database at the INSERT (identity on PostgreSQL, rowid on SQLite), without a lock:
    # it orders records for search, not for the chain. Rolled-back inserts leave gaps; the chain does not care.
    seq: Mapped[int] = mapped_column(_BIGINT, Identity(), primary_key=True)
    at: Mapped[datetime]
    actor_user_id: Mapped[str | None] = mapped_column(String(32))
    actor_username: Mapped[str] = mapped_column(String(100))
    actor_org_id: Mapped[str | None] = mapped_column(String(32))
    via: Mapped[str] = mapped_column(String(8))  # web | api | cli | job
    source_ip: Mapped[str | None] = mapped_column(String(45))  # IPv6 text form fits in 45
    action: Mapped[str] = mapped_column(String(100))  # catalog.entry.update, auth.login …
    target_type: Mapped[str] = mapped_column(String(50), default="")
    target_id: Mapped[str] = mapped_column(String(128), default="")
    outcome: Mapped[str] = mapped_column(String(10))  # success | failure
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))  # '' since 0004: the link lives in audit_chain
    hash: Mapped[str] = mapped_column(String(64))  # SM3 of the record's content


class AuditPending(Base):
    """Committed records not sealed yet, queued by a trigger on ``audit_record``; the sealer empties it."""

    __tablename__ = "audit_pending"

    seq: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)


class AuditChain(Base):
    """One link per sealed record, in the order records were sealed (not necessarily seq order)."""

    __tablename__ = "audit_chain"

    position: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    record_seq: Mapped[int] = mapped_column(_BIGINT, unique=True)
    record_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime]
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row (id=1): the last link of the chain (``last_seq`` is its position). Only the sealer moves it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(_BIGINT)
    last_hash: Mapped[str] = mapped_column(String(64))


_APPEND_ONLY_MESSAGE = "audit_record is append-only"
_CHAIN_MESSAGE = "audit_chain is append-only"
_HEAD_MESSAGE = "audit_head only moves forward"

# Per table, so each goes in when its table is created; the same statements go into the migrations.
RECORD_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
        "CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
        # every record, however it was inserted, is queued for sealing in the inserting transaction
        "CREATE TRIGGER audit_record_enqueue AFTER INSERT ON audit_record "
        "BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
        "CREATE TRIGGER audit_record_no_update_delete BEFORE UPDATE OR DELETE ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()",
        "CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_record_append_only()",
        "CREATE OR REPLACE FUNCTION audit_record_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); RETURN NULL; END $$",
        "CREATE TRIGGER audit_record_enqueue AFTER INSERT ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION audit_record_enqueue()",
    ],
}

CHAIN_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain "
        f"BEGIN SELECT RAISE(ABORT, '{_CHAIN_MESSAGE}'); END",
        "CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain "
        f"BEGIN SELECT RAISE(ABORT, '{_CHAIN_MESSAGE}'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_chain_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{_CHAIN_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
        "CREATE TRIGGER audit_chain_no_update_delete BEFORE UPDATE OR DELETE ON audit_chain "
        "FOR EACH ROW EXECUTE FUNCTION audit_chain_append_only()",
        "CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_append_only()",
    ],
}

# What test fixtures reinstall after wiping the tables (they drop every trigger first).
APPEND_ONLY_DDL: dict[str, list[str]] = {d: RECORD_DDL[d] + CHAIN_DDL[d] for d in RECORD_DDL}

# The head row is seeded at creation and may only advance (a sealer moves it once per batch of links): it
# cannot be deleted or wound back to hide removed links at the end.
HEAD_DDL: dict[str, list[str]] = {
    "sqlite": [
        f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        f"BEGIN SELECT RAISE(ABORT, '{_HEAD_MESSAGE}'); END",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NEW.id <> OLD.id OR NEW.last_seq <= OLD.last_seq "
        f"BEGIN SELECT RAISE(ABORT, '{_HEAD_MESSAGE}'); END",
    ],
    "postgresql": [
        f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
        "CREATE OR REPLACE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.last_seq <= OLD.last_seq THEN "
        f"RAISE EXCEPTION '{_HEAD_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; "
        "END IF; RETURN NEW; END $$",
        "CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_guard()",
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_head_guard()",
    ],
}

# For a migration's downgrade: dropping the tables removes their triggers, not PostgreSQL's functions.
DROP_FUNCTIONS_DDL: dict[str, list[str]] = {
    "sqlite": [],
    "postgresql": [
        "DROP FUNCTION IF EXISTS audit_record_append_only()",
        "DROP FUNCTION IF EXISTS audit_record_enqueue()",
        "DROP FUNCTION IF EXISTS audit_chain_append_only()",
        "DROP FUNCTION IF EXISTS audit_head_guard()",
    ],
}


def _attach(table: Any, ddl: dict[str, list[str]]) -> None:
    for dialect, statements in ddl.items():
        for statement in statements:
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))


_attach(AuditRecord.__table__, RECORD_DDL)
_attach(AuditChain.__table__, CHAIN_DDL)
_attach(AuditHead.__table__, HEAD_DDL)
