"""Migrations build the schema the models describe, on SQLite and on PostgreSQL, and go down again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from zhengshu.core import migrate
from zhengshu.core.db import Base, Database


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


def test_downgrade_waits_for_a_sealer_instead_of_deadlocking(empty_db: Database) -> None:
    """A sealer still at work (it locks audit_head, then reads audit_record) when 0004 goes down."""
    if empty_db.engine.dialect.name != "postgresql":
        pytest.skip("table locks: PostgreSQL")
    import threading

    migrate.upgrade(empty_db)
    outcome: list[BaseException | None] = []

    def go_down() -> None:
        try:
            migrate.downgrade(empty_db, "0003")
            outcome.append(None)
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    with empty_db.engine.connect() as sealer:
        sealer.execute(text("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE"))
        downgrade = threading.Thread(target=go_down)
        downgrade.start()
        downgrade.join(1.0)  # the downgrade is now waiting for the sealer
        assert downgrade.is_alive()
        sealer.execute(text("SELECT count(*) FROM audit_record")).scalar()  # deadlocked before the fix
        sealer.commit()
    downgrade.join(30)
    assert outcome == [None]
    assert migrate.current(empty_db) == "0003"
