"""audit chain sealed after commit

Records are inserted without a lock and linked into ``audit_chain`` afterwards by a sealer. Existing records
were chained in the record itself (``prev_hash``); they get a link each, at the position of their seq, so an
upgraded database verifies as it did (and a record removed or changed before the upgrade still shows).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 14:30:00
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import zhengshu.core.db
from zhengshu.security.crypto import sm3_hex

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 5000

# Frozen copies of the statements in zhengshu.audit.models at this revision.
_NEW_DDL = {
    "sqlite": [
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.id <> OLD.id OR NEW.last_seq <= OLD.last_seq BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END",
        "CREATE TRIGGER audit_record_enqueue AFTER INSERT ON audit_record BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); END",
        "CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END",
        "CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.last_seq <= OLD.last_seq THEN RAISE EXCEPTION 'audit_head only moves forward' USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION audit_head_guard()",
        "CREATE OR REPLACE FUNCTION audit_record_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_pending (seq) VALUES (NEW.seq); RETURN NULL; END $$",
        "CREATE TRIGGER audit_record_enqueue AFTER INSERT ON audit_record FOR EACH ROW EXECUTE FUNCTION audit_record_enqueue()",
        "CREATE OR REPLACE FUNCTION audit_chain_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit_chain is append-only' USING ERRCODE = 'insufficient_privilege'; END $$",
        "CREATE TRIGGER audit_chain_no_update_delete BEFORE UPDATE OR DELETE ON audit_chain FOR EACH ROW EXECUTE FUNCTION audit_chain_append_only()",
        "CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_append_only()",
    ],
}
# The head trigger as 0001 made it (one record at a time).
_OLD_HEAD_DDL = {
    "sqlite": [
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward one record at a time'); END",
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1 BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward one record at a time'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.last_seq <> OLD.last_seq + 1 THEN RAISE EXCEPTION 'audit_head only moves forward one record at a time' USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION audit_head_guard()",
    ],
}
_DROP_HEAD_TRIGGERS = {
    "sqlite": ["DROP TRIGGER IF EXISTS audit_head_no_delete", "DROP TRIGGER IF EXISTS audit_head_forward_only"],
    "postgresql": ["DROP TRIGGER IF EXISTS audit_head_guard ON audit_head"],
}

_chain = sa.table(
    "audit_chain",
    sa.column("position", _BIGINT),
    sa.column("record_seq", _BIGINT),
    sa.column("record_hash", sa.String()),
    sa.column("prev_hash", sa.String()),
    sa.column("sealed_at", zhengshu.core.db.UTCDateTime()),
    sa.column("hash", sa.String()),
)


def _link_hash(link: dict[str, Any]) -> str:
    # as zhengshu.audit.service.link_hash at this revision
    body = {k: link[k] for k in ("position", "record_seq", "record_hash", "prev_hash", "sealed_at")}
    body["sealed_at"] = body["sealed_at"].astimezone(UTC).isoformat(timespec="microseconds")
    return sm3_hex(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


def _link_existing_records(conn: sa.Connection) -> None:
    """A link per existing record at the position of its seq, in seq order; the head keeps its position and
    takes the last link's hash only when the records still reach it (otherwise verify keeps reporting)."""
    sealed_at = datetime.now(UTC)
    prev, last_seq = "0" * 64, 0
    while True:
        rows = conn.execute(
            sa.text("SELECT seq, hash FROM audit_record WHERE seq > :after ORDER BY seq LIMIT :n"),
            {"after": last_seq, "n": _BATCH},
        ).all()
        if not rows:
            break
        links = []
        for seq, digest in rows:
            link = {
                "position": seq,
                "record_seq": seq,
                "record_hash": digest,
                "prev_hash": prev,
                "sealed_at": sealed_at,
            }
            prev = link["hash"] = _link_hash(link)
            links.append(link)
        conn.execute(sa.insert(_chain), links)
        last_seq = rows[-1][0]
    head = conn.execute(sa.text("SELECT last_seq FROM audit_head WHERE id = 1")).first()
    if head is not None and head[0] == last_seq and last_seq > 0:
        conn.execute(sa.text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": prev})


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("position", _BIGINT, autoincrement=False, nullable=False),
        sa.Column("record_seq", _BIGINT, nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", zhengshu.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("record_seq", name=op.f("uq_audit_chain_record_seq")),
    )
    op.create_table(
        "audit_pending",
        sa.Column("seq", _BIGINT, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_pending")),
    )
    conn = op.get_bind()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # seq from an identity from now on (SQLite's INTEGER PRIMARY KEY already is the rowid)
        op.execute("ALTER TABLE audit_record ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY")
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_record', 'seq'), COALESCE(MAX(seq), 0) + 1, false) "
            "FROM audit_record"
        )
    for statement in _DROP_HEAD_TRIGGERS.get(dialect, []):
        op.execute(statement)
    _link_existing_records(conn)
    for statement in _NEW_DDL.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    # Records written since 0004 are not chained in the record itself (prev_hash ''): the verification of
    # 0003 reports them. Nothing is rewritten; the audit tables are append-only.
    conn = op.get_bind()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # A sealer locks audit_head before it reads audit_record: take audit_head first too, or a sealer still
        # running after the last commit deadlocks with the DROP TRIGGER below.
        op.execute("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE")
        op.execute("DROP TRIGGER IF EXISTS audit_record_enqueue ON audit_record")
        op.execute("ALTER TABLE audit_record ALTER COLUMN seq DROP IDENTITY IF EXISTS")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_record_enqueue")
    for statement in _DROP_HEAD_TRIGGERS.get(dialect, []):
        op.execute(statement)
    for statement in _OLD_HEAD_DDL.get(dialect, []):
        op.execute(statement)
    op.drop_table("audit_pending")
    op.drop_table("audit_chain")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_record_enqueue()")
        op.execute("DROP FUNCTION IF EXISTS audit_chain_append_only()")
