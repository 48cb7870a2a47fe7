"""Reading a published copy with DuckDB: item selection, a safe filter language, sort, keyset cursors, counts
only when asked, aggregates for charts, and record-batch streams for downloads.

Only the published Parquet file is ever read (already filtered to the open items and masked). Column names come
from that file's own schema and are quoted; every user value is converted to the column's type in Python and
bound as a parameter, so no user text is ever spliced into SQL.

Filter language (query string, repeatable ``filter``): ``<item>:<op>:<value>`` with ``op`` one of
``eq ne gt ge lt le`` (compare), ``like`` (contains, case-insensitive), ``prefix`` (starts with), ``in`` (values
separated by ``|``), ``null`` / ``notnull`` (no value). ``<item>`` is the item's column name.
Rows keep the order of the published copy unless ``sort`` is given (``item`` or ``-item`` for descending);
the cursor is an opaque keyset on (sort value, row number), so a deep page costs what the first page costs.
"""

from __future__ import annotations

import base64
import decimal
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from zhengshu.core.errors import ValidationFailed, ZhengshuError

ROW = "file_row_number"  # DuckDB's virtual row index of the Parquet file: the keyset tiebreak
OPS = ("eq", "ne", "gt", "ge", "lt", "le", "like", "prefix", "in", "null", "notnull")
COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
MAX_FILTERS = 10
MAX_IN_VALUES = 200
MAX_VALUE_CHARS = 500
OP_LABELS = {
    "eq": "等于",
    "ne": "不等于",
    "gt": "大于",
    "ge": "大于等于",
    "lt": "小于",
    "le": "小于等于",
    "like": "包含",
    "prefix": "开头是",
    "in": "属于（以 | 分隔）",
    "null": "为空",
    "notnull": "不为空",
}


class BadQuery(ValidationFailed):
    status = 400
    code = "opendata.bad_query"
    title = "查询参数有误"


class QueryTimeout(ZhengshuError):
    status = 503
    code = "opendata.query_timeout"
    title = "查询超时"


# ---- the DuckDB database (in memory; reads Parquet files only) ------------------------------------------

_lock = threading.Lock()
_db: Any = None


def configure(*, memory_mb: int = 512, threads: int = 2) -> None:
    """(Re)create the shared in-memory DuckDB with these limits; each query runs on its own cursor."""
    global _db
    import duckdb

    with _lock:
        if _db is not None:
            _db.close()
        _db = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{memory_mb}MB",
                "threads": threads,
                "preserve_insertion_order": True,
                "enable_external_access": True,
            },
        )
        # copies never change in place (a new version is a new file): keep their footers parsed
        _db.execute("LOAD parquet")
        _db.execute("SET parquet_metadata_cache = true")


def cursor() -> Any:
    if _db is None:
        from zhengshu.core.config import get_settings

        settings = get_settings()
        configure(memory_mb=settings.opendata_duckdb_memory_mb, threads=settings.opendata_duckdb_threads)
    with _lock:
        return _db.cursor()


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path_literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def source_sql(path: Path) -> str:
    return f"read_parquet({_path_literal(path)}, file_row_number=true)"


# ---- the published file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """A published copy: its path and the types of its columns (the open items of that version)."""

    path: Path
    schema: pa.Schema

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def type_of(self, column: str) -> pa.DataType:
        return self.schema.field(column).type


@lru_cache(maxsize=256)
def _schema(path: str, mtime_ns: int) -> pa.Schema:
    return pq.read_schema(path)


def open_published(path: Path) -> Published:
    return Published(path=path, schema=_schema(str(path), path.stat().st_mtime_ns))


# ---- values ---------------------------------------------------------------------------------------------


def convert(value: str, typ: pa.DataType, column: str) -> Any:
    """A query-string value as the column's type, or a clear error."""
    if len(value) > MAX_VALUE_CHARS:
        raise BadQuery(f"“{column}”的取值过长（最多 {MAX_VALUE_CHARS} 个字符）", code="opendata.bad_filter")
    try:
        if pa.types.is_integer(typ):
            return int(value)
        if pa.types.is_floating(typ):
            return float(value)
        if pa.types.is_decimal(typ):
            return decimal.Decimal(value)
        if pa.types.is_boolean(typ):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "是", "yes"):
                return True
            if lowered in ("false", "0", "否", "no"):
                return False
            raise ValueError(value)
        if pa.types.is_timestamp(typ):
            return datetime.fromisoformat(value)
        if pa.types.is_date(typ):
            return date.fromisoformat(value[:10])
    except (ValueError, decimal.InvalidOperation):
        raise BadQuery(f"“{column}”的取值“{value}”格式不对（{type_label(typ)}）", code="opendata.bad_filter") from None
    return value


def type_label(typ: pa.DataType) -> str:
    if pa.types.is_integer(typ):
        return "整数"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "数值"
    if pa.types.is_boolean(typ):
        return "逻辑值 true/false"
    if pa.types.is_timestamp(typ):
        return "日期时间，如 2026-01-31T08:00:00"
    if pa.types.is_date(typ):
        return "日期，如 2026-01-31"
    return "文本"


def is_text(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


def json_value(value: Any) -> Any:
    """A cell as JSON: dates ISO 8601, decimals as text (no precision lost), bytes as hex."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


# ---- the query ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any = None


@dataclass
class QuerySpec:
    columns: list[str] | None = None  # None: every open item
    filters: list[Filter] = field(default_factory=list)
    q: str | None = None  # contains, over every text item
    sort: str | None = None  # "item" or "-item"
    limit: int = 20
    cursor: str | None = None
    offset: int = 0  # CKAN's datastore_search pages by offset; the cursor is preferred
    count: bool = False


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None


def parse_filters(published: Published, raw: Sequence[str], equals: dict[str, str] | None = None) -> list[Filter]:
    """``<item>:<op>:<value>`` expressions plus ``{item: value}`` equality shortcuts, checked and typed."""
    parsed: list[Filter] = []
    expressions = list(raw)
    if len(expressions) + len(equals or {}) > MAX_FILTERS:
        raise BadQuery(f"筛选条件过多（最多 {MAX_FILTERS} 个）", code="opendata.bad_filter")
    for expression in expressions:
        column, sep, rest = expression.partition(":")
        op, _, value = rest.partition(":")
        if not sep or not column or op not in OPS:
            raise BadQuery(
                f"筛选条件“{expression[:80]}”无法识别，应为 信息项:运算符:值，运算符为 {'、'.join(OPS)} 之一",
                code="opendata.bad_filter",
            )
        parsed.append(_filter(published, column, op, value))
    for column, value in (equals or {}).items():
        parsed.append(_filter(published, column, "eq", value))
    return parsed


def _filter(published: Published, column: str, op: str, value: str) -> Filter:
    check_column(published, column)
    typ = published.type_of(column)
    if op in ("null", "notnull"):
        return Filter(column, op)
    if op in ("like", "prefix"):
        if not is_text(typ):
            raise BadQuery(f"“{column}”不是文本，不能用 {op} 筛选", code="opendata.bad_filter")
        if not value:
            raise BadQuery(f"“{column}”的 {op} 条件缺少取值", code="opendata.bad_filter")
        return Filter(column, op, convert(value, typ, column))
    if op == "in":
        values = value.split("|")
        if len(values) > MAX_IN_VALUES:
            raise BadQuery(f"in 条件最多 {MAX_IN_VALUES} 个取值", code="opendata.bad_filter")
        return Filter(column, op, [convert(v, typ, column) for v in values])
    return Filter(column, op, convert(value, typ, column))


def check_column(published: Published, column: str) -> None:
    if column not in published.schema.names:
        raise BadQuery(f"没有名为“{column[:60]}”的开放信息项", code="opendata.unknown_item")


def _like_pattern(text: str, *, prefix: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


def where_clause(published: Published, filters: Sequence[Filter], q: str | None) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for f in filters:
        col = quote(f.column)
        if f.op in COMPARE:
            clauses.append(f"{col} {COMPARE[f.op]} ?")
            params.append(f.value)
        elif f.op == "like":
            clauses.append(f"{col} ILIKE ? ESCAPE '\\'")
            params.append(_like_pattern(f.value, prefix=False))
        elif f.op == "prefix":
            clauses.append(f"{col} LIKE ? ESCAPE '\\'")
            params.append(_like_pattern(f.value, prefix=True))
        elif f.op == "in":
            clauses.append(f"{col} IN ({', '.join('?' for _ in f.value)})")
            params.extend(f.value)
        elif f.op == "null":
            clauses.append(f"{col} IS NULL")
        elif f.op == "notnull":
            clauses.append(f"{col} IS NOT NULL")
    if q and q.strip():
        texts = [c for c in published.columns if is_text(published.type_of(c))]
        if len(q) > MAX_VALUE_CHARS:
            raise BadQuery("关键词过长", code="opendata.bad_filter")
        if texts:
            pattern = _like_pattern(q.strip(), prefix=False)
            clauses.append("(" + " OR ".join(f"{quote(c)} ILIKE ? ESCAPE '\\'" for c in texts) + ")")
            params.extend([pattern] * len(texts))
        else:
            clauses.append("FALSE")
    return clauses, params


def _sort_of(published: Published, sort: str | None) -> tuple[str, bool] | None:
    if not sort:
        return None
    desc = sort.startswith("-")
    column = sort[1:] if desc else sort
    check_column(published, column)
    return column, desc


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or not isinstance(data.get("r"), int):
            raise ValueError(cursor)
        return data
    except (ValueError, TypeError) as exc:
        raise BadQuery("分页游标无效，请从第一页重新查询", code="opendata.bad_cursor") from exc


def _keyset(published: Published, sort: tuple[str, bool] | None, cursor: str) -> tuple[str, list[Any]]:
    data = decode_cursor(cursor)
    signature = f"{sort[0]}:{int(sort[1])}" if sort else ""
    if data.get("s", "") != signature:
        raise BadQuery("分页游标与排序方式不符，请从第一页重新查询", code="opendata.bad_cursor")
    row = data["r"]
    if sort is None:
        return f"{ROW} > ?", [row]
    column, desc = sort
    col = quote(column)
    if data.get("v") is None:  # the previous page ended among the NULLs, which sort last
        return f"({col} IS NULL AND {ROW} > ?)", [row]
    value = data["v"]
    if not isinstance(value, int | float | bool):
        value = convert(str(value), published.type_of(column), column)
    cmp = "<" if desc else ">"
    return f"({col} {cmp} ? OR {col} IS NULL OR ({col} = ? AND {ROW} > ?))", [value, value, row]


def _run(sql: str, params: list[Any], timeout_s: float) -> pa.Table:
    cur = cursor()
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.daemon = True
    timer.start()
    try:
        return cur.sql(sql, params=params).to_arrow_table()
    except Exception as exc:
        if "interrupt" in str(exc).lower():
            raise QueryTimeout("查询耗时过长，请增加筛选条件后重试") from None
        raise
    finally:
        timer.cancel()
        cur.close()


def check_limit(limit: int, max_limit: int) -> None:
    if limit < 1 or limit > max_limit:
        raise BadQuery(f"每页条数应在 1 到 {max_limit:,} 之间；需要全部数据请使用下载", code="opendata.limit_too_large")


def run_query(published: Published, spec: QuerySpec, *, max_limit: int, timeout_s: float = 10.0) -> QueryResult:
    check_limit(spec.limit, max_limit)
    if spec.offset < 0 or spec.offset > 10_000_000:
        raise BadQuery("offset 无效；翻页请使用 next_cursor", code="opendata.bad_offset")
    columns = spec.columns or published.columns
    for c in columns:
        check_column(published, c)
    sort = _sort_of(published, spec.sort)
    clauses, params = where_clause(published, spec.filters, spec.q)
    total = None
    if spec.count:
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        counted = _run(f"SELECT count(*) AS n FROM {source_sql(published.path)}{where}", list(params), timeout_s)
        total = int(counted.column(0)[0].as_py())
    page_clauses, page_params = list(clauses), list(params)
    if spec.cursor:
        keyset, keyset_params = _keyset(published, sort, spec.cursor)
        page_clauses.append(keyset)
        page_params.extend(keyset_params)
    selected = list(dict.fromkeys([*columns, *([sort[0]] if sort else [])]))
    sql = f"SELECT {', '.join(quote(c) for c in selected)}, {ROW} FROM {source_sql(published.path)}"
    if page_clauses:
        sql += f" WHERE {' AND '.join(page_clauses)}"
    if sort:
        sql += f" ORDER BY {quote(sort[0])} {'DESC' if sort[1] else 'ASC'} NULLS LAST, {ROW}"
    # without ORDER BY, DuckDB keeps the file's order (preserve_insertion_order), so LIMIT takes the first rows
    sql += f" LIMIT {int(spec.limit) + 1}"
    if spec.offset and not spec.cursor:
        sql += f" OFFSET {int(spec.offset)}"
    table = _run(sql, page_params, timeout_s)
    records = table.to_pylist()
    next_cursor = None
    if len(records) > spec.limit:
        last = records[spec.limit - 1]
        data: dict[str, Any] = {"r": last[ROW], "s": f"{sort[0]}:{int(sort[1])}" if sort else ""}
        if sort:
            data["v"] = json_value(last[sort[0]])
        next_cursor = encode_cursor(data)
        records = records[: spec.limit]
    rows = [{c: json_value(r[c]) for c in columns} for r in records]
    return QueryResult(columns=columns, rows=rows, next_cursor=next_cursor, total=total)


def count_rows(published: Published, filters: Sequence[Filter], q: str | None, *, timeout_s: float = 10.0) -> int:
    clauses, params = where_clause(published, filters, q)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return int(
        _run(f"SELECT count(*) FROM {source_sql(published.path)}{where}", params, timeout_s).column(0)[0].as_py()
    )


# ---- streams for downloads ------------------------------------------------------------------------------


def iter_batches(
    published: Published,
    *,
    columns: list[str] | None = None,
    filters: Sequence[Filter] = (),
    q: str | None = None,
    sort: str | None = None,
    batch_rows: int = 8_192,
    max_rows: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The selected rows as record batches, with bounded memory whatever the size."""
    columns = columns or published.columns
    for c in columns:
        check_column(published, c)
    order = _sort_of(published, sort)
    clauses, params = where_clause(published, filters, q)
    sql = f"SELECT {', '.join(quote(c) for c in columns)} FROM {source_sql(published.path)}"
    if clauses:
        sql += f" WHERE {' AND '.join(clauses)}"
    if order:
        sql += f" ORDER BY {quote(order[0])} {'DESC' if order[1] else 'ASC'} NULLS LAST, {ROW}"
    if max_rows is not None:
        sql += f" LIMIT {int(max_rows)}"
    cur = cursor()
    try:
        reader = cur.sql(sql, params=params).to_arrow_reader(batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    finally:
        cur.close()


# ---- aggregates for the automatic chart ------------------------------------------------------------------


def distinct_counts(published: Published, columns: Sequence[str]) -> dict[str, int]:
    """Approximate number of distinct values per column (one pass)."""
    if not columns:
        return {}
    exprs = ", ".join(f"approx_count_distinct({quote(c)})" for c in columns)
    table = _run(f"SELECT {exprs} FROM {source_sql(published.path)}", [], 60.0)
    return {c: int(table.column(i)[0].as_py() or 0) for i, c in enumerate(columns)}


@lru_cache(maxsize=128)
def _chart_data(path: str, mtime_ns: int, kind: str, x: str, y: str) -> tuple[tuple[Any, Any], ...]:
    src = source_sql(Path(path))
    if kind == "bar":
        sql = f"SELECT {quote(x)} AS k, count(*) AS n FROM {src} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 30"
    else:
        sql = (
            f"SELECT date_trunc('month', {quote(x)}) AS k, sum({quote(y)}) AS n FROM {src} "
            f"WHERE {quote(x)} IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 240"
        )
    table = _run(sql, [], 30.0)
    return tuple((json_value(k), json_value(n)) for k, n in zip(*(c.to_pylist() for c in table.columns), strict=True))


def chart_data(published: Published, hint: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Points of the dataset's automatic chart: counts by a category, or a sum per month."""
    kind, x, y = hint.get("kind"), hint.get("x"), hint.get("y") or ""
    if kind not in ("bar", "line") or not x or x not in published.columns or (y and y not in published.columns):
        return []
    mtime = published.path.stat().st_mtime_ns
    return list(_chart_data(str(published.path), mtime, str(kind), str(x), str(y)))
