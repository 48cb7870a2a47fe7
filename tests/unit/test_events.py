"""The outbox: a request's events are delivered in its transaction (in a savepoint) or together after its commit;
a failing consumer neither loses the other events nor the failed one, which waits for a retry with its error
recorded. Consumers are idempotent (a joint attempt that fails is rolled back and its events are delivered again
one by one)."""

from __future__ import annotations

from typing import Any

import pytest

from zhengshu.core import events
from zhengshu.core.db import Database
from zhengshu.core.events import OutboxEvent, consumer, emit, emitted_ids, process_pending


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(events, "_consumers", events.defaultdict(list))
    delivered: list[str] = []

    @consumer("test.ok")
    def _ok(session: Any, event: OutboxEvent) -> None:
        delivered.append(event.payload["n"])

    @consumer("test.boom")
    def _boom(session: Any, event: OutboxEvent) -> None:
        raise RuntimeError("consumer down")

    return delivered


def test_events_of_one_request_are_delivered_together(db: Database, seen: list[str]) -> None:
    with db.session() as s:
        emit(s, "test.ok", n="a")
        emit(s, "test.ok", n="b")
        emit(s, "test.unheard", n="c")  # nobody listens: not delivered inline
        ids = emitted_ids(s)
    assert len(ids) == 2
    assert process_pending(db.session_factory, only=ids) == 2
    assert seen == ["a", "b"]  # in the order they were emitted
    with db.session() as s:
        assert all(s.get(OutboxEvent, i).processed_at for i in ids)  # type: ignore[union-attr]


def test_a_failing_consumer_keeps_its_event_and_spares_the_others(db: Database, seen: list[str]) -> None:
    with db.session() as s:
        emit(s, "test.ok", n="a")
        emit(s, "test.boom", n="b")
        ids = emitted_ids(s)
    assert process_pending(db.session_factory, only=ids) == 1
    # "a" may also have run in the joint attempt that rolled back: consumers must be idempotent
    assert set(seen) == {"a"}
    with db.session() as s:
        ok, boom = (s.get(OutboxEvent, i) for i in ids)
        assert ok is not None and ok.processed_at is not None
        assert boom is not None and boom.processed_at is None and boom.attempts == 1
        assert "consumer down" in (boom.last_error or "")
    # the worker's sweep marks events nobody listens to, and retries the failed one
    assert process_pending(db.session_factory) == 0
    with db.session() as s:
        assert s.get(OutboxEvent, ids[1]).attempts == 2  # type: ignore[union-attr]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumers that change the database, to see what a savepoint keeps and what it undoes."""
    monkeypatch.setattr(events, "_consumers", events.defaultdict(list))

    @consumer("test.write")
    def _write(session: Any, event: OutboxEvent) -> None:
        emit(session, "test.side_effect", n=event.payload["n"])

    @consumer("test.write_then_boom")
    def _write_then_boom(session: Any, event: OutboxEvent) -> None:
        emit(session, "test.side_effect", n="undone")
        session.flush()
        raise RuntimeError("consumer down")


def _names(db: Database) -> list[tuple[str, bool]]:
    from sqlalchemy import select

    with db.session() as s:
        rows = s.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        return [(e.name, e.processed_at is not None) for e in rows]


def test_events_delivered_inside_the_transaction_commit_with_the_change(db: Database, writes: None) -> None:
    with db.session() as s:
        emit(s, "test.write", n="a")
        assert events.deliver_in_transaction(s, emitted_ids(s)) == []
    assert _names(db) == [("test.write", True), ("test.side_effect", False)]


def test_a_consumer_failing_inside_the_transaction_is_rolled_back_to_its_savepoint(db: Database, writes: None) -> None:
    with db.session() as s:
        emit(s, "test.write_then_boom", n="b")
        ids = emitted_ids(s)
        assert events.deliver_in_transaction(s, ids) == ids  # left for a retry
    # the change (the event row) committed; the consumer's own write did not
    assert _names(db) == [("test.write_then_boom", False)]


def test_pruning_deletes_only_events_delivered_before_the_retention(db: Database, seen: list[str]) -> None:
    from datetime import timedelta

    from sqlalchemy import select, update

    from zhengshu.core.db import utcnow
    from zhengshu.core.events import prune_delivered

    with db.session() as s:
        old = [emit(s, "test.ok", n=f"old{i}").id for i in range(7)]
        recent = emit(s, "test.ok", n="recent").id
        failed = emit(s, "test.boom", n="failed").id
        pending = emit(s, "test.unheard", n="pending").id
    process_pending(db.session_factory, only=[*old, recent, failed])
    with db.session() as s:
        s.execute(update(OutboxEvent).where(OutboxEvent.id.in_(old)).values(processed_at=utcnow() - timedelta(days=20)))
        s.execute(  # failed for good long ago: never delivered, kept for the operator
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([failed, pending]))
            .values(processed_at=None, created_at=utcnow() - timedelta(days=20))
        )
    assert prune_delivered(db.session_factory, older_than=timedelta(days=14), batch=3) == 7  # three batches
    with db.session() as s:
        left = set(s.scalars(select(OutboxEvent.id)))
    assert left == {recent, failed, pending}
    assert prune_delivered(db.session_factory, older_than=timedelta(days=14)) == 0
