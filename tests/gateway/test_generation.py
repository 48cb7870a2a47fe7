"""The generation counter moves when a transaction that changed the gateway's inputs commits, not before, and
its row is locked only for the commit (grants under load queued on it when it was updated at the grant)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from tests.conftest import BACKEND
from tests.statements import statements
from zhengshu.core.db import Database
from zhengshu.gateway import service as gw_service


def _generation(db: Database) -> int:
    with db.session() as s:
        return gw_service.current_generation(s)


def test_commit_bumps_once_and_rollback_not_at_all(db: Database) -> None:
    start = _generation(db)
    heard: list[int] = []
    gw_service.local_listeners.append(lambda: heard.append(1))
    try:
        with db.session() as s:
            gw_service.bump_generation(s)
            gw_service.bump_generation(s)  # twice in one transaction: one step
            assert gw_service.current_generation(s) == start  # nothing written before the commit
        assert _generation(db) == start + 1 and heard == [1]

        s = db.session_factory()
        gw_service.bump_generation(s)
        s.rollback()
        s.commit()  # the next transaction of the same session does not inherit the dropped bump
        s.close()
        assert _generation(db) == start + 1 and heard == [1]

        with db.session() as s, s.begin_nested():
            gw_service.bump_generation(s)
        assert _generation(db) == start + 2 and heard == [1, 1]
    finally:
        gw_service.local_listeners.pop()


def test_a_bump_asked_in_a_savepoint_is_written_at_the_commit_not_at_its_release(db: Database) -> None:
    """The request's events are delivered in a savepoint, and granting consumers bump there: the row is still
    written at the commit, after everything else the request writes."""
    start = _generation(db)
    with statements(db) as seen, db.session() as s:
        with s.begin_nested():
            gw_service.bump_generation(s)
        s.execute(text("SELECT 1"))  # the transaction goes on after the release
        assert not [x for x in seen if "gateway_generation" in x], "not written at the savepoint's release"
        s.commit()
        assert "gateway_generation" in seen[-1], "written last, at the commit"
    assert _generation(db) == start + 1


@pytest.mark.skipif(BACKEND != "postgresql", reason="row locks: PostgreSQL")
def test_an_open_transaction_that_bumped_does_not_block_another(db: Database) -> None:
    start = _generation(db)
    if start == 0:  # the row exists before the race, as in any running platform
        with db.session() as s:
            gw_service.bump_generation(s)
        start = _generation(db)
    holder = db.session_factory()
    gw_service.bump_generation(holder)
    holder.execute(text("SELECT 1"))  # the holder's transaction is open
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with db.session() as s:
                s.execute(text("SET LOCAL lock_timeout = '5s'"))
                gw_service.bump_generation(s)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert not errors, errors  # with the update at the bump, this waited for the holder and timed out
    assert _generation(db) == start + 1
    holder.commit()
    holder.close()
    assert _generation(db) == start + 2


@pytest.mark.skipif(BACKEND != "postgresql", reason="row locks: PostgreSQL")
def test_the_first_two_bumps_of_a_fresh_database_do_not_collide(db: Database) -> None:
    """Both find no row; the second waits for the first's insert and then moves the counter on (it used to
    insert too and fail on the key, sending that request's events to a retry)."""
    with db.session() as s:
        s.execute(text("DELETE FROM gateway_generation"))
    holder = db.session_factory()
    gw_service.bump_generation(holder)
    gw_service._write_bump(holder)  # what the holder's commit will write, written now: its insert is pending
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with db.session() as s:
                s.execute(text("SET LOCAL lock_timeout = '10s'"))
                gw_service.bump_generation(s)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(0.5)  # it now waits on the holder's row
    holder.commit()
    holder.close()
    thread.join(30)
    assert not thread.is_alive() and not errors, errors
    assert _generation(db) == 2
