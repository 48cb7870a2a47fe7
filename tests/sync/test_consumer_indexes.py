"""A full run replaces the target by a freshly loaded table; the indexes the consumer built on its copy must
survive it (they used to vanish with the old table at every full run)."""

from __future__ import annotations

import duckdb
import pytest
from sqlalchemy import select

from tests.factories import World
from tests.sync.helpers import (
    authorize,
    by_key_and_hash,
    create_job,
    expected_rows,
    file_target,
    make_rows,
    mariadb,
    mariadb_create,
    mariadb_rows,
    mysql_target,
    pg,
    pg_create,
    pg_target,
    pg_target_rows,
)
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.tables import runner
from zhengshu.exchange.tables.models import SyncJob


def run(db: Database, world: World, settings: Settings, job_id: str) -> None:
    outcome = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
    assert outcome.status == "succeeded", outcome.error


def _full_job_to_postgres(db: Database, world: World, settings: Settings, pg_schema: str) -> str:
    """A full-mode job from the PostgreSQL table ``src`` to ``ry`` in the same schema, run once."""
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=pg_target(db, world, pg_schema), keys=keys,
        mode="full", table="ry",
    )  # fmt: skip
    run(db, world, settings, job_id)
    return job_id


def _full_job_to_mariadb(db: Database, world: World, settings: Settings, my_table: str, rows: int) -> tuple[str, str]:
    """(target table, job id) of a full-mode job from the MariaDB table ``my_table`` (``rows`` rows) to
    ``<my_table>_t``, run once."""
    mariadb_create(my_table, make_rows(rows))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    table = f"{my_table}_t"
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=mysql_target(db, world), keys=keys, mode="full",
        table=table,
    )  # fmt: skip
    run(db, world, settings, job_id)
    return table, job_id


@pytest.mark.postgres
def test_postgres_target_keeps_the_consumers_indexes(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    pg_create(pg_schema, "src", make_rows(300))
    job_id = _full_job_to_postgres(db, world, settings, pg_schema)
    pg(f'CREATE INDEX ix_ry_xm ON "{pg_schema}".ry (xm)')
    pg(f'CREATE INDEX ix_ry_lower ON "{pg_schema}".ry (lower(sjhm)) WHERE je > 0')
    pg(f'DELETE FROM "{pg_schema}".src WHERE id = 5')
    run(db, world, settings, job_id)
    indexes = dict(
        pg("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'ry'", (pg_schema,))
    )
    assert {"ix_ry_xm", "ix_ry_lower"} <= set(indexes)
    assert "lower" in indexes["ix_ry_lower"] and "WHERE" in indexes["ix_ry_lower"]
    assert any("PRIMARY" in d.upper() or "pkey" in n for n, d in indexes.items())  # the key is there as before
    source = expected_rows(pg(f'SELECT id, xm, sjhm, je, csrq, gxsj, nbbz FROM "{pg_schema}".src'))
    assert by_key_and_hash(pg_target_rows(pg_schema, "ry")) == by_key_and_hash(source)


@pytest.mark.mariadb
def test_mariadb_target_keeps_the_consumers_indexes(
    db: Database, world: World, settings: Settings, my_table: str
) -> None:
    table, job_id = _full_job_to_mariadb(db, world, settings, my_table, 300)
    try:
        mariadb(f"CREATE INDEX ix_xm ON `{table}` (xm(4), je)")
        mariadb(f"CREATE UNIQUE INDEX ux_id_xm ON `{table}` (id, xm)")
        mariadb(f"DELETE FROM `{my_table}` WHERE id = 5")
        run(db, world, settings, job_id)
        rows = mariadb(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (table,),
        )
        shape = [(str(n), int(u), str(c), int(p) if p else None) for n, u, c, p in rows]
        assert ("ix_xm", 1, "xm", 4) in shape and ("ix_xm", 1, "je", None) in shape
        assert ("ux_id_xm", 0, "id", None) in shape and ("ux_id_xm", 0, "xm", None) in shape
        assert any(n == "PRIMARY" for n, *_ in shape)
        assert mariadb(f"SELECT COUNT(*) FROM `{table}`")[0][0] == len(mariadb_rows(my_table)) == 299
    finally:
        mariadb(f"DROP TABLE IF EXISTS `{table}`")


@pytest.mark.postgres
def test_duckdb_target_keeps_the_consumers_indexes(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    pg_create(pg_schema, "src", make_rows(200))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    target_id = file_target(db, world, settings, "duckdb")
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="full", table="ry"
    )
    run(db, world, settings, job_id)
    with db.session() as s:
        job = s.scalar(select(SyncJob).where(SyncJob.id == job_id))
        assert job is not None and job.target.path is not None
        path = job.target.path
    con = duckdb.connect(path)
    con.execute("CREATE INDEX ix_ry_xm ON ry (xm)")
    con.close()
    run(db, world, settings, job_id)
    con = duckdb.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.sql("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'ry'").fetchall()]
        assert "ix_ry_xm" in names
        assert con.sql("SELECT COUNT(*) FROM ry").fetchall() == [(200,)]
    finally:
        con.close()


@pytest.mark.postgres
def test_a_view_on_the_target_stops_a_full_run_with_the_reason(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    pg_create(pg_schema, "src", make_rows(50))
    job_id = _full_job_to_postgres(db, world, settings, pg_schema)
    pg(f'CREATE VIEW "{pg_schema}".ry_view AS SELECT id, xm FROM "{pg_schema}".ry')
    pg(f'DELETE FROM "{pg_schema}".src WHERE id = 5')
    outcome = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
    assert outcome.status == "failed"
    assert outcome.error is not None and "ry_view" in outcome.error
    # the consumer's table and view are untouched: still the first run's 50 rows
    assert pg(f'SELECT COUNT(*) FROM "{pg_schema}".ry_view') == [(50,)]


@pytest.mark.postgres
def test_postgres_target_keeps_the_consumers_grants(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    """The consumer's applications read the target under roles of their own: a full run used to drop their
    privileges with the old table."""
    pg_create(pg_schema, "src", make_rows(60))
    job_id = _full_job_to_postgres(db, world, settings, pg_schema)
    reader, clerk = f"zs_app_{pg_schema[-8:]}", f"zs_clerk_{pg_schema[-8:]}"
    table = f'"{pg_schema}".ry'
    try:
        pg(f"CREATE ROLE {reader} NOLOGIN")
        pg(f"CREATE ROLE {clerk} NOLOGIN")
        pg(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO {reader}, {clerk}')
        pg(f"GRANT SELECT ON {table} TO {reader} WITH GRANT OPTION")
        pg(f"GRANT SELECT (id, xm) ON {table} TO {clerk}")
        pg(f'DELETE FROM "{pg_schema}".src WHERE id = 5')
        run(db, world, settings, job_id)
        assert pg(f"SELECT COUNT(*) FROM {table}") == [(59,)]  # the new table is in place
        checks = pg(
            f"SELECT has_table_privilege('{reader}', '{table}', 'SELECT'), "
            f"has_table_privilege('{reader}', '{table}', 'SELECT WITH GRANT OPTION'), "
            f"has_table_privilege('{reader}', '{table}', 'INSERT'), "
            f"has_column_privilege('{clerk}', '{table}', 'xm', 'SELECT'), "
            f"has_column_privilege('{clerk}', '{table}', 'sjhm', 'SELECT'), "
            f"has_table_privilege('{clerk}', '{table}', 'SELECT')"
        )
        assert checks == [(True, True, False, True, False, False)]
    finally:
        pg(f'DROP TABLE IF EXISTS "{pg_schema}".ry')
        pg(f'REVOKE ALL ON SCHEMA "{pg_schema}" FROM {reader}, {clerk}')
        pg(f"DROP ROLE IF EXISTS {reader}")
        pg(f"DROP ROLE IF EXISTS {clerk}")


@pytest.mark.mariadb
def test_mariadb_target_keeps_the_consumers_grants(
    db: Database, world: World, settings: Settings, my_table: str
) -> None:
    """MariaDB keeps table privileges by name: the table renamed into the target's place receives them."""
    table, job_id = _full_job_to_mariadb(db, world, settings, my_table, 40)
    user = f"zs_app_{my_table[-8:]}"
    try:
        mariadb(f"CREATE USER '{user}'@'%'")
        mariadb(f"GRANT SELECT ON `{table}` TO '{user}'@'%'")
        mariadb(f"DELETE FROM `{my_table}` WHERE id = 5")
        run(db, world, settings, job_id)
        grants = mariadb(
            "SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND GRANTEE LIKE %s",
            (table, f"%{user}%"),
        )
        assert [g[0] for g in grants] == ["SELECT"]
        assert mariadb(f"SELECT COUNT(*) FROM `{table}`")[0][0] == 39
    finally:
        mariadb(f"DROP USER IF EXISTS '{user}'@'%'")
        mariadb(f"DROP TABLE IF EXISTS `{table}`")
