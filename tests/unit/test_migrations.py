"""Migrations build the schema the models describe, on SQLite and on PostgreSQL, and go down again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from tests.conftest import PG_URL
from zhengshu.core import migrate
from zhengshu.core.db import Base, Database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    yield db
    db.dispose()
    with admin.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_upgrade_matches_models_and_downgrades(empty_db: Database) -> None:
    migrate.upgrade(empty_db)
    assert migrate.current(empty_db) == migrate.head() is not None
    with empty_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    tables = set(inspect(empty_db.engine).get_table_names())
    assert {"catalog_entry", "ticket", "audit_record", "search_posting"} <= tables

    # the audit head row exists and the log is append-only right after the migration
    from zhengshu.audit import service as audit_service

    with empty_db.session() as s:
        audit_service.record(s, actor=None, action="test.migrated")
    with pytest.raises(Exception), empty_db.engine.begin() as conn:  # noqa: B017 - driver-specific error
        conn.execute(text("DELETE FROM audit_record"))
    with empty_db.session() as s:
        assert audit_service.verify(s).ok

    migrate.downgrade(empty_db, "base")
    assert "catalog_entry" not in inspect(empty_db.engine).get_table_names()
