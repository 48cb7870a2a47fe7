"""The other paths on the real servers, every mode: PostgreSQL → DuckDB, CSV → PostgreSQL (with values that
cannot be converted going to the quarantine), MariaDB → MariaDB and PostgreSQL → Parquet; a target widened
when the authorization gains an item; data returned from a provincial resource to a city (数据回流)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import select

from tests.factories import World
from tests.sync.helpers import (
    authorize,
    by_key_and_hash,
    create_job,
    csv_create,
    expected_rows,
    file_target,
    make_rows,
    mariadb,
    mariadb_create,
    mariadb_rows,
    mysql_target,
    normalize,
    pg,
    pg_create,
    pg_target,
    pg_target_rows,
)
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.tables import runner
from zhengshu.exchange.tables import service as sync_service
from zhengshu.exchange.tables.engine import read_target
from zhengshu.exchange.tables.models import SyncJob, SyncQuarantine, SyncRun

MODES = ["full", "incremental", "cdc"]


def run(db: Database, world: World, settings: Settings, job_id: str, who: str = "hrss_officer") -> SyncRun:
    outcome = runner.run_job(db, actor=world[who], job_id=job_id, settings=settings)
    assert outcome.status == "succeeded", outcome.error
    return outcome


def target_rows(db: Database, settings: Settings, job_id: str) -> dict[int, tuple[Any, ...]]:
    with db.session() as s:
        job = s.get(SyncJob, job_id)
        assert job is not None
        spec = sync_service.build_spec(s, job=job, run_id="read", settings=settings)
    table = read_target(spec)
    return {r["id"]: normalize(r) for r in table.to_pylist()}


def pg_rows(schema: str, table: str) -> list[tuple[Any, ...]]:
    return pg(f'SELECT id, xm, sjhm, je, csrq, gxsj, nbbz FROM "{schema}"."{table}" ORDER BY id')


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
def test_postgres_to_duckdb(db: Database, world: World, settings: Settings, pg_schema: str, mode: str) -> None:
    pg_create(pg_schema, "src", make_rows(900))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    target_id = file_target(db, world, settings, "duckdb")
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode=mode, table="ry"
    )
    run(db, world, settings, job_id)
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(
        expected_rows(pg_rows(pg_schema, "src"))
    )

    pg(f'UPDATE "{pg_schema}".src SET je = 9.99, gxsj = %s WHERE id = 3', (dt.datetime(2026, 11, 20),))
    pg(
        f"INSERT INTO \"{pg_schema}\".src VALUES (901, '新', '13800000000', 1, NULL, %s, '')",
        (dt.datetime(2026, 11, 20),),
    )
    if mode != "incremental":
        pg(f'DELETE FROM "{pg_schema}".src WHERE id = 4')
    second = run(db, world, settings, job_id)
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(
        expected_rows(pg_rows(pg_schema, "src"))
    )
    if mode == "incremental":
        assert second.rows_read == 2
    with db.session() as s:
        job = s.get(SyncJob, job_id)
        assert job is not None and job.target.path is not None
        # the consumer's own DuckDB file holds the table; the checkpoint sits beside it
        con = duckdb.connect(job.target.path, read_only=True)
        try:
            expected = 901 if mode == "incremental" else 900  # 901 rows less the deleted one, or all of them
            assert con.sql("SELECT COUNT(*) FROM ry").fetchall() == [(expected,)]
            assert con.sql("SELECT job_id FROM zs_sync_checkpoint").fetchall() == [(job_id,)]
        finally:
            con.close()


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
def test_csv_to_postgres_with_quarantine(
    db: Database, world: World, settings: Settings, pg_schema: str, tmp_path: Path, mode: str
) -> None:
    rows = make_rows(300)
    path = tmp_path / "ry.csv"
    bad = {5: {"je": "壹佰元"}, 6: {"csrq": "2026-02-30"}, 8: {"xm": "名" * 60}}
    csv_create(path, rows, bad)
    _, _, auth_id, keys = authorize(db, world, kind="csv", table="ry.csv", path=path)
    target_id = pg_target(db, world, pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode=mode, table="ry"
    )
    first = run(db, world, settings, job_id)
    assert first.rows_read == 300 and first.rows_quarantined == 3 and first.rows_written == 297
    good = [r for r in rows if r[0] not in bad]
    assert by_key_and_hash(pg_target_rows(pg_schema, "ry")) == by_key_and_hash(expected_rows(good))
    with db.session() as s:
        found = {
            (q.row_key, q.column_name): (q.value, q.reason)
            for q in s.scalars(select(SyncQuarantine).where(SyncQuarantine.run_id == first.id))
        }
    assert set(found) == {("5", "je"), ("6", "csrq"), ("8", "xm")}
    assert found[("5", "je")][0] == "壹佰元" and "无法转换为数值" in found[("5", "je")][1]
    assert found[("8", "xm")][1] == "长度 60 超过信息项“姓名”的长度 50"

    # the provider corrects the file: the rows arrive with the next run (incremental: they carry a newer time)
    fixed = [r if r[0] not in bad else (*r[:5], dt.datetime(2026, 11, 25, 9, 0), r[6]) for r in rows]
    csv_create(path, fixed)
    second = run(db, world, settings, job_id)
    assert second.rows_quarantined == 0
    assert by_key_and_hash(pg_target_rows(pg_schema, "ry")) == by_key_and_hash(expected_rows(fixed))


@pytest.mark.mariadb
@pytest.mark.parametrize("mode", MODES)
def test_mariadb_to_mariadb(db: Database, world: World, settings: Settings, my_table: str, mode: str) -> None:
    mariadb_create(my_table, make_rows(700))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    target_id = mysql_target(db, world)
    table = f"{my_table}_t"
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode=mode, table=table
    )
    run(db, world, settings, job_id)
    mariadb(f"UPDATE `{my_table}` SET xm = '周星', gxsj = '2026-11-21 00:00:00' WHERE id = 2")
    if mode != "incremental":
        mariadb(f"DELETE FROM `{my_table}` WHERE id = 10")
    run(db, world, settings, job_id)
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(expected_rows(mariadb_rows(my_table)))
    [(xm,)] = mariadb(f"SELECT xm FROM `{table}` WHERE id = 2")
    assert xm == "周*"


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
def test_postgres_to_parquet(db: Database, world: World, settings: Settings, pg_schema: str, mode: str) -> None:
    pg_create(pg_schema, "src", make_rows(600))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    target_id = file_target(db, world, settings, "parquet")
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode=mode, table="ry"
    )
    run(db, world, settings, job_id)
    pg(f"UPDATE \"{pg_schema}\".src SET xm = '吴用', gxsj = %s WHERE id = 1", (dt.datetime(2026, 11, 22),))
    if mode != "incremental":
        pg(f'DELETE FROM "{pg_schema}".src WHERE id = 2')
    run(db, world, settings, job_id)
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(
        expected_rows(pg_rows(pg_schema, "src"))
    )
    with db.session() as s:
        job = s.get(SyncJob, job_id)
        assert job is not None and job.target.path is not None
        directory = Path(job.target.path) / "ry"
    # compacted: one live file named by the manifest, nothing else left behind
    assert [p.name for p in directory.glob("*.parquet")] == [
        __import__("json").loads((directory / "manifest.json").read_text())["files"][0]
    ]


@pytest.mark.postgres
def test_new_items_widen_the_target(db: Database, world: World, settings: Settings, pg_schema: str) -> None:
    from tests.sync.helpers import ITEMS

    pg_create(pg_schema, "src", make_rows(100))
    narrow = [i for i in ITEMS if i["name"] != "金额"]
    entry_id, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema, items=narrow)
    target_id = pg_target(db, world, pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="incremental", table="ry"
    )
    run(db, world, settings, job_id)
    assert "je" not in [
        r[0]
        for r in pg(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'ry'",
            (pg_schema,),
        )
    ]
    # the catalog gains the item and the authorization covers it: the next run adds the column and fills it
    from zhengshu.catalog.models import CatalogEntry, DataItem
    from zhengshu.demand.models import AuthorizationItem

    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None
        from zhengshu.catalog import service as catalog_service

        version = catalog_service.display_version(s, entry)
        item = DataItem(
            version_id=version.id,
            entry_id=entry_id,
            key="je_key_0001",
            position=99,
            name="金额",
            column_name="je",
            data_type="N",
            length=12,
            sensitivity="一般1",
        )
        s.add(item)
        s.add(
            AuthorizationItem(
                authorization_id=auth_id,
                item_key="je_key_0001",
                position=99,
                name="金额",
                column_name="je",
                masking_rule="none",
            )
        )
    widened = run(db, world, settings, job_id)
    assert widened.columns_added == ["je"] and widened.rows_written == 100
    assert pg(f'SELECT je FROM "{pg_schema}".ry WHERE id = 1')[0][0] == Decimal(str(make_rows(1)[0][3]))


@pytest.mark.mariadb
@pytest.mark.postgres
def test_data_returns_from_a_provincial_resource_to_a_city(
    db: Database, world: World, settings: Settings, my_table: str, pg_schema: str
) -> None:
    mariadb_create(my_table, make_rows(80))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table, consumer="nc_police_officer")
    target_id = pg_target(db, world, pg_schema, who="nc_police_officer")
    job_id = create_job(
        db,
        world,
        settings,
        authorization_id=auth_id,
        target_id=target_id,
        keys=keys,
        mode="full",
        table="ry",
        who="nc_police_officer",
    )
    run(db, world, settings, job_id, who="nc_police_officer")
    assert by_key_and_hash(pg_target_rows(pg_schema, "ry")) == by_key_and_hash(expected_rows(mariadb_rows(my_table)))
    with db.session() as s:
        job = s.get(SyncJob, job_id)
        assert job is not None and sync_service.direction(job) == "数据回流"


def test_duckdb_and_xlsx_sources(db: Database, world: World, settings: Settings, tmp_path: Path) -> None:
    from tests.sync.helpers import duckdb_create, xlsx_create

    rows = make_rows(120)
    duck = tmp_path / "front.duckdb"
    duckdb_create(duck, rows)
    _, _, auth_id, keys = authorize(db, world, kind="duckdb", table="ry", path=duck)
    target_id = file_target(db, world, settings, "parquet")
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="cdc", table="ry"
    )
    run(db, world, settings, job_id)
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(expected_rows(rows))

    book = tmp_path / "ry.xlsx"
    xlsx_create(book, rows[:60])
    _, _, auth_id, keys = authorize(db, world, kind="xlsx", table="ry", path=book)
    target_id = file_target(db, world, settings, "duckdb")
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="full", table="ry"
    )
    outcome = run(db, world, settings, job_id)
    assert outcome.rows_written == 60
    assert by_key_and_hash(target_rows(db, settings, job_id)) == by_key_and_hash(expected_rows(rows[:60]))
