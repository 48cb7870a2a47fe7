"""Append to, seal, verify and search the tamper-evident audit log.

``record`` only inserts (no lock in the caller's transaction); ``seal`` links committed records into the
chain afterwards, one sealer at a time; ``verify`` seals what is waiting, then walks the chain.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from zhengshu.audit import sealing
from zhengshu.audit.models import GENESIS_HASH, AuditChain, AuditHead, AuditPending, AuditRecord
from zhengshu.core.db import utcnow
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import sm3_hex

log = logging.getLogger(__name__)

OUTCOMES = ("success", "failure")
HEAD_ID = 1
VERIFY_BATCH = 2000
SEAL_BATCH = 500
MAX_SEARCH_LIMIT = 200
# verify() reports records still unsealed this long after they were written (sealing normally follows the
# commit within milliseconds; the minute job is the backstop).
UNSEALED_GRACE = timedelta(minutes=5)
# High 32 bits of the sealer's advisory lock key; the low 32 bits are audit_head's oid, so every schema of a
# database has its own sealer lock.
SEAL_LOCK_NAMESPACE = 0x5A53_4144  # "ZSAD"

# The content of a record: every column except seq, prev_hash and hash. Adding a column means adding it here.
HASHED_FIELDS = (
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
)
# Records written before migration 0004 were chained in the record itself: their hash covers these.
LEGACY_HASHED_FIELDS = ("seq", *HASHED_FIELDS, "prev_hash")
LINK_FIELDS = ("position", "record_seq", "record_hash", "prev_hash", "sealed_at")


def _canonical_at(value: datetime) -> str:
    if value.tzinfo is None:  # stored values come back aware (UTCDateTime); be strict anyway
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _canonical(body: dict[str, Any], time_field: str) -> str:
    body[time_field] = _canonical_at(body[time_field])
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The exact text that is hashed: sorted keys, no spaces, UTF-8 characters kept, UTC times. A record
    with a ``prev_hash`` is a chained record from before 0004 and hashes as it did then."""
    names = LEGACY_HASHED_FIELDS if fields.get("prev_hash") else HASHED_FIELDS
    return _canonical({name: fields[name] for name in names}, "at")


def record_hash(fields: Mapping[str, Any]) -> str:
    return sm3_hex(canonical_json(fields))


def link_hash(fields: Mapping[str, Any]) -> str:
    """SM3 of a chain link: which record (seq and content hash) sits at which position after which link."""
    return sm3_hex(_canonical({name: fields[name] for name in LINK_FIELDS}, "sealed_at"))


def _normalize_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    # Store what JSON round-trips to (tuples → lists, dates → strings), so the hash made now matches the
    # hash recomputed from the stored row later.
    if not detail:
        return {}
    normalized = json.loads(json.dumps(detail, ensure_ascii=False, default=str))
    if not isinstance(normalized, dict):
        raise TypeError("detail must be a dict")
    return normalized


_INSERT_RECORD = insert(AuditRecord.__table__).returning(AuditRecord.__table__.c.seq)


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

    One INSERT and no lock: the record carries the hash of its own content, a trigger queues it for
    sealing, and the session schedules a seal once its transaction commits (``audit.sealing``).
    """
    if not action:
        raise ValueError("action is required")
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    fields: dict[str, Any] = {
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
        "prev_hash": "",
    }
    digest = record_hash(fields)
    # a Core insert of the table, one statement built once (its compiled form cached): none of the ORM's
    # per-statement work on every audited request
    seq = session.execute(_INSERT_RECORD, {**fields, "hash": digest}).scalar_one()
    sealing.mark(session)
    return AuditRecord(seq=seq, **fields, hash=digest)


# ---- sealing ----------------------------------------------------------------------------------------------


def _insert_head_if_missing(conn: Connection) -> None:
    values = {"id": HEAD_ID, "last_seq": 0, "last_hash": GENESIS_HASH}
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = pg_insert(AuditHead).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite_insert(AuditHead).values(values).on_conflict_do_nothing()
    else:
        stmt = insert(AuditHead).values(values)
    conn.execute(stmt)


_SEAL_LOCK_KEY = "(CAST(:ns AS bigint) << 32) | CAST(CAST(CAST('audit_head' AS regclass) AS oid) AS bigint)"
_HEAD = select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID).with_for_update()
# PostgreSQL, the usual case in one statement: the sealer lock tried and the head locked and read. No row when
# another sealer holds the lock (or the head row is missing: the slow path below tells which).
_PG_TRY_LOCK_AND_HEAD = _HEAD.where(
    text(f"pg_try_advisory_xact_lock({_SEAL_LOCK_KEY})").bindparams(ns=SEAL_LOCK_NAMESPACE)
)
# The queue's first records after ``after``, each record's hash looked up by its key (a correlated subquery,
# whatever the statistics say: a join let PostgreSQL merge along audit_record from its first seq, a read that
# grew with the whole trail at every pass). NULL for a queued seq whose record is gone.
_WAITING = (
    select(
        AuditPending.seq,
        select(AuditRecord.hash).where(AuditRecord.seq == AuditPending.seq).scalar_subquery(),
    )
    .where(AuditPending.seq > bindparam("after"))
    .order_by(AuditPending.seq)
    .limit(bindparam("batch"))
)


def _waiting(conn: Connection) -> list[tuple[int, str]]:
    """The next records to seal, oldest first. A queued seq whose record is gone stays queued (verify() reports
    it) and does not hold up the records after it, however many such seqs there are."""
    after = 0
    while True:
        rows = conn.execute(_WAITING, {"after": after, "batch": SEAL_BATCH}).all()
        waiting = [(int(seq), str(digest)) for seq, digest in rows if digest is not None]
        if waiting or len(rows) < SEAL_BATCH:
            return waiting
        after = rows[-1][0]


# PostgreSQL: the links written, the queue emptied of them and the head moved in one statement, whose text does
# not depend on how many links there are (arrays), so it is prepared once.
_PG_WRITE_LINKS = text(
    """
    WITH linked AS (
        INSERT INTO audit_chain (position, record_seq, record_hash, prev_hash, sealed_at, hash)
        SELECT link.position, link.record_seq, link.record_hash, link.prev_hash, CAST(:sealed_at AS timestamptz),
               link.hash
        FROM unnest(CAST(:positions AS bigint[]), CAST(:seqs AS bigint[]), CAST(:record_hashes AS varchar[]),
                    CAST(:prev_hashes AS varchar[]), CAST(:hashes AS varchar[]))
             AS link(position, record_seq, record_hash, prev_hash, hash)
    ), unqueued AS (
        DELETE FROM audit_pending WHERE seq = ANY(CAST(:seqs AS bigint[]))
    )
    UPDATE audit_head SET last_seq = :last_seq, last_hash = :last_hash WHERE id = :head_id
    """
)


def _take_sealer_lock(conn: Connection, *, wait: bool) -> bool:
    """Only one sealer at a time. PostgreSQL: a transaction-scoped advisory lock (``wait=False`` gives up at
    once when another sealer holds it). SQLite: the database's write lock, taken by a no-op UPDATE, since
    pysqlite opens the transaction lazily and the head read next must not be stale."""
    if conn.dialect.name == "postgresql":
        if wait:
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_SEAL_LOCK_KEY})"), {"ns": SEAL_LOCK_NAMESPACE})
            return True
        return bool(
            conn.execute(
                text(f"SELECT pg_try_advisory_xact_lock({_SEAL_LOCK_KEY})"), {"ns": SEAL_LOCK_NAMESPACE}
            ).scalar()
        )
    conn.execute(text("UPDATE audit_head SET last_hash = last_hash WHERE 1 = 0"))
    return True


def _locked_head(conn: Connection, *, wait: bool) -> Any:
    """The head row, locked, with the sealer lock held; None when another sealer holds it (``wait=False``).
    The head is locked before any record is read, the order the migrations' downgrade keeps too."""
    if conn.dialect.name == "postgresql" and not wait:
        head = conn.execute(_PG_TRY_LOCK_AND_HEAD).first()
        if head is not None:
            return head
    if not _take_sealer_lock(conn, wait=wait):
        return None
    head = conn.execute(_HEAD).first()
    if head is None:  # tables created without the seed row (e.g. by hand)
        _insert_head_if_missing(conn)
        head = conn.execute(_HEAD).one()
    return head


def seal_batch(conn: Connection, *, wait: bool = False) -> int | None:
    """Link up to ``SEAL_BATCH`` committed, unsealed records into the chain in the caller's transaction on
    ``conn``; the number linked, or None when another sealer holds the lock (``wait=False``)."""
    head = _locked_head(conn, wait=wait)
    if head is None:
        return None
    waiting = _waiting(conn)
    if not waiting:
        return 0
    position, prev = int(head[0]), str(head[1])
    sealed_at = utcnow()
    links: list[dict[str, Any]] = []
    for seq, digest in waiting:
        position += 1
        link = {
            "position": position,
            "record_seq": seq,
            "record_hash": digest,
            "prev_hash": prev,
            "sealed_at": sealed_at,
        }
        prev = link["hash"] = link_hash(link)
        links.append(link)
    if conn.dialect.name == "postgresql":
        conn.execute(
            _PG_WRITE_LINKS,
            {
                "sealed_at": sealed_at,
                "positions": [link["position"] for link in links],
                "seqs": [link["record_seq"] for link in links],
                "record_hashes": [link["record_hash"] for link in links],
                "prev_hashes": [link["prev_hash"] for link in links],
                "hashes": [link["hash"] for link in links],
                "last_seq": position,
                "last_hash": prev,
                "head_id": HEAD_ID,
            },
        )
        return len(links)
    conn.execute(insert(AuditChain), links)
    conn.execute(delete(AuditPending).where(AuditPending.seq.in_([seq for seq, _ in waiting])))
    conn.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(last_seq=position, last_hash=prev))
    return len(links)


def seal(engine: Engine, *, wait: bool = False) -> int | None:
    """Seal every committed record waiting, a transaction per batch (the sealer lock is released between
    batches). Returns how many were sealed, or None when another sealer was at work (``wait=False``)."""
    total = 0
    while True:
        with engine.begin() as conn:
            done = seal_batch(conn, wait=wait)
        if done is None:
            return total or None
        total += done
        if done < SEAL_BATCH:
            return total


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def _seal_before_verify(session: Session) -> None:
    engine = _engine_of(session)
    if engine.dialect.name == "sqlite" and session.in_transaction():
        dbapi_conn: Any = session.connection().connection.dbapi_connection
        if getattr(dbapi_conn, "in_transaction", False):
            # This connection may hold SQLite's write lock: a second one would wait for it. Seal in here.
            try:
                with session.begin_nested():
                    conn = session.connection()
                    while (seal_batch(conn, wait=True) or 0) >= SEAL_BATCH:
                        pass
            except SQLAlchemyError:
                log.warning("audit: could not seal before verifying", exc_info=True)
            return
    try:
        seal(engine, wait=True)
    except SQLAlchemyError:
        # best effort: what stays unsealed too long is reported by verify
        log.warning("audit: could not seal before verifying", exc_info=True)


# ---- verification -----------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    unsealed: int = 0


def _unsealed_findings(session: Session, older_than: timedelta, checked: int) -> VerifyReport | None:
    # a queued seq without its record: the record was removed before it could be sealed
    orphan = session.execute(
        select(func.min(AuditPending.seq)).where(~exists().where(AuditRecord.seq == AuditPending.seq))
    ).scalar()
    if orphan is not None:
        return VerifyReport(False, checked, orphan, f"第 {orphan} 条记录在封链前已被删除（待封链队列中仍有它）")
    cutoff = utcnow() - older_than
    count, first = session.execute(
        select(func.count(), func.min(AuditRecord.seq)).where(
            AuditRecord.at < cutoff, ~exists().where(AuditChain.record_seq == AuditRecord.seq)
        )
    ).one()
    if count:
        seconds = int(older_than.total_seconds())
        reason = f"未封链记录：有 {count} 条记录超过 {seconds} 秒仍未封链（最早为第 {first} 条），未受哈希链保护"
        return VerifyReport(False, checked, first, reason, unsealed=count)
    return None


def verify(
    session: Session,
    *,
    progress: Callable[[int, int], None] | None = None,
    seal_first: bool = True,
    unsealed_after: timedelta = UNSEALED_GRACE,
) -> VerifyReport:
    """Seal what is waiting (``seal_first``), then walk the chain link by link and report the first
    problem: a changed, removed or re-hashed record, a changed or removed link, links missing at the end,
    and records left unsealed longer than ``unsealed_after``.

    Reads the head first and checks links up to it, so seals committed while the walk runs do not count as
    tampering. Streams rows in batches; memory stays flat on millions of records.
    """
    if seal_first:
        _seal_before_verify(session)
    head = session.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == HEAD_ID)).first()
    if head is None:
        if session.execute(select(exists().where(AuditChain.position > 0))).scalar():
            return VerifyReport(False, 0, None, "缺少审计链头记录，无法确认末尾记录是否完整")
        return _unsealed_findings(session, unsealed_after, 0) or VerifyReport(True, 0)
    head_position, head_hash = int(head[0]), str(head[1])

    record_columns = [c for c in AuditRecord.__table__.c if c.name not in ("seq", "prev_hash", "hash")]
    stmt = (
        select(
            *AuditChain.__table__.c,
            AuditRecord.seq.label("r_seq"),
            AuditRecord.prev_hash.label("r_prev_hash"),
            AuditRecord.hash.label("r_hash"),
            *record_columns,
        )
        .outerjoin(AuditRecord, AuditRecord.seq == AuditChain.record_seq)
        .where(AuditChain.position <= head_position)
        .order_by(AuditChain.position)
        .execution_options(yield_per=VERIFY_BATCH)
    )
    expected_position, expected_prev, legacy_prev, checked = 1, GENESIS_HASH, GENESIS_HASH, 0
    # Plain rows, not ORM objects: no identity map to grow, and far less work per row.
    rows = session.execute(stmt)
    try:
        for row in rows.mappings():
            position, seq = row["position"], row["record_seq"]
            if position != expected_position:
                return VerifyReport(
                    False, checked, None, f"审计链不连续（缺少第 {expected_position} 个链节，其记录可能已被删除）"
                )
            checked += 1
            link = f"审计链第 {position} 个链节（第 {seq} 条记录）"
            if link_hash(row) != row["hash"]:
                return VerifyReport(False, checked, seq, f"{link}内容与哈希不符")
            if row["prev_hash"] != expected_prev:
                return VerifyReport(False, checked, seq, f"{link}的前序哈希不连续")
            if row["r_seq"] is None:
                return VerifyReport(False, checked, seq, f"第 {seq} 条记录已不存在（{link}记载了它，可能已被删除）")
            fields = {**row, "seq": seq, "prev_hash": row["r_prev_hash"]}
            if record_hash(fields) != row["r_hash"]:
                return VerifyReport(False, checked, seq, f"第 {seq} 条记录内容与哈希不符")
            if row["r_hash"] != row["record_hash"]:
                return VerifyReport(False, checked, seq, f"第 {seq} 条记录的哈希与封链时记载的不符")
            if row["r_prev_hash"]:  # chained before 0004: its own link to the previous record still holds
                if row["r_prev_hash"] != legacy_prev:
                    return VerifyReport(False, checked, seq, f"第 {seq} 条记录的前序哈希不连续")
                legacy_prev = row["r_hash"]
            expected_position, expected_prev = position + 1, row["hash"]
            if progress is not None and checked % VERIFY_BATCH == 0:
                progress(checked, head_position)
    finally:
        rows.close()

    last_position = expected_position - 1
    if progress is not None:
        progress(checked, head_position)
    if head_position != last_position:
        return VerifyReport(
            False,
            checked,
            None,
            f"审计链头记载最后为第 {head_position} 个链节，实际只到第 {last_position} 个（末尾记录可能已被删除）",
        )
    if head_hash != expected_prev:
        return VerifyReport(False, checked, None, f"审计链头哈希与第 {last_position} 个链节不符")
    return _unsealed_findings(session, unsealed_after, checked) or VerifyReport(True, checked)


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
