"""Tables of the tamper-evident audit log (GB/T 22239-2019 8.1.4.3 安全审计).

Each record carries the SM3 hash of its own content and of its predecessor, so a changed, removed or
reordered record breaks the chain; ``audit_head`` remembers the last link, so removing records at the end
shows too. Triggers make both tables append-only at the database, not only in the code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DDL, BigInteger, Index, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.core.db import Base

GENESIS_HASH = "0" * 64


class AuditRecord(Base):
    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_at", "at"),
        Index("ix_audit_record_actor", "actor_user_id", "seq"),
        Index("ix_audit_record_actor_username", "actor_username", "seq"),
        Index("ix_audit_record_action", "action", "seq"),
        Index("ix_audit_record_target", "target_type", "target_id", "seq"),
    )

    # Assigned by the service from audit_head under its row lock, not by the database: the hash covers
    # seq, so it must be known before the INSERT (an UPDATE afterwards would hit the append-only trigger).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
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
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row (id=1): the last link of the chain. Appenders lock it, so the chain cannot fork."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))


_APPEND_ONLY_MESSAGE = "audit_record is append-only"
_HEAD_MESSAGE = "audit_head only moves forward one record at a time"

# The same statements go into the Alembic migration; create_all installs them through the listeners below.
APPEND_ONLY_DDL: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER audit_record_no_update BEFORE UPDATE ON audit_record "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
        "CREATE TRIGGER audit_record_no_delete BEFORE DELETE ON audit_record "
        f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege'; END $$",
        "CREATE TRIGGER audit_record_no_update_delete BEFORE UPDATE OR DELETE ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()",
        "CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_record_append_only()",
    ],
}

# The head row is seeded at creation (so concurrent first appenders have a row to lock) and may only
# advance by exactly one record: it cannot be deleted or wound back to hide removed records.
HEAD_DDL: dict[str, list[str]] = {
    "sqlite": [
        f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        f"BEGIN SELECT RAISE(ABORT, '{_HEAD_MESSAGE}'); END",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1 "
        f"BEGIN SELECT RAISE(ABORT, '{_HEAD_MESSAGE}'); END",
    ],
    "postgresql": [
        f"INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')",
        "CREATE OR REPLACE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1 THEN "
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
        "DROP FUNCTION IF EXISTS audit_head_guard()",
    ],
}


def _attach(table: Any, ddl: dict[str, list[str]]) -> None:
    for dialect, statements in ddl.items():
        for statement in statements:
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))


_attach(AuditRecord.__table__, APPEND_ONLY_DDL)
_attach(AuditHead.__table__, HEAD_DDL)
