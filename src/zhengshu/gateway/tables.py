"""Read paths of generated data APIs: key lookups and filtered pages over a mounted table.

PostgreSQL goes through an async psycopg pool (autocommit, read-only, statement timeout, prepared statements
after a few calls); MySQL/MariaDB, SQLite and DuckDB through a small thread pool, one read-only connection per
thread. Statements select only the columns the caller may receive, with bound parameters; identifiers come
from the service definition, never from the request, and are quoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from zhengshu.lake.connectors import SourceConfig


class SourceUnavailable(Exception):
    """The source could not be reached or the statement failed (the caller answers 502/504)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def quote_ident(kind: str, name: str) -> str:
    if kind == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def table_sql(kind: str, schema: str | None, table: str) -> str:
    if schema and kind != "sqlite":
        return f"{quote_ident(kind, schema)}.{quote_ident(kind, table)}"
    return quote_ident(kind, table)


def build_select(
    kind: str,
    *,
    schema: str | None,
    table: str,
    columns: Sequence[str],
    where: Sequence[str],
    order_by: Sequence[str],
    limit: int,
    offset: int = 0,
) -> str:
    mark = "%s" if kind in ("postgresql", "mysql") else "?"
    cols = ", ".join(quote_ident(kind, c) for c in columns)
    sql = f"SELECT {cols} FROM {table_sql(kind, schema, table)}"
    if where:
        sql += " WHERE " + " AND ".join(f"{quote_ident(kind, c)} = {mark}" for c in where)
    if order_by:
        sql += " ORDER BY " + ", ".join(quote_ident(kind, c) for c in order_by)
    sql += f" LIMIT {int(limit)}"
    if offset:
        sql += f" OFFSET {int(offset)}"
    return sql


class TableSource:
    """One registered source as the gateway process reads it."""

    kind: str

    async def fetch(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class PostgresSource(TableSource):
    kind = "postgresql"

    def __init__(self, config: SourceConfig, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        timeout_ms = int(config.timeout_s * 1000)
        self.pool = AsyncConnectionPool(
            kwargs={
                "host": config.host,
                "port": config.port or 5432,
                "dbname": config.database,
                "user": config.username,
                "password": config.password or None,
                "autocommit": True,
                "connect_timeout": 5,
                "options": f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
                "application_name": "zhengshu-gateway",
            },
            min_size=1,
            max_size=max(1, size),
            open=False,
            timeout=10,
        )
        self._opened = False
        self._lock = asyncio.Lock()

    async def fetch(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[tuple[Any, ...]]:
        import psycopg

        if not self._opened:
            async with self._lock:
                if not self._opened:
                    await self.pool.open(wait=False)
                    self._opened = True
        try:
            async with self.pool.connection(timeout=timeout_s) as conn:
                cur = await conn.execute(sql, list(params))  # type: ignore[arg-type]
                return list(await cur.fetchall())
        except psycopg.errors.QueryCanceled as exc:
            raise SourceUnavailable("数据源查询超时", timeout=True) from exc
        except Exception as exc:  # psycopg.Error, pool timeout
            raise SourceUnavailable(f"数据源查询失败：{type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._opened:
            await self.pool.close()


class ThreadedSource(TableSource):
    """Blocking drivers behind a thread pool; each worker thread keeps its own read-only connection."""

    def __init__(self, config: SourceConfig, size: int) -> None:
        self.kind = config.kind
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=max(1, size), thread_name_prefix=f"gw-{config.kind}")
        self.local = threading.local()
        self.connections: list[Any] = []
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        c = self.config
        if c.kind == "mysql":
            import pymysql

            timeout = max(1, int(c.timeout_s))
            return pymysql.connect(
                host=c.host,
                port=c.port or 3306,
                user=c.username,
                password=(c.password or "").encode("utf-8"),
                database=c.database,
                charset="utf8mb4",
                connect_timeout=timeout,
                read_timeout=timeout,
                autocommit=True,
            )
        if c.path is None:
            raise SourceUnavailable("数据源未指定文件路径")
        if c.kind == "sqlite":
            import sqlite3

            return sqlite3.connect(f"{c.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        import duckdb

        return duckdb.connect(str(c.path), read_only=True)

    def _conn(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self._connect()
            self.local.conn = conn
            with self._lock:
                self.connections.append(conn)
        return conn

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            conn = self._conn()
            if self.kind == "duckdb":
                return [tuple(r) for r in conn.execute(sql, list(params)).fetchall()]
            cur = conn.cursor()
            try:
                cur.execute(sql, tuple(params))
                return [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()
        except SourceUnavailable:
            raise
        except Exception as exc:
            # a broken connection is dropped so the next call reconnects
            self.local.conn = None
            raise SourceUnavailable(f"数据源查询失败：{type(exc).__name__}") from exc

    async def fetch(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, self._run, sql, params)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise SourceUnavailable("数据源查询超时", timeout=True) from exc

    async def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for conn in self.connections:
                with contextlib.suppress(Exception):  # already gone
                    conn.close()
            self.connections.clear()


def open_source(config: SourceConfig, size: int) -> TableSource:
    if config.kind == "postgresql":
        return PostgresSource(config, size)
    if config.kind in ("mysql", "sqlite", "duckdb"):
        return ThreadedSource(config, size)
    raise SourceUnavailable(f"不支持的数据源类型 {config.kind}")
