"""Incremental runs that read the changed rows of a server source in parallel ranges (an index on the cursor;
MariaDB and PostgreSQL) and in one ordered query (no index) end alike: each batch arrives in several parts, is
written in one transaction and checkpointed at its last position; ties on the cursor are neither lost nor
repeated; masking applies on both paths; the PostgreSQL target leaves room on its pages for in-place updates."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from tests.sync.helpers import (
    by_key_and_hash,
    expected_rows,
    make_rows,
    mariadb,
    mariadb_create,
    pg,
    pg_create,
    pg_target_rows,
)
from zhengshu.exchange.tables import engine, readers
from zhengshu.exchange.tables.plan import ColumnPlan, SyncSpec, TargetConfig, decode_key, decode_value
from zhengshu.exchange.tables.readers import SourceReader
from zhengshu.exchange.tables.writers import PostgresWriter
from zhengshu.lake.connectors import SourceConfig, TableRef

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres]
ROWS = 1_000
BATCH = 100


def spec(table: str, schema: str, kind: str = "mysql") -> SyncSpec:
    plans = [
        ColumnPlan("id", "id", "k1", "编号", "I", None, "none", pa.int64(), True),
        ColumnPlan("xm", "xm", "k2", "姓名", "C", 50, "name_first", pa.string()),
        ColumnPlan("sjhm", "sjhm", "k3", "手机号码", "C", 20, "mobile_3_4", pa.string()),
        ColumnPlan("je", "je", "k4", "金额", "N", 12, "none", pa.decimal128(12, 2)),
        ColumnPlan("csrq", "csrq", "k5", "出生日期", "D", None, "none", pa.date32()),
        ColumnPlan("gxsj", "gxsj", "k6", "更新时间", "T", None, "none", pa.timestamp("us")),
    ]
    return SyncSpec(
        job_id="ranges",
        run_id=uuid.uuid4().hex[:16],
        mode="incremental",
        source=(
            SourceConfig(kind="mysql", host="127.0.0.1", port=3306, database="test", username="root")
            if kind == "mysql"
            else SourceConfig(kind="postgresql", host="127.0.0.1", port=5432, database="test", username="postgres")
        ),
        source_table=TableRef(None if kind == "mysql" else schema, table),
        columns=plans,
        target=TargetConfig(
            kind="postgresql", host="127.0.0.1", port=5432, database="test", username="postgres", schema=schema
        ),
        target_table="ry",
        cursor="gxsj",
        batch_size=BATCH,
    )


class Source:
    """The source table on MariaDB or PostgreSQL (in the test's schema), with or without an index on the cursor."""

    def __init__(self, kind: str, table: str, schema: str) -> None:
        self.kind, self.table, self.schema = kind, table, schema
        self.name = f"`{table}`" if kind == "mysql" else f'"{schema}"."{table}"'

    def create(self, indexed: bool) -> None:
        if self.kind == "mysql":
            mariadb_create(self.table, make_rows(ROWS))
            if not indexed:
                mariadb(f"ALTER TABLE `{self.table}` DROP INDEX gxsj")
        else:
            pg_create(self.schema, self.table, make_rows(ROWS))
            if indexed:
                pg(f"CREATE INDEX ON {self.name} (gxsj)")

    def sql(self, text: str, params: tuple[object, ...] | None = None) -> list[tuple[object, ...]]:
        return mariadb(text, params) if self.kind == "mysql" else pg(text, params)

    def rows(self) -> list[tuple[object, ...]]:
        return self.sql(f"SELECT id, xm, sjhm, je, csrq, gxsj, nbbz FROM {self.name} ORDER BY id")

    def spec(self) -> SyncSpec:
        return spec(self.table, self.schema, self.kind)


def assert_target_equals_source(source: Source) -> None:
    assert by_key_and_hash(pg_target_rows(source.schema, "ry")) == by_key_and_hash(expected_rows(source.rows()))


@pytest.mark.parametrize(
    ("kind", "indexed"),
    [("mysql", True), ("mysql", False), ("postgresql", True)],
    ids=["mariadb-parallel-ranges", "mariadb-one-ordered-query", "postgresql-parallel-ranges"],
)
def test_incremental_runs_read_changes_in_parts_and_checkpoint_each_batch_at_its_end(
    my_table: str, pg_schema: str, kind: str, indexed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "PART_ROWS", 7)  # 15 parts per batch of 100
    monkeypatch.setattr(engine, "WRITE_ROWS", 20)  # parts written together in threes, inside the batch
    written: list[int] = []
    upsert_part = PostgresWriter.upsert_part

    def count_parts(self: PostgresWriter, table: Any, keys: list[str]) -> None:
        written.append(table.num_rows)
        upsert_part(self, table, keys)

    monkeypatch.setattr(PostgresWriter, "upsert_part", count_parts)
    ranged: list[int] = []
    parallel_changes = SourceReader._parallel_changes

    def spy(self: SourceReader, *args: Any) -> Iterator[readers.Part]:
        ranged.append(1)
        yield from parallel_changes(self, *args)

    monkeypatch.setattr(SourceReader, "_parallel_changes", spy)
    source = Source(kind, my_table, pg_schema)
    source.create(indexed)
    assert SourceReader(source.spec())._cursor_indexed() is indexed

    first = engine.run(source.spec())
    assert (first.rows_read, first.rows_written, first.batches) == (ROWS, ROWS, ROWS // BATCH)
    assert_target_equals_source(source)
    [(cursor, key)] = pg(f'SELECT cursor_value, last_key FROM "{pg_schema}".zs_sync_checkpoint')
    last_time = source.sql(f"SELECT MAX(gxsj) FROM {source.name}")[0][0]
    [(last_id,)] = source.sql(f"SELECT MAX(id) FROM {source.name} WHERE gxsj = %s", (last_time,))
    assert (decode_value(cursor), decode_key(key)) == (last_time, [last_id])

    # changes spread over the table, and new rows sharing the last update time (ties on the cursor)
    source.sql(f"UPDATE {source.name} SET xm = '欧阳娜娜', je = je + 1, gxsj = '2026-12-01 08:00:00' WHERE id % 37 = 0")
    source.sql(
        f"INSERT INTO {source.name} VALUES (5000, '新人', '13900000000', 3.00, '1990-01-01', %s, ''),"
        f"(5001, '新人二', '13900000001', 4.00, '1990-01-02', '2026-12-01 08:00:00', '')",
        (last_time,),
    )
    ranged.clear()
    second = engine.run(source.spec())
    assert len(ranged) == (1 if indexed else 0)  # 3% of the table changed: ranges wherever the index allows
    if indexed:  # before a batch's last part, its parts went out in groups of at least 20 rows (3 parts of 7)
        assert written and all(n >= 20 for n in written)
    else:
        assert written == []  # one ordered query: whole batches
    changed = len(range(37, ROWS + 1, 37)) + 2
    assert (second.rows_read, second.rows_written) == (changed, changed)
    assert_target_equals_source(source)
    [(xm,)] = pg(f'SELECT xm FROM "{pg_schema}".ry WHERE id = 37')
    assert xm == "欧***"  # masked on the way, whichever path read it

    third = engine.run(source.spec())
    assert third.rows_read == 0
    # room left on every page: the updates of incremental runs stay on their page (HOT)
    [(options,)] = pg(
        "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'ry'",
        (pg_schema,),
    )
    assert options == ["fillfactor=90"]


@pytest.mark.parametrize(
    ("changes", "estimate", "ranges"),
    [(30, 1_000, True), (300, 1_000, False), (300, None, True)],
    ids=["small-share", "large-backlog", "no-statistics"],
)
def test_a_large_backlog_is_read_with_one_query(
    my_table: str, pg_schema: str, changes: int, estimate: int | None, ranges: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    mariadb_create(my_table, make_rows(10))
    reader = SourceReader(spec(my_table, pg_schema))
    monkeypatch.setattr(reader, "count", lambda **_: changes)
    monkeypatch.setattr(reader, "estimate", lambda: estimate)
    assert reader._use_ranges(None, None) is ranges
