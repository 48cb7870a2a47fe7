"""``after_transaction``: work outside the database (files) follows the transaction's real outcome — the
outermost commit, not a savepoint's release; a rollback of the savepoint or of anything around it; a session
closed without a commit."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from zhengshu.core.db import Database, after_transaction
from zhengshu.core.events import OutboxEvent, emit


def _hooked(session: object, log: list[str], name: str) -> None:
    after_transaction(
        session,  # type: ignore[arg-type]
        committed=lambda: log.append(f"{name} committed"),
        rolled_back=lambda: log.append(f"{name} rolled back"),
    )


def test_committed_runs_at_the_outermost_commit_not_at_a_release(db: Database) -> None:
    log: list[str] = []
    with db.session() as session:
        with session.begin_nested():
            emit(session, "test.event")
            session.flush()
            _hooked(session, log, "a")
        assert log == []  # released, not yet committed
        _hooked(session, log, "b")
        with session.begin_nested():  # another savepoint's release must not trigger it either
            emit(session, "test.other")
        assert log == []
    assert log == ["a committed", "b committed"]


def test_a_rolled_back_savepoint_undoes_only_its_own(db: Database) -> None:
    log: list[str] = []
    with db.session() as session:
        _hooked(session, log, "outer")
        with pytest.raises(RuntimeError), session.begin_nested():
            _hooked(session, log, "inner")
            raise RuntimeError("boom")
        assert log == ["inner rolled back"]
    assert log == ["inner rolled back", "outer committed"]


def test_a_rollback_around_a_released_savepoint_undoes_it(db: Database) -> None:
    log: list[str] = []
    session = db.session_factory()
    with session.begin_nested():
        emit(session, "test.event")
        _hooked(session, log, "a")
    session.rollback()
    assert log == ["a rolled back"]
    session.commit()  # a new, empty transaction: nothing runs twice
    session.close()
    assert log == ["a rolled back"]
    with db.session() as s:
        assert s.scalars(select(OutboxEvent)).all() == []


def test_closing_without_commit_counts_as_a_rollback(db: Database) -> None:
    log: list[str] = []
    with db.session_factory() as session:
        emit(session, "test.event")
        session.flush()
        _hooked(session, log, "a")
    assert log == ["a rolled back"]


def test_hooks_before_any_statement_follow_the_transaction(db: Database) -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError), db.session() as session:
        _hooked(session, log, "a")
        raise RuntimeError("the request failed")
    with db.session() as session:
        _hooked(session, log, "b")
    assert log == ["a rolled back", "b committed"]


def test_a_failing_hook_is_logged_and_the_others_still_run(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    def fail() -> None:
        raise OSError("disk gone")

    with caplog.at_level(logging.ERROR, logger="zhengshu.core.db"), db.session() as session:
        emit(session, "test.event")
        after_transaction(session, committed=fail)
        _hooked(session, log, "b")
    assert log == ["b committed"]
    assert "after-commit hook failed" in caplog.text
    with db.session() as s:
        assert len(s.scalars(select(OutboxEvent)).all()) == 1
