"""Fixtures shared by the unit tests of migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import PG_URL
from zhengshu.audit import sealing
from zhengshu.core.db import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of each kind (a schema of its own on PostgreSQL), for migrations to build."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        sealing.wait_idle(30)  # the after-commit audit sealer runs in a thread: let it finish first
        db.dispose()
        return
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    yield db
    sealing.wait_idle(30)
    db.dispose()
    with admin.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
