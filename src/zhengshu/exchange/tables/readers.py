"""Reading the source as a stream of Arrow batches, ordered so a run can resume after its checkpoint.

PostgreSQL and MySQL/MariaDB are read with ConnectorX (Arrow straight from the wire, streamed in batches, the
session read-only); SQLite, DuckDB and files are read through the lake's read-only connectors and ordered
by an in-memory DuckDB. Both paths run the same SQL: the authorized columns (plus the cursor), a resume
predicate built from checkpointed values, and an ORDER BY that makes batches deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from zhengshu.core.errors import ZhengshuError
from zhengshu.exchange.tables.plan import SyncSpec, quote_ident, sql_literal
from zhengshu.lake.connectors import (
    SERVER_KINDS,
    ColumnInfo,
    QueryFailed,
    SourceConfig,
    TableRef,
    make_connector,
    scrub,
)

READ_ONLY = {
    "postgresql": ["SET default_transaction_read_only = on"],
    "mysql": ["SET SESSION TRANSACTION READ ONLY"],
}


def connectorx_url(config: SourceConfig) -> str:
    scheme = "postgresql" if config.kind == "postgresql" else "mysql"
    port = config.port or (5432 if config.kind == "postgresql" else 3306)
    auth = quote(config.username or "", safe="")
    if config.password:
        auth += ":" + quote(config.password, safe="")
    return f"{scheme}://{auth}@{config.host}:{port}/{quote(config.database or '', safe='')}"


def source_columns(config: SourceConfig, table: TableRef) -> list[ColumnInfo]:
    """The source table's columns without counting its rows (``describe`` counts: costly on big tables)."""
    connector: Any = make_connector(config)
    if hasattr(connector, "_require_columns"):
        ref = connector._resolve(table)
        with connector.connection() as conn:
            return list(connector._require_columns(conn, ref))
    return list(connector.describe(table).columns)


class SourceReader:
    """Builds the SQL for a run and streams its batches."""

    def __init__(self, spec: SyncSpec) -> None:
        self.spec = spec
        self.server = spec.source.kind in SERVER_KINDS
        self.dialect = spec.source.kind if self.server else "duckdb"
        names = [c.source for c in spec.columns]
        if spec.cursor and spec.cursor not in names:
            names.append(spec.cursor)
        self.read_columns = list(dict.fromkeys(names))

    def q(self, name: str) -> str:
        return quote_ident(self.dialect, name)

    def _from(self) -> str:
        if not self.server:
            return "src"
        ref = self.spec.source_table
        schema = ref.schema or self.spec.source.options.get("schema")
        if self.spec.source.kind == "postgresql":
            schema = schema or "public"
        return f"{self.q(schema)}.{self.q(ref.name)}" if schema else self.q(ref.name)

    def _key_after(self, keys: list[str], values: list[Any]) -> str:
        lits = [sql_literal(self.dialect, v) for v in values]
        if len(keys) == 1:
            return f"{self.q(keys[0])} > {lits[0]}"
        return f"({', '.join(self.q(k) for k in keys)}) > ({', '.join(lits)})"

    def sql(self, *, after_key: list[Any] | None = None, after_cursor: Any = None, count: bool = False) -> str:
        keys = [c.source for c in self.spec.key_columns]
        where: list[str] = []
        order = [self.q(k) for k in keys]
        if self.spec.mode == "incremental" and self.spec.cursor:
            cursor = self.q(self.spec.cursor)
            where.append(f"{cursor} IS NOT NULL")
            if after_cursor is not None:
                lit = sql_literal(self.dialect, after_cursor)
                tie = self._key_after(keys, after_key) if after_key is not None else "FALSE"
                # the sargable ">=" lets an index on the cursor serve; ties on the cursor continue by key
                where.append(f"{cursor} >= {lit} AND ({cursor} > {lit} OR {tie})")
            order = [cursor, *order]
        elif after_key is not None:
            where.append(self._key_after(keys, after_key))
        select = "SELECT COUNT(*) AS n" if count else "SELECT " + ", ".join(self.q(c) for c in self.read_columns)
        sql = f"{select} FROM {self._from()}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if not count:
            sql += " ORDER BY " + ", ".join(order)
        return sql

    def _failed(self, exc: BaseException) -> QueryFailed:
        reason = scrub(str(exc).strip(), self.spec.source.password) or type(exc).__name__
        return QueryFailed(f"读取数据源失败：{reason[:500]}")

    def count(self, *, after_key: list[Any] | None = None, after_cursor: Any = None) -> int | None:
        """Rows the run will read, for the progress bar; None when unknown."""
        if not self.server:
            return None
        import connectorx as cx

        try:
            table = cx.read_sql(
                connectorx_url(self.spec.source),
                self.sql(after_key=after_key, after_cursor=after_cursor, count=True),
                return_type="arrow",
            )
        except Exception as exc:  # ConnectorX raises RuntimeError/its own types for every driver error
            raise self._failed(exc) from None
        return int(table.column(0)[0].as_py() or 0)

    def estimate(self) -> int | None:
        """The table's row count from the server's statistics (no scan), for the progress bar."""
        if not self.server:
            return None
        ref = self.spec.source_table
        if self.spec.source.kind == "postgresql":
            schema = ref.schema or self.spec.source.options.get("schema") or "public"
            nsp, rel = sql_literal("postgresql", schema), sql_literal("postgresql", ref.name)
            sql = (
                "SELECT GREATEST(c.reltuples, 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE n.nspname = {nsp} AND c.relname = {rel}"
            )
        else:
            schema = ref.schema or self.spec.source.options.get("schema") or self.spec.source.database or ""
            sql = (
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = {sql_literal('mysql', schema)} AND TABLE_NAME = {sql_literal('mysql', ref.name)}"
            )
        import connectorx as cx

        try:
            table = cx.read_sql(connectorx_url(self.spec.source), sql, return_type="arrow")
        except Exception:  # statistics are a nicety: no figure rather than a failed run
            return None
        if table.num_rows == 0 or table.column(0)[0].as_py() is None:
            return None
        return int(table.column(0)[0].as_py()) or None

    def batches(self, *, after_key: list[Any] | None = None, after_cursor: Any = None) -> Iterator[pa.RecordBatch]:
        sql = self.sql(after_key=after_key, after_cursor=after_cursor)
        if self.server:
            yield from self._server_batches(sql)
        else:
            yield from self._local_batches(sql)

    def _server_batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        import connectorx as cx

        try:
            reader = cx.read_sql(
                connectorx_url(self.spec.source),
                sql,
                return_type="arrow_stream",
                batch_size=self.spec.batch_size,
                pre_execution_query=READ_ONLY[self.spec.source.kind],
            )
            yield from _rebatch(reader, self.spec.batch_size)
        except ZhengshuError:
            raise
        except Exception as exc:
            raise self._failed(exc) from None

    def _local_batches(self, sql: str) -> Iterator[pa.RecordBatch]:
        import duckdb

        connector = make_connector(self.spec.source)
        table = connector.read_arrow(self.spec.source_table, columns=self.read_columns)
        con = duckdb.connect()
        try:
            con.register("src", table)
            reader = con.sql(sql).to_arrow_reader(self.spec.batch_size)
            yield from _rebatch(reader, self.spec.batch_size)
        except duckdb.Error as exc:
            raise self._failed(exc) from None
        finally:
            con.close()


def _rebatch(reader: Any, size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last may be smaller): drivers hand out whatever they buffered."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in reader:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size).combine_chunks().to_batches()[0]
            rest = table.slice(size)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        table = pa.Table.from_batches(pending).combine_chunks()
        yield from table.to_batches(max_chunksize=size)
