"""Read-only connectors to registered data sources: one small class per kind behind one protocol.

Every connector is safe by construction: it opens the source read-only (PostgreSQL
``default_transaction_read_only``, MySQL ``SET SESSION TRANSACTION READ ONLY``, SQLite ``mode=ro``, DuckDB
``read_only``), bounds connects and statements by ``timeout_s``, quotes every identifier and never puts user
input into SQL other than as a quoted identifier or a bound parameter. Errors become
:class:`ConnectionFailed` / :class:`QueryFailed` with Chinese messages from which the password is removed.

A connector never sees the ORM or the crypto module: ``lake.service.connector_for`` decrypts the secret and
builds a :class:`SourceConfig`.
"""

from __future__ import annotations

import codecs
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from zhengshu.core.errors import NotFound, ValidationFailed, ZhengshuError
from zhengshu.lake import typemap

DEFAULT_TIMEOUT_S = 10.0
# Naive times in department databases are Beijing time (no DST since 1991, so a fixed offset is exact).
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
BASIS_UNKNOWN = "未知"
BASIS_FILE_MTIME = "文件修改时间"
_FETCH_BATCH = 10_000
_SNIFF_BYTES = 1 << 20

SERVER_KINDS = frozenset({"postgresql", "mysql"})
FILE_DB_KINDS = frozenset({"sqlite", "duckdb"})
FILE_KINDS = frozenset({"csv", "xlsx", "parquet"})
KINDS = SERVER_KINDS | FILE_DB_KINDS | FILE_KINDS


class ConnectionFailed(ZhengshuError):
    status = 502
    code = "lake.connection_failed"
    title = "无法连接数据源"


class QueryFailed(ZhengshuError):
    status = 502
    code = "lake.query_failed"
    title = "读取数据源失败"


class TableNotFound(NotFound):
    code = "lake.table_not_found"
    title = "数据源中没有该表"


@dataclass(frozen=True)
class SourceConfig:
    """What a connector needs; ``password`` is plaintext and kept out of ``repr``."""

    kind: str
    name: str = ""
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def timeout_s(self) -> float:
        value = self.options.get("timeout_s")
        return float(value) if value else DEFAULT_TIMEOUT_S

    @property
    def max_rows(self) -> int | None:
        value = self.options.get("max_rows")
        return int(value) if value else None

    @property
    def path(self) -> Path | None:
        value = self.options.get("path")
        return Path(value) if value else None


@dataclass(frozen=True)
class TableRef:
    schema: str | None
    name: str
    kind: str = "table"  # table | view

    @classmethod
    def of(cls, value: TableRef | str) -> TableRef:
        return value if isinstance(value, TableRef) else cls(schema=None, name=value)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    native_type: str
    type_code: str
    length: int | None
    nullable: bool
    comment: str | None = None


@dataclass(frozen=True)
class TableDescription:
    table: TableRef
    columns: list[ColumnInfo]
    row_count: int
    last_updated: datetime | None
    last_updated_basis: str


@runtime_checkable
class Connector(Protocol):
    config: SourceConfig

    def test(self) -> None: ...

    def list_tables(self) -> list[TableRef]: ...

    def describe(self, table: TableRef | str) -> TableDescription: ...

    def read_arrow(
        self, table: TableRef | str, columns: list[str] | None = None, limit: int | None = None
    ) -> pa.Table: ...


# ---------------------------------------------------------------------------------------------- helpers


def scrub(text: str, *secrets: str | None) -> str:
    """Remove secrets from a driver message before it reaches a user or a log."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "******")
    return text


def _as_aware(value: Any) -> datetime | None:
    """A column's max value as an aware datetime; naive values are Beijing time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=CHINA_TZ)
    return None


def _file_mtime(*paths: Path) -> datetime | None:
    times = [p.stat().st_mtime for p in paths if p.exists()]
    return datetime.fromtimestamp(max(times), UTC) if times else None


def _to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _to_bool(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "big") != 0
    if isinstance(value, int):
        return value != 0
    return value


# Common driver messages → what a department's officer should check.
_HINTS = (
    (("access denied", "password authentication failed", "authentication failed"), "用户名或口令错误"),
    (("does not exist", "unknown database"), "数据库不存在"),
    (("connection refused", "can't connect", "could not connect", "no route"), "服务器地址或端口不可达"),
    (("timeout", "timed out"), "连接超时"),
    (("could not translate host name", "name or service not known", "nodename"), "服务器地址无法解析"),
)


def _hint(reason: str) -> str:
    lowered = reason.lower()
    return next((hint for needles, hint in _HINTS if any(n in lowered for n in needles)), "连接失败")


def _column_array(values: list[Any], column: ColumnInfo | None) -> pa.Array:
    """Values from a driver → one Arrow array, typed from the column's code when that is safe."""
    preferred: pa.DataType | None = None
    if column is not None:
        args = typemap.type_args(column.native_type)
        scale = args[1] if len(args) > 1 else (0 if len(args) == 1 else None)
        preferred = typemap.code_to_arrow(column.type_code, column.length, scale)
        if column.type_code in {"C", "M"}:
            values = [_to_text(v) for v in values]
        elif column.type_code == "L":  # MySQL tinyint(1) gives 0/1, bit(1) gives b"\x01"
            values = [_to_bool(v) for v in values]
        elif column.type_code == "G":
            values = [bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in values]
    for attempt in (preferred, None):
        try:
            return pa.array(values, type=attempt) if attempt is not None else pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            continue
    return pa.array([_to_text(v) for v in values], type=pa.string())


def _effective_limit(config: SourceConfig, limit: int | None) -> int | None:
    bounds = [n for n in (limit, config.max_rows) if n is not None]
    if any(n < 0 for n in bounds):
        raise ValidationFailed("读取行数不能为负数", code="lake.invalid_limit")
    return min(bounds) if bounds else None


def _select_columns(available: Sequence[ColumnInfo], wanted: list[str] | None) -> list[ColumnInfo]:
    if wanted is None:
        return list(available)
    by_name = {c.name: c for c in available}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValidationFailed(f"表中没有这些字段：{'、'.join(unknown)}", code="lake.unknown_column")
    return [by_name[w] for w in wanted]


def _updated_column(config: SourceConfig, ref: TableRef) -> str | None:
    """The ``updated_column`` option: one name for every table, or a mapping by table name."""
    option = config.options.get("updated_column")
    if isinstance(option, str):
        return option or None
    if isinstance(option, Mapping):
        value = option.get(ref.qualified_name) or option.get(ref.name)
        return str(value) if value else None
    return None


# ------------------------------------------------------------------------------------------ SQL sources


class _SqlConnector:
    """Shared logic of the database connectors; subclasses supply the dialect."""

    kind: ClassVar[str]
    dialect: ClassVar[str]
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    # -- dialect hooks
    def connection(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _list_tables(self, conn: Any) -> list[TableRef]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _default_schema(self) -> str | None:
        return None

    def _fallback_last_updated(self, conn: Any, ref: TableRef) -> tuple[datetime | None, str]:
        return None, BASIS_UNKNOWN

    @staticmethod
    def quote(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    # -- shared
    def qualified(self, ref: TableRef) -> str:
        return f"{self.quote(ref.schema)}.{self.quote(ref.name)}" if ref.schema else self.quote(ref.name)

    def _resolve(self, table: TableRef | str) -> TableRef:
        ref = TableRef.of(table)
        if ref.schema is None and self._default_schema() is not None:
            ref = TableRef(schema=self._default_schema(), name=ref.name, kind=ref.kind)
        return ref

    def _connection_failed(self, exc: BaseException) -> ConnectionFailed:
        reason = scrub(str(exc).strip(), self.config.password) or type(exc).__name__
        label = f"“{self.config.name}”" if self.config.name else ""
        return ConnectionFailed(f"无法连接数据源{label}：{_hint(reason)}（{reason}）")

    def _query_failed(self, exc: BaseException) -> QueryFailed:
        reason = scrub(str(exc).strip(), self.config.password) or type(exc).__name__
        return QueryFailed(f"读取数据源失败（可能超时或无权限）：{reason}")

    def _fetch(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql, params) if params else cur.execute(sql)
                return list(cur.fetchall())
            finally:
                cur.close()
        except self.driver_errors as exc:
            raise self._query_failed(exc) from None

    def _scalar(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._fetch(conn, sql, params)
        return rows[0][0] if rows else None

    def _require_columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:
        columns = self._columns(conn, ref)
        if not columns:
            raise TableNotFound(f"数据源中没有表“{ref.qualified_name}”")
        return columns

    def test(self) -> None:
        with self.connection() as conn:
            self._scalar(conn, "SELECT 1")

    def list_tables(self) -> list[TableRef]:
        with self.connection() as conn:
            return self._list_tables(conn)

    def describe(self, table: TableRef | str) -> TableDescription:
        ref = self._resolve(table)
        with self.connection() as conn:
            columns = self._require_columns(conn, ref)
            kind = next(
                (t.kind for t in self._list_tables(conn) if (t.schema, t.name) == (ref.schema, ref.name)),
                "table",
            )
            row_count = int(self._scalar(conn, f"SELECT COUNT(*) FROM {self.qualified(ref)}") or 0)
            last_updated, basis = self._last_updated(conn, ref, columns)
        return TableDescription(
            table=TableRef(ref.schema, ref.name, kind),
            columns=columns,
            row_count=row_count,
            last_updated=last_updated,
            last_updated_basis=basis,
        )

    def _last_updated(self, conn: Any, ref: TableRef, columns: list[ColumnInfo]) -> tuple[datetime | None, str]:
        column = _updated_column(self.config, ref)
        if column and any(c.name == column for c in columns):
            value = self._scalar(conn, f"SELECT MAX({self.quote(column)}) FROM {self.qualified(ref)}")
            return _as_aware(value), f"字段 {column} 的最大值"
        return self._fallback_last_updated(conn, ref)

    def read_arrow(self, table: TableRef | str, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        ref = self._resolve(table)
        n = _effective_limit(self.config, limit)
        with self.connection() as conn:
            selected = _select_columns(self._require_columns(conn, ref), columns)
            sql = f"SELECT {', '.join(self.quote(c.name) for c in selected)} FROM {self.qualified(ref)}"
            if n is not None:
                sql += f" LIMIT {int(n)}"
            return self._read(conn, sql, selected)

    def _read(self, conn: Any, sql: str, selected: list[ColumnInfo]) -> pa.Table:
        data: list[list[Any]] = [[] for _ in selected]
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql)
                while batch := cur.fetchmany(_FETCH_BATCH):
                    for row in batch:
                        for i, value in enumerate(row):
                            data[i].append(value)
            finally:
                cur.close()
        except self.driver_errors as exc:
            raise self._query_failed(exc) from None
        arrays = [_column_array(values, col) for values, col in zip(data, selected, strict=True)]
        return pa.Table.from_arrays(arrays, names=[c.name for c in selected])


class PostgresConnector(_SqlConnector):
    kind = "postgresql"
    dialect = "postgresql"

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        import psycopg

        self.driver_errors = (psycopg.Error,)

    def _default_schema(self) -> str | None:
        return str(self.config.options.get("schema") or "public")

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A raw connection, read-only for every transaction and bounded by ``statement_timeout``."""
        import psycopg

        timeout_ms = int(self.config.timeout_s * 1000)
        try:
            conn = psycopg.connect(
                host=self.config.host,
                port=self.config.port or 5432,
                dbname=self.config.database,
                user=self.config.username,
                password=self.config.password or None,
                connect_timeout=max(2, math.ceil(self.config.timeout_s)),
                options=f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
                application_name="zhengshu-lake",
            )
        except (psycopg.Error, OSError, ValueError) as exc:
            raise self._connection_failed(exc) from None
        try:
            yield conn
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()

    def _list_tables(self, conn: Any) -> list[TableRef]:
        sql = (
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        params: list[Any] = []
        if self.config.options.get("schema"):
            sql += " AND table_schema = %s"
            params.append(self.config.options["schema"])
        rows = self._fetch(conn, sql + " ORDER BY table_schema, table_name", params)
        return [TableRef(s, n, "view" if t == "VIEW" else "table") for s, n, t in rows]

    def _columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:
        rows = self._fetch(
            conn,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, "
            "col_description(a.attrelid, a.attnum) "
            "FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'v', 'm', 'p', 'f') "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [ref.schema, ref.name],
        )
        result = []
        for name, native, nullable, comment in rows:
            code, length = typemap.postgres_type(native)
            result.append(ColumnInfo(name, native, code, length, bool(nullable), comment or None))
        return result


class MySQLConnector(_SqlConnector):
    kind = "mysql"
    dialect = "mysql"

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        import pymysql

        self.driver_errors = (pymysql.err.MySQLError,)

    @staticmethod
    def quote(identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def _default_schema(self) -> str | None:
        return str(self.config.options.get("schema") or self.config.database or "") or None

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A raw connection whose session is read-only, with read/write and statement timeouts."""
        import pymysql

        timeout = max(1, math.ceil(self.config.timeout_s))
        try:
            conn = pymysql.connect(
                host=self.config.host,
                port=self.config.port or 3306,
                user=self.config.username,
                password=(self.config.password or "").encode("utf-8"),  # pymysql would encode as latin-1
                database=self.config.database,
                charset="utf8mb4",
                connect_timeout=timeout,
                read_timeout=timeout,
                write_timeout=timeout,
                autocommit=False,
            )
        except (pymysql.err.MySQLError, OSError, ValueError) as exc:
            raise self._connection_failed(exc) from None
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                try:  # MariaDB: seconds
                    cur.execute("SET SESSION max_statement_time = %s", (float(self.config.timeout_s),))
                except pymysql.err.MySQLError:
                    with suppress(pymysql.err.MySQLError):  # MySQL: milliseconds, SELECT only
                        cur.execute("SET SESSION max_execution_time = %s", (int(self.config.timeout_s * 1000),))
        except pymysql.err.MySQLError as exc:
            conn.close()
            raise self._connection_failed(exc) from None
        try:
            yield conn
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()

    def _list_tables(self, conn: Any) -> list[TableRef]:
        rows = self._fetch(
            conn,
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            [self._default_schema()],
        )
        return [TableRef(s, n, "view" if t == "VIEW" else "table") for s, n, t in rows]

    def _columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:
        rows = self._fetch(
            conn,
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            [ref.schema, ref.name],
        )
        result = []
        for name, native, nullable, comment in rows:
            code, length = typemap.mysql_type(native)
            result.append(ColumnInfo(name, native, code, length, nullable == "YES", comment or None))
        return result

    def _fallback_last_updated(self, conn: Any, ref: TableRef) -> tuple[datetime | None, str]:
        # UPDATE_TIME is in the session time zone; the offset from UTC turns it into an aware time.
        rows = self._fetch(
            conn,
            "SELECT UPDATE_TIME, TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            [ref.schema, ref.name],
        )
        if not rows or rows[0][0] is None:
            return None, BASIS_UNKNOWN
        value, offset = rows[0]
        tz = timezone(timedelta(seconds=round(int(offset) / 60) * 60))
        return value.replace(tzinfo=tz).astimezone(UTC), "information_schema.TABLES.UPDATE_TIME"


class SQLiteConnector(_SqlConnector):
    kind = "sqlite"
    dialect = "sqlite"
    driver_errors = (sqlite3.Error,)

    def _path(self) -> Path:
        path = self.config.path
        if path is None or not path.is_file():
            raise ConnectionFailed(f"数据库文件不存在：{path.name if path else '未指定路径'}")
        return path

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A raw connection opened with ``mode=ro``; a progress handler aborts statements past the timeout."""
        path = self._path()
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.config.timeout_s)
        except sqlite3.Error as exc:
            raise self._connection_failed(exc) from None
        deadline = time.monotonic() + self.config.timeout_s
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        try:
            yield conn
        finally:
            conn.close()

    def _list_tables(self, conn: Any) -> list[TableRef]:
        rows = self._fetch(
            conn,
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        return [TableRef(None, n, t) for n, t in rows]

    def _columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:
        rows = self._fetch(conn, 'SELECT name, type, "notnull", pk FROM pragma_table_info(?)', [ref.name])
        result = []
        for name, native, notnull, pk in rows:
            code, length = typemap.sqlite_type(native or "")
            result.append(ColumnInfo(name, native or "", code, length, not notnull and not pk))
        return result

    def _fallback_last_updated(self, conn: Any, ref: TableRef) -> tuple[datetime | None, str]:
        path = self._path()
        return _file_mtime(path, path.with_name(path.name + "-wal")), BASIS_FILE_MTIME


class DuckDBConnector(_SqlConnector):
    kind = "duckdb"
    dialect = "duckdb"

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        import duckdb

        self.driver_errors = (duckdb.Error,)

    def _default_schema(self) -> str | None:
        return str(self.config.options.get("schema") or "main")

    def _path(self) -> Path:
        path = self.config.path
        if path is None or not path.is_file():
            raise ConnectionFailed(f"数据库文件不存在：{path.name if path else '未指定路径'}")
        return path

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A raw ``read_only`` connection; a timer interrupts statements past the timeout."""
        import duckdb

        path = self._path()
        try:
            conn = duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            raise self._connection_failed(exc) from None
        timer = threading.Timer(self.config.timeout_s, conn.interrupt)
        timer.daemon = True
        timer.start()
        try:
            yield conn
        finally:
            timer.cancel()
            conn.close()

    def _fetch(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(conn.execute(sql, list(params)).fetchall())
        except self.driver_errors as exc:
            raise self._query_failed(exc) from None

    def _list_tables(self, conn: Any) -> list[TableRef]:
        rows = self._fetch(
            conn,
            "SELECT schema_name, table_name, 'table' FROM duckdb_tables() "
            "WHERE database_name = current_database() AND NOT internal "
            "UNION ALL SELECT schema_name, view_name, 'view' FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY 1, 2",
        )
        return [TableRef(s, n, k) for s, n, k in rows]

    def _columns(self, conn: Any, ref: TableRef) -> list[ColumnInfo]:
        rows = self._fetch(
            conn,
            "SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "ORDER BY column_index",
            [ref.schema, ref.name],
        )
        result = []
        for name, native, nullable, comment in rows:
            code, length = typemap.duckdb_type(native)
            result.append(ColumnInfo(name, native, code, length, bool(nullable), comment or None))
        return result

    def _fallback_last_updated(self, conn: Any, ref: TableRef) -> tuple[datetime | None, str]:
        path = self._path()
        return _file_mtime(path, path.with_name(path.name + ".wal")), BASIS_FILE_MTIME

    def _read(self, conn: Any, sql: str, selected: list[ColumnInfo]) -> pa.Table:
        try:
            return conn.sql(sql).to_arrow_table()
        except self.driver_errors as exc:
            raise self._query_failed(exc) from None


# ----------------------------------------------------------------------------------------- file sources


class _FileConnector:
    """A file is one table (an XLSX workbook: one table per sheet); last update is the file's mtime."""

    kind: ClassVar[str]

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def _path(self) -> Path:
        path = self.config.path
        if path is None or not path.is_file():
            raise ConnectionFailed(f"文件不存在：{path.name if path else '未指定路径'}")
        return path

    def _failed(self, exc: BaseException) -> QueryFailed:
        return QueryFailed(f"无法读取文件“{self._path().name}”：{scrub(str(exc), self.config.password)}")

    def _check_name(self, table: TableRef | str) -> TableRef:
        ref = TableRef.of(table)
        path = self._path()
        if ref.name not in {path.name, path.stem}:
            raise TableNotFound(f"文件数据源中没有“{ref.name}”")
        return TableRef(None, path.name)

    def list_tables(self) -> list[TableRef]:
        return [TableRef(None, self._path().name)]

    def test(self) -> None:
        self._schema()

    def _schema(self) -> pa.Schema:  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def _columns_from(schema: pa.Schema, lengths: Mapping[str, int] | None = None) -> list[ColumnInfo]:
        result = []
        for f in schema:
            code, length = typemap.arrow_type(f.type)
            if lengths and f.name in lengths:
                length = lengths[f.name] or None
            result.append(ColumnInfo(f.name, str(f.type), code, length, f.nullable))
        return result


def _string_lengths(batch: pa.RecordBatch | pa.Table, into: dict[str, int]) -> None:
    """Track the longest value (in characters) of each string column: files declare no lengths."""
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            longest = pc.max(pc.utf8_length(col)).as_py()
            if longest is not None:
                into[f.name] = max(into.get(f.name, 0), int(longest))


class CsvConnector(_FileConnector):
    kind = "csv"

    def _encoding(self) -> str:
        """The ``encoding`` option, else UTF-8 when the start of the file decodes, else GB18030 (⊃ GBK)."""
        configured = self.config.options.get("encoding")
        if configured:
            return str(configured)
        with self._path().open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
            return "utf-8"
        except UnicodeDecodeError:
            return "gb18030"

    def _reader(self) -> Any:
        import pyarrow.csv as pacsv

        path = self._path()
        text_columns = self.config.options.get("text_columns") or []
        try:
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=self._encoding(), block_size=4 << 20),
                parse_options=pacsv.ParseOptions(delimiter=str(self.config.options.get("delimiter") or ",")),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns}),
            )
            _ = reader.schema.names  # header names decode lazily: fail here on a wrong encoding
            return reader
        except (pa.ArrowException, UnicodeError, LookupError, OSError) as exc:
            raise self._failed(exc) from None

    def _schema(self) -> pa.Schema:
        return self._reader().schema

    def describe(self, table: TableRef | str) -> TableDescription:
        ref = self._check_name(table)
        reader = self._reader()
        rows = 0
        lengths: dict[str, int] = {}
        try:
            for batch in reader:
                rows += batch.num_rows
                _string_lengths(batch, lengths)
        except (pa.ArrowException, UnicodeError) as exc:
            raise self._failed(exc) from None
        return TableDescription(
            table=ref,
            columns=self._columns_from(reader.schema, lengths),
            row_count=rows,
            last_updated=_file_mtime(self._path()),
            last_updated_basis=BASIS_FILE_MTIME,
        )

    def read_arrow(self, table: TableRef | str, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        self._check_name(table)
        n = _effective_limit(self.config, limit)
        reader = self._reader()
        selected = _select_columns(self._columns_from(reader.schema), columns)
        batches: list[pa.RecordBatch] = []
        taken = 0
        try:
            for batch in reader:
                if n is not None and taken >= n:
                    break
                if n is not None and taken + batch.num_rows > n:
                    batch = batch.slice(0, n - taken)
                batches.append(batch)
                taken += batch.num_rows
        except (pa.ArrowException, UnicodeError) as exc:
            raise self._failed(exc) from None
        result = pa.Table.from_batches(batches, schema=reader.schema)
        return result.select([c.name for c in selected])


class ParquetConnector(_FileConnector):
    kind = "parquet"

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self._path())
        except (pa.ArrowException, OSError) as exc:
            raise self._failed(exc) from None

    def _schema(self) -> pa.Schema:
        return self._file().schema_arrow

    def describe(self, table: TableRef | str) -> TableDescription:
        ref = self._check_name(table)
        pf = self._file()
        return TableDescription(
            table=ref,
            columns=self._columns_from(pf.schema_arrow),
            row_count=pf.metadata.num_rows,
            last_updated=_file_mtime(self._path()),
            last_updated_basis=BASIS_FILE_MTIME,
        )

    def read_arrow(self, table: TableRef | str, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        self._check_name(table)
        n = _effective_limit(self.config, limit)
        pf = self._file()
        selected = [c.name for c in _select_columns(self._columns_from(pf.schema_arrow), columns)]
        schema = pa.schema([pf.schema_arrow.field(name) for name in selected])
        batches: list[pa.RecordBatch] = []
        taken = 0
        try:
            for batch in pf.iter_batches(batch_size=_FETCH_BATCH, columns=selected):
                if n is not None and taken >= n:
                    break
                if n is not None and taken + batch.num_rows > n:
                    batch = batch.slice(0, n - taken)
                batches.append(batch)
                taken += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise self._failed(exc) from None
        return pa.Table.from_batches(batches, schema=schema)


class XlsxConnector(_FileConnector):
    """Each sheet is a table; its first row holds the column names."""

    kind = "xlsx"

    @contextmanager
    def _workbook(self) -> Iterator[Any]:
        import openpyxl

        try:
            wb = openpyxl.load_workbook(self._path(), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zipfile, KeyError, InvalidFileException …
            raise self._failed(exc) from None
        try:
            yield wb
        finally:
            wb.close()

    def list_tables(self) -> list[TableRef]:
        only = self.config.options.get("sheet")
        with self._workbook() as wb:
            return [TableRef(None, name) for name in wb.sheetnames if not only or name == only]

    def _sheet_name(self, table: TableRef | str) -> str:
        name = TableRef.of(table).name
        if name not in {t.name for t in self.list_tables()}:
            raise TableNotFound(f"工作簿中没有工作表“{name}”")
        return name

    def _sheet_table(self, sheet: str, limit: int | None = None) -> pa.Table:
        with self._workbook() as wb:
            rows = wb[sheet].iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                return pa.table({})
            names = _unique_headers(header)
            data: list[list[Any]] = [[] for _ in names]
            count = 0
            for row in rows:
                if limit is not None and count >= limit:
                    break
                if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                    continue  # blank rows trail many hand-made sheets
                for i in range(len(names)):
                    data[i].append(row[i] if i < len(row) else None)
                count += 1
        return pa.Table.from_arrays([_excel_array(values) for values in data], names=names)

    def _schema(self) -> pa.Schema:
        tables = self.list_tables()
        if not tables:
            raise QueryFailed("工作簿中没有可读的工作表")
        return self._sheet_table(tables[0].name, limit=100).schema

    def describe(self, table: TableRef | str) -> TableDescription:
        sheet = self._sheet_name(table)
        data = self._sheet_table(sheet)
        lengths: dict[str, int] = {}
        _string_lengths(data, lengths)
        return TableDescription(
            table=TableRef(None, sheet),
            columns=self._columns_from(data.schema, lengths),
            row_count=data.num_rows,
            last_updated=_file_mtime(self._path()),
            last_updated_basis=BASIS_FILE_MTIME,
        )

    def read_arrow(self, table: TableRef | str, columns: list[str] | None = None, limit: int | None = None) -> pa.Table:
        sheet = self._sheet_name(table)
        data = self._sheet_table(sheet, limit=_effective_limit(self.config, limit))
        selected = _select_columns(self._columns_from(data.schema), columns)
        return data.select([c.name for c in selected])


def _unique_headers(header: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for i, value in enumerate(header):
        base = str(value).strip() if value is not None and str(value).strip() else f"列{i + 1}"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _excel_array(values: list[Any]) -> pa.Array:
    """Cells of one column → Arrow; date-formatted cells all at midnight become dates, mixed cells text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, datetime) and v.time() == datetime.min.time() for v in present):
        return pa.array([v.date() if v is not None else None for v in values], type=pa.date32())
    if present and all(isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return pa.array(values, type=pa.int64())
        return pa.array([float(v) if v is not None else None for v in values], type=pa.float64())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.array([_to_text(v) for v in values], type=pa.string())


_CONNECTORS: dict[str, type[Any]] = {
    "postgresql": PostgresConnector,
    "mysql": MySQLConnector,
    "sqlite": SQLiteConnector,
    "duckdb": DuckDBConnector,
    "csv": CsvConnector,
    "xlsx": XlsxConnector,
    "parquet": ParquetConnector,
}


def make_connector(config: SourceConfig) -> Connector:
    """The connector for ``config.kind``."""
    try:
        cls = _CONNECTORS[config.kind]
    except KeyError:
        raise ValidationFailed(f"不支持的数据源类型：{config.kind}", code="lake.unsupported_kind") from None
    connector: Connector = cls(config)
    return connector
