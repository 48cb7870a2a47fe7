"""The tamper-evident audit log on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from zhengshu.audit import service as audit_service
from zhengshu.audit.models import GENESIS_HASH, AuditHead, AuditRecord
from zhengshu.audit.schemas import AuditRecordRead, VerifyReportRead
from zhengshu.core.db import Database
from zhengshu.security.actor import Actor, Role
from zhengshu.security.crypto import sm3_hex

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLES = [AuditHead.__table__, AuditRecord.__table__]

ZHANG = Actor(
    user_id="u-zhang",
    username="zhangsan",
    display_name="张三",
    org_id="org-scjg",
    roles=frozenset({Role.OFFICER}),
    source_ip="10.1.2.3",
)
LI = Actor(user_id="u-li", username="lisi", display_name="李四", org_id="org-rst", via="api")
ADMIN = Actor(user_id="u-admin", username="admin", display_name="管理员", org_id=None, roles=frozenset({Role.ADMIN}))

# Trigger names per dialect, to remove them where a test plays the attacker with DBA rights.
UPDATE_TRIGGER = {"sqlite": "audit_record_no_update", "postgresql": "audit_record_no_update_delete"}
DELETE_TRIGGER = {"sqlite": "audit_record_no_delete", "postgresql": "audit_record_no_update_delete"}


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
        _create_tables(database)
        yield database
        database.dispose()
        return
    if not _postgres_available():
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin_engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = Database(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        _create_tables(database)
        yield database
    finally:
        database.dispose()
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def _create_tables(database: Database) -> None:
    AuditRecord.metadata.create_all(database.engine, tables=TABLES)


def _dialect(database: Database) -> str:
    return database.engine.dialect.name


def _drop_trigger(database: Database, name: str) -> None:
    sql = f"DROP TRIGGER {name}"
    if _dialect(database) == "postgresql":
        sql += " ON audit_record"
    with database.engine.begin() as conn:
        conn.execute(text(sql))


def _fill(database: Database, count: int = 5) -> list[AuditRecord]:
    actors = [ZHANG, LI, ADMIN, None]
    made: list[AuditRecord] = []
    with database.session() as session:
        for n in range(count):
            made.append(
                audit_service.record(
                    session,
                    actor=actors[n % len(actors)],
                    action="catalog.entry.update" if n % 2 else "catalog.entry.read_restricted",
                    target_type="catalog_entry",
                    target_id=f"entry-{n}",
                    outcome="failure" if n == 1 else "success",
                    detail={
                        "字段": "登记地址",
                        "n": n,
                        "list": [1, 2.5, "三"],
                        "nested": {"b": None, "a": True},
                    },
                )
            )
    return made


def _set_detail(database: Database, seq: int, detail: dict, *, new_hash: str | None = None) -> None:
    value = json.dumps(detail, ensure_ascii=False)
    cast = "CAST(:d AS JSON)" if _dialect(database) == "postgresql" else ":d"
    sql = f"UPDATE audit_record SET detail = {cast}"
    params: dict[str, object] = {"d": value, "s": seq}
    if new_hash is not None:
        sql += ", hash = :h"
        params["h"] = new_hash
    with database.engine.begin() as conn:
        conn.execute(text(sql + " WHERE seq = :s"), params)


def _verify(database: Database) -> audit_service.VerifyReport:
    with database.session() as session:
        return audit_service.verify(session)


# --- appending and a sound chain ------------------------------------------------------------------------


def test_chain_of_records_verifies(db: Database) -> None:
    made = _fill(db, 6)
    with db.session() as session:
        rows = session.query(AuditRecord).order_by(AuditRecord.seq).all()
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
        assert rows[0].prev_hash == GENESIS_HASH
        for prev, cur in itertools.pairwise(rows):
            assert cur.prev_hash == prev.hash
        # The stored row hashes to its hash: SM3 over the canonical JSON of every other field.
        for row in rows:
            body = {c: getattr(row, c) for c in audit_service.HASHED_FIELDS}
            body["at"] = row.at.astimezone(UTC).isoformat(timespec="microseconds")
            canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            assert sm3_hex(canonical) == row.hash
        assert [r.hash for r in rows] == [m.hash for m in made]
        head = session.get(AuditHead, 1)
        assert head is not None and (head.last_seq, head.last_hash) == (6, rows[-1].hash)

    calls: list[tuple[int, int]] = []
    with db.session() as session:
        report = audit_service.verify(session, progress=lambda done, total: calls.append((done, total)))
    assert report == audit_service.VerifyReport(ok=True, checked=6, first_bad_seq=None, reason="")
    assert calls[-1] == (6, 6)
    assert VerifyReportRead.model_validate(report).ok is True


def test_empty_log_verifies(db: Database) -> None:
    report = _verify(db)
    assert report.ok and report.checked == 0


def test_record_fields(db: Database) -> None:
    before = datetime.now(UTC)
    with db.session() as session:
        first = audit_service.record(session, actor=ZHANG, action="auth.login")
        second = audit_service.record(
            session,
            actor=LI,
            action="catalog.entry.read_restricted",
            target_type="catalog_entry",
            target_id="e1",
            outcome="failure",
            detail={"when": date(2026, 11, 27), "items": ("姓名", "身份证号")},
            source_ip="192.168.0.9",
        )
        anonymous = audit_service.record(session, actor=None, action="auth.login", outcome="failure")
        with pytest.raises(ValueError):
            audit_service.record(session, actor=ZHANG, action="auth.login", outcome="ok")
        with pytest.raises(ValueError):
            audit_service.record(session, actor=ZHANG, action="")
    assert (first.actor_user_id, first.actor_username, first.actor_org_id) == (
        "u-zhang",
        "zhangsan",
        "org-scjg",
    )
    assert (first.via, first.source_ip, first.outcome) == ("web", "10.1.2.3", "success")
    assert before <= first.at <= datetime.now(UTC)
    assert (second.via, second.source_ip, second.outcome) == ("api", "192.168.0.9", "failure")
    # Non-JSON values are stored as what JSON gives back, so the hash survives the round trip.
    assert second.detail == {"when": "2026-11-27", "items": ["姓名", "身份证号"]}
    assert (anonymous.actor_username, anonymous.actor_user_id) == ("anonymous", None)
    read = AuditRecordRead.model_validate(second)
    assert read.seq == 2 and read.target_id == "e1" and read.detail["items"] == ["姓名", "身份证号"]
    assert _verify(db).ok


def test_chain_continues_across_transactions_of_one_session(db: Database) -> None:
    # Database sessions keep objects after commit (expire_on_commit=False); the head must be re-read.
    session_a = db.session_factory()
    session_b = db.session_factory()
    try:
        audit_service.record(session_a, actor=ZHANG, action="a.one")
        session_a.commit()
        # Keep session A's head object alive (the identity map only holds weak references).
        head_in_a = session_a.get(AuditHead, 1)
        assert head_in_a is not None and head_in_a.last_seq == 1
        audit_service.record(session_b, actor=LI, action="b.one")
        session_b.commit()
        third = audit_service.record(session_a, actor=ZHANG, action="a.two")
        session_a.commit()
        assert third.seq == 3
    finally:
        session_a.close()
        session_b.close()
    assert _verify(db).ok


def test_rolled_back_record_leaves_no_gap(db: Database) -> None:
    _fill(db, 2)
    with pytest.raises(RuntimeError), db.session() as session:
        audit_service.record(session, actor=ZHANG, action="catalog.entry.update")
        raise RuntimeError("the action failed")
    with db.session() as session:
        assert audit_service.record(session, actor=ZHANG, action="catalog.entry.update").seq == 3
    assert _verify(db).checked == 3


def test_missing_head_row_is_created(db: Database) -> None:
    with db.engine.begin() as conn:
        # Simulate tables created without the seed row: drop the guard, remove the row.
        if _dialect(db) == "postgresql":
            conn.execute(text("DROP TRIGGER audit_head_guard ON audit_head"))
        else:
            conn.execute(text("DROP TRIGGER audit_head_no_delete"))
        conn.execute(text("DELETE FROM audit_head"))
    with db.session() as session:
        assert audit_service.record(session, actor=ZHANG, action="auth.login").seq == 1
    assert _verify(db).ok


# --- tampering is detected ------------------------------------------------------------------------------


def test_changed_detail_is_detected_at_its_seq(db: Database) -> None:
    _fill(db, 5)
    _drop_trigger(db, UPDATE_TRIGGER[_dialect(db)])
    _set_detail(db, 3, {"字段": "法定代表人"})
    report = _verify(db)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.reason == "第 3 条记录内容与哈希不符"
    assert report.checked == 3


def test_rehashed_record_is_detected_at_the_next_link(db: Database) -> None:
    _fill(db, 5)
    _drop_trigger(db, UPDATE_TRIGGER[_dialect(db)])
    with db.session() as session:
        row = session.get(AuditRecord, 3)
        assert row is not None
        forged = {c: getattr(row, c) for c in audit_service.HASHED_FIELDS} | {"detail": {"forged": 1}}
    _set_detail(db, 3, {"forged": 1}, new_hash=audit_service.record_hash(forged))
    report = _verify(db)
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert report.reason == "第 4 条记录的前序哈希不连续"


def test_deleted_middle_record_is_detected(db: Database) -> None:
    _fill(db, 5)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq = 3"))
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 3, 2)
    assert report.reason == "记录序号不连续（缺少第 3 条）"


def test_deleted_last_record_is_detected_through_the_head(db: Database) -> None:
    _fill(db, 5)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq = 5"))
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 5, 4)
    assert "第 5 条" in report.reason and "末尾" in report.reason


def test_verify_streams_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_service, "VERIFY_BATCH", 3)
    _fill(db, 8)
    calls: list[tuple[int, int]] = []
    with db.session() as session:
        report = audit_service.verify(session, progress=lambda done, total: calls.append((done, total)))
    assert report.ok and report.checked == 8
    assert calls == [(3, 8), (6, 8), (8, 8)]


# --- the database itself refuses changes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_record SET action = 'auth.logout' WHERE seq = 2",
        "UPDATE audit_record SET outcome = 'success'",
        "DELETE FROM audit_record WHERE seq = 2",
        "DELETE FROM audit_record",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET last_seq = 2, last_hash = 'x' WHERE id = 1",
        "UPDATE audit_head SET last_seq = last_seq + 2 WHERE id = 1",
    ],
)
def test_triggers_refuse_update_and_delete(db: Database, sql: str) -> None:
    _fill(db, 3)
    with pytest.raises(DBAPIError) as caught, db.engine.begin() as conn:
        conn.execute(text(sql))
    assert "append-only" in str(caught.value) or "forward" in str(caught.value)
    report = _verify(db)
    assert report.ok and report.checked == 3


def test_truncate_is_refused_on_postgresql(db: Database) -> None:
    if _dialect(db) != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    _fill(db, 2)
    for table in ("audit_record", "audit_head"):
        with pytest.raises(DBAPIError), db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
    assert _verify(db).checked == 2


def test_orm_changes_are_refused(db: Database) -> None:
    _fill(db, 2)
    with pytest.raises(DBAPIError), db.session() as session:
        row = session.get(AuditRecord, 1)
        assert row is not None
        row.detail = {"changed": True}
        session.flush()
    with pytest.raises(DBAPIError), db.session() as session:
        session.delete(session.get(AuditRecord, 2))
        session.flush()
    assert _verify(db).ok


# --- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_appenders_do_not_fork_the_chain(db: Database) -> None:
    errors: list[BaseException] = []
    per_thread = 8

    def worker(n: int) -> None:
        try:
            for i in range(per_thread):
                with db.session() as session:
                    audit_service.record(session, actor=ZHANG, action=f"test.concurrent.{n}.{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(db)
    assert report.ok and report.checked == 4 * per_thread


# --- search ----------------------------------------------------------------------------------------------


def test_search_scopes_and_filters(db: Database) -> None:
    with db.session() as session:
        for n in range(3):
            audit_service.record(
                session,
                actor=ZHANG,
                action="catalog.entry.update",
                target_type="catalog_entry",
                target_id=f"e{n}",
            )
        audit_service.record(
            session,
            actor=LI,
            action="catalog.entry.read_restricted",
            target_type="catalog_entry",
            target_id="e1",
        )
        audit_service.record(session, actor=LI, action="auth.login")
        audit_service.record(session, actor=ADMIN, action="catalogue.other")

    with db.session() as session:
        everything = audit_service.search(session, actor=ADMIN)
        assert [r.seq for r in everything] == [6, 5, 4, 3, 2, 1]
        own = audit_service.search(session, actor=LI)
        assert [r.seq for r in own] == [5, 4]
        # A non-admin asking for someone else's trail gets nothing of theirs.
        assert audit_service.search(session, actor=LI, actor_username="zhangsan") == []
        assert [r.seq for r in audit_service.search(session, actor=ADMIN, actor_username="zhangsan")] == [
            3,
            2,
            1,
        ]
        prefixed = audit_service.search(session, actor=ADMIN, action_prefix="catalog.")
        assert [r.seq for r in prefixed] == [4, 3, 2, 1]
        target = audit_service.search(session, actor=ADMIN, target_type="catalog_entry", target_id="e1")
        assert [r.seq for r in target] == [4, 2]
        page = audit_service.search(session, actor=ADMIN, limit=2)
        assert [r.seq for r in page] == [6, 5]
        assert [r.seq for r in audit_service.search(session, actor=ADMIN, limit=2, before_seq=5)] == [4, 3]

        now = datetime.now(UTC)
        assert len(audit_service.search(session, actor=ADMIN, since=now - timedelta(minutes=5))) == 6
        assert audit_service.search(session, actor=ADMIN, since=now + timedelta(minutes=5)) == []
        assert audit_service.search(session, actor=ADMIN, until=now - timedelta(minutes=5)) == []
