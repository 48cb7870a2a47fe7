"""Engine, sessions and the declarative base shared by every feature module."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)

_sequence = itertools.count()


def new_id() -> str:
    """Opaque, time-ordered id: 12 hex digits of milliseconds, a 4-digit per-process sequence (ids made in the
    same millisecond by one process keep their order, so a transaction's events are delivered as emitted), then
    8 random hex digits (unique across processes)."""
    return f"{int(time.time() * 1000):012x}{next(_sequence) & 0xFFFF:04x}{os.urandom(4).hex()}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class IdMixin:
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Statements that never open the SQLite transaction themselves: reads (as pysqlite's legacy mode did) and
# the ones that end a transaction or cannot run inside one.
_SQLITE_NO_BEGIN = frozenset(
    {
        "SELECT",
        "PRAGMA",
        "EXPLAIN",
        "VALUES",
        "BEGIN",
        "COMMIT",
        "END",
        "ROLLBACK",
        "RELEASE",
        "VACUUM",
        "ATTACH",
        "DETACH",
    }
)
_SQLITE_WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")


def _sqlite_opens_write(statement: str, context: Any) -> bool:
    """Whether ``statement`` is where the transaction's write lock must be taken: a write, DDL, a SAVEPOINT, or
    a ``SELECT ... FOR UPDATE`` (SQLite drops the clause; the lock the caller asked for is the database's)."""
    match = _FIRST_WORD.match(statement)
    first = match.group(1).upper() if match else ""
    if first == "WITH":
        return _SQLITE_WRITE_WORD.search(statement) is not None
    if first == "SELECT":
        compiled = getattr(context, "compiled", None)
        return getattr(getattr(compiled, "statement", None), "_for_update_arg", None) is not None
    return first not in _SQLITE_NO_BEGIN


def _sqlite_begin_before_write(
    conn: Any, cursor: Any, statement: str, _parameters: Any, context: Any, _executemany: bool
) -> None:
    dbapi_conn = cursor.connection
    if dbapi_conn.in_transaction or conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    if _sqlite_opens_write(statement, context):
        cursor.execute("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # pysqlite's legacy mode opens the transaction only before INSERT/UPDATE/DELETE, never before a
            # SAVEPOINT: a savepoint holding the first write was then the whole transaction, its RELEASE
            # committed it and a later rollback undid nothing. We open the transaction ourselves instead.
            dbapi_conn.isolation_level = None

        # Where and how (SQLAlchemy's recipe emits a deferred BEGIN when the transaction starts; we do not):
        # BEGIN IMMEDIATE right before the transaction's first write (or SAVEPOINT, DDL, SELECT ... FOR UPDATE).
        # - A deferred BEGIN up front gives every request a read snapshot; its first write after another
        #   connection committed then fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which the
        #   busy timeout does not retry), and nearly every request reads (actor, permissions) before it writes.
        # - BEGIN IMMEDIATE up front would take the write lock for every session, so page views, GETs and long
        #   read-only jobs would queue behind each other and behind every writer.
        # Taking it at the first write waits (busy timeout) instead of failing, and read-only sessions never
        # take it. Reads before the first write run each on their own snapshot, as under pysqlite's legacy
        # mode; from the first write on, the transaction sees one consistent database (it holds the lock).
        event.listen(engine, "before_cursor_execute", _sqlite_begin_before_write)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


HOLD_LOADED = "zhengshu.hold_loaded"


def hold_loaded_objects(session: Session) -> None:
    """Keep every object ``session`` loads or stores alive until it closes. The identity map holds objects
    weakly, so an object a service let go of (a ticket, the actor's user, an emitted event) would be loaded
    again by the event consumers that run later in the same request; held, ``session.get`` finds it. For
    short request sessions only: a bulk job holding everything would grow without bound."""
    session.info[HOLD_LOADED] = []


@event.listens_for(Session, "loaded_as_persistent")
@event.listens_for(Session, "pending_to_persistent")
def _hold(session: Session, instance: Any) -> None:
    held = session.info.get(HOLD_LOADED)
    if held is not None:
        held.append(instance)


_TRANSACTION_HOOKS = "zhengshu.transaction_hooks"
_JUST_COMMITTED = "zhengshu.just_committed"


def after_transaction(
    session: Session,
    *,
    committed: Callable[[], None] | None = None,
    rolled_back: Callable[[], None] | None = None,
) -> None:
    """Follow the current transaction with work outside the database (files): ``committed`` runs once the change
    is committed for good (the outermost COMMIT, not a savepoint's RELEASE), ``rolled_back`` once it is undone:
    a rollback of the savepoint it was made in or of any transaction around it, or the session closing
    without a commit. Each runs at most once, ``committed`` ones in the order they were added, ``rolled_back``
    ones newest first; an error in one is logged, never raised (the database has already decided)."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        session.connection()  # nothing has begun the transaction yet: begin it, the hooks follow it
        transaction = session.get_transaction()
    assert transaction is not None
    session.info.setdefault(_TRANSACTION_HOOKS, []).append((transaction, committed, rolled_back))


@event.listens_for(Session, "after_commit")
def _note_commit(session: Session) -> None:
    # Fired for a savepoint's RELEASE too, and just before the transaction ends: remember which one committed.
    if session.info.get(_TRANSACTION_HOOKS):
        session.info[_JUST_COMMITTED] = session.get_nested_transaction() or session.get_transaction()


@event.listens_for(Session, "after_transaction_end")
def _run_transaction_hooks(session: Session, transaction: SessionTransaction) -> None:
    hooks = session.info.get(_TRANSACTION_HOOKS)
    if not hooks:
        return
    committed = session.info.pop(_JUST_COMMITTED, None) is transaction
    if committed and transaction.parent is not None:
        return  # a savepoint released: the change now shares the fate of the transaction around it
    due, kept = [], []
    for hook in hooks:
        (due if _within(hook[0], transaction) else kept).append(hook)
    session.info[_TRANSACTION_HOOKS] = kept
    if not committed:
        due.reverse()  # undo newest first, so several undos of one thing end at its state before them all
    for _, on_commit, on_rollback in due:
        action = on_commit if committed else on_rollback
        if action is None:
            continue
        try:
            action()
        except Exception:
            log.exception("after-%s hook failed", "commit" if committed else "rollback")


def _within(inner: SessionTransaction, outer: SessionTransaction) -> bool:
    current: SessionTransaction | None = inner
    while current is not None:
        if current is outer:
            return True
        current = current.parent
    return False


class Database:
    """One engine and its session factory; the app, the CLI and jobs each hold one."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
