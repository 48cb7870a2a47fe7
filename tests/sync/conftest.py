"""Fixtures of the table exchange tests on the real servers: per-test MariaDB tables and PostgreSQL schemas
with random names (parallel workers and other suites never collide), dropped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync.helpers import mariadb_drop, pg, suffix


@pytest.fixture
def my_table() -> Iterator[str]:
    name = f"zs_sync_src_{suffix()}"
    yield name
    mariadb_drop(name, f"{name}_t", f"{name}_t__zs_load", f"{name}_t__zs_old")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"zs_sync_{suffix()}"
    pg(f'CREATE SCHEMA "{name}"')
    yield name
    pg(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
