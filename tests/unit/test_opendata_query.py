"""The query layer over a published copy (filter language, keyset cursors with NULLs and ties, counts) and the
download writers (CSV quoting and BOM, XLSX cap and formula guard), plus service rules that need no HTTP:
what may be opened, usage counters."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.factories import World, published_entry
from tests.unit.test_opendata_fixtures import ITEMS, item_keys, open_entry, publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, ValidationFailed
from zhengshu.opendata import downloads, query
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset, OpenDatasetUsage
from zhengshu.opendata.schemas import ItemChoice, PublishIn


@pytest.fixture
def copy(tmp_path: Path) -> query.Published:
    rng = random.Random(11)
    n = 83
    table = pa.table(
        {
            "k": pa.array([f"K{i:03d}" for i in range(n)]),
            "v": pa.array([rng.choice([None, 1, 2, 3, 5, 8]) for _ in range(n)], pa.int64()),
            "d": pa.array([date(2025, 1 + i % 12, 1 + i % 27) for i in range(n)], pa.date32()),
            "t": pa.array([None if i % 7 == 0 else rng.choice(["甲", "乙", "丙", '引号"与,逗号']) for i in range(n)]),
            "b": pa.array([i % 2 == 0 for i in range(n)]),
        }
    )
    path = tmp_path / "v1.parquet"
    pq.write_table(table, path, row_group_size=10)
    return query.open_published(path)


def _rows(copy: query.Published) -> list[dict[str, Any]]:
    return [{**r, "d": r["d"].isoformat()} for r in pq.read_table(copy.path).to_pylist()]


def _pages(copy: query.Published, **spec: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        result = query.run_query(copy, query.QuerySpec(cursor=cursor, **spec), max_limit=1000)
        out.extend(result.rows)
        if not result.next_cursor:
            return out
        cursor = result.next_cursor


@pytest.mark.parametrize("limit", [1, 4, 10, 100])
@pytest.mark.parametrize("sort", [None, "v", "-v", "t", "-t", "d"])
def test_keyset_pages_equal_a_stable_sort_with_nulls_last(copy: query.Published, sort: str | None, limit: int) -> None:
    rows = _rows(copy)
    if sort:
        col, desc = sort.lstrip("-"), sort.startswith("-")
        indexed = [(i, r) for i, r in enumerate(rows) if r[col] is not None]
        # ties keep the copy's order whichever the direction
        indexed.sort(key=lambda ir: (ir[1][col], -ir[0]) if desc else (ir[1][col], ir[0]), reverse=desc)
        rows = [r for _, r in indexed] + [r for r in rows if r[col] is None]
    assert _pages(copy, sort=sort, limit=limit) == rows


def test_filters_are_typed_and_combined(copy: query.Published) -> None:
    rows = _rows(copy)
    f = query.parse_filters(copy, ["v:ge:3", "d:lt:2025-06-01", "b:eq:true"])
    got = query.run_query(copy, query.QuerySpec(filters=f, limit=1000, count=True), max_limit=1000)
    want = [r for r in rows if r["v"] is not None and r["v"] >= 3 and r["d"] < "2025-06-01" and r["b"]]
    assert got.rows == want and got.total == len(want)
    f = query.parse_filters(copy, ["t:null:"], {"b": "否"})
    assert query.run_query(copy, query.QuerySpec(filters=f, limit=1000), max_limit=1000).rows == [
        r for r in rows if r["t"] is None and not r["b"]
    ]
    f = query.parse_filters(copy, ["t:like:%"])  # LIKE wildcards are literal
    assert query.run_query(copy, query.QuerySpec(filters=f, limit=1000), max_limit=1000).rows == []
    f = query.parse_filters(copy, ["t:prefix:引号"])
    assert {r["t"] for r in query.run_query(copy, query.QuerySpec(filters=f, limit=1000), max_limit=1000).rows} == {
        '引号"与,逗号'
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("d:eq:2025-13-01", "opendata.bad_filter"),
        ("b:eq:maybe", "opendata.bad_filter"),
        ("v:in:" + "|".join(["1"] * 201), "opendata.bad_filter"),
        ("v:eq:" + "1" * 600, "opendata.bad_filter"),
        ("x:eq:1", "opendata.unknown_item"),
        ("v;DROP TABLE x:eq:1", "opendata.unknown_item"),
    ],
)
def test_bad_filters_raise_clear_errors(copy: query.Published, raw: str, code: str) -> None:
    with pytest.raises(query.BadQuery) as caught:
        query.parse_filters(copy, [raw])
    assert caught.value.code == code and caught.value.status == 400


def test_a_tampered_cursor_is_refused(copy: query.Published) -> None:
    for cursor in ("!!!", query.encode_cursor({"r": "x"}), query.encode_cursor({"x": 1})):
        with pytest.raises(query.BadQuery) as caught:
            query.run_query(copy, query.QuerySpec(cursor=cursor, limit=5), max_limit=10)
        assert caught.value.code == "opendata.bad_cursor"


def test_csv_stream_quotes_and_round_trips(copy: query.Published) -> None:
    raw = b"".join(downloads.csv_stream(query.iter_batches(copy, batch_rows=7), copy.columns))
    assert raw.startswith(downloads.BOM)
    parsed = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [r["t"] for r in parsed] == ["" if r["t"] is None else r["t"] for r in _rows(copy)]
    assert len(parsed) == 83


def test_xlsx_is_capped_with_a_note_and_never_holds_formulas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(downloads, "EXCEL_MAX_ROWS", 6)
    batch = pa.record_batch({"a": pa.array(['=HYPERLINK("x")', "+1", "普通", "4", "5", "6", "7"])})
    target = tmp_path / "out.xlsx"
    written = downloads.write_xlsx(iter([batch]), target, headers=["甲"], title="测试")
    assert written == 5
    wb = openpyxl.load_workbook(target)
    values = [c.value for c in wb["数据"]["A"]]
    assert values[:3] == ["甲", '\'=HYPERLINK("x")', "'+1"] and len(values) == 6
    assert any("超出部分未包含" in str(c.value) for row in wb["说明"].iter_rows() for c in row)


def test_json_stream_is_one_array(copy: query.Published) -> None:
    import json

    data = json.loads(b"".join(downloads.json_stream(query.iter_batches(copy, batch_rows=5))))
    assert data == _rows(copy)
    assert json.loads(b"".join(downloads.json_stream(iter([])))) == []


# ---- service rules --------------------------------------------------------------------------------------------


def test_entries_that_are_not_open_or_not_published_cannot_be_opened(
    db: Database, world: World, settings: Settings
) -> None:
    closed = published_entry(db, world, name="内部目录", items=ITEMS)  # 不予开放 (the factory's default)
    with db.session() as s, pytest.raises(Conflict) as caught:
        opendata_service.publish_options(s, actor=world["market_officer"], entry_id=closed)
    assert caught.value.code == "opendata.entry_not_openable"
    entry_id = open_entry(db, world, settings, n=3)
    keys = item_keys(db, world, entry_id)
    with db.session() as s, pytest.raises(ValidationFailed) as failed:
        opendata_service.publish(
            s,
            actor=world["market_officer"],
            publish_in=PublishIn(
                entry_id=entry_id,
                field="nope",
                items=[ItemChoice(item_key=keys["qymc"], masking_rule="rot13")],
                key_item=keys["lxdh"],
            ),
            data_dir=Path(settings.data_dir),
        )
    fields = {e.field for e in failed.value.errors}
    assert fields == {"field", "items.0.masking_rule", "key_item"}
    with db.session() as s:
        assert s.query(OpenDataset).count() == 0


def test_usage_is_summed_per_day(db: Database, world: World, settings: Settings) -> None:
    ds = publish_dataset(db, world, settings, n=5)
    day = date(2026, 3, 2)
    with db.session() as s:
        opendata_service.record_usage(s, dataset_id=ds.dataset_id, views=2, day=day)
        opendata_service.record_usage(s, dataset_id=ds.dataset_id, downloads=1, bytes_sent=100, day=day)
        opendata_service.record_usage(s, dataset_id=ds.dataset_id, api_calls=3, day=date(2026, 3, 3))
    with db.session() as s:
        rows = {u.day: u for u in s.query(OpenDatasetUsage).all()}
        assert (rows[day].views, rows[day].downloads, rows[day].bytes) == (2, 1, 100)
        assert rows[date(2026, 3, 3)].api_calls == 3
        d = s.get(OpenDataset, ds.dataset_id)
        assert d is not None and (d.view_count, d.download_count, d.api_call_count) == (2, 1, 3)


def test_the_published_copy_holds_only_open_items_sorted_by_the_key(
    db: Database, world: World, settings: Settings
) -> None:
    ds = publish_dataset(db, world, settings, n=30)
    table = pq.read_table(ds.path)
    assert table.column_names == ["tyshxydm", "qymc", "fddbr", "lxdh", "hylx", "zczb", "clrq"]
    keys = table.column("tyshxydm").to_pylist()
    assert keys == sorted(keys)
    assert all(v.endswith("*" * 2) or "*" in v for v in table.column("fddbr").to_pylist())
    with db.session() as s:
        d = s.get(OpenDataset, ds.dataset_id)
        assert d is not None and d.chart_hint == {"kind": "bar", "x": "hylx"}
        v = opendata_service.current_version(s, d)
        assert v.checksum and v.row_count == 30 and v.created_at <= datetime.now(v.created_at.tzinfo)


@pytest.mark.parametrize("kind", ["parquet", "duckdb"])
def test_copies_from_lake_formats_are_streamed_and_masked(
    db: Database, world: World, settings: Settings, kind: str
) -> None:
    import duckdb

    from tests.unit.test_opendata_fixtures import source_rows
    from zhengshu.catalog import mounting
    from zhengshu.lake import service as lake_service
    from zhengshu.lake.schemas import DataSourceIn

    n = 150_000  # several batches
    entry_id = published_entry(db, world, name="大表开放测试", opening_type="无条件开放", items=ITEMS)
    names = ["tyshxydm", "qymc", "fddbr", "lxdh", "hylx", "zczb", "clrq", "mm", "bz"]
    rows = source_rows(n)
    table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(names)})
    folder = Path(settings.data_dir) / "uploads" / world.orgs["market"]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        path = folder / "od_big.parquet"
        pq.write_table(table, path, row_group_size=40_000)
        table_name = path.name
    else:
        path = folder / "od_big.duckdb"
        con = duckdb.connect(str(path))
        con.register("t", table)
        con.execute("CREATE TABLE od_big AS SELECT * FROM t")
        con.close()
        table_name = "od_big"
    officer = world["market_officer"]
    keys = item_keys(db, world, entry_id)
    with db.session() as s:
        source = lake_service.register_source(
            s,
            actor=officer,
            source_in=DataSourceIn(name=f"大表{kind}", kind=kind, options={"path": str(path)}),
            data_dir=Path(settings.data_dir),
        )
        mounting.mount_table(
            s,
            actor=officer,
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=source.id, table=table_name, allow_problems=True),
        )
        dataset = opendata_service.publish(
            s,
            actor=officer,
            publish_in=PublishIn(
                entry_id=entry_id,
                field="market",
                items=[ItemChoice(item_key=keys[c]) for c in ("tyshxydm", "fddbr", "lxdh", "zczb")],
                key_item=keys["zczb"],
            ),
            data_dir=Path(settings.data_dir),
        )
        copy = Path(settings.data_dir) / opendata_service.current_version(s, dataset).file_path
    published = pq.read_table(copy)
    assert published.column_names == ["tyshxydm", "fddbr", "lxdh", "zczb"] and published.num_rows == n
    assert published.column("zczb").to_pylist() == sorted(r[5] for r in rows)
    assert {v[1:] for v in published.column("fddbr").to_pylist()} == {"**"}
    assert all(v[3:7] == "****" for v in published.column("lxdh").to_pylist()[:1000])


def test_refresh_due_reports_a_failing_source_and_keeps_the_old_copy(
    db: Database, world: World, settings: Settings
) -> None:
    from datetime import timedelta

    from zhengshu.security.actor import SYSTEM_ACTOR

    ds = publish_dataset(db, world, settings, n=10)
    with db.session() as s:
        d = s.get(OpenDataset, ds.dataset_id)
        assert d is not None and d.refreshed_at is not None
        d.refreshed_at = d.refreshed_at - timedelta(days=3)
    (Path(settings.data_dir) / "uploads" / world.orgs["market"] / "front.sqlite").unlink()
    with db.session() as s:
        result = opendata_service.refresh_due(s, actor=SYSTEM_ACTOR, data_dir=Path(settings.data_dir))
    assert result["refreshed"] == [] and [f["dataset_id"] for f in result["failed"]] == [ds.dataset_id]
    with db.session() as s:
        d = s.get(OpenDataset, ds.dataset_id)
        assert d is not None and d.version_number == 1 and d.status == "published"
    assert ds.path.is_file()


def test_whole_file_streams_span_row_groups(copy: query.Published) -> None:
    import json

    assert pq.ParquetFile(copy.path).metadata.num_row_groups == 9
    rows = _rows(copy)
    assert json.loads(b"".join(downloads.json_file_stream(copy.path, copy.columns))) == rows
    lines = b"".join(downloads.jsonl_file_stream(copy.path, ["k", "v"])).splitlines()
    assert [json.loads(line) for line in lines] == [{"k": r["k"], "v": r["v"]} for r in rows]
    raw = b"".join(bytes(c) for c in downloads.csv_file_stream(copy.path, copy.columns))
    parsed = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [p["k"] for p in parsed] == [r["k"] for r in rows] and raw.count(b"\r\n") == len(rows) + 1


def test_row_groups_go_out_in_pieces_in_order(copy: query.Published, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setattr(downloads, "PIECE_ROWS", 3)  # row groups of 10 rows: pieces of 3, 3, 3 and 1
    rows = _rows(copy)
    assert json.loads(b"".join(downloads.json_file_stream(copy.path, copy.columns))) == rows
    lines = b"".join(downloads.jsonl_file_stream(copy.path, ["k"])).splitlines()
    assert [json.loads(line)["k"] for line in lines] == [r["k"] for r in rows]
    chunks = list(downloads.csv_file_stream(copy.path, copy.columns))
    assert len(chunks) == 1 + 8 * 4 + 1  # the header; 8 groups of 10 rows in 4 pieces each; the last 3 rows
    parsed = list(csv.DictReader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline="")))
    assert [p["k"] for p in parsed] == [r["k"] for r in rows]


def test_csv_header_is_quoted_as_arrows_writer_quotes_it() -> None:
    import pyarrow.csv as pacsv

    names = ["k", "逗号,名", '引"号', "换\n行", "名称"]
    sink = io.BytesIO()
    pacsv.write_csv(pa.table({n: pa.array([], pa.string()) for n in names}), sink, pacsv.WriteOptions(eol="\r\n"))
    assert downloads.csv_header(names) == downloads.BOM + sink.getvalue()


def test_concurrent_downloads_share_one_parsed_footer_and_give_back_the_budget(copy: query.Published) -> None:
    stat = copy.path.stat()
    key = (str(copy.path), stat.st_mtime_ns, stat.st_size)
    first = downloads.csv_file_stream(copy.path, copy.columns)
    second = downloads.json_file_stream(copy.path, ["k"])
    next(first), next(first), next(second), next(second)  # both are past their first row group
    footer, users = downloads._footers[key]
    assert users == 2 and footer.num_row_groups == 9
    first.close()  # a client that goes away mid-file
    assert downloads._footers[key][1] == 1
    assert b"".join(second)
    assert key not in downloads._footers
    assert downloads._ahead._value == downloads.AHEAD  # type: ignore[attr-defined]  # every slot given back


class _FirstGroupLast:
    """An encoder pool that finishes every row group before the first one, as busy threads may."""

    def submit(self, fn: Any, index: int) -> Any:
        class Done:
            def __init__(self, compute: Any) -> None:
                self.compute = compute
                self.value = None if index == 0 else compute()

            def result(self) -> Any:
                return self.compute() if index == 0 else self.value

        return Done(lambda: fn(index))


def test_json_stays_valid_whatever_order_the_row_groups_are_encoded_in(
    copy: query.Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr(downloads, "_encoders", _FirstGroupLast())
    assert json.loads(b"".join(downloads.json_file_stream(copy.path, copy.columns))) == _rows(copy)
