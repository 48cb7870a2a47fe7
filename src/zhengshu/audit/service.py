"""Append to, verify and search the tamper-evident audit log."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from zhengshu.audit.models import GENESIS_HASH, AuditHead, AuditRecord
from zhengshu.core.db import utcnow
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import sm3_hex

OUTCOMES = ("success", "failure")
HEAD_ID = 1
VERIFY_BATCH = 2000
MAX_SEARCH_LIMIT = 200

# Every field except ``hash`` enters the hash, in this fixed set; adding a column means adding it here.
HASHED_FIELDS = (
    "seq",
    "at",
    "actor_user_id",
    "actor_username",
    "actor_org_id",
    "via",
    "source_ip",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "detail",
    "prev_hash",
)


def _canonical_at(value: datetime) -> str:
    if value.tzinfo is None:  # stored values come back aware (UTCDateTime); be strict anyway
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The exact text that is hashed: sorted keys, no spaces, UTF-8 characters kept, UTC times."""
    body = {name: fields[name] for name in HASHED_FIELDS}
    body["at"] = _canonical_at(body["at"])
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(fields: Mapping[str, Any]) -> str:
    return sm3_hex(canonical_json(fields))


def _normalize_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    # Store what JSON round-trips to (tuples → lists, dates → strings), so the hash made now matches the
    # hash recomputed from the stored row later.
    if not detail:
        return {}
    normalized = json.loads(json.dumps(detail, ensure_ascii=False, default=str))
    if not isinstance(normalized, dict):
        raise TypeError("detail must be a dict")
    return normalized


def _insert_head_if_missing(session: Session, dialect: str) -> None:
    values = {"id": HEAD_ID, "last_seq": 0, "last_hash": GENESIS_HASH}
    if dialect == "postgresql":
        stmt: Any = pg_insert(AuditHead).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(AuditHead).values(values).on_conflict_do_nothing()
    else:
        stmt = insert(AuditHead).values(values)
    session.execute(stmt)


def _lock_head(session: Session) -> tuple[int, str]:
    """(last_seq, last_hash) of the head row, locked so that no other transaction appends until this one
    ends. Read as a plain row: no ORM object, so nothing stale can come from an earlier transaction."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite has no row locks and pysqlite opens the transaction lazily: take the database write lock
        # now (a no-op UPDATE waits for it), so the head read next cannot be stale.
        session.execute(text("UPDATE audit_head SET last_hash = last_hash WHERE 1 = 0"))
    stmt = select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID).with_for_update()
    head = session.execute(stmt).first()
    if head is None:
        # Tables created without the seed row (e.g. by hand); tolerate a concurrent creator.
        _insert_head_if_missing(session, dialect)
        head = session.execute(stmt).one()
    return int(head[0]), str(head[1])


def record(
    session: Session,
    *,
    actor: Actor | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
    source_ip: str | None = None,
) -> AuditRecord:
    """Append one audit record in the caller's transaction (never commits); returns it (not attached to
    the session).

    Record failures too (``outcome="failure"``); the caller must then commit the audit record even though
    the action itself was rolled back, e.g. by recording in a separate session.

    The head row stays locked until the transaction ends, so what runs between the lock and the commit
    bounds the whole platform's write rate: the caller's pending changes are flushed before the lock is
    taken, and the append is one statement on PostgreSQL (head update and insert together).
    """
    if not action:
        raise ValueError("action is required")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    session.flush()  # the caller's writes go before the lock, not while it is held
    last_seq, last_hash = _lock_head(session)
    fields: dict[str, Any] = {
        "seq": last_seq + 1,
        "at": utcnow(),
        "actor_user_id": actor.user_id if actor else None,
        "actor_username": actor.username if actor else "anonymous",
        "actor_org_id": actor.org_id if actor else None,
        "via": actor.via if actor else "web",
        "source_ip": source_ip if source_ip is not None else (actor.source_ip if actor else None),
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "outcome": outcome,
        "detail": _normalize_detail(detail),
        "prev_hash": last_hash,
    }
    digest = record_hash(fields)
    move_head = update(AuditHead).where(AuditHead.id == HEAD_ID).values(last_seq=fields["seq"], last_hash=digest)
    append = insert(AuditRecord).values(**fields, hash=digest)
    if session.get_bind().dialect.name == "postgresql":
        # one round trip while the head is locked: the head moves in a data-modifying CTE of the insert
        session.execute(append.add_cte(move_head.cte("audit_head_moved")))
    else:
        session.execute(move_head)
        session.execute(append)
    return AuditRecord(**fields, hash=digest)


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify(session: Session, *, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Walk the whole chain in seq order and report the first record that breaks it.

    Reads the head first and checks records up to it, so appends committed while the walk runs do not
    count as tampering. Streams rows in batches; memory stays flat on millions of records.
    """
    head = session.execute(
        select(AuditHead).where(AuditHead.id == HEAD_ID).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if head is not None:
        head_seq, head_hash = head.last_seq, head.last_hash
        stmt = select(*AuditRecord.__table__.c).where(AuditRecord.seq <= head_seq)
        total = head_seq
    else:
        head_seq, head_hash = None, None
        stmt = select(*AuditRecord.__table__.c)
        total = session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()

    expected_seq, expected_prev, checked = 1, GENESIS_HASH, 0
    # Plain rows, not ORM objects: no identity map to grow, and far less work per row.
    rows = session.execute(stmt.order_by(AuditRecord.seq).execution_options(yield_per=VERIFY_BATCH))
    try:
        for row in rows.mappings():
            seq = row["seq"]
            if seq != expected_seq:
                return VerifyReport(False, checked, expected_seq, f"记录序号不连续（缺少第 {expected_seq} 条）")
            checked += 1
            if record_hash(row) != row["hash"]:
                return VerifyReport(False, checked, seq, f"第 {seq} 条记录内容与哈希不符")
            if row["prev_hash"] != expected_prev:
                return VerifyReport(False, checked, seq, f"第 {seq} 条记录的前序哈希不连续")
            expected_seq, expected_prev = seq + 1, row["hash"]
            if progress is not None and checked % VERIFY_BATCH == 0:
                progress(checked, total)
    finally:
        rows.close()

    last_seq = expected_seq - 1
    if progress is not None:
        progress(checked, total)
    if head_seq is None:
        if checked:
            return VerifyReport(False, checked, 1, "缺少审计链头记录，无法确认末尾记录是否完整")
        return VerifyReport(True, 0)
    if head_seq != last_seq:
        return VerifyReport(
            False,
            checked,
            last_seq + 1,
            f"审计链头记载最后一条为第 {head_seq} 条，实际只到第 {last_seq} 条（末尾记录可能已被删除）",
        )
    if head_hash != expected_prev:
        return VerifyReport(False, checked, last_seq, f"审计链头哈希与第 {last_seq} 条记录不符")
    return VerifyReport(True, checked)


def search(
    session: Session,
    *,
    actor: Actor,
    action_prefix: str | None = None,
    actor_username: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    before_seq: int | None = None,
) -> list[AuditRecord]:
    """Audit records, newest first; ``before_seq`` pages backwards. Non-admins see only their own."""
    stmt = select(AuditRecord)
    if not actor.is_admin:
        # Default deny: a user reads their own trail and nothing else, whatever filters they pass.
        if actor.user_id is not None:
            stmt = stmt.where(AuditRecord.actor_user_id == actor.user_id)
        else:
            stmt = stmt.where(AuditRecord.actor_user_id.is_(None), AuditRecord.actor_username == actor.username)
    if action_prefix:
        stmt = stmt.where(AuditRecord.action.startswith(action_prefix, autoescape=True))
    if actor_username:
        stmt = stmt.where(AuditRecord.actor_username == actor_username)
    if target_type:
        stmt = stmt.where(AuditRecord.target_type == target_type)
    if target_id:
        stmt = stmt.where(AuditRecord.target_id == target_id)
    if since is not None:
        stmt = stmt.where(AuditRecord.at >= since)
    if until is not None:
        stmt = stmt.where(AuditRecord.at < until)
    if before_seq is not None:
        stmt = stmt.where(AuditRecord.seq < before_seq)
    limit = max(1, min(limit, MAX_SEARCH_LIMIT))
    return list(session.execute(stmt.order_by(AuditRecord.seq.desc()).limit(limit)).scalars())
