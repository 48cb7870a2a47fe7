"""Writing batches into the consumer's target, each batch and its checkpoint in one transaction.

- PostgreSQL: ADBC binary COPY (``adbc_ingest``) into the shadow table (full runs) or a temporary staging
  table, then ``INSERT … ON CONFLICT DO UPDATE``; the checkpoint row commits with it.
- MariaDB/MySQL: multi-row ``INSERT … ON DUPLICATE KEY UPDATE`` (PyMySQL batches ``executemany``).
- DuckDB: the Arrow batch is registered and ``INSERT OR REPLACE``d.
- Parquet: immutable part files plus a manifest replaced atomically (``os.replace`` is the commit); the
  manifest carries the checkpoint; the last write of a key wins; a run ends by compacting to one file.

Full runs load a shadow table and swap it in at the end, so the consumer never sees a half-loaded table and
rows deleted at the source disappear.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from zhengshu.core.db import new_id
from zhengshu.core.errors import ZhengshuError
from zhengshu.exchange.tables.plan import (
    CHECKPOINT_TABLE,
    SHADOW_SUFFIX,
    Checkpoint,
    ColumnPlan,
    TargetConfig,
    quote_ident,
)
from zhengshu.lake.connectors import scrub

# rows per batch when a target is read back (change detection)
READ_BATCH_ROWS = 65_536


class TargetFailed(ZhengshuError):
    status = 502
    code = "sync.target_failed"
    title = "写入目标库失败"


def sql_type(dialect: str, plan: ColumnPlan) -> str:
    t = plan.arrow_type
    if pa.types.is_string(t):
        length = plan.length if plan.code.upper() == "C" and plan.rule == "none" else None
        if dialect == "duckdb":
            return "VARCHAR"
        if dialect == "mysql":
            if length and length <= 4000:
                return f"VARCHAR({length})"
            return "VARCHAR(255)" if plan.is_key else "LONGTEXT"
        return f"VARCHAR({length})" if length else "TEXT"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"  # type: ignore[attr-defined]
    if pa.types.is_float64(t):
        return "DOUBLE PRECISION" if dialect == "postgresql" else "DOUBLE"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "DATETIME(6)" if dialect == "mysql" else "TIMESTAMP"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_binary(t):
        return {"postgresql": "BYTEA", "mysql": "LONGBLOB"}.get(dialect, "BLOB")
    return "TEXT"


PG_FILLFACTOR = 90


def _cp_values(cp: Checkpoint, table: str) -> list[Any]:
    return [cp.job_id, cp.run_id, cp.mode, cp.phase, cp.batch_seq, cp.cursor, cp.last_key, cp.rows, table]


_CP_COLUMNS = ["job_id", "run_id", "mode", "phase", "batch_seq", "cursor_value", "last_key", "rows_written", "tbl"]


class _SqlWriter:
    """Shared statements of the database targets; subclasses supply the connection and the bulk path."""

    dialect: str

    def marks(self, n: int) -> list[str]:
        return ["%s"] * n

    def __init__(self, target: TargetConfig, table: str) -> None:
        self.target = target
        self.table = table
        self.shadow = table + SHADOW_SUFFIX
        self.conn: Any = None

    # -- naming
    def q(self, name: str) -> str:
        return quote_ident(self.dialect, name)

    def qual(self, name: str) -> str:
        return f"{self.q(self.target.schema)}.{self.q(name)}" if self.target.schema else self.q(name)

    def _failed(self, exc: BaseException) -> TargetFailed:
        reason = scrub(str(exc).strip(), self.target.password) or type(exc).__name__
        return TargetFailed(f"写入目标库失败：{reason[:500]}")

    # -- plumbing
    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(sql, params) if params else cur.execute(sql)
            try:
                return list(cur.fetchall())
            except Exception:  # statements without a result set
                return []
        finally:
            cur.close()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        with suppress(Exception):
            self.conn.rollback()

    def close(self) -> None:
        if self.conn is not None:
            with suppress(Exception):
                self.conn.rollback()
            with suppress(Exception):
                self.conn.close()
            self.conn = None

    # -- catalog queries (subclasses)
    def columns_of(self, name: str) -> list[str] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        return self.columns_of(name) is not None

    # -- checkpoint
    def _ensure_checkpoint_table(self) -> None:
        ts = "DATETIME(6)" if self.dialect == "mysql" else "TIMESTAMP"
        text = "LONGTEXT" if self.dialect == "mysql" else "TEXT"
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.qual(CHECKPOINT_TABLE)} ("
            f"job_id VARCHAR(32) PRIMARY KEY, run_id VARCHAR(32) NOT NULL, mode VARCHAR(12) NOT NULL, "
            f"phase VARCHAR(12) NOT NULL, batch_seq BIGINT NOT NULL, cursor_value {text}, last_key {text}, "
            f"rows_written BIGINT NOT NULL, tbl VARCHAR(300) NOT NULL, updated_at {ts} DEFAULT CURRENT_TIMESTAMP)"
        )

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        self._ensure_checkpoint_table()
        self.commit()
        p = self.marks(1)[0]
        rows = self.execute(
            f"SELECT job_id, run_id, mode, phase, batch_seq, cursor_value, last_key, rows_written, tbl "
            f"FROM {self.qual(CHECKPOINT_TABLE)} WHERE job_id = {p}",
            [job_id],
        )
        self.commit()
        if not rows:
            return None
        job, run, mode, phase, seq, cursor, last_key, rows_written, table = rows[0]
        if table != self.table:  # the job now writes elsewhere: its old progress says nothing here
            return None
        return Checkpoint(job, run, mode, phase, int(seq), cursor, last_key, int(rows_written))

    def _write_checkpoint(self, cp: Checkpoint) -> None:
        cols = ", ".join(_CP_COLUMNS)
        marks = ", ".join(self.marks(len(_CP_COLUMNS)))
        values = _cp_values(cp, self.table)
        if self.dialect == "postgresql":
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CP_COLUMNS[1:])
            sql = (
                f"INSERT INTO {self.qual(CHECKPOINT_TABLE)} ({cols}, updated_at) VALUES ({marks}, now()) "
                f"ON CONFLICT (job_id) DO UPDATE SET {updates}, updated_at = now()"
            )
        elif self.dialect == "mysql":
            updates = ", ".join(f"{c} = VALUES({c})" for c in _CP_COLUMNS[1:])
            sql = (
                f"INSERT INTO {self.qual(CHECKPOINT_TABLE)} ({cols}, updated_at) VALUES ({marks}, NOW(6)) "
                f"ON DUPLICATE KEY UPDATE {updates}, updated_at = VALUES(updated_at)"
            )
        else:
            sql = f"INSERT OR REPLACE INTO {self.qual(CHECKPOINT_TABLE)} ({cols}, updated_at) VALUES ({marks}, now())"
        self.execute(sql, values)

    def save_checkpoint(self, cp: Checkpoint) -> None:
        try:
            self._write_checkpoint(cp)
            self.commit()
        except ZhengshuError:
            raise
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    # -- tables
    def _create_sql(self, name: str, columns: list[ColumnPlan], *, with_key: bool = True) -> str:
        defs = [f"{self.q(c.target)} {sql_type(self.dialect, c)}" for c in columns]
        keys = [self.q(c.target) for c in columns if c.is_key]
        if with_key and keys:
            defs.append(f"PRIMARY KEY ({', '.join(keys)})")
        suffix = {
            "mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            # room on every page lets an incremental run update rows in place (HOT: no new index entry); the
            # changes of a run are spread over the table, so otherwise each one moves its row and indexes it anew
            "postgresql": f" WITH (fillfactor = {PG_FILLFACTOR})",
        }.get(self.dialect, "")
        return f"CREATE TABLE {self.qual(name)} ({', '.join(defs)}){suffix}"

    def ensure_table(self, columns: list[ColumnPlan]) -> list[str]:
        """Create the target table, or add the columns of newly authorized items; returns the added columns."""
        try:
            existing = self.columns_of(self.table)
            if existing is None:
                self.execute(self._create_sql(self.table, columns))
                self.commit()
                return []
            have = {c.lower() for c in existing}
            added = [c for c in columns if c.target.lower() not in have]
            for c in added:
                self.execute(
                    f"ALTER TABLE {self.qual(self.table)} ADD COLUMN {self.q(c.target)} {sql_type(self.dialect, c)}"
                )
            self.commit()
            return [c.target for c in added]
        except ZhengshuError:
            raise
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def shadow_exists(self) -> bool:
        return self.exists(self.shadow)

    def shadow_columns(self) -> list[str] | None:
        return self.columns_of(self.shadow)

    def begin_shadow(self, columns: list[ColumnPlan], cp: Checkpoint) -> None:
        try:
            self.execute(f"DROP TABLE IF EXISTS {self.qual(self.shadow)}")
            self.execute(self._create_sql(self.shadow, columns, with_key=self.dialect == "duckdb"))
            self._write_checkpoint(cp)
            self.commit()
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def append_shadow(self, table: pa.Table, cp: Checkpoint) -> None:
        try:
            self._append(self.shadow, table)
            self._write_checkpoint(cp)
            self.commit()
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def upsert(self, table: pa.Table, keys: list[str], cp: Checkpoint, deletes: pa.Table | None = None) -> None:
        try:
            if deletes is not None and deletes.num_rows:
                self._delete(deletes, keys)
            if table.num_rows:
                self._upsert(table, keys)
            self._write_checkpoint(cp)
            self.commit()
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def upsert_part(self, table: pa.Table, keys: list[str]) -> None:
        """Upsert a part of a batch in the batch's open transaction; the batch's last part commits it all with
        its checkpoint (``upsert``), a failure rolls it all back."""
        try:
            if table.num_rows:
                self._upsert(table, keys)
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def secondary_indexes(self, name: str) -> list[str]:
        """Statements that recreate the indexes the consumer added to table ``name`` (not its primary key)."""
        return []

    def granted(self, name: str, columns: list[str]) -> list[str]:
        """Statements that grant again what the consumer granted on table ``name`` (to its applications' roles),
        on the table and on those of its columns that are in ``columns``."""
        return []

    def swap(self, keys: list[str], cp: Checkpoint) -> None:
        """Replace the target by the loaded shadow table and mark the checkpoint done, in one transaction. The
        consumer's own indexes and grants on the target are made again on the new table (a full run must not
        drop them: its applications would lose their access at every full run)."""
        try:
            if self.shadow_exists():
                kept = self.secondary_indexes(self.table) + self.granted(self.table, self.shadow_columns() or [])
                self.execute(f"DROP TABLE IF EXISTS {self.qual(self.table)}")
                self.execute(f"ALTER TABLE {self.qual(self.shadow)} RENAME TO {self.q(self.table)}")
                if self.dialect == "postgresql" and keys:
                    self.execute(
                        f"ALTER TABLE {self.qual(self.table)} ADD PRIMARY KEY ({', '.join(self.q(k) for k in keys)})"
                    )
                for statement in kept:
                    self.execute(statement)
            self._write_checkpoint(cp)
            self.commit()
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def _append(self, name: str, table: pa.Table) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _upsert(self, table: pa.Table, keys: list[str]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _delete(self, deletes: pa.Table, keys: list[str]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read_table(self, columns: list[str]) -> pa.Table:  # pragma: no cover - overridden
        raise NotImplementedError

    def read_batches(self, columns: list[str], size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The target's rows in batches, for comparisons that must not hold the whole table."""
        yield from self.read_table(columns).to_batches(max_chunksize=size)

    def finish(self) -> None:
        return None


class PostgresWriter(_SqlWriter):
    dialect = "postgresql"

    def marks(self, n: int) -> list[str]:
        return [f"${i}" for i in range(1, n + 1)]

    def __init__(self, target: TargetConfig, table: str) -> None:
        super().__init__(target, table)
        self.target = TargetConfig(**{**asdict(target), "schema": target.schema or "public"})
        import adbc_driver_postgresql.dbapi as pgdb

        try:
            self.conn = pgdb.connect(self.uri())
        except Exception as exc:
            raise self._failed(exc) from None
        self._staging: set[str] = set()

    def secondary_indexes(self, name: str) -> list[str]:
        # the definitions name the table by its qualified name, which the shadow takes over by the rename
        rows = self.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
            "AND NOT i.indisprimary ORDER BY i.indexrelid",
            [self.target.schema, name],
        )
        return [str(r[0]) for r in rows]

    def granted(self, name: str, columns: list[str]) -> list[str]:
        # privileges from the table's and its columns' ACLs, but the owner's own (the new table has them)
        rows = self.execute(
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
            "a.is_grantable, NULL::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner "
            "UNION ALL "
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
            "a.is_grantable, t.attname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped "
            "CROSS JOIN LATERAL aclexplode(t.attacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE n.nspname = $1 AND c.relname = $2 AND a.grantee <> c.relowner",
            [self.target.schema, name],
        )
        statements = []
        for privilege, grantee, grantable, column in rows:
            if grantee is None or (column is not None and column not in columns):
                continue  # a dropped role, or an item no longer delivered
            on = f"({self.q(column)}) " if column is not None else ""
            option = " WITH GRANT OPTION" if grantable else ""
            statements.append(f"GRANT {privilege} {on}ON {self.qual(name)} TO {grantee}{option}")
        return statements

    def uri(self) -> str:
        t = self.target
        auth = quote(t.username or "", safe="")
        if t.password:
            auth += ":" + quote(t.password, safe="")
        return f"postgresql://{auth}@{t.host}:{t.port or 5432}/{quote(t.database or '', safe='')}"

    def columns_of(self, name: str) -> list[str] | None:
        rows = self.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [self.target.schema, name],
        )
        if rows:
            return [r[0] for r in rows]
        found = self.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2",
            [self.target.schema, name],
        )
        return [] if found else None

    def _append(self, name: str, table: pa.Table) -> None:
        cur = self.conn.cursor()
        try:
            cur.adbc_ingest(name, table, mode="append", db_schema_name=self.target.schema)
        finally:
            cur.close()

    def _stage(self, name: str, table: pa.Table) -> None:
        if name not in self._staging:
            self.execute(f"CREATE TEMP TABLE IF NOT EXISTS {self.q(name)} (LIKE {self.qual(self.table)})")
            self._staging.add(name)
        self.execute(f"TRUNCATE {self.q(name)}")
        cur = self.conn.cursor()
        try:
            cur.adbc_ingest(name, table, mode="append", temporary=True)
        finally:
            cur.close()

    def _upsert(self, table: pa.Table, keys: list[str]) -> None:
        self._stage("zs_sync_stage", table)
        cols = ", ".join(self.q(c) for c in table.column_names)
        others = [c for c in table.column_names if c not in keys]
        action = (
            "DO UPDATE SET " + ", ".join(f"{self.q(c)} = EXCLUDED.{self.q(c)}" for c in others)
            if others
            else "DO NOTHING"
        )
        self.execute(
            f"INSERT INTO {self.qual(self.table)} ({cols}) SELECT {cols} FROM zs_sync_stage "
            f"ON CONFLICT ({', '.join(self.q(k) for k in keys)}) {action}"
        )

    def _delete(self, deletes: pa.Table, keys: list[str]) -> None:
        name = "zs_sync_delete"
        self.execute(f"DROP TABLE IF EXISTS {self.q(name)}")
        defs = ", ".join(f"{self.q(k)} {_pg_type_of(deletes.schema.field(k).type)}" for k in keys)
        self.execute(f"CREATE TEMP TABLE {self.q(name)} ({defs})")
        cur = self.conn.cursor()
        try:
            cur.adbc_ingest(name, deletes.select(keys), mode="append", temporary=True)
        finally:
            cur.close()
        match = " AND ".join(f"t.{self.q(k)} = d.{self.q(k)}" for k in keys)
        self.execute(f"DELETE FROM {self.qual(self.table)} t USING {self.q(name)} d WHERE {match}")

    def read_table(self, columns: list[str]) -> pa.Table:
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}")
            result: pa.Table = cur.fetch_arrow_table()
        finally:
            cur.close()
        self.commit()
        return result

    def read_batches(self, columns: list[str], size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}")
            yield from cur.fetch_record_batch()  # streamed by the driver (COPY … TO STDOUT in binary)
        finally:
            cur.close()
            self.commit()


def _pg_type_of(t: pa.DataType) -> str:
    plan = ColumnPlan("k", "k", "", "", "C", None, "none", t, True)
    return sql_type("postgresql", plan)


class MySQLWriter(_SqlWriter):
    dialect = "mysql"

    def __init__(self, target: TargetConfig, table: str) -> None:
        super().__init__(target, table)
        import pymysql

        self.target = TargetConfig(**{**asdict(target), "schema": target.schema or target.database})
        try:
            self.conn = pymysql.connect(
                host=target.host,
                port=target.port or 3306,
                user=target.username,
                password=(target.password or "").encode("utf-8"),
                database=target.database,
                charset="utf8mb4",
                autocommit=False,
                connect_timeout=10,
            )
        except Exception as exc:
            raise self._failed(exc) from None

    def columns_of(self, name: str) -> list[str] | None:
        rows = self.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            [self.target.schema, name],
        )
        return [r[0] for r in rows] if rows else None

    @staticmethod
    def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
        return list(zip(*(col.to_pylist() for col in table.columns), strict=True))

    def _insert(self, name: str, table: pa.Table, suffix: str = "") -> None:
        cols = ", ".join(self.q(c) for c in table.column_names)
        marks = ", ".join(["%s"] * table.num_columns)
        cur = self.conn.cursor()
        try:
            cur.executemany(f"INSERT INTO {self.qual(name)} ({cols}) VALUES ({marks}){suffix}", self._rows(table))
        finally:
            cur.close()

    def _append(self, name: str, table: pa.Table) -> None:
        self._insert(name, table)

    def _upsert(self, table: pa.Table, keys: list[str]) -> None:
        others = [c for c in table.column_names if c not in keys] or keys[:1]
        updates = ", ".join(f"{self.q(c)} = VALUES({self.q(c)})" for c in others)
        self._insert(self.table, table, f" ON DUPLICATE KEY UPDATE {updates}")

    def _delete(self, deletes: pa.Table, keys: list[str]) -> None:
        match = " AND ".join(f"{self.q(k)} = %s" for k in keys)
        cur = self.conn.cursor()
        try:
            cur.executemany(f"DELETE FROM {self.qual(self.table)} WHERE {match}", self._rows(deletes.select(keys)))
        finally:
            cur.close()

    def _index_columns(self, name: str) -> dict[str, tuple[bool, str]]:
        """Secondary indexes of table ``name``: index name -> (unique, column list with prefix lengths)."""
        rows = self.execute(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME <> 'PRIMARY' "
            "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            [self.target.schema, name],
        )
        indexes: dict[str, tuple[bool, list[str]]] = {}
        for index_name, non_unique, column, sub_part in rows:
            part = self.q(str(column)) + (f"({int(sub_part)})" if sub_part else "")
            indexes.setdefault(str(index_name), (not int(non_unique), []))[1].append(part)
        return {n: (unique, ", ".join(cols)) for n, (unique, cols) in indexes.items()}

    def swap(self, keys: list[str], cp: Checkpoint) -> None:
        """MySQL commits DDL on its own: mark the swap first, then rename atomically; a resumed run that finds
        the checkpoint in ``swapping`` calls this again and it completes whatever step was left."""
        try:
            self._write_checkpoint(Checkpoint(**{**asdict(cp), "phase": "swapping"}))
            self.commit()
            if self.shadow_exists():
                has_key = self.execute(
                    "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                    "AND CONSTRAINT_TYPE = 'PRIMARY KEY'",
                    [self.target.schema, self.shadow],
                )
                if keys and not has_key:
                    self.execute(
                        f"ALTER TABLE {self.qual(self.shadow)} ADD PRIMARY KEY ({', '.join(map(self.q, keys))})"
                    )
                # the consumer's own indexes, onto the shadow before it takes the target's place (a resumed
                # swap finds those already built and skips them)
                built = set(self._index_columns(self.shadow))
                for index_name, (unique, columns) in self._index_columns(self.table).items():
                    if index_name not in built:
                        kind = "UNIQUE INDEX" if unique else "INDEX"
                        self.execute(
                            f"ALTER TABLE {self.qual(self.shadow)} ADD {kind} {self.q(index_name)} ({columns})"
                        )
                old = self.table + "__zs_old"
                self.execute(f"DROP TABLE IF EXISTS {self.qual(old)}")
                if self.exists(self.table):
                    self.execute(
                        f"RENAME TABLE {self.qual(self.table)} TO {self.qual(old)}, "
                        f"{self.qual(self.shadow)} TO {self.qual(self.table)}"
                    )
                else:
                    self.execute(f"RENAME TABLE {self.qual(self.shadow)} TO {self.qual(self.table)}")
                self.execute(f"DROP TABLE IF EXISTS {self.qual(old)}")
            self._write_checkpoint(cp)
            self.commit()
        except Exception as exc:
            self.rollback()
            raise self._failed(exc) from None

    def read_table(self, columns: list[str]) -> pa.Table:
        cur = self.conn.cursor()
        try:
            cur.execute(f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}")
            rows = cur.fetchall()
        finally:
            cur.close()
        self.commit()
        return _rows_table(columns, rows)

    def read_batches(self, columns: list[str], size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        import pymysql.cursors

        cur = self.conn.cursor(pymysql.cursors.SSCursor)  # unbuffered: rows come as they are fetched
        try:
            cur.execute(f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}")
            while rows := cur.fetchmany(size):
                yield from _rows_table(columns, rows).to_batches()
        finally:
            cur.close()
            self.commit()


def _rows_table(columns: list[str], rows: Any) -> pa.Table:
    data = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    arrays = {c: pa.array(list(v)) if v else pa.array([], pa.null()) for c, v in zip(columns, data, strict=True)}
    return pa.table(arrays)


class DuckDBWriter(_SqlWriter):
    dialect = "duckdb"

    def marks(self, n: int) -> list[str]:
        return ["?"] * n

    def __init__(self, target: TargetConfig, table: str) -> None:
        super().__init__(target, table)
        import duckdb

        if not target.path:
            raise TargetFailed("未指定 DuckDB 目标文件")
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = duckdb.connect(target.path)
        except duckdb.Error as exc:
            raise self._failed(exc) from None
        self.target = TargetConfig(**{**asdict(target), "schema": target.schema or "main"})
        self.conn.execute("BEGIN TRANSACTION")

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        result = self.conn.execute(sql, list(params) if params else None)
        try:
            return list(result.fetchall())
        except Exception:
            return []

    def secondary_indexes(self, name: str) -> list[str]:
        rows = self.execute(
            "SELECT sql FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ? AND NOT is_primary "
            "AND sql IS NOT NULL",
            [self.target.schema, name],
        )
        return [str(r[0]) for r in rows]

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN TRANSACTION")

    def rollback(self) -> None:
        with suppress(Exception):
            self.conn.execute("ROLLBACK")
        with suppress(Exception):
            self.conn.execute("BEGIN TRANSACTION")

    def close(self) -> None:
        if self.conn is not None:
            with suppress(Exception):
                self.conn.execute("ROLLBACK")
            with suppress(Exception):
                self.conn.close()
            self.conn = None

    def columns_of(self, name: str) -> list[str] | None:
        rows = self.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [self.target.schema, name],
        )
        return [r[0] for r in rows] if rows else None

    def _register(self, name: str, table: pa.Table) -> None:
        with suppress(Exception):
            self.conn.unregister(name)
        self.conn.register(name, table)

    def _append(self, name: str, table: pa.Table) -> None:
        self._register("zs_batch", table)
        cols = ", ".join(self.q(c) for c in table.column_names)
        self.conn.execute(f"INSERT INTO {self.qual(name)} ({cols}) SELECT {cols} FROM zs_batch")

    def _upsert(self, table: pa.Table, keys: list[str]) -> None:
        self._register("zs_batch", table)
        cols = ", ".join(self.q(c) for c in table.column_names)
        self.conn.execute(f"INSERT OR REPLACE INTO {self.qual(self.table)} ({cols}) SELECT {cols} FROM zs_batch")

    def _delete(self, deletes: pa.Table, keys: list[str]) -> None:
        self._register("zs_delete", deletes.select(keys))
        k = ", ".join(self.q(c) for c in keys)
        self.conn.execute(f"DELETE FROM {self.qual(self.table)} WHERE ({k}) IN (SELECT ({k}) FROM zs_delete)")

    def read_table(self, columns: list[str]) -> pa.Table:
        result: pa.Table = self.conn.sql(
            f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}"
        ).to_arrow_table()
        return result

    def read_batches(self, columns: list[str], size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        yield from self.conn.sql(
            f"SELECT {', '.join(self.q(c) for c in columns)} FROM {self.qual(self.table)}"
        ).to_arrow_reader(size)


# ---- Parquet ----------------------------------------------------------------------------------------------

DELETED = "__zs_deleted"
SEQ = "__zs_seq"


class ParquetWriter:
    """A table is a directory: ``manifest.json`` names the live part files (and a shadow load in progress);
    replacing the manifest atomically commits a batch together with its checkpoint."""

    dialect = "parquet"

    def __init__(self, target: TargetConfig, table: str) -> None:
        if not target.path:
            raise TargetFailed("未指定 Parquet 目标目录")
        self.table = table
        self.dir = Path(target.path) / table
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.dir / "manifest.json"

    # -- manifest
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"version": 0, "files": [], "loading": None, "columns": [], "checkpoints": {}}
        data: dict[str, Any] = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return data

    def _commit(self, manifest: dict[str, Any]) -> None:
        manifest["version"] = int(manifest.get("version", 0)) + 1
        tmp = self.dir / f".manifest-{new_id()}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.manifest_path)  # the commit point
        with suppress(OSError):
            fd = os.open(self.dir, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    def _write_part(self, table: pa.Table, seq: int, deleted: bool = False) -> str:
        n = table.num_rows
        table = table.append_column(DELETED, pa.array([deleted] * n, pa.bool_()))
        table = table.append_column(SEQ, pa.array([seq] * n, pa.int64()))
        name = f"part-{new_id()}.parquet"
        path = self.dir / name
        with path.open("wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        return name

    # -- the writer protocol
    def close(self) -> None:
        return None

    def read_checkpoint(self, job_id: str) -> Checkpoint | None:
        data = self.manifest().get("checkpoints", {}).get(job_id)
        return Checkpoint(**data) if data else None

    def ensure_table(self, columns: list[ColumnPlan]) -> list[str]:
        manifest = self.manifest()
        have = list(manifest.get("columns") or [])
        added = [c.target for c in columns if c.target not in have]
        if added or not have:
            manifest["columns"] = have + added
            self._commit(manifest)
        return added if have else []

    def shadow_exists(self) -> bool:
        return self.manifest().get("loading") is not None

    def shadow_columns(self) -> list[str] | None:
        manifest = self.manifest()
        return list(manifest.get("loading_columns") or []) if manifest.get("loading") is not None else None

    def begin_shadow(self, columns: list[ColumnPlan], cp: Checkpoint) -> None:
        manifest = self.manifest()
        manifest["loading"] = []
        manifest["loading_columns"] = [c.target for c in columns]
        manifest.setdefault("checkpoints", {})[cp.job_id] = asdict(cp)
        self._commit(manifest)

    def append_shadow(self, table: pa.Table, cp: Checkpoint) -> None:
        manifest = self.manifest()
        part = self._write_part(table, cp.batch_seq)
        manifest["loading"] = [*(manifest.get("loading") or []), part]
        manifest.setdefault("checkpoints", {})[cp.job_id] = asdict(cp)
        self._commit(manifest)

    def upsert(self, table: pa.Table, keys: list[str], cp: Checkpoint, deletes: pa.Table | None = None) -> None:
        manifest = self.manifest()
        seq = int(manifest.get("version", 0)) + 1
        parts = []
        if deletes is not None and deletes.num_rows:
            parts.append(self._write_part(deletes.select(keys), seq, deleted=True))
        if table.num_rows:
            parts.append(self._write_part(table, seq + 1))
        manifest["files"] = [*manifest.get("files", []), *parts]
        manifest.setdefault("checkpoints", {})[cp.job_id] = asdict(cp)
        self._commit(manifest)

    def swap(self, keys: list[str], cp: Checkpoint) -> None:
        manifest = self.manifest()
        if manifest.get("loading") is not None:
            manifest["files"] = manifest["loading"]
            manifest["columns"] = manifest.get("loading_columns") or manifest.get("columns", [])
            manifest["loading"] = None
        manifest.setdefault("checkpoints", {})[cp.job_id] = asdict(cp)
        self._commit(manifest)

    def _live(self, files: list[str], columns: list[str], keys: list[str]) -> pa.Table:
        import duckdb

        con = duckdb.connect()
        try:
            paths = [str(self.dir / f) for f in files]
            source = f"read_parquet({paths!r}, union_by_name = true)"
            cols = ", ".join(quote_ident("duckdb", c) for c in columns)
            part = ", ".join(quote_ident("duckdb", k) for k in keys)
            sql = (
                f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY {SEQ} DESC) AS zs_rn "
                f"FROM {source}) WHERE zs_rn = 1 AND NOT {DELETED}"
            )
            result: pa.Table = con.sql(sql).to_arrow_table()
            return result
        finally:
            con.close()

    def read_batches(self, columns: list[str], size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        # the live rows need the parts deduplicated by key (later parts win), which reads them whole
        yield from self.read_table(columns).to_batches(max_chunksize=size)

    def read_table(self, columns: list[str], keys: list[str] | None = None) -> pa.Table:
        manifest = self.manifest()
        files = manifest.get("files") or []
        keys = keys or manifest.get("key") or columns[:1]
        if not files:
            return pa.table({c: pa.array([], pa.null()) for c in columns})
        present = [c for c in columns if c in (manifest.get("columns") or columns)]
        return self._live(files, present, keys)

    def compact(self, keys: list[str]) -> None:
        """One file for the live rows; part files no manifest names any more are removed."""
        manifest = self.manifest()
        manifest["key"] = keys
        files = manifest.get("files") or []
        if len(files) > 1 or any(True for _ in self._parts_with_deletes(files)):
            live = self._live(files, manifest.get("columns") or [], keys)
            manifest["files"] = [self._write_part(live, 0)]
        self._commit(manifest)
        keep = set(manifest["files"]) | set(manifest.get("loading") or [])
        for path in self.dir.glob("part-*.parquet"):
            if path.name not in keep:
                with suppress(OSError):
                    path.unlink()
        for path in self.dir.glob(".manifest-*.tmp"):
            with suppress(OSError):
                path.unlink()

    def _parts_with_deletes(self, files: list[str]) -> Iterator[str]:
        for f in files:
            meta = pq.read_metadata(self.dir / f)
            stats = (
                meta.row_group(0).column(meta.schema.names.index(DELETED)).statistics if meta.num_row_groups else None
            )
            if stats is not None and stats.has_min_max and stats.max:
                yield f

    def finish(self) -> None:
        return None


Writer = _SqlWriter | ParquetWriter


def make_writer(target: TargetConfig, table: str) -> Any:
    writers: dict[str, type[Any]] = {
        "postgresql": PostgresWriter,
        "mysql": MySQLWriter,
        "duckdb": DuckDBWriter,
        "parquet": ParquetWriter,
    }
    try:
        cls = writers[target.kind]
    except KeyError:
        raise TargetFailed(f"不支持的目标类型：{target.kind}", code="sync.unsupported_target") from None
    return cls(target, table)
