"""Lake shared service: data sources, connectors against real servers and files, mount checks, uploads."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import openpyxl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from zhengshu.core.config import reset_settings
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed, ZhengshuError
from zhengshu.core.events import OutboxEvent
from zhengshu.lake import service, typemap
from zhengshu.lake.connectors import (
    ColumnInfo,
    ConnectionFailed,
    SourceConfig,
    TableDescription,
    TableNotFound,
    TableRef,
    make_connector,
)
from zhengshu.lake.models import DataSource
from zhengshu.lake.schemas import (
    DataSourceIn,
    DataSourceRead,
    DataSourceUpdate,
    MountCheckRead,
    TableDescriptionRead,
)
from zhengshu.lake.service import ItemSpec, check_items_against_table
from zhengshu.security.actor import Actor, Role
from zhengshu.security.crypto import decrypt_secret

PG = {"host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "database": "test", "username": "root"}
PASSWORD = "Zs-S3cret-口令-9137"
ORG_A, ORG_B = "orga", "orgb"

ADMIN = Actor(user_id="u0", username="admin", display_name="管理员", org_id=None, roles=frozenset({Role.ADMIN}))
OFFICER_A = Actor(user_id="u1", username="a1", display_name="甲专员", org_id=ORG_A, roles=frozenset({Role.OFFICER}))
USER_A = Actor(user_id="u2", username="a2", display_name="甲用户", org_id=ORG_A, roles=frozenset({Role.USER}))
OFFICER_B = Actor(user_id="u3", username="b1", display_name="乙专员", org_id=ORG_B, roles=frozenset({Role.OFFICER}))


def _uid() -> str:
    return uuid.uuid4().hex[:10]


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "lake-test-" + "0" * 54)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A control-plane SQLite with a stand-in ``organization`` table (the org module owns the real one)."""
    metadata = MetaData()
    org = Table("organization", metadata, Column("id", String(32), primary_key=True))
    DataSource.__table__.to_metadata(metadata)
    OutboxEvent.__table__.to_metadata(metadata)
    db = Database(f"sqlite:///{tmp_path / 'control.db'}")
    metadata.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(insert(org), [{"id": ORG_A}, {"id": ORG_B}])
    with db.session_factory() as s:
        yield s
    db.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"lake_{_uid()}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(
            f'CREATE TABLE "{schema}".qy ('
            " id serial PRIMARY KEY,"
            " qymc varchar(100) NOT NULL,"
            " tyshxydm char(18),"
            " zczb numeric(14,2),"
            " clrq date,"
            " gxsj timestamp,"
            " sfzx boolean,"
            " jyfw text)"
        )
        conn.execute(f"COMMENT ON COLUMN \"{schema}\".qy.qymc IS '企业名称'")
        conn.execute(
            f'INSERT INTO "{schema}".qy (qymc, tyshxydm, zczb, clrq, gxsj, sfzx, jyfw) VALUES '
            "('南昌甲科技有限公司', '91360100MA35XXXX1A', 100.50, '2020-03-01', "
            "'2024-05-01 10:00', false, '软件'),"
            "('九江乙贸易有限公司', '91360400MA35XXXX2B', NULL, '2021-07-15', "
            "'2025-02-03 09:30', true, NULL),"
            "('赣州丙食品有限公司', NULL, 8.00, NULL, NULL, NULL, NULL)"
        )
        conn.execute(f'CREATE VIEW "{schema}".qy_view AS SELECT id, qymc FROM "{schema}".qy')
        conn.execute(f'CREATE TABLE "{schema}"."we""ird tbl" ("a col" integer)')
        conn.execute(f'INSERT INTO "{schema}"."we""ird tbl" VALUES (1), (2)')
    yield schema
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def my_db() -> Iterator[str]:
    name = f"lake_{_uid()}"
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(
            f"CREATE TABLE `{name}`.qydj ("
            " id int PRIMARY KEY AUTO_INCREMENT,"
            " qymc varchar(100) NOT NULL COMMENT '企业名称',"
            " zczb decimal(14,2),"
            " clrq date,"
            " gxsj datetime,"
            " sfzx tinyint(1),"
            " jyfw text) ENGINE=InnoDB"
        )
        cur.execute(
            f"INSERT INTO `{name}`.qydj (qymc, zczb, clrq, gxsj, sfzx, jyfw) VALUES "
            "('上饶甲有限公司', 10.5, '2019-01-02', '2024-01-01 08:00', 1, '咨询'),"
            "('吉安乙有限公司', NULL, NULL, NULL, 0, NULL)"
        )
        cur.execute(f"CREATE VIEW `{name}`.qydj_v AS SELECT id, qymc FROM `{name}`.qydj")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


def _sqlite_file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE rk (sfzh VARCHAR(18) NOT NULL, xm TEXT, csrq DATE, nl INTEGER, sg REAL, zp BLOB)")
    conn.executemany(
        "INSERT INTO rk VALUES (?, ?, ?, ?, ?, ?)",
        [("360102199001011234", "李明", "1990-01-01", 35, 1.75, b"\x00")] * 4,
    )
    conn.execute("CREATE VIEW rk_v AS SELECT sfzh, xm FROM rk")
    conn.commit()
    conn.close()
    return path


def _duckdb_file(path: Path) -> Path:
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE fr (tyshxydm VARCHAR, mc VARCHAR, zczb DECIMAL(18,2), clrq DATE, gxsj TIMESTAMP, rs INTEGER)"
    )
    conn.execute(
        "INSERT INTO fr SELECT 'code' || i, '单位' || i, i * 1.5, DATE '2020-01-01', NOW(), i FROM range(7) t(i)"
    )
    conn.execute("COMMENT ON COLUMN fr.mc IS '单位名称'")
    conn.close()
    return path


def _upload_path(data_dir: Path, org: str, name: str) -> Path:
    path = data_dir / "uploads" / org / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _cols(description: TableDescription) -> dict[str, ColumnInfo]:
    return {c.name: c for c in description.columns}


# ------------------------------------------------------------------------------------------------- typemap


@pytest.mark.parametrize(
    ("dialect", "native", "expected"),
    [
        ("postgresql", "character varying(50)", ("C", 50)),
        ("postgresql", "character(18)", ("C", 18)),
        ("postgresql", "text", ("M", None)),
        ("postgresql", "numeric(12,2)", ("N", 12)),
        ("postgresql", "bigint", ("I", None)),
        ("postgresql", "double precision", ("B", None)),
        ("postgresql", "real", ("F", None)),
        ("postgresql", "money", ("Y", None)),
        ("postgresql", "date", ("D", None)),
        ("postgresql", "timestamp(3) with time zone", ("T", None)),
        ("postgresql", "boolean", ("L", None)),
        ("postgresql", "bytea", ("G", None)),
        ("postgresql", "integer[]", ("M", None)),
        ("mysql", "varchar(100)", ("C", 100)),
        ("mysql", "tinyint(1)", ("L", None)),
        ("mysql", "tinyint(4)", ("I", None)),
        ("mysql", "bigint(20) unsigned", ("I", None)),
        ("mysql", "decimal(14,2)", ("N", 14)),
        ("mysql", "float", ("F", None)),
        ("mysql", "double", ("B", None)),
        ("mysql", "longtext", ("M", None)),
        ("mysql", "datetime", ("T", None)),
        ("mysql", "longblob", ("G", None)),
        ("sqlite", "VARCHAR(18)", ("C", 18)),
        ("sqlite", "TEXT", ("M", None)),
        ("sqlite", "INTEGER", ("I", None)),
        ("sqlite", "REAL", ("B", None)),
        ("sqlite", "DATETIME", ("T", None)),
        ("sqlite", "DATE", ("D", None)),
        ("sqlite", "BLOB", ("G", None)),
        ("sqlite", "", ("M", None)),
        ("duckdb", "DECIMAL(18,2)", ("N", 18)),
        ("duckdb", "VARCHAR", ("C", None)),
        ("duckdb", "HUGEINT", ("I", None)),
        ("duckdb", "TIMESTAMP WITH TIME ZONE", ("T", None)),
        ("duckdb", "TIME", ("C", None)),
        ("duckdb", "INTEGER[]", ("M", None)),
    ],
)
def test_native_types_map_to_catalog_codes(dialect: str, native: str, expected: tuple[str, int | None]) -> None:
    assert typemap.native_type(dialect, native) == expected


def test_arrow_types_map_to_catalog_codes() -> None:
    assert typemap.arrow_type(pa.int32()) == ("I", None)
    assert typemap.arrow_type(pa.float64()) == ("B", None)
    assert typemap.arrow_type(pa.float32()) == ("F", None)
    assert typemap.arrow_type(pa.decimal128(10, 2)) == ("N", 10)
    assert typemap.arrow_type(pa.string()) == ("C", None)
    assert typemap.arrow_type(pa.large_string()) == ("C", None)
    assert typemap.arrow_type(pa.date32()) == ("D", None)
    assert typemap.arrow_type(pa.timestamp("s")) == ("T", None)
    assert typemap.arrow_type(pa.bool_()) == ("L", None)
    assert typemap.arrow_type(pa.binary()) == ("G", None)
    assert typemap.arrow_type(pa.list_(pa.int8())) == ("M", None)


def test_type_compatibility_rules() -> None:
    assert typemap.compatible("N", "I") and typemap.compatible("N", "B") and typemap.compatible("N", "Y")
    assert typemap.compatible("C", "M") and typemap.compatible("M", "C")
    assert typemap.compatible("T", "D")
    assert typemap.compatible("B", "I") and typemap.compatible("Y", "N")
    assert not typemap.compatible("D", "T")
    assert not typemap.compatible("I", "N")
    assert not typemap.compatible("B", "N")
    assert not typemap.compatible("C", "I")
    assert not typemap.compatible("L", "I")
    assert not typemap.compatible("G", "C")
    assert not typemap.compatible("X", "C")
    assert all(typemap.compatible(code, code) for code in typemap.TYPE_CODES)


# ------------------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_postgres_lists_describes_and_reads(pg_schema: str) -> None:
    connector = make_connector(SourceConfig(kind="postgresql", name="前置库", **PG, options={"schema": pg_schema}))
    connector.test()
    tables = connector.list_tables()
    assert TableRef(pg_schema, "qy", "table") in tables
    assert TableRef(pg_schema, "qy_view", "view") in tables
    assert {t.schema for t in tables} == {pg_schema}

    described = connector.describe("qy")
    cols = _cols(described)
    assert list(cols) == ["id", "qymc", "tyshxydm", "zczb", "clrq", "gxsj", "sfzx", "jyfw"]
    assert (cols["qymc"].type_code, cols["qymc"].length, cols["qymc"].nullable) == ("C", 100, False)
    assert cols["qymc"].comment == "企业名称"
    assert (cols["tyshxydm"].type_code, cols["tyshxydm"].length) == ("C", 18)
    assert (cols["zczb"].type_code, cols["zczb"].length) == ("N", 14)
    assert [cols[n].type_code for n in ("id", "clrq", "gxsj", "sfzx", "jyfw")] == ["I", "D", "T", "L", "M"]
    assert described.row_count == 3
    assert described.last_updated is None and described.last_updated_basis == "未知"
    assert connector.describe(TableRef(pg_schema, "qy_view")).table.kind == "view"

    table = connector.read_arrow("qy", columns=["qymc", "zczb", "clrq"], limit=2)
    assert table.column_names == ["qymc", "zczb", "clrq"]
    assert table.num_rows == 2
    assert pa.types.is_decimal(table.schema.field("zczb").type)
    assert table.schema.field("clrq").type == pa.date32()
    assert connector.read_arrow("qy").num_rows == 3


@pytest.mark.postgres
def test_postgres_last_update_from_updated_column_and_max_rows(pg_schema: str) -> None:
    connector = make_connector(
        SourceConfig(kind="postgresql", **PG, options={"schema": pg_schema, "updated_column": "gxsj", "max_rows": 1})
    )
    described = connector.describe("qy")
    # 2025-02-03 09:30 Beijing time (naive values are read as Asia/Shanghai).
    assert described.last_updated == datetime(2025, 2, 3, 1, 30, tzinfo=UTC)
    assert "gxsj" in described.last_updated_basis
    assert connector.read_arrow("qy").num_rows == 1  # max_rows caps every read
    per_table = make_connector(
        SourceConfig(kind="postgresql", **PG, options={"schema": pg_schema, "updated_column": {"qy": "clrq"}})
    )
    assert per_table.describe("qy").last_updated == datetime(2021, 7, 14, 16, 0, tzinfo=UTC)


@pytest.mark.postgres
def test_postgres_quotes_identifiers_and_refuses_unknown_tables(pg_schema: str) -> None:
    connector = make_connector(SourceConfig(kind="postgresql", **PG, options={"schema": pg_schema}))
    described = connector.describe('we"ird tbl')
    assert [c.name for c in described.columns] == ["a col"]
    assert described.row_count == 2
    assert connector.read_arrow('we"ird tbl', columns=["a col"]).column("a col").to_pylist() == [1, 2]
    with pytest.raises(TableNotFound) as exc:
        connector.describe("qy; DROP TABLE qy")
    assert exc.value.code == "lake.table_not_found"
    with pytest.raises(ValidationFailed) as bad_col:
        connector.read_arrow("qy", columns=["qymc", "1; DROP TABLE qy"])
    assert bad_col.value.code == "lake.unknown_column"
    assert connector.describe("qy").row_count == 3


@pytest.mark.postgres
def test_postgres_connection_is_read_only_and_time_bounded(pg_schema: str) -> None:
    connector = make_connector(SourceConfig(kind="postgresql", **PG, options={"schema": pg_schema, "timeout_s": 1}))
    with connector.connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(f"INSERT INTO \"{pg_schema}\".qy (qymc) VALUES ('x')")
    with connector.connection() as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(3)")
    assert connector.describe("qy").row_count == 3


@pytest.mark.postgres
def test_postgres_connection_failure_is_reported_without_password() -> None:
    for config in (
        SourceConfig(kind="postgresql", name="坏库", **{**PG, "port": 1}, password=PASSWORD),
        SourceConfig(kind="postgresql", name="坏库", **{**PG, "database": f"missing_{_uid()}"}, password=PASSWORD),
    ):
        with pytest.raises(ConnectionFailed) as exc:
            make_connector(config).test()
        assert exc.value.code == "lake.connection_failed"
        assert "无法连接数据源“坏库”" in exc.value.detail
        assert PASSWORD not in exc.value.detail and PASSWORD not in str(exc.value)
        assert exc.value.__cause__ is None and exc.value.__suppress_context__


# ----------------------------------------------------------------------------------------------- MariaDB


@pytest.mark.mariadb
def test_mariadb_lists_describes_and_reads(my_db: str) -> None:
    connector = make_connector(SourceConfig(kind="mysql", **{**MY, "database": my_db}))
    assert connector.list_tables() == [TableRef(my_db, "qydj", "table"), TableRef(my_db, "qydj_v", "view")]
    described = connector.describe("qydj")
    cols = _cols(described)
    assert (cols["qymc"].type_code, cols["qymc"].length, cols["qymc"].comment) == ("C", 100, "企业名称")
    assert [cols[n].type_code for n in ("id", "zczb", "clrq", "gxsj", "sfzx", "jyfw")] == [
        "I",
        "N",
        "D",
        "T",
        "L",
        "M",
    ]
    assert described.row_count == 2
    # UPDATE_TIME of the InnoDB table we just wrote.
    assert described.last_updated is not None
    assert abs(described.last_updated - datetime.now(UTC)) < timedelta(minutes=5)
    assert "UPDATE_TIME" in described.last_updated_basis

    table = connector.read_arrow("qydj", columns=["qymc", "sfzx"])
    assert table.column("qymc").to_pylist() == ["上饶甲有限公司", "吉安乙有限公司"]
    assert table.column("sfzx").to_pylist() == [True, False]


@pytest.mark.mariadb
def test_mariadb_session_is_read_only(my_db: str) -> None:
    connector = make_connector(SourceConfig(kind="mysql", **{**MY, "database": my_db}))
    with connector.connection() as conn, conn.cursor() as cur, pytest.raises(pymysql.err.MySQLError):
        cur.execute("INSERT INTO qydj (qymc) VALUES ('x')")
    assert connector.describe("qydj").row_count == 2


@pytest.mark.mariadb
def test_mariadb_wrong_password_is_connection_failed_without_password() -> None:
    connector = make_connector(SourceConfig(kind="mysql", name="市场监管前置库", **MY, password=PASSWORD))
    with pytest.raises(ConnectionFailed) as exc:
        connector.test()
    assert exc.value.code == "lake.connection_failed"
    assert "用户名或口令错误" in exc.value.detail
    assert PASSWORD not in exc.value.detail and PASSWORD not in repr(connector.config)


# ---------------------------------------------------------------------------------------- SQLite, DuckDB


def test_sqlite_file_is_read_only(tmp_path: Path) -> None:
    path = _sqlite_file(tmp_path / "rk.sqlite")
    connector = make_connector(SourceConfig(kind="sqlite", options={"path": str(path)}))
    assert connector.list_tables() == [TableRef(None, "rk", "table"), TableRef(None, "rk_v", "view")]
    described = connector.describe("rk")
    cols = _cols(described)
    assert (cols["sfzh"].type_code, cols["sfzh"].length, cols["sfzh"].nullable) == ("C", 18, False)
    assert [cols[n].type_code for n in ("xm", "csrq", "nl", "sg", "zp")] == ["M", "D", "I", "B", "G"]
    assert described.row_count == 4
    assert described.last_updated == datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert described.last_updated_basis == "文件修改时间"
    table = connector.read_arrow("rk", columns=["sfzh", "nl"], limit=3)
    assert table.num_rows == 3 and table.column("nl").to_pylist() == [35, 35, 35]

    with connector.connection() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO rk (sfzh) VALUES ('x')")
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(ConnectionFailed):
        make_connector(SourceConfig(kind="sqlite", options={"path": str(missing)})).test()
    assert not missing.exists()


def test_duckdb_file_is_read_only(tmp_path: Path) -> None:
    path = _duckdb_file(tmp_path / "fr.duckdb")
    connector = make_connector(SourceConfig(kind="duckdb", options={"path": str(path)}))
    assert connector.list_tables() == [TableRef("main", "fr", "table")]
    described = connector.describe("fr")
    cols = _cols(described)
    assert [cols[n].type_code for n in ("tyshxydm", "zczb", "clrq", "gxsj", "rs")] == [
        "C",
        "N",
        "D",
        "T",
        "I",
    ]
    assert cols["zczb"].length == 18
    assert cols["mc"].comment == "单位名称"
    assert described.row_count == 7
    assert described.last_updated_basis == "文件修改时间" and described.last_updated is not None
    table = connector.read_arrow("fr", columns=["mc", "rs"], limit=5)
    assert table.column_names == ["mc", "rs"] and table.num_rows == 5
    with connector.connection() as conn, pytest.raises(duckdb.Error, match="read-only"):
        conn.execute("INSERT INTO fr (mc) VALUES ('x')")


# --------------------------------------------------------------------------------------------------- files


def test_csv_utf8_and_gbk(tmp_path: Path) -> None:
    text = "统一社会信用代码,企业名称,注册资本,成立日期,行政区划\n"
    text += "91360100MA35XXXX1A,南昌甲科技有限公司,100.5,2020-03-01,0791\n"
    text += "91360400MA35XXXX2B,九江乙贸易,,2021-07-15,0792\n"
    utf8 = tmp_path / "qy.csv"
    utf8.write_text(text, encoding="utf-8")
    gbk = tmp_path / "qy_gbk.csv"
    gbk.write_bytes(text.encode("gbk"))

    for path, options in ((utf8, {}), (gbk, {}), (gbk, {"encoding": "gbk"})):
        connector = make_connector(SourceConfig(kind="csv", options={"path": str(path), **options}))
        assert connector.list_tables() == [TableRef(None, path.name)]
        described = connector.describe(path.name)
        cols = _cols(described)
        assert list(cols) == ["统一社会信用代码", "企业名称", "注册资本", "成立日期", "行政区划"]
        assert [c.type_code for c in described.columns] == ["C", "C", "B", "D", "I"]
        assert cols["企业名称"].length == len("南昌甲科技有限公司")  # longest value, in characters
        assert described.row_count == 2
        assert described.last_updated == datetime.fromtimestamp(path.stat().st_mtime, UTC)
        assert connector.read_arrow(path.stem, columns=["企业名称"]).column(0).to_pylist() == [
            "南昌甲科技有限公司",
            "九江乙贸易",
        ]

    wrong = make_connector(SourceConfig(kind="csv", options={"path": str(gbk), "encoding": "utf-8"}))
    with pytest.raises(ZhengshuError):
        wrong.read_arrow(gbk.name)
    texted = make_connector(SourceConfig(kind="csv", options={"path": str(utf8), "text_columns": ["行政区划"]}))
    assert _cols(texted.describe(utf8.name))["行政区划"].type_code == "C"
    assert texted.read_arrow(utf8.name, columns=["行政区划"], limit=1).column(0).to_pylist() == ["0791"]
    with pytest.raises(TableNotFound):
        texted.describe("other.csv")


def test_csv_with_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("a;b\n1;x\n2;y\n3;z\n", encoding="utf-8")
    connector = make_connector(SourceConfig(kind="csv", options={"path": str(path), "delimiter": ";"}))
    described = connector.describe("s.csv")
    assert [c.name for c in described.columns] == ["a", "b"]
    assert connector.read_arrow("s.csv", limit=2).num_rows == 2


def test_xlsx_sheets_are_tables(tmp_path: Path) -> None:
    path = tmp_path / "qy.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "企业"
    ws.append(["企业名称", "从业人数", "注册资本", "成立日期", "更新时间", "是否在业"])
    ws.append(["南昌甲公司", 12, 100.5, datetime(2020, 3, 1), datetime(2024, 5, 1, 10, 30), True])
    ws.append(["九江乙公司", 3, 8, datetime(2021, 7, 15), datetime(2024, 6, 1, 8, 0), False])
    ws.append([None, None, None, None, None, None])
    other = wb.create_sheet("说明")
    other.append(["项", "内容"])
    other.append(["来源", "市场监管局"])
    wb.save(path)

    connector = make_connector(SourceConfig(kind="xlsx", options={"path": str(path)}))
    assert connector.list_tables() == [TableRef(None, "企业"), TableRef(None, "说明")]
    described = connector.describe("企业")
    assert [c.type_code for c in described.columns] == ["C", "I", "B", "D", "T", "L"]
    assert described.row_count == 2  # the blank row is not data
    assert _cols(described)["企业名称"].length == 5
    assert connector.read_arrow("说明").column("内容").to_pylist() == ["市场监管局"]
    assert connector.read_arrow("企业", columns=["从业人数"], limit=1).column(0).to_pylist() == [12]
    with pytest.raises(TableNotFound):
        connector.describe("不存在")
    only = make_connector(SourceConfig(kind="xlsx", options={"path": str(path), "sheet": "说明"}))
    assert only.list_tables() == [TableRef(None, "说明")]


def test_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "rk.parquet"
    pq.write_table(
        pa.table(
            {
                "sfzh": pa.array(["360102199001011234"] * 5),
                "nl": pa.array([30, 31, 32, 33, 34], type=pa.int32()),
                "csrq": pa.array([date(1990, 1, 1)] * 5),
                "je": pa.array([1, 2, 3, 4, 5], type=pa.decimal128(12, 2)),
            }
        ),
        path,
    )
    connector = make_connector(SourceConfig(kind="parquet", options={"path": str(path)}))
    described = connector.describe("rk.parquet")
    assert [(c.type_code, c.length) for c in described.columns] == [
        ("C", None),
        ("I", None),
        ("D", None),
        ("N", 12),
    ]
    assert described.row_count == 5
    table = connector.read_arrow("rk", columns=["nl"], limit=3)
    assert table.column("nl").to_pylist() == [30, 31, 32]


# ------------------------------------------------------------------------------------------- mount check


def _description(*columns: ColumnInfo) -> TableDescription:
    return TableDescription(TableRef("public", "qy"), list(columns), 10, None, "未知")


QY = _description(
    ColumnInfo("qymc", "character varying(100)", "C", 100, False, "企业名称"),
    ColumnInfo("zczb", "numeric(14,2)", "N", 14, True),
    ColumnInfo("cyrs", "integer", "I", None, True),
    ColumnInfo("clrq", "date", "D", None, True),
    ColumnInfo("jyfw", "text", "M", None, True),
)


def test_mount_check_ok_matches_by_column_name_and_comment() -> None:
    check = check_items_against_table(
        [
            ItemSpec("企业名称", None, "C", 200),  # matched through the column comment
            ItemSpec("注册资本", "ZCZB", "N", 16),  # column name, case ignored
            ItemSpec("从业人数", "cyrs", "N", None),  # an integer column satisfies a numeric item
            ItemSpec("成立日期", "clrq", "T", None),  # a date fits a datetime item
            ItemSpec("经营范围", "jyfw", "C", 2000),  # text (M) accepted for a character item
        ],
        QY,
    )
    assert check.ok
    assert check.problems == []
    assert [(m.item, m.column) for m in check.matched] == [
        ("企业名称", "qymc"),
        ("注册资本", "zczb"),
        ("从业人数", "cyrs"),
        ("成立日期", "clrq"),
        ("经营范围", "jyfw"),
    ]
    assert MountCheckRead.model_validate(check).ok


def test_mount_check_reports_each_kind_of_problem() -> None:
    check = check_items_against_table(
        [
            ItemSpec("企业名称", "qymc", "C", 50),  # varchar(100) > 50
            ItemSpec("成立日期", "clrq", "I", None),  # date is not an integer
            ItemSpec("法定代表人", "fddbr", "C", 50),  # no such column
            ItemSpec("登记机关", None, "C", 50),  # no column named or commented so
            ItemSpec("注册资本", "zczb", "N", 14),
        ],
        QY,
    )
    assert not check.ok
    kinds = {(p.kind, p.item or p.column) for p in check.problems}
    assert kinds == {
        ("length_exceeded", "企业名称"),
        ("type_mismatch", "成立日期"),
        ("missing_column", "法定代表人"),
        ("missing_column", "登记机关"),
        ("extra_column", "cyrs"),
        ("extra_column", "jyfw"),
    }
    by_kind = {p.kind: p for p in check.problems}
    assert "100" in by_kind["length_exceeded"].message and "50" in by_kind["length_exceeded"].message
    assert "日期型" in by_kind["type_mismatch"].message and "整型" in by_kind["type_mismatch"].message
    assert not by_kind["extra_column"].blocking and by_kind["missing_column"].blocking
    read = MountCheckRead.model_validate(check)
    assert not read.ok and len(read.problems) == 6


def test_extra_columns_alone_do_not_block() -> None:
    check = check_items_against_table([ItemSpec("企业名称", "qymc", "C", 100)], QY)
    assert check.ok
    assert {p.kind for p in check.problems} == {"extra_column"}
    assert len(check.problems) == 4


# ------------------------------------------------------------------------------------------ the service


def _pg_in(**overrides: object) -> DataSourceIn:
    data: dict[str, object] = {
        "name": "市场监管前置库",
        "kind": "postgresql",
        "owner_org_id": ORG_A,
        **PG,
        "password": PASSWORD,
    }
    data.update(overrides)
    return DataSourceIn.model_validate(data)


def test_secret_is_encrypted_and_never_read_back(session: Session) -> None:
    source_in = _pg_in()
    assert PASSWORD not in repr(source_in) and PASSWORD not in source_in.model_dump_json()
    source = service.register_source(session, actor=OFFICER_A, source_in=source_in)
    assert source.secret_encrypted and PASSWORD not in source.secret_encrypted
    assert decrypt_secret(source.secret_encrypted) == PASSWORD
    session.expire_all()
    row = session.execute(select(DataSource.__table__)).one()._asdict()
    assert all(PASSWORD not in str(v) for v in row.values())

    read = DataSourceRead.model_validate(source)
    dumped = read.model_dump_json()
    assert read.has_secret is True
    assert PASSWORD not in dumped and source.secret_encrypted not in dumped
    assert "secret" not in DataSourceRead.model_fields and "password" not in DataSourceRead.model_fields
    assert read.port == 5432 and read.kind_label == "PostgreSQL"
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.name == "lake.source_registered")).all()
    assert [e.payload["source_id"] for e in events] == [source.id]


def test_only_officers_of_the_owning_org_or_admins_register(session: Session) -> None:
    for actor in (OFFICER_B, USER_A):
        with pytest.raises(Forbidden) as exc:
            service.register_source(session, actor=actor, source_in=_pg_in())
        assert exc.value.code == "lake.forbidden"
    assert session.scalar(select(DataSource.id)) is None
    by_admin = service.register_source(session, actor=ADMIN, source_in=_pg_in(owner_org_id=ORG_B))
    assert by_admin.owner_org_id == ORG_B
    own = service.register_source(session, actor=OFFICER_A, source_in=_pg_in(owner_org_id=None))
    assert own.owner_org_id == ORG_A
    with pytest.raises(Conflict) as dup:
        service.register_source(session, actor=OFFICER_A, source_in=_pg_in())
    assert dup.value.code == "lake.duplicate_name"


def test_kind_specific_fields_are_validated(session: Session, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as exc:
        service.register_source(
            session,
            actor=OFFICER_A,
            source_in=_pg_in(host=None, database="", username=None),
            data_dir=data_dir,
        )
    assert {e.field for e in exc.value.errors} == {"host", "database", "username"}

    with pytest.raises(ValidationFailed) as no_path:
        service.register_source(
            session, actor=OFFICER_A, source_in=DataSourceIn(name="文件", kind="csv"), data_dir=data_dir
        )
    assert [e.field for e in no_path.value.errors] == ["options.path"]

    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n1\n")
    outside_in = DataSourceIn.model_validate({"name": "外部文件", "kind": "csv", "options": {"path": str(outside)}})
    with pytest.raises(ValidationFailed) as confined:
        service.register_source(session, actor=OFFICER_A, source_in=outside_in, data_dir=data_dir)
    assert confined.value.errors[0].field == "options.path" and "上传区" in confined.value.errors[0].message
    # An administrator may register a server path (the demo's source files, a mounted 前置库 share).
    assert service.register_source(
        session,
        actor=ADMIN,
        source_in=outside_in.model_copy(update={"owner_org_id": ORG_A}),
        data_dir=data_dir,
    )

    sneaky = _upload_path(data_dir, ORG_A, "x.csv")
    sneaky.write_text("a\n1\n")
    traversal = str(data_dir / "uploads" / ORG_A / ".." / ".." / ".." / "elsewhere.csv")
    with pytest.raises(ValidationFailed):
        service.register_source(
            session,
            actor=OFFICER_A,
            source_in=DataSourceIn.model_validate({"name": "穿越", "kind": "csv", "options": {"path": traversal}}),
            data_dir=data_dir,
        )
    xlsx_named_csv = DataSourceIn.model_validate({"name": "错类型", "kind": "xlsx", "options": {"path": str(sneaky)}})
    with pytest.raises(ValidationFailed) as ext:
        service.register_source(session, actor=OFFICER_A, source_in=xlsx_named_csv, data_dir=data_dir)
    assert "扩展名" in ext.value.errors[0].message
    with pytest.raises(ValueError):
        DataSourceIn.model_validate({"name": "x", "kind": "csv", "options": {"encoding": "no-such-codec"}})
    with pytest.raises(ValueError):
        DataSourceIn.model_validate({"name": "x", "kind": "oracle"})


def test_lists_and_gets_are_scoped_to_the_org(session: Session) -> None:
    a = service.register_source(session, actor=OFFICER_A, source_in=_pg_in(name="甲库"))
    b = service.register_source(session, actor=OFFICER_B, source_in=_pg_in(name="乙库", owner_org_id=ORG_B))
    assert [s.id for s in service.list_sources(session, actor=ADMIN)] == [a.id, b.id]
    assert [s.id for s in service.list_sources(session, actor=OFFICER_A)] == [a.id]
    assert [s.id for s in service.list_sources(session, actor=USER_A)] == [a.id]
    assert [s.id for s in service.list_sources(session, actor=OFFICER_B)] == [b.id]
    assert service.get_source(session, actor=USER_A, source_id=a.id) is a
    with pytest.raises(NotFound) as exc:
        service.get_source(session, actor=OFFICER_B, source_id=a.id)
    assert exc.value.code == "lake.source_not_found"
    with pytest.raises(Forbidden):
        service.delete_source(session, actor=USER_A, source_id=a.id)
    with pytest.raises(NotFound):
        service.update_source(session, actor=OFFICER_B, source_id=a.id, source_in=DataSourceUpdate(name="夺"))


@pytest.mark.mariadb
def test_test_source_records_the_outcome(session: Session, my_db: str) -> None:
    good = service.register_source(
        session,
        actor=OFFICER_A,
        source_in=DataSourceIn.model_validate({"name": "好库", "kind": "mysql", **{**MY, "database": my_db}}),
    )
    bad = service.register_source(
        session,
        actor=OFFICER_A,
        source_in=DataSourceIn.model_validate({"name": "坏库", "kind": "mysql", **MY, "password": PASSWORD}),
    )
    assert service.test_source(session, actor=OFFICER_A, source_id=good.id).last_check_ok is True
    checked = service.test_source(session, actor=OFFICER_A, source_id=bad.id)
    assert checked.last_check_ok is False and checked.last_checked_at is not None
    assert "用户名或口令错误" in (checked.last_check_message or "")
    assert PASSWORD not in (checked.last_check_message or "")
    with pytest.raises(Forbidden):
        service.test_source(session, actor=USER_A, source_id=good.id)

    tables = service.list_source_tables(session, actor=OFFICER_A, source_id=good.id)
    assert [t.name for t in tables] == ["qydj", "qydj_v"]
    described = service.describe_table(session, actor=OFFICER_A, source_id=good.id, table="qydj")
    assert TableDescriptionRead.model_validate(described).model_dump(by_alias=True)["table"]["schema"] == my_db
    items = [ItemSpec("企业名称", None, "C", 100), ItemSpec("注册资本", "zczb", "N", 14)]
    assert check_items_against_table(items, described).ok


def test_update_and_delete(session: Session) -> None:
    source = service.register_source(session, actor=OFFICER_A, source_in=_pg_in())
    source.last_check_ok = True
    first_token = source.secret_encrypted
    updated = service.update_source(
        session,
        actor=OFFICER_A,
        source_id=source.id,
        source_in=DataSourceUpdate(password="new-pw-7731", port=5433),
    )
    assert updated.secret_encrypted != first_token and decrypt_secret(updated.secret_encrypted or "") == "new-pw-7731"
    assert updated.port == 5433 and updated.last_check_ok is None
    kept = service.update_source(
        session, actor=OFFICER_A, source_id=source.id, source_in=DataSourceUpdate(description="说明")
    )
    assert decrypt_secret(kept.secret_encrypted or "") == "new-pw-7731" and kept.description == "说明"
    cleared = service.update_source(
        session, actor=OFFICER_A, source_id=source.id, source_in=DataSourceUpdate(clear_password=True)
    )
    assert cleared.secret_encrypted is None and not DataSourceRead.model_validate(cleared).has_secret
    with pytest.raises(ValidationFailed):
        service.update_source(session, actor=OFFICER_A, source_id=source.id, source_in=DataSourceUpdate(host=""))
    other = service.register_source(session, actor=OFFICER_A, source_in=_pg_in(name="另一库"))
    with pytest.raises(Conflict):
        service.update_source(
            session, actor=OFFICER_A, source_id=other.id, source_in=DataSourceUpdate(name="市场监管前置库")
        )
    service.delete_source(session, actor=OFFICER_A, source_id=other.id)
    assert [s.name for s in service.list_sources(session, actor=OFFICER_A)] == ["市场监管前置库"]


# ------------------------------------------------------------------------------------------------ uploads


def test_save_upload_checks_and_confines_files(data_dir: Path) -> None:
    content = "企业名称,注册资本\n甲公司,10\n".encode()
    saved = service.save_upload(data_dir=data_dir, org_id=ORG_A, filename="../../企业 名单(2024).CSV", content=content)
    assert saved.parent == data_dir / "uploads" / ORG_A
    assert saved.suffix == ".csv" and "企业_名单_2024" in saved.name
    assert saved.read_bytes() == content
    again = service.save_upload(data_dir=data_dir, org_id=ORG_A, filename="企业 名单(2024).csv", content=content)
    assert again != saved  # never overwrites

    bad = [
        ({"filename": "x.exe", "content": b"MZ"}, "只能上传"),
        ({"filename": "x.csv", "content": b""}, "为空"),
        ({"filename": "x.csv", "content": b"a" * 101, "max_bytes": 100}, "上限"),
        ({"filename": "x.xlsx", "content": b"not a zip"}, "XLSX"),
        ({"filename": "x.parquet", "content": b"PAR1...."}, "Parquet"),
        ({"filename": "x.csv", "content": b"a,b\x00\x01"}, "CSV"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValidationFailed) as exc:
            service.save_upload(data_dir=data_dir, org_id=ORG_A, **kwargs)  # type: ignore[arg-type]
        assert exc.value.errors[0].field == "file" and message in exc.value.errors[0].message
    with pytest.raises(ValidationFailed):
        service.save_upload(data_dir=data_dir, org_id="../evil", filename="x.csv", content=content)
    assert sorted(p.name for p in (data_dir / "uploads").iterdir()) == [ORG_A]


def test_uploaded_file_registered_described_and_checked(session: Session, data_dir: Path) -> None:
    text = "统一社会信用代码,企业名称,成立日期\n91360100MA35XXXX1A,南昌甲科技有限公司,2020-03-01\n"
    saved = service.save_upload(data_dir=data_dir, org_id=ORG_A, filename="qy.csv", content=text.encode("gbk"))
    source = service.register_source(
        session,
        actor=OFFICER_A,
        source_in=DataSourceIn.model_validate({"name": "企业名单", "kind": "csv", "options": {"path": str(saved)}}),
        data_dir=data_dir,
    )
    assert not source.has_secret
    tables = service.list_source_tables(session, actor=OFFICER_A, source_id=source.id)
    assert tables == [TableRef(None, saved.name)]
    described = service.describe_table(session, actor=OFFICER_A, source_id=source.id, table=tables[0])
    assert described.row_count == 1
    check = check_items_against_table(
        [
            ItemSpec("统一社会信用代码", None, "C", 18),
            ItemSpec("企业名称", None, "C", 5),
            ItemSpec("成立日期", None, "D"),
        ],
        described,
    )
    assert [(p.kind, p.item) for p in check.problems] == [("length_exceeded", "企业名称")]
    tested = service.test_source(session, actor=OFFICER_A, source_id=source.id)
    assert tested.last_check_ok is True

    sqlite_path = _sqlite_file(_upload_path(data_dir, ORG_A, "rk.sqlite"))
    db_source = service.register_source(
        session,
        actor=OFFICER_A,
        source_in=DataSourceIn.model_validate(
            {"name": "人口库", "kind": "sqlite", "options": {"path": str(sqlite_path)}}
        ),
        data_dir=data_dir,
    )
    assert service.describe_table(session, actor=OFFICER_A, source_id=db_source.id, table="rk").row_count == 4
    with pytest.raises(Forbidden):
        service.describe_table(session, actor=USER_A, source_id=db_source.id, table="rk")
