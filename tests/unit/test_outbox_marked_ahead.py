"""Events a request promises to deliver in its transaction are written delivered from the start (no UPDATE to
mark them); whatever is not delivered after all — a failing consumer, no delivery before the commit, an event
a consumer emits — commits pending, exactly as without the promise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.statements import starting, statements
from zhengshu.core import events
from zhengshu.core.db import Database
from zhengshu.core.events import (
    OutboxEvent,
    consumer,
    deliver_in_transaction,
    emit,
    emitted_ids,
    process_pending,
    will_deliver_in_transaction,
)


@pytest.fixture
def consumers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(events, "_consumers", events.defaultdict(list))
    delivered: list[str] = []

    @consumer("test.write")
    def _write(session: Any, ev: OutboxEvent) -> None:
        delivered.append(ev.payload["n"])
        emit(session, "test.side_effect", n=ev.payload["n"])  # heard: left to the worker, not marked ahead

    @consumer("test.side_effect")
    def _side(session: Any, ev: OutboxEvent) -> None:
        delivered.append(f"side {ev.payload['n']}")

    @consumer("test.write_then_boom")
    def _write_then_boom(session: Any, ev: OutboxEvent) -> None:
        if ev.attempts == 0 and not delivered:
            emit(session, "test.side_effect", n="undone")
            session.flush()
            delivered.append("boom")
            raise RuntimeError("consumer down")
        delivered.append(ev.payload["n"])

    return delivered


@pytest.fixture
def updates(db: Database) -> Iterator[list[str]]:
    with statements(db) as seen:
        yield seen


def _rows(db: Database) -> list[tuple[str, str, bool]]:
    with db.session() as s:
        rows = s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        return [(e.name, e.payload.get("n", ""), e.processed_at is not None) for e in rows]


def test_delivered_events_are_written_delivered_without_an_update(
    db: Database, consumers: list[str], updates: list[str]
) -> None:
    with db.session() as s:
        will_deliver_in_transaction(s)
        emit(s, "test.write", n="a")
        s.flush()  # written before the delivery, as a request's autoflush does
        emit(s, "test.write", n="b")
        assert deliver_in_transaction(s, emitted_ids(s)) == []
    assert consumers == ["a", "b"]
    assert starting(updates, "UPDATE outbox_event") == []
    assert _rows(db) == [
        ("test.write", "a", True),
        ("test.write", "b", True),
        ("test.side_effect", "a", False),  # emitted by a consumer: for the worker
        ("test.side_effect", "b", False),
    ]


def test_a_failing_consumer_leaves_its_event_pending_and_undoes_its_writes(db: Database, consumers: list[str]) -> None:
    with db.session() as s:
        will_deliver_in_transaction(s)
        emit(s, "test.write_then_boom", n="x")
        s.flush()
        ids = emitted_ids(s)
        assert deliver_in_transaction(s, ids) == ids
    assert consumers == ["boom"]
    assert _rows(db) == [("test.write_then_boom", "x", False)]  # the consumer's event rolled back with it
    assert process_pending(db.session_factory, only=ids) == 1  # retried after the commit
    assert consumers == ["boom", "x"]
    assert _rows(db) == [("test.write_then_boom", "x", True)]


def test_events_not_delivered_before_the_commit_commit_pending(db: Database, consumers: list[str]) -> None:
    with db.session() as s:
        will_deliver_in_transaction(s)
        emit(s, "test.write", n="flushed")
        s.flush()
        emit(s, "test.write", n="pending")
    assert consumers == []
    assert _rows(db) == [("test.write", "flushed", False), ("test.write", "pending", False)]


def test_a_commit_before_the_delivery_leaves_the_events_for_it(db: Database, consumers: list[str]) -> None:
    with db.session() as s:
        will_deliver_in_transaction(s)
        emit(s, "test.write", n="a")
        s.commit()  # as a route committing part of its work early
        assert _rows(db) == [("test.write", "a", False)]
        emit(s, "test.write", n="b")
        assert deliver_in_transaction(s, emitted_ids(s)) == []
    assert consumers == ["a", "b"]
    assert [r for r in _rows(db) if r[0] == "test.write"] == [("test.write", "a", True), ("test.write", "b", True)]


def test_an_event_of_a_rolled_back_savepoint_is_gone(db: Database, consumers: list[str]) -> None:
    with db.session() as s:
        will_deliver_in_transaction(s)
        emit(s, "test.write", n="kept")
        with pytest.raises(RuntimeError), s.begin_nested():
            emit(s, "test.write", n="undone")
            s.flush()
            raise RuntimeError("the route's own savepoint fails")
        assert deliver_in_transaction(s, emitted_ids(s)) == []
    assert consumers == ["kept"]
    assert [r for r in _rows(db) if r[0] == "test.write"] == [("test.write", "kept", True)]


def test_without_the_promise_events_are_marked_when_delivered(
    db: Database, consumers: list[str], updates: list[str]
) -> None:
    with db.session() as s:
        emit(s, "test.write", n="a")
        s.flush()
        assert s.scalar(select(OutboxEvent.processed_at).where(OutboxEvent.name == "test.write")) is None
        assert deliver_in_transaction(s, emitted_ids(s)) == []
    assert len(starting(updates, "UPDATE outbox_event")) == 1
    assert _rows(db)[0] == ("test.write", "a", True)
