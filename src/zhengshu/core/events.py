"""Domain events through an outbox table.

A service calls :func:`emit` inside its transaction; the event row commits or rolls back with the change.
Consumers register by event name. A web request delivers its own events before it commits, inside a savepoint
(:func:`deliver_in_transaction`): one commit instead of two, and a failing consumer is rolled back to the
savepoint without undoing the change; what fails or is left is delivered by the worker (or right after the
commit), each event in its own transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, String, delete, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from zhengshu.core.db import Base, IdMixin, new_id, utcnow

log = logging.getLogger(__name__)

Consumer = Callable[[Session, "OutboxEvent"], None]
_consumers: dict[str, list[tuple[str, Consumer]]] = defaultdict(list)


class OutboxEvent(IdMixin, Base):
    __tablename__ = "outbox_event"
    __table_args__ = (Index("ix_outbox_event_pending", "processed_at", "id"),)

    name: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(2000))


def emit(session: Session, name: str, **payload: Any) -> OutboxEvent:
    """Record a domain event in the current transaction. Payloads carry ids, not objects."""
    event = OutboxEvent(id=new_id(), name=name, payload=payload)
    if consumers_for(name):  # nothing listens to it: the worker's next sweep marks it delivered
        session.info.setdefault(EMITTED, []).append(event.id)
        ahead = session.info.get(_MARKED_AHEAD)
        if ahead is not None and not session.info.get(_DELIVERING):
            # written delivered from the start (no UPDATE once it is); put back to pending if it is not after all
            event.processed_at = utcnow()
            ahead[event.id] = event
    session.add(event)
    return event


EMITTED = "zhengshu.emitted_event_ids"
_MARKED_AHEAD = "zhengshu.events_marked_ahead"  # id → event written delivered, not delivered yet
_DELIVERING = "zhengshu.delivering_events"


def will_deliver_in_transaction(session: Session) -> None:
    """Promise that ``session`` delivers the events it emits from now on with :func:`deliver_in_transaction`
    before it commits (as a web request does). Each is then written already marked delivered, which spares the
    UPDATE that marks it later. The promise costs nothing when broken: an event whose consumers fail, or that is
    not delivered before the commit, is put back to pending in the same transaction, as if never marked."""
    session.info[_MARKED_AHEAD] = {}


@sa_event.listens_for(Session, "before_commit")
def _unmark_undelivered(session: Session) -> None:
    ahead = session.info.get(_MARKED_AHEAD)
    if not ahead or session.in_nested_transaction():
        return  # nothing marked ahead, or a savepoint's release: only the real commit decides
    for undelivered in ahead.values():
        undelivered.processed_at = None  # flushed by the commit (a rolled-back one is no longer in the session)
    ahead.clear()


def emitted_ids(session: Session) -> list[str]:
    """Ids of the events this session emitted (the request delivers just those right after its commit)."""
    return list(session.info.get(EMITTED, []))


def consumer(name: str, consumer_name: str | None = None) -> Callable[[Consumer], Consumer]:
    """Register ``fn(session, event)`` for events called ``name`` (``*`` matches all)."""

    def register(fn: Consumer) -> Consumer:
        key = consumer_name or f"{fn.__module__}.{fn.__qualname__}"
        if all(k != key for k, _ in _consumers[name]):
            _consumers[name].append((key, fn))
        return fn

    return register


def consumers_for(name: str) -> list[Consumer]:
    return [fn for _, fn in _consumers.get(name, [])] + [fn for _, fn in _consumers.get("*", [])]


MAX_ATTEMPTS = 5


def _deliver(session: Session, events: list[OutboxEvent]) -> None:
    """Run each event's consumers in order and mark it delivered (the caller owns the transaction)."""
    for event in events:
        for fn in consumers_for(event.name):
            fn(session, event)
    # marked after all consumers ran: the marks go out in one batched flush, not one between two consumers;
    # one marked ahead (see will_deliver_in_transaction) keeps its mark, and needs no UPDATE
    now = utcnow()
    for event in events:
        if event.processed_at is None:
            event.processed_at = now


def deliver_in_transaction(session: Session, ids: list[str]) -> list[str]:
    """Deliver the events ``ids`` emitted in ``session`` within its own transaction, in a savepoint; returns the
    ids left undelivered (all of them if a consumer failed: the savepoint is rolled back, the change stays)."""
    session.flush()  # the events are then in the identity map: no query to find them
    ahead = session.info.get(_MARKED_AHEAD) or {}
    events = [
        e
        for e in (session.get(OutboxEvent, i) for i in ids)
        if e is not None and (e.processed_at is None or e.id in ahead)
    ]
    if not events:
        return []
    session.info[_DELIVERING] = True  # what the consumers emit is left to the worker: not marked ahead
    try:
        with session.begin_nested():
            _deliver(session, events)
    except Exception:
        log.warning("delivering events %s in the request failed; left for a retry", ids, exc_info=True)
        for e in events:
            if ahead.pop(e.id, None) is not None:
                e.processed_at = None  # written delivered before the savepoint: pending again, in the request
        return [e.id for e in events]
    finally:
        session.info.pop(_DELIVERING, None)
    for e in events:
        ahead.pop(e.id, None)
    return []


def _deliver_together(session_factory: sessionmaker[Session], ids: list[str]) -> bool:
    with session_factory() as session:
        events = list(
            session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id.in_(ids), OutboxEvent.processed_at.is_(None))
                .order_by(OutboxEvent.id)
                .with_for_update(skip_locked=True)
            )
        )
        if len(events) != len(ids):
            session.rollback()
            return False
        try:
            _deliver(session, events)
            session.commit()
        except Exception:
            session.rollback()
            log.warning("delivering events %s together failed; delivering them one by one", ids, exc_info=True)
            return False
    return True


def _mark_unheard(session_factory: sessionmaker[Session], ids: list[str]) -> int:
    """Events no consumer listens to are marked delivered in one statement, not one transaction each."""
    with session_factory() as session:
        names = dict(session.execute(select(OutboxEvent.id, OutboxEvent.name).where(OutboxEvent.id.in_(ids))).all())
        unheard = [i for i, name in names.items() if not consumers_for(name)]
        if unheard:
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(unheard), OutboxEvent.processed_at.is_(None))
                .values(processed_at=utcnow())
            )
            session.commit()
        for event_id in unheard:
            ids.remove(event_id)
        return len(unheard)


def process_pending(session_factory: sessionmaker[Session], *, limit: int = 500, only: list[str] | None = None) -> int:
    """Deliver pending events to their consumers (all of them, or ``only`` these ids); returns how many."""
    if only is not None:
        ids = only[:limit]
    else:
        with session_factory() as session:
            ids = list(
                session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.processed_at.is_(None), OutboxEvent.attempts < MAX_ATTEMPTS)
                    .order_by(OutboxEvent.id)
                    .limit(limit)
                )
            )
    done = 0
    if only is None:
        done += _mark_unheard(session_factory, ids)
    elif len(ids) > 1 and _deliver_together(session_factory, ids):
        # one request's events in one transaction; should any consumer fail, each is retried on its own below
        return len(ids)
    for event_id in ids:
        with session_factory() as session:
            # SKIP LOCKED (PostgreSQL): another process delivering this event right now keeps it
            event = session.scalars(
                select(OutboxEvent).where(OutboxEvent.id == event_id).with_for_update(skip_locked=True)
            ).first()
            if event is None or event.processed_at is not None:
                continue
            try:
                _deliver(session, [event])
                session.commit()
                done += 1
            except Exception as exc:  # a consumer failed: keep the event for a retry
                session.rollback()
                log.exception("outbox consumer failed for %s", event_id)
                event = session.get(OutboxEvent, event_id)
                if event is not None:
                    event.attempts += 1
                    event.last_error = repr(exc)[:2000]
                    session.commit()
    return done


def prune_delivered(session_factory: sessionmaker[Session], *, older_than: timedelta, batch: int = 5000) -> int:
    """Delete events delivered more than ``older_than`` ago; returns how many.

    Delivered events are a work queue, not a record (the audit trail and the tickets' histories are): without
    pruning the table grows with every change. Deleted in batches, each its own short transaction, so a large
    backlog never holds a long lock. Events that failed for good (never delivered) stay for the operator."""
    cutoff = utcnow() - older_than
    total = 0
    while True:
        with session_factory() as session:
            ids = list(
                session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.processed_at.is_not(None), OutboxEvent.processed_at < cutoff)
                    .order_by(OutboxEvent.processed_at)
                    .limit(batch)
                )
            )
            if ids:
                session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
                session.commit()
        total += len(ids)
        if len(ids) < batch:
            return total
