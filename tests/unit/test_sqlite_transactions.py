"""The embedded SQLite database keeps transactions whole: a savepoint holding the transaction's first write is
part of it (pysqlite's legacy mode made it a transaction of its own, committed by its RELEASE), and the write
lock is taken at the first write, so concurrent read-then-write requests wait for each other instead of failing
with "database is locked". These run on their own SQLite file whatever ``ZHENGSHU_TEST_DB`` says."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import OperationalError

from zhengshu.core.db import Database

metadata = MetaData()
item = Table("item", metadata, Column("id", Integer, primary_key=True), Column("name", String(40)))


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'lite.db'}")
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def _names(database: Database) -> list[str]:
    with database.engine.connect() as conn:
        return sorted(conn.scalars(select(item.c.name)))


def _add(session: object, name: str) -> None:
    session.execute(insert(item).values(name=name))  # type: ignore[attr-defined]


def test_a_savepoint_holding_the_first_write_is_undone_by_the_outer_rollback(lite: Database) -> None:
    session = lite.session_factory()
    with session.begin_nested():
        _add(session, "in the savepoint")
    _add(session, "after it")
    session.rollback()
    session.close()
    assert _names(lite) == []


def test_an_error_after_a_released_savepoint_undoes_it(lite: Database) -> None:
    with pytest.raises(RuntimeError), lite.session() as session:
        session.execute(select(item))  # a read first, as requests do
        with session.begin_nested():
            _add(session, "delivered event")
        raise RuntimeError("the request failed")
    assert _names(lite) == []


def test_a_rolled_back_savepoint_keeps_the_other_writes(lite: Database) -> None:
    with lite.session() as session:
        with session.begin_nested():
            _add(session, "first, in a savepoint")
        _add(session, "outer")
        with pytest.raises(RuntimeError), session.begin_nested():
            _add(session, "failed consumer")
            raise RuntimeError("a consumer failed")
        _add(session, "after the failure")
    assert _names(lite) == ["after the failure", "first, in a savepoint", "outer"]


def test_reads_do_not_take_the_write_lock_and_writes_and_locking_reads_do(lite: Database) -> None:
    with lite.session() as writer:
        _add(writer, "uncommitted")  # holds the write lock until the block ends
        with lite.engine.connect() as other:
            other.exec_driver_sql("PRAGMA busy_timeout = 0")  # fail at once instead of waiting for the lock
            assert other.scalar(select(func.count()).select_from(item)) == 0  # WAL: the reader is not blocked
            assert not other.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
            other.rollback()
            with pytest.raises(OperationalError, match="locked"):
                other.execute(select(item).with_for_update())  # FOR UPDATE means "I will write": it waits
            other.rollback()
            with pytest.raises(OperationalError, match="locked"), other.begin_nested():
                pass
            other.rollback()
    assert _names(lite) == ["uncommitted"]


def test_concurrent_read_then_write_requests_all_commit(lite: Database) -> None:
    """Each worker does what a request does: read, then write (plus a savepoint, as event delivery does). A
    barrier makes every worker read before any writes, the interleaving where a transaction begun at its first
    read would fail its write with "database is locked" once another worker has committed."""
    workers, rounds = 4, 5
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for r in range(rounds):
                with lite.session() as session:
                    session.execute(select(func.count()).select_from(item)).scalar()
                    barrier.wait(timeout=60)
                    _add(session, f"w{n}-r{r}")
                    with session.begin_nested():
                        _add(session, f"w{n}-r{r}-event")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_names(lite)) == workers * rounds * 2
