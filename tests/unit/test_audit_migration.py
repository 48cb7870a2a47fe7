"""Migration 0004 links the records chained before it, so an upgraded database verifies as it did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text, update

from zhengshu.audit import service as audit_service
from zhengshu.audit.models import GENESIS_HASH, AuditHead, AuditRecord
from zhengshu.core import migrate
from zhengshu.core.db import Database


def _legacy_records(db: Database, count: int) -> list[dict[str, object]]:
    """Records as 0003's service wrote them: seq from the head, hash over seq and the previous hash."""
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    made: list[dict[str, object]] = []
    prev = GENESIS_HASH
    with db.engine.begin() as conn:
        for seq in range(1, count + 1):
            fields: dict[str, object] = {
                "seq": seq,
                "at": start + timedelta(minutes=seq),
                "actor_user_id": "u-zhang",
                "actor_username": "zhangsan",
                "actor_org_id": None,
                "via": "web",
                "source_ip": "10.0.0.1",
                "action": "catalog.entry.update",
                "target_type": "catalog_entry",
                "target_id": f"e{seq}",
                "outcome": "success",
                "detail": {"字段": "地址", "n": seq},
                "prev_hash": prev,
            }
            digest = audit_service.record_hash(fields)
            conn.execute(insert(AuditRecord.__table__).values(**fields, hash=digest))
            conn.execute(update(AuditHead.__table__).where(AuditHead.id == 1).values(last_seq=seq, last_hash=digest))
            made.append({**fields, "hash": digest})
            prev = digest
    return made


def _verify(db: Database) -> audit_service.VerifyReport:
    with db.session() as s:
        return audit_service.verify(s)


def test_upgrade_links_the_existing_chain(empty_db: Database) -> None:
    migrate.upgrade(empty_db, "0003")
    legacy = _legacy_records(empty_db, 5)
    migrate.upgrade(empty_db)

    report = _verify(empty_db)
    assert report == audit_service.VerifyReport(True, 5)
    with empty_db.engine.connect() as conn:
        links = conn.execute(text("SELECT position, record_seq, record_hash FROM audit_chain ORDER BY position"))
        assert [tuple(r) for r in links] == [(n, n, legacy[n - 1]["hash"]) for n in range(1, 6)]

    # new records continue after the old ones, unlocked and sealed behind them
    with empty_db.session() as s:
        new = [audit_service.record(s, actor=None, action=f"test.after.{n}") for n in range(3)]
    assert [r.seq for r in new] == [6, 7, 8]
    report = _verify(empty_db)
    assert report.ok and report.checked == 8

    # a record changed before the upgrade still shows: its old link to the previous record breaks
    dialect = empty_db.engine.dialect.name
    with empty_db.engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("DROP TRIGGER audit_record_no_update_delete ON audit_record"))
        else:
            conn.execute(text("DROP TRIGGER audit_record_no_update"))
        forged = {**legacy[2], "prev_hash": "a" * 64}
        conn.execute(
            text("UPDATE audit_record SET prev_hash = :p, hash = :h WHERE seq = 3"),
            {"p": forged["prev_hash"], "h": audit_service.record_hash(forged)},
        )
    report = _verify(empty_db)
    assert (report.ok, report.first_bad_seq) == (False, 3)

    migrate.downgrade(empty_db, "0003")
    assert migrate.current(empty_db) == "0003"


def test_upgrade_keeps_a_truncated_legacy_chain_visible(empty_db: Database) -> None:
    migrate.upgrade(empty_db, "0003")
    _legacy_records(empty_db, 4)
    dialect = empty_db.engine.dialect.name
    with empty_db.engine.begin() as conn:  # the last record removed before the upgrade
        if dialect == "postgresql":
            conn.execute(text("DROP TRIGGER audit_record_no_update_delete ON audit_record"))
        else:
            conn.execute(text("DROP TRIGGER audit_record_no_delete"))
        conn.execute(text("DELETE FROM audit_record WHERE seq = 4"))
    migrate.upgrade(empty_db)
    report = _verify(empty_db)
    assert not report.ok and "末尾" in report.reason
