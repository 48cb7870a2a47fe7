"""Change detection compares the source with the target batch by batch in a DuckDB file of the run's own: no
step holds either table whole (it used to load both into memory), and what it finds is the same."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from tests.factories import World
from tests.sync.helpers import (
    authorize,
    by_key_and_hash,
    create_job,
    expected_rows,
    make_rows,
    mariadb,
    mariadb_create,
    mariadb_rows,
    mysql_target,
    normalize,
    pg,
    pg_create,
    pg_target,
)
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.tables import engine, runner
from zhengshu.exchange.tables import service as sync_service
from zhengshu.exchange.tables.engine import _rebatch_reader, read_target
from zhengshu.exchange.tables.models import SyncJob


def read_back(db: Database, settings: Settings, job_id: str) -> dict[int, tuple[Any, ...]]:
    with db.session() as s:
        job = s.get(SyncJob, job_id)
        assert job is not None
        spec = sync_service.build_spec(s, job=job, run_id="read", settings=settings)
    return {r["id"]: normalize(r) for r in read_target(spec).to_pylist()}


def test_rebatch_reader_regroups_duckdb_vectors_into_batches_of_the_size() -> None:
    pieces = [pa.record_batch({"k": pa.array(range(i * 7, i * 7 + 7))}) for i in range(10)]  # 70 rows in 7s
    reader = pa.RecordBatchReader.from_batches(pieces[0].schema, iter(pieces))
    sizes = [b.num_rows for b in _rebatch_reader(reader, 20)]
    assert sizes == [20, 20, 20, 10]
    reader = pa.RecordBatchReader.from_batches(pieces[0].schema, iter(pieces))
    assert [v for b in _rebatch_reader(reader, 20) for v in b.column(0).to_pylist()] == list(range(70))


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Rows of every table the comparison hands to DuckDB, by the side it comes from (s: source, t: target)."""
    sizes: dict[str, list[int]] = {"s": [], "t": []}
    into = engine._Run._into

    def spy(con: Any, sql: str, table: pa.Table) -> None:
        sizes[sql.split()[2]].append(table.num_rows)
        into(con, sql, table)

    monkeypatch.setattr(engine._Run, "_into", staticmethod(spy))
    return sizes


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgresql", "mysql"])
def test_change_detection_reads_both_sides_in_batches_and_finds_every_change(
    db: Database,
    world: World,
    settings: Settings,
    my_table: str,
    pg_schema: str,
    registered: dict[str, list[int]],
    target: str,
) -> None:
    mariadb_create(my_table, make_rows(430))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    target_id = pg_target(db, world, pg_schema) if target == "postgresql" else mysql_target(db, world)
    table = f"{my_table}_t"
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="cdc", table=table,
        batch_size=100,
    )  # fmt: skip
    try:
        first = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
        assert first.status == "succeeded", first.error
        assert first.rows_written == 430
        mariadb(f"UPDATE `{my_table}` SET xm = CONCAT(xm, '改') WHERE id % 9 = 0")
        mariadb(f"DELETE FROM `{my_table}` WHERE id % 50 = 1")
        registered["s"].clear()
        registered["t"].clear()
        second = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
        assert second.status == "succeeded", second.error
        changed = len([i for i in range(1, 431) if i % 9 == 0 and i % 50 != 1])
        assert (second.rows_written, second.rows_deleted) == (changed, len(range(1, 431, 50)))
        # the source in its batches; the target (430 rows) read back in batches too (of the same size from
        # MariaDB; PostgreSQL's driver cuts its stream by bytes, 16 MB, so these few rows come as one)
        assert max(registered["s"]) == 100 and sum(registered["s"]) == len(mariadb_rows(my_table))
        assert sum(registered["t"]) == 430
        if target == "mysql":
            assert max(registered["t"]) == 100
        source = expected_rows(mariadb_rows(my_table))
        assert by_key_and_hash(read_back(db, settings, job_id)) == by_key_and_hash(source)
        # nothing left to find: a third run writes nothing
        third = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
        assert (third.status, third.rows_written, third.rows_deleted) == ("succeeded", 0, 0)
    finally:
        mariadb(f"DROP TABLE IF EXISTS `{table}`")


@pytest.mark.postgres
def test_change_detection_of_an_empty_source_empties_the_target(
    db: Database, world: World, settings: Settings, pg_schema: str
) -> None:
    pg_create(pg_schema, "src", make_rows(250))
    _, _, auth_id, keys = authorize(db, world, kind="postgresql", table="src", schema=pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=pg_target(db, world, pg_schema), keys=keys,
        mode="cdc", table="ry", batch_size=100,
    )  # fmt: skip
    assert runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings).status == "succeeded"
    pg(f'DELETE FROM "{pg_schema}".src')
    outcome = runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)
    assert (outcome.status, outcome.rows_written, outcome.rows_deleted) == ("succeeded", 0, 250)
    assert pg(f'SELECT COUNT(*) FROM "{pg_schema}".ry') == [(0,)]
