"""Reading the source as a stream of Arrow batches, ordered so a run can resume after its checkpoint.

PostgreSQL and MySQL/MariaDB are read with ConnectorX (Arrow straight from the wire, streamed in batches, the
session read-only); SQLite, DuckDB and files are read through the lake's read-only connectors and ordered
by an in-memory DuckDB. Both paths run the same SQL: the authorized columns (plus the cursor), a resume
predicate built from checkpointed values, and an ORDER BY that makes batches deterministic.

Incremental runs on a server source with an index on the cursor read the changed rows in parallel: the
(cursor, key) positions of the changes come first from the index alone (one ordered query), then the rows of
consecutive position ranges are fetched on several connections at once. Changed rows are usually spread over
the whole table, so each one costs a random page read at the source; those reads wait on the disk, not on a
CPU, and overlap well. Every range ends at a known position, which is what the run checkpoints.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
PARALLEL_READS = 8  # connections fetching changed rows at once (incremental runs on server sources)
PART_ROWS = 5_000  # rows per parallel range at most
RANGE_SHARE = 0.1  # changes beyond this share of the table are read with one query (random reads would lose)
MIN_PART_ROWS = 500  # and at least (when the batch has that many): each range costs a connection and a statement

Position = tuple[Any, list[Any]]  # (cursor value, key values) of a row, in the source's order


@dataclass
class Part:
    """Source rows of one batch, or of a piece of it; ``end`` is set on a batch's last piece: the position the
    batch is checkpointed at (every changed row up to it has been read)."""

    table: pa.Table | pa.RecordBatch
    end: Position | None


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

    def _key_after(self, keys: list[str], values: list[Any], op: str = ">") -> str:
        lits = [sql_literal(self.dialect, v) for v in values]
        if len(keys) == 1:
            return f"{self.q(keys[0])} {op} {lits[0]}"
        return f"({', '.join(self.q(k) for k in keys)}) {op} ({', '.join(lits)})"

    def sql(
        self,
        *,
        after_key: list[Any] | None = None,
        after_cursor: Any = None,
        count: bool = False,
        upto: Position | None = None,
        columns: list[str] | None = None,
        ordered: bool = True,
    ) -> str:
        """The run's query; ``upto`` (incremental) ends it at a position, inclusive; ``columns`` replaces the
        read columns; ``ordered`` False leaves the order to the server (a range read whose end is known)."""
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
            if upto is not None:
                lit = sql_literal(self.dialect, upto[0])
                where.append(f"{cursor} <= {lit} AND ({cursor} < {lit} OR {self._key_after(keys, upto[1], '<=')})")
            order = [cursor, *order]
        elif after_key is not None:
            where.append(self._key_after(keys, after_key))
        names = columns if columns is not None else self.read_columns
        select = "SELECT COUNT(*) AS n" if count else "SELECT " + ", ".join(self.q(c) for c in names)
        sql = f"{select} FROM {self._from()}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if not count and ordered:
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

    # -- incremental runs

    def changes(self, *, after_key: list[Any] | None = None, after_cursor: Any = None) -> Iterator[Part]:
        """The rows changed after a position, as parts of batches of ``batch_size`` rows in (cursor, key)
        order; each batch's last part carries the position it ends at."""
        if self._use_ranges(after_key, after_cursor):
            yield from self._parallel_changes(after_key, after_cursor)
            return
        for batch in self.batches(after_key=after_key, after_cursor=after_cursor):
            yield Part(batch, self._position(batch, batch.num_rows - 1))

    def _use_ranges(self, after_key: list[Any] | None, after_cursor: Any) -> bool:
        """Parallel range reads need an index on the cursor, and pay off while the changes are a small share of
        the table: a large backlog is read faster by one query the server may answer with a scan."""
        if not self.server or not self._cursor_indexed():
            return False
        total = self.estimate()
        if total is None:  # no statistics: the index is there, and most runs carry few changes
            return True
        changes = self.count(after_key=after_key, after_cursor=after_cursor) or 0
        return changes <= total * RANGE_SHARE

    def _position(self, table: pa.Table | pa.RecordBatch, row: int) -> Position:
        assert self.spec.cursor
        names = table.schema.names
        cursor = table.column(names.index(self.spec.cursor))[row].as_py()
        return cursor, [table.column(names.index(c.source))[row].as_py() for c in self.spec.key_columns]

    def _cursor_indexed(self) -> bool:
        """Whether an index starts with the cursor column: range reads without one would each scan the table."""
        ref, cursor = self.spec.source_table, self.spec.cursor
        if not cursor:
            return False
        if self.spec.source.kind == "postgresql":
            schema = ref.schema or self.spec.source.options.get("schema") or "public"
            nsp, rel, col = (sql_literal("postgresql", v) for v in (schema, ref.name, cursor))
            sql = (
                "SELECT COUNT(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace s ON s.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
                f"WHERE s.nspname = {nsp} AND c.relname = {rel} AND a.attname = {col}"
            )
        else:
            schema = ref.schema or self.spec.source.options.get("schema") or self.spec.source.database or ""
            nsp, rel, col = (sql_literal("mysql", v) for v in (schema, ref.name, cursor))
            sql = (
                "SELECT COUNT(*) AS n FROM information_schema.STATISTICS "
                f"WHERE TABLE_SCHEMA = {nsp} AND TABLE_NAME = {rel} AND COLUMN_NAME = {col} AND SEQ_IN_INDEX = 1"
            )
        import connectorx as cx

        try:
            table = cx.read_sql(connectorx_url(self.spec.source), sql, return_type="arrow")
        except Exception:  # no answer: the plain ordered read works everywhere
            return False
        return table.num_rows > 0 and bool(table.column(0)[0].as_py())

    def _parallel_changes(self, after_key: list[Any] | None, after_cursor: Any) -> Iterator[Part]:
        import connectorx as cx

        assert self.spec.cursor
        url = connectorx_url(self.spec.source)
        setup = READ_ONLY[self.spec.source.kind]
        # the cursor may itself be the key (an increasing id): each column once
        positions = list(dict.fromkeys([self.spec.cursor, *(c.source for c in self.spec.key_columns)]))

        def fetch(sql: str) -> pa.Table:
            result: pa.Table = cx.read_sql(url, sql, return_type="arrow", pre_execution_query=setup)
            return result

        def ranges() -> Iterator[tuple[str, Position | None]]:
            """(query, batch end or None) for each part, from the ordered positions of the changes."""
            low_cursor, low_key = after_cursor, after_key
            keys_sql = self.sql(after_key=after_key, after_cursor=after_cursor, columns=positions)
            stream = cx.read_sql(
                url, keys_sql, return_type="arrow_stream", batch_size=self.spec.batch_size, pre_execution_query=setup
            )
            for batch in _rebatch(stream, self.spec.batch_size):
                n = batch.num_rows
                # several ranges per connection, so the first parts arrive (and are written) while the others
                # are read; even a small batch comes in a few parts
                size = max(1, min(PART_ROWS, max(MIN_PART_ROWS, -(-n // (4 * PARALLEL_READS))), -(-n // 4)))
                for start in range(0, n, size):
                    last = min(start + size, n) - 1
                    end = self._position(batch, last)
                    sql = self.sql(after_key=low_key, after_cursor=low_cursor, upto=end, ordered=False)
                    yield sql, end if last == n - 1 else None
                    low_cursor, low_key = end

        pool = ThreadPoolExecutor(max_workers=PARALLEL_READS, thread_name_prefix="zhengshu-sync-range")
        pending: deque[tuple[Future[pa.Table], Position | None]] = deque()
        try:
            for sql, end in ranges():
                pending.append((pool.submit(fetch, sql), end))
                while len(pending) > 2 * PARALLEL_READS:  # keep the connections busy, the memory bounded
                    future, done_at = pending.popleft()
                    yield Part(future.result(), done_at)
            while pending:
                future, done_at = pending.popleft()
                yield Part(future.result(), done_at)
        except ZhengshuError:
            raise
        except Exception as exc:
            raise self._failed(exc) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

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
