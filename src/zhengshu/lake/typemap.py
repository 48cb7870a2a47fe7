"""Native column types → the catalog's data type codes (DOMAIN.md), and which codes satisfy which.

The codes are the Visual FoxPro field types that GB/T 21063-era templates inherited:
C 字符, N 数值, Y 货币, D 日期, T 日期时间, L 逻辑, M 备注, G 通用(二进制), B 双精度, I 整型, F 浮点.

A native type maps to ``(code, length)``. ``length`` is the declared character length for strings
(``varchar(50)`` → 50) and the precision for decimals (``numeric(12,2)`` → 12); ``None`` when the type has
no declared bound. Lengths are compared in the declared unit (characters), not bytes: catalog templates fill
"长度" with the same number the database declares.

Unbounded text (PostgreSQL ``text``, MySQL ``*text``, JSON, arrays, unknown types read as text) is M 备注;
bounded strings are C 字符. Unknown native types are read as text, hence M.
"""

from __future__ import annotations

import re

import pyarrow as pa

TYPE_CODES = ("C", "N", "Y", "D", "T", "L", "M", "G", "B", "I", "F")

# Item type → column types whose values it can receive without loss of meaning.
# - C and M accept each other: a bounded string fits a memo, and departments declare names as `text`
#   (the length check still applies when the column declares one).
# - N (generic number) accepts every numeric column; Y (money) accepts exact numbers (N, I).
# - B and F accept floating and integer columns, not decimals (that would round exact values).
# - T accepts D (a date is a datetime at midnight); D does not accept T (the time would be lost).
# - I, L, G accept only themselves.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "C": frozenset({"C", "M"}),
    "M": frozenset({"M", "C"}),
    "N": frozenset({"N", "I", "Y", "B", "F"}),
    "Y": frozenset({"Y", "N", "I"}),
    "I": frozenset({"I"}),
    "B": frozenset({"B", "F", "I"}),
    "F": frozenset({"F", "B", "I"}),
    "D": frozenset({"D"}),
    "T": frozenset({"T", "D"}),
    "L": frozenset({"L"}),
    "G": frozenset({"G"}),
}

# Types whose declared length is meaningful to compare with the item's length.
LENGTH_CHECKED = frozenset({"C", "N", "Y"})


def compatible(item_type_code: str, column_type_code: str) -> bool:
    """Whether a column of ``column_type_code`` can be mounted on an item of ``item_type_code``."""
    return column_type_code in _COMPATIBLE.get(item_type_code.upper(), frozenset())


_ARGS = re.compile(r"\(([^)]*)\)")


def _split(native: str) -> tuple[str, list[int]]:
    """``'character varying(50)'`` → ``('character varying', [50])``; other markers stay in the name."""
    text = native.strip().lower()
    args: list[int] = []
    match = _ARGS.search(text)
    if match:
        for part in match.group(1).split(","):
            part = part.strip()
            if part.isdigit():
                args.append(int(part))
        text = (text[: match.start()] + text[match.end() :]).strip()
    return " ".join(text.split()), args


def type_args(native: str) -> list[int]:
    """The numeric arguments of a native type: ``'numeric(12,2)'`` → ``[12, 2]``."""
    return _split(native)[1]


def _first(args: list[int]) -> int | None:
    return args[0] if args else None


def postgres_type(native: str) -> tuple[str, int | None]:
    """Map a PostgreSQL ``format_type`` string."""
    base, args = _split(native)
    if base.endswith("[]"):
        return "M", None
    if base in {
        "smallint",
        "integer",
        "bigint",
        "int2",
        "int4",
        "int8",
        "smallserial",
        "serial",
        "bigserial",
    }:
        return "I", None
    if base in {"numeric", "decimal"}:
        return "N", _first(args)
    if base == "money":
        return "Y", None
    if base in {"real", "float4"}:
        return "F", None
    if base in {"double precision", "float8"}:
        return "B", None
    if base in {"character varying", "varchar", "character", "char", "bpchar", "name", '"char"'}:
        return "C", _first(args)
    if base in {"uuid", "inet", "cidr", "macaddr", "interval"} or base.startswith("time ") or base == "time":
        return "C", None
    if base in {"text", "citext", "json", "jsonb", "xml", "tsvector"}:
        return "M", None
    if base == "date":
        return "D", None
    if base.startswith("timestamp"):
        return "T", None
    if base in {"boolean", "bool"}:
        return "L", None
    if base == "bytea":
        return "G", None
    return "M", None


def mysql_type(native: str) -> tuple[str, int | None]:
    """Map a MySQL/MariaDB ``COLUMN_TYPE`` string such as ``'bigint(20) unsigned'`` or ``'tinyint(1)'``."""
    base, args = _split(native)
    base = base.replace(" unsigned", "").replace(" zerofill", "").strip()
    if (base in {"tinyint", "bit"} and args == [1]) or base in {"bool", "boolean"}:
        return "L", None
    if base in {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}:
        return "I", None
    if base in {"decimal", "numeric", "dec", "fixed"}:
        return "N", _first(args)
    if base == "float":
        return "F", None
    if base in {"double", "double precision", "real"}:
        return "B", None
    if base in {"char", "varchar", "enum", "set", "time", "uuid", "inet4", "inet6"}:
        return "C", _first(args) if base in {"char", "varchar"} else None
    if base in {"tinytext", "text", "mediumtext", "longtext", "json"}:
        return "M", None
    if base == "date":
        return "D", None
    if base in {"datetime", "timestamp"}:
        return "T", None
    if base in {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit", "geometry"}:
        return "G", None
    return "M", None


def sqlite_type(native: str) -> tuple[str, int | None]:
    """Map a SQLite declared type, following its affinity rules where they apply."""
    base, args = _split(native)
    upper = base.upper()
    if not upper:
        return "M", None  # no declared type: values of any kind, read as text
    if "BOOL" in upper:
        return "L", None
    if "DATETIME" in upper or "TIMESTAMP" in upper:
        return "T", None
    if "DATE" in upper:
        return "D", None
    if "INT" in upper:
        return "I", None
    if "CHAR" in upper:
        return "C", _first(args)
    if "CLOB" in upper or "TEXT" in upper:
        return ("C", args[0]) if args else ("M", None)
    if "BLOB" in upper:
        return "G", None
    if "DOUB" in upper or "REAL" in upper:
        return "B", None
    if "FLOA" in upper:
        return "F", None
    if "MONEY" in upper:
        return "Y", None
    if "DEC" in upper or "NUM" in upper:
        return "N", _first(args)
    return "M", None


def duckdb_type(native: str) -> tuple[str, int | None]:
    """Map a DuckDB ``data_type`` string: ``DECIMAL(18,3)``, ``TIMESTAMP WITH TIME ZONE``, ``INTEGER[]`` …"""
    base, args = _split(native)
    upper = base.upper()
    if upper.endswith("]") or upper.startswith(("STRUCT", "MAP", "UNION", "LIST")) or upper == "JSON":
        return "M", None
    if upper in {"BOOLEAN", "BOOL"}:
        return "L", None
    if upper in {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "INT",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }:
        return "I", None
    if upper in {"DECIMAL", "NUMERIC"}:
        return "N", _first(args)
    if upper in {"REAL", "FLOAT", "FLOAT4"}:
        return "F", None
    if upper in {"DOUBLE", "FLOAT8"}:
        return "B", None
    if upper in {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR"}:
        return "C", _first(args)
    if upper in {"UUID", "INTERVAL", "BIT"} or (upper.startswith("TIME") and not upper.startswith("TIMESTAMP")):
        return "C", None
    if upper == "DATE":
        return "D", None
    if upper.startswith("TIMESTAMP"):
        return "T", None
    if upper in {"BLOB", "BYTEA", "VARBINARY"}:
        return "G", None
    return "M", None


def arrow_type(data_type: pa.DataType) -> tuple[str, int | None]:
    """Map an Arrow type (CSV, XLSX and Parquet columns, and anything read into Arrow)."""
    t = pa.types
    if t.is_boolean(data_type):
        return "L", None
    if t.is_integer(data_type):
        return "I", None
    if t.is_decimal(data_type):
        return "N", data_type.precision  # type: ignore[attr-defined]
    if t.is_float16(data_type) or t.is_float32(data_type):
        return "F", None
    if t.is_float64(data_type):
        return "B", None
    if t.is_string(data_type) or t.is_large_string(data_type) or t.is_string_view(data_type):
        return "C", None
    if t.is_null(data_type) or t.is_time(data_type) or t.is_duration(data_type) or t.is_dictionary(data_type):
        return "C", None
    if t.is_binary(data_type) or t.is_large_binary(data_type) or t.is_fixed_size_binary(data_type):
        return "G", None
    if t.is_date(data_type):
        return "D", None
    if t.is_timestamp(data_type):
        return "T", None
    return "M", None


_DIALECTS = {
    "postgresql": postgres_type,
    "mysql": mysql_type,
    "sqlite": sqlite_type,
    "duckdb": duckdb_type,
}


def native_type(dialect: str, native: str) -> tuple[str, int | None]:
    """Map ``native`` for ``dialect`` (postgresql, mysql, sqlite, duckdb)."""
    return _DIALECTS[dialect](native)


def code_to_arrow(code: str, length: int | None = None, scale: int | None = None) -> pa.DataType | None:
    """A stable Arrow type for a code when reading rows from a driver; ``None`` means "infer from values"."""
    if code in {"C", "M"}:
        return pa.string()
    if code == "I":
        return pa.int64()
    if code in {"B", "F"}:
        return pa.float64()
    if code == "L":
        return pa.bool_()
    if code == "D":
        return pa.date32()
    if code == "G":
        return pa.binary()
    if code in {"N", "Y"} and length and scale is not None and length <= 38:
        return pa.decimal128(length, scale)
    return None
