"""Test fixtures. The whole suite runs on SQLite by default and on PostgreSQL with
``ZHENGSHU_TEST_DB=postgresql`` (each xdist worker in its own schema of database ``test``)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from zhengshu.bootstrap import load_features
from zhengshu.core import clock
from zhengshu.core.config import Settings
from zhengshu.core.db import Base, Database

load_features()

# Code that falls back to the process settings (``get_settings()``) must not write into the checkout.
os.environ.setdefault("ZHENGSHU_DATA_DIR", tempfile.mkdtemp(prefix="zhengshu-test-data-"))

PG_URL = os.environ.get("ZHENGSHU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKEND = os.environ.get("ZHENGSHU_TEST_DB", "sqlite")


def _pg_database(schema: str) -> Database:
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return Database(PG_URL, connect_args={"options": f"-csearch_path={schema}"})


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if BACKEND == "postgresql":
        schema = f"t_{worker}_{uuid.uuid4().hex[:8]}"
        db = _pg_database(schema)
    else:
        path = tmp_path_factory.mktemp("db") / "zhengshu.db"
        db = Database(f"sqlite:///{path}")
    Base.metadata.create_all(db.engine)
    yield db
    from zhengshu.audit import sealing

    sealing.wait_idle(30)
    if BACKEND == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    db.dispose()


def _clear(db: Database) -> None:
    """Empty every table. The audit tables are append-only by trigger: drop the triggers, wipe, reinstall."""
    from zhengshu.audit import sealing
    from zhengshu.audit.models import APPEND_ONLY_DDL, HEAD_DDL

    sealing.wait_idle(30)  # the previous test's after-commit sealer must not race the wipe (deadlocks on PG)
    dialect = db.engine.dialect.name
    with db.engine.begin() as conn:
        if dialect == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
                )
            )
            for trigger, table in rows.all():
                conn.execute(text(f'DROP TRIGGER "{trigger}" ON "{table}"'))
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for (trigger,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all():
                conn.execute(text(f'DROP TRIGGER "{trigger}"'))
            for t in reversed(Base.metadata.sorted_tables):
                conn.execute(t.delete())
        for stmt in HEAD_DDL.get(dialect, []) + APPEND_ONLY_DDL.get(dialect, []):
            conn.exec_driver_sql(stmt)


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """A clean database for each test."""
    _clear(database)
    clock.clear_schedules()
    yield database
    clock.clear_schedules()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key="test-secret-key-0123456789abcdef",
        node_code="360000",
        node_name="江西省政务数据共享平台",
        embedded_jobs=False,
    )


@pytest.fixture
def world(db: Database):  # type: ignore[no-untyped-def]
    from tests.factories import build_world

    return build_world(db)


@pytest.fixture
def app(db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    from zhengshu.web.app import create_app

    return create_app(settings, db)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 at production cost takes ~50 ms a hash; tests need many users, not that cost."""
    from argon2 import PasswordHasher

    from zhengshu.security import passwords

    production = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = production
