"""The tamper-evident audit log on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import DBAPIError

from tests.statements import statements
from zhengshu.audit import sealing
from zhengshu.audit import service as audit_service
from zhengshu.audit.models import GENESIS_HASH, AuditChain, AuditHead, AuditPending, AuditRecord
from zhengshu.audit.schemas import AuditRecordRead, VerifyReportRead
from zhengshu.core.db import Database
from zhengshu.security.actor import Actor, Role
from zhengshu.security.crypto import sm3_hex

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLES = [AuditPending.__table__, AuditChain.__table__, AuditHead.__table__, AuditRecord.__table__]

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
CHAIN_UPDATE_TRIGGER = {"sqlite": "audit_chain_no_update", "postgresql": "audit_chain_no_update_delete"}
CHAIN_DELETE_TRIGGER = {"sqlite": "audit_chain_no_delete", "postgresql": "audit_chain_no_update_delete"}


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture
def no_background_seal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that look at records before they are sealed: only explicit seals."""
    monkeypatch.setattr(sealing, "AFTER_COMMIT", False)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
        _create_tables(database)
        yield database
        sealing.wait_idle(30)  # the after-commit sealer runs in a thread: let it finish first
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
        sealing.wait_idle(30)
        database.dispose()
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def _create_tables(database: Database) -> None:
    AuditRecord.metadata.create_all(database.engine, tables=TABLES)


def _dialect(database: Database) -> str:
    return database.engine.dialect.name


def _drop_trigger(database: Database, name: str, table: str = "audit_record") -> None:
    sql = f"DROP TRIGGER {name}"
    if _dialect(database) == "postgresql":
        sql += f" ON {table}"
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


def _verify(database: Database, **kwargs: object) -> audit_service.VerifyReport:
    with database.session() as session:
        return audit_service.verify(session, **kwargs)  # type: ignore[arg-type]


def _seal(database: Database) -> int:
    return audit_service.seal(database.engine, wait=True) or 0


def _links(database: Database) -> list[AuditChain]:
    with database.session() as session:
        return list(session.query(AuditChain).order_by(AuditChain.position))


# --- appending and a sound chain ------------------------------------------------------------------------


def test_chain_of_records_verifies(db: Database) -> None:
    made = _fill(db, 6)
    _seal(db)
    with db.session() as session:
        rows = session.query(AuditRecord).order_by(AuditRecord.seq).all()
        assert [r.seq for r in rows] == [m.seq for m in made]
        assert [r.seq for r in rows] == sorted(r.seq for r in rows) and len(set(r.seq for r in rows)) == 6
        # The stored row hashes to its hash: SM3 over the canonical JSON of its content (no seq, no link).
        for row in rows:
            assert row.prev_hash == ""
            body = {c: getattr(row, c) for c in audit_service.HASHED_FIELDS}
            body["at"] = row.at.astimezone(UTC).isoformat(timespec="microseconds")
            canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            assert sm3_hex(canonical) == row.hash
        assert [r.hash for r in rows] == [m.hash for m in made]
        links = session.query(AuditChain).order_by(AuditChain.position).all()
        assert [link.position for link in links] == [1, 2, 3, 4, 5, 6]
        assert [link.record_seq for link in links] == [r.seq for r in rows]
        assert [link.record_hash for link in links] == [r.hash for r in rows]
        assert links[0].prev_hash == GENESIS_HASH
        for prev, cur in itertools.pairwise(links):
            assert cur.prev_hash == prev.hash
        for link in links:
            body = {c: getattr(link, c) for c in audit_service.LINK_FIELDS}
            body["sealed_at"] = link.sealed_at.astimezone(UTC).isoformat(timespec="microseconds")
            canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            assert sm3_hex(canonical) == link.hash
        head = session.get(AuditHead, 1)
        assert head is not None and (head.last_seq, head.last_hash) == (6, links[-1].hash)
        assert session.query(AuditPending).count() == 0

    calls: list[tuple[int, int]] = []
    with db.session() as session:
        report = audit_service.verify(session, progress=lambda done, total: calls.append((done, total)))
    assert report == audit_service.VerifyReport(ok=True, checked=6, first_bad_seq=None, reason="")
    assert calls[-1] == (6, 6)
    assert VerifyReportRead.model_validate(report).ok is True


def test_empty_log_verifies(db: Database) -> None:
    report = _verify(db)
    assert report.ok and report.checked == 0
    assert _seal(db) == 0


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
    assert first.seq < second.seq < anonymous.seq
    read = AuditRecordRead.model_validate(second)
    assert read.seq == second.seq and read.target_id == "e1" and read.detail["items"] == ["姓名", "身份证号"]
    assert read.prev_hash == ""
    assert _verify(db).ok


def test_record_waits_for_the_commit_to_be_sealed(db: Database, no_background_seal: None) -> None:
    session = db.session_factory()
    try:
        mine = audit_service.record(session, actor=ZHANG, action="a.one")
        if _dialect(db) == "postgresql":  # (SQLite's sealer would wait for this transaction's write lock)
            assert _seal(db) == 0  # not committed: nothing to seal, nothing waits for this transaction
        session.commit()
    finally:
        session.close()
    with db.session() as s:
        assert s.scalars(select(AuditPending.seq)).all() == [mine.seq]
    assert _seal(db) == 1
    assert [(link.position, link.record_seq) for link in _links(db)] == [(1, mine.seq)]
    assert _seal(db) == 0  # sealing twice links nothing twice
    assert _verify(db).checked == 1


def test_records_are_sealed_in_commit_order(db: Database, no_background_seal: None) -> None:
    if _dialect(db) != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: a second transaction cannot write meanwhile")
    early, late = db.session_factory(), db.session_factory()
    try:
        first = audit_service.record(early, actor=ZHANG, action="a.early")
        # no head lock in the request: another transaction appends and commits while the first is open
        late.execute(text("SET LOCAL lock_timeout = '5s'"))
        second = audit_service.record(late, actor=LI, action="b.late")
        late.commit()
        assert first.seq < second.seq
        assert _seal(db) == 1  # the open transaction's record is not visible, so not sealed
        early.commit()
    finally:
        early.close()
        late.close()
    assert _seal(db) == 1
    assert [link.record_seq for link in _links(db)] == [second.seq, first.seq]
    assert _verify(db) == audit_service.VerifyReport(True, 2)


def test_sealing_after_commit_runs_in_the_background(db: Database) -> None:
    made = _fill(db, 3)
    assert sealing.wait_idle(10)
    assert [link.record_seq for link in _links(db)] == [m.seq for m in made]
    assert _verify(db, seal_first=False).checked == 3


def test_commits_arriving_within_the_pass_interval_share_one_pass(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a pass waits ``MIN_PASS_INTERVAL`` after the previous one, so the records of the commits made
    meanwhile are sealed together (one sealed_at); whoever waits for the seal cuts the pause short."""
    monkeypatch.setattr(sealing, "MIN_PASS_INTERVAL", 30.0)
    first = _fill(db, 1)
    assert sealing.wait_idle(10)  # a pass now: the next one waits 30 s unless someone waits for it
    burst = [_fill(db, 1)[0] for _ in range(4)]  # four commits while the next pass waits
    assert sealing.wait_idle(10), "waiting for the seal cuts the pause short"
    links = _links(db)
    assert [link.record_seq for link in links] == [first[0].seq, *(m.seq for m in burst)]
    assert len({link.sealed_at for link in links[1:]}) == 1, "the burst was sealed in one pass"
    assert _verify(db, seal_first=False).checked == 5


def test_the_background_seal_follows_the_real_commit_not_a_savepoints_release(db: Database) -> None:
    """A request delivers its events in a savepoint after writing its audit record; that savepoint's RELEASE is
    not the commit, and the seal it would start then could not see the record yet."""
    with db.session() as session:
        made = audit_service.record(session, actor=ZHANG, action="catalog.entry.update")
        with session.begin_nested():
            pass  # released, still inside the transaction
        assert sealing.wait_idle(10) and _links(db) == []  # nothing was sealed or scheduled before the commit
    assert sealing.wait_idle(10)
    assert [link.record_seq for link in _links(db)] == [made.seq]


def test_rolled_back_record_is_never_sealed(db: Database) -> None:
    kept = _fill(db, 2)
    with pytest.raises(RuntimeError), db.session() as session:
        lost = audit_service.record(session, actor=ZHANG, action="catalog.entry.update")
        raise RuntimeError("the action failed")
    with db.session() as session:
        after = audit_service.record(session, actor=ZHANG, action="catalog.entry.update")
    _seal(db)
    sealed = [link.record_seq for link in _links(db)]
    assert sealed == [kept[0].seq, kept[1].seq, after.seq]
    with db.session() as session:
        assert session.get(AuditRecord, lost.seq) is None or lost.seq == after.seq  # SQLite reuses the rowid
        assert session.get(AuditRecord, after.seq).action == "catalog.entry.update"  # type: ignore[union-attr]
    report = _verify(db)
    assert report.ok and report.checked == 3


def test_missing_head_row_is_created(db: Database) -> None:
    with db.engine.begin() as conn:
        # Simulate tables created without the seed row: drop the guard, remove the row.
        if _dialect(db) == "postgresql":
            conn.execute(text("DROP TRIGGER audit_head_guard ON audit_head"))
        else:
            conn.execute(text("DROP TRIGGER audit_head_no_delete"))
        conn.execute(text("DELETE FROM audit_head"))
    with db.session() as session:
        audit_service.record(session, actor=ZHANG, action="auth.login")
    report = _verify(db)
    assert report.ok and report.checked == 1


# --- tampering is detected ------------------------------------------------------------------------------


def _sealed(database: Database, count: int = 5) -> list[AuditRecord]:
    made = _fill(database, count)
    _seal(database)
    assert [link.record_seq for link in _links(database)] == [m.seq for m in made]
    return made


def test_changed_detail_is_detected_at_its_seq(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, UPDATE_TRIGGER[_dialect(db)])
    _set_detail(db, made[2].seq, {"字段": "法定代表人"})
    report = _verify(db)
    assert not report.ok
    assert report.first_bad_seq == made[2].seq
    assert report.reason == f"第 {made[2].seq} 条记录内容与哈希不符"
    assert report.checked == 3


def test_rehashed_record_is_detected_against_its_link(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, UPDATE_TRIGGER[_dialect(db)])
    with db.session() as session:
        row = session.get(AuditRecord, made[2].seq)
        assert row is not None
        forged = {c: getattr(row, c) for c in (*audit_service.HASHED_FIELDS, "prev_hash")} | {"detail": {"forged": 1}}
    _set_detail(db, made[2].seq, {"forged": 1}, new_hash=audit_service.record_hash(forged))
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, made[2].seq, 3)
    assert report.reason == f"第 {made[2].seq} 条记录的哈希与封链时记载的不符"


def test_deleted_middle_record_is_detected(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq = :s"), {"s": made[2].seq})
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, made[2].seq, 3)
    assert report.reason.startswith(f"第 {made[2].seq} 条记录已不存在")


def test_deleted_record_and_its_link_are_detected(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    _drop_trigger(db, CHAIN_DELETE_TRIGGER[_dialect(db)], "audit_chain")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain WHERE position = 3"))
        conn.execute(text("DELETE FROM audit_record WHERE seq = :s"), {"s": made[2].seq})
    report = _verify(db)
    assert (report.ok, report.checked) == (False, 2)
    assert report.reason == "审计链不连续（缺少第 3 个链节，其记录可能已被删除）"


def test_truncated_end_is_detected_through_the_head(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    _drop_trigger(db, CHAIN_DELETE_TRIGGER[_dialect(db)], "audit_chain")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain WHERE position >= 4"))
        conn.execute(text("DELETE FROM audit_record WHERE seq >= :s"), {"s": made[3].seq})
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, None, 3)
    assert "第 5 个链节" in report.reason and "只到第 3 个" in report.reason and "末尾" in report.reason


def test_truncated_link_alone_is_detected_even_after_resealing(db: Database) -> None:
    # The record stays and is queued again by nobody; remove the last link only, then append more.
    _sealed(db)
    _drop_trigger(db, CHAIN_DELETE_TRIGGER[_dialect(db)], "audit_chain")
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_chain WHERE position = 5"))
    assert "末尾" in _verify(db).reason
    _fill(db, 1)
    _seal(db)  # the sealer continues from the head (position 6), so the hole stays visible
    report = _verify(db)
    assert not report.ok and report.reason == "审计链不连续（缺少第 5 个链节，其记录可能已被删除）"


def test_changed_link_is_detected(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, CHAIN_UPDATE_TRIGGER[_dialect(db)], "audit_chain")
    with db.engine.begin() as conn:
        # point link 2 at record 4: the link's own hash no longer matches
        conn.execute(text("UPDATE audit_chain SET record_seq = -1 WHERE position = 4"))
        conn.execute(text("UPDATE audit_chain SET record_seq = :r WHERE position = 2"), {"r": made[3].seq})
    report = _verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 2, made[3].seq)
    assert report.reason == f"审计链第 2 个链节（第 {made[3].seq} 条记录）内容与哈希不符"


def test_rehashed_link_is_detected_at_the_next_link(db: Database) -> None:
    made = _sealed(db)
    _drop_trigger(db, CHAIN_UPDATE_TRIGGER[_dialect(db)], "audit_chain")
    # a self-consistent rewrite of link 2 (another sealing time, hash recomputed) breaks link 3
    link = _links(db)[1]
    forged_at = link.sealed_at - timedelta(days=1)
    fields = {c: getattr(link, c) for c in audit_service.LINK_FIELDS} | {"sealed_at": forged_at}
    with db.engine.begin() as conn:
        conn.execute(
            update(AuditChain)
            .where(AuditChain.position == 2)
            .values(sealed_at=forged_at, hash=audit_service.link_hash(fields))
        )
    report = _verify(db)
    assert (report.ok, report.checked, report.first_bad_seq) == (False, 3, made[2].seq)
    assert report.reason == f"审计链第 3 个链节（第 {made[2].seq} 条记录）的前序哈希不连续"


def test_unsealed_records_are_reported(db: Database, no_background_seal: None) -> None:
    made = _fill(db, 2)
    # sealed records are fine; fresh unsealed ones are not a finding yet
    assert _verify(db, seal_first=False) == audit_service.VerifyReport(True, 0)
    report = _verify(db, seal_first=False, unsealed_after=timedelta(0))
    assert (report.ok, report.unsealed, report.first_bad_seq) == (False, 2, made[0].seq)
    assert report.reason.startswith("未封链记录：有 2 条记录超过 0 秒仍未封链")
    # the usual verify seals first
    assert _verify(db, unsealed_after=timedelta(0)) == audit_service.VerifyReport(True, 2)


def test_unqueued_record_is_reported_unsealed(db: Database, no_background_seal: None) -> None:
    made = _fill(db, 3)
    with db.engine.begin() as conn:  # an attacker empties the queue before the sealer runs
        conn.execute(text("DELETE FROM audit_pending WHERE seq = :s"), {"s": made[1].seq})
    report = _verify(db, unsealed_after=timedelta(0))
    assert (report.ok, report.unsealed, report.first_bad_seq) == (False, 1, made[1].seq)
    assert report.checked == 2 and "未封链记录" in report.reason


def test_record_deleted_before_sealing_is_detected(db: Database, no_background_seal: None) -> None:
    made = _fill(db, 3)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_record WHERE seq = :s"), {"s": made[1].seq})
    report = _verify(db)
    assert (report.ok, report.first_bad_seq, report.checked) == (False, made[1].seq, 2)
    assert report.reason == f"第 {made[1].seq} 条记录在封链前已被删除（待封链队列中仍有它）"


def test_verify_streams_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_service, "VERIFY_BATCH", 3)
    _fill(db, 8)
    calls: list[tuple[int, int]] = []
    with db.session() as session:
        report = audit_service.verify(session, progress=lambda done, total: calls.append((done, total)))
    assert report.ok and report.checked == 8
    assert calls == [(3, 8), (6, 8), (8, 8)]


def test_records_gone_from_a_whole_batch_do_not_hold_up_the_seal(
    db: Database, monkeypatch: pytest.MonkeyPatch, no_background_seal: None
) -> None:
    monkeypatch.setattr(audit_service, "SEAL_BATCH", 2)
    made = _fill(db, 4)
    _drop_trigger(db, DELETE_TRIGGER[_dialect(db)])
    with db.engine.begin() as conn:  # the first batch's records deleted behind the triggers' back
        conn.execute(text("DELETE FROM audit_record WHERE seq IN (:a, :b)"), {"a": made[0].seq, "b": made[1].seq})
    assert _seal(db) == 2
    assert [link.record_seq for link in _links(db)] == [made[2].seq, made[3].seq]
    with db.engine.connect() as conn:
        queued = conn.execute(select(AuditPending.seq).order_by(AuditPending.seq)).scalars().all()
    assert queued == [made[0].seq, made[1].seq]  # still queued: verify reports the first
    assert _verify(db).first_bad_seq == made[0].seq


def test_sealing_goes_in_batches(db: Database, monkeypatch: pytest.MonkeyPatch, no_background_seal: None) -> None:
    monkeypatch.setattr(audit_service, "SEAL_BATCH", 3)
    _fill(db, 7)
    with db.engine.begin() as conn:
        assert audit_service.seal_batch(conn) == 3
    assert _seal(db) == 4
    assert [link.position for link in _links(db)] == list(range(1, 8))
    assert _verify(db).checked == 7


def test_a_sealer_pass_is_three_statements_on_postgresql(db: Database, no_background_seal: None) -> None:
    """The sealer lock tried with the head read, the queue read, then links, queue and head written in one
    statement whose text does not depend on the number of links. A busy sealer gives up without waiting."""
    if _dialect(db) != "postgresql":
        pytest.skip("SQLite writes the links, the queue and the head in statements of their own")
    _fill(db, 4)
    with db.engine.connect() as holder:
        holder.begin()
        assert audit_service.seal_batch(holder) == 4  # holds the sealer lock and the head until it ends
        with db.engine.begin() as conn, statements(db) as seen:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            assert audit_service.seal_batch(conn) is None
        assert len(seen) == 3, seen  # the lock timeout, the combined try, the plain try telling busy from missing
        holder.commit()
    writes: set[str] = set()
    for count in (1, 3):
        made = _fill(db, count)
        with db.engine.begin() as conn, statements(db) as seen:
            assert audit_service.seal_batch(conn) == count
        assert len(seen) == 3, seen
        writes.update(s for s in seen if s.startswith("WITH linked AS"))
        assert [link.record_seq for link in _links(db)][-count:] == [m.seq for m in made]
    assert len(writes) == 1, "one statement text for one link or three"
    assert _verify(db, seal_first=False).checked == 8


def _rows_read_from(plan: dict[str, Any], table: str) -> int:
    """Rows an EXPLAIN ANALYZE plan (JSON) read from ``table``, over all its nodes and loops."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == table else 0
    return own + sum(_rows_read_from(child, table) for child in plan.get("Plans", []))


def test_the_queue_read_does_not_grow_with_the_sealed_records(db: Database, no_background_seal: None) -> None:
    """The sealer reads the queued records' hashes, not the audit trail from its start. With statistics taken
    while the queue was long (as under load, between two autovacuum analyses), the planner once chose a merge
    join that walked audit_record's primary key from seq 1 up to the queue's first record at every pass."""
    if _dialect(db) != "postgresql":
        pytest.skip("SQLite looks each queued record up by its rowid")
    _sealed(db, 2)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_record (at, actor_username, via, action, target_type, target_id, outcome,"
                " detail, prev_hash, hash) SELECT now(), 'zhang', 'api', 'catalog.entry.update', '', '',"
                " 'success', '{}', '', repeat('a', 64) FROM generate_series(1, 5000)"
            )
        )
    with db.engine.begin() as conn:
        # statistics taken while the queue was long; then it is emptied (as if sealed, without 5,000 links)
        conn.execute(text("ANALYZE audit_record"))
        conn.execute(text("ANALYZE audit_pending"))
        conn.execute(text("DELETE FROM audit_pending"))
    queued = _fill(db, 3)
    params = {"after": 0, "batch": audit_service.SEAL_BATCH}
    compiled = audit_service._WAITING.compile(dialect=db.engine.dialect)
    with db.engine.begin() as conn:
        assert [seq for seq, _ in conn.execute(audit_service._WAITING, params)] == [m.seq for m in queued]
        explain = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", params).scalar_one()
    plan = explain[0]["Plan"]
    assert _rows_read_from(plan, "audit_record") <= len(queued), plan
    assert _seal(db) == len(queued)


def test_verify_seals_inside_a_sqlite_write_transaction(db: Database, no_background_seal: None) -> None:
    # The caller's transaction holds SQLite's write lock: sealing on another connection would wait for it.
    _fill(db, 2)
    with db.session() as session:
        audit_service.record(session, actor=ZHANG, action="auth.login")
        report = audit_service.verify(session)
    # SQLite seals within the caller's transaction, its own record included; PostgreSQL on a connection of
    # its own, which cannot see the uncommitted record yet
    assert report == audit_service.VerifyReport(True, 3 if _dialect(db) == "sqlite" else 2)
    assert _verify(db).checked == 3


# --- the database itself refuses changes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_record SET action = 'auth.logout'",
        "UPDATE audit_record SET outcome = 'success'",
        "DELETE FROM audit_record WHERE action = 'catalog.entry.update'",
        "DELETE FROM audit_record",
        "UPDATE audit_chain SET record_hash = 'x' WHERE position = 2",
        "DELETE FROM audit_chain WHERE position = 3",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET last_seq = 2, last_hash = 'x' WHERE id = 1",
        "UPDATE audit_head SET last_hash = 'x' WHERE id = 1",
    ],
)
def test_triggers_refuse_update_and_delete(db: Database, sql: str) -> None:
    _sealed(db, 3)
    with pytest.raises(DBAPIError) as caught, db.engine.begin() as conn:
        conn.execute(text(sql))
    assert "append-only" in str(caught.value) or "forward" in str(caught.value)
    report = _verify(db)
    assert report.ok and report.checked == 3


def test_truncate_is_refused_on_postgresql(db: Database) -> None:
    if _dialect(db) != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    _sealed(db, 2)
    for table in ("audit_record", "audit_chain", "audit_head"):
        with pytest.raises(DBAPIError), db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
    assert _verify(db).checked == 2


def test_orm_changes_are_refused(db: Database) -> None:
    made = _sealed(db, 2)
    with pytest.raises(DBAPIError), db.session() as session:
        row = session.get(AuditRecord, made[0].seq)
        assert row is not None
        row.detail = {"changed": True}
        session.flush()
    with pytest.raises(DBAPIError), db.session() as session:
        session.delete(session.get(AuditRecord, made[1].seq))
        session.flush()
    assert _verify(db).ok


# --- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_appenders_and_sealers_lose_nothing(db: Database) -> None:
    errors: list[BaseException] = []
    committed: list[int] = []
    rolled_back: list[int] = []
    lock = threading.Lock()
    per_thread = 12
    threads_n = 8 if _dialect(db) == "postgresql" else 4

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(per_thread):
                session = db.session_factory()
                try:
                    made = [
                        audit_service.record(session, actor=ZHANG, action=f"test.concurrent.{n}.{i}.{k}")
                        for k in range(rng.randint(1, 3))
                    ]
                    if rng.random() < 0.2:
                        session.rollback()
                        with lock:
                            rolled_back.extend(m.seq for m in made)
                    else:
                        session.commit()
                        with lock:
                            committed.extend(m.seq for m in made)
                finally:
                    session.close()
                if rng.random() < 0.3:  # more sealers than the background one, in parallel
                    audit_service.seal(db.engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(db)
    assert report.ok and report.checked == len(committed)
    sealed = [link.record_seq for link in _links(db)]
    assert sorted(sealed) == sorted(committed) and len(set(sealed)) == len(sealed)
    if _dialect(db) == "postgresql":  # SQLite hands a rolled-back rowid out again
        assert not set(rolled_back) & set(sealed)
    with db.session() as session:
        assert session.query(AuditPending).count() == 0


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


def test_the_minute_job_seals_what_is_left(
    db: Database, monkeypatch: pytest.MonkeyPatch, no_background_seal: None
) -> None:
    from zhengshu import jobs

    monkeypatch.setattr(jobs, "_database", lambda: db)
    made = _fill(db, 3)
    assert jobs.seal_audit_records.call_local() == 3
    assert [link.record_seq for link in _links(db)] == [m.seq for m in made]
    assert jobs.seal_audit_records.call_local() == 0
