"""What one sync run needs, free of the ORM: the column plan, the target, the checkpoint and value codecs.

The service builds a :class:`SyncSpec` from a job, its authorization and the source's description; the engine
(``engine.py``) only sees the spec, so a run can also be started in a separate process from its JSON form.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from zhengshu.lake import typemap
from zhengshu.lake.connectors import ColumnInfo, SourceConfig, TableRef

MODES = ("full", "incremental", "cdc")
MODE_LABELS = {"full": "全量", "incremental": "增量（按游标字段）", "cdc": "变更比对（按主键与行哈希）"}
TARGET_KINDS = ("postgresql", "mysql", "duckdb", "parquet")
TARGET_KIND_LABELS = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL / MariaDB",
    "duckdb": "DuckDB",
    "parquet": "Parquet 文件目录",
}
CHECKPOINT_TABLE = "zs_sync_checkpoint"
SHADOW_SUFFIX = "__zs_load"


@dataclass(frozen=True)
class ColumnPlan:
    """One authorized item as it travels: read from ``source``, masked by ``rule``, written as ``target``."""

    source: str
    target: str
    item_key: str
    item_name: str
    code: str
    length: int | None
    rule: str
    arrow_type: pa.DataType
    is_key: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arrow_type"] = type_to_text(self.arrow_type)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnPlan:
        return cls(**{**data, "arrow_type": type_from_text(data["arrow_type"])})


@dataclass(frozen=True)
class TargetConfig:
    kind: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    path: str | None = None


@dataclass
class SyncSpec:
    job_id: str
    run_id: str
    mode: str
    source: SourceConfig
    source_table: TableRef
    columns: list[ColumnPlan]
    target: TargetConfig
    target_table: str
    cursor: str | None = None  # source column of the incremental cursor
    batch_size: int = 100_000
    pause_s: float = 0.0  # throttle between batches, to spare a busy source

    @property
    def key_columns(self) -> list[ColumnPlan]:
        return [c for c in self.columns if c.is_key]

    def to_json(self) -> str:
        return json.dumps(
            {
                "job_id": self.job_id,
                "run_id": self.run_id,
                "mode": self.mode,
                "source": {**asdict(self.source), "options": dict(self.source.options)},
                "source_table": asdict(self.source_table),
                "columns": [c.as_dict() for c in self.columns],
                "target": asdict(self.target),
                "target_table": self.target_table,
                "cursor": self.cursor,
                "batch_size": self.batch_size,
                "pause_s": self.pause_s,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> SyncSpec:
        data = json.loads(text)
        return cls(
            job_id=data["job_id"],
            run_id=data["run_id"],
            mode=data["mode"],
            source=SourceConfig(**data["source"]),
            source_table=TableRef(**data["source_table"]),
            columns=[ColumnPlan.from_dict(c) for c in data["columns"]],
            target=TargetConfig(**data["target"]),
            target_table=data["target_table"],
            cursor=data["cursor"],
            batch_size=int(data["batch_size"]),
            pause_s=float(data["pause_s"]),
        )


@dataclass
class Checkpoint:
    """Progress written in the target, in the same transaction as the batch it follows."""

    job_id: str
    run_id: str
    mode: str
    phase: str  # loading (full, into the shadow table) | swapping | done | applying (cdc)
    batch_seq: int = 0
    cursor: str | None = None  # encoded value (see encode_value)
    last_key: str | None = None  # JSON list of encoded key values
    rows: int = 0  # rows written by the run so far


# ---- types -----------------------------------------------------------------------------------------------


_TYPE_NAMES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "date32": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}


def type_to_text(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"  # type: ignore[attr-defined]
    return next((name for name, known in _TYPE_NAMES.items() if known == t), "string")


def type_from_text(text: str) -> pa.DataType:
    if text.startswith("decimal("):
        p, s = text[8:-1].split(",")
        return pa.decimal128(int(p), int(s))
    return _TYPE_NAMES[text]


def delivered_type(code: str, column: ColumnInfo | None, rule: str) -> pa.DataType:
    """The Arrow type an item is delivered as: the catalog's data type, refined by the source column.

    Masked values are text. Naive and zoned times are delivered as Beijing wall time (``timestamp[us]``). The
    type depends on the item and on what the source declares, never on values, so every run writes alike."""
    if rule != "none":
        return pa.string()
    code = code.upper()
    source_code = column.type_code if column else None
    if code in {"C", "M"}:
        return pa.string()
    if code == "I":
        return pa.int64()
    if code in {"N", "Y"}:
        args = typemap.type_args(column.native_type) if column else []
        native = (column.native_type if column else "").lower()
        if source_code in {"N", "Y"} and len(args) >= 1 and ("dec" in native or "num" in native):
            precision = min(max(args[0], 1), 38)
            scale = min(args[1] if len(args) > 1 else 0, precision)
            return pa.decimal128(precision, scale)
        # without a declared precision (files, floats, integers) one fixed type keeps the target's column
        # stable whatever a file's values make its reader infer this time
        return pa.decimal128(38, 2 if code == "Y" else 8)
    if code in {"B", "F"}:
        return pa.float64()
    if code == "D":
        return pa.date32()
    if code == "T":
        return pa.timestamp("us")
    if code == "L":
        return pa.bool_()
    if code == "G":
        return pa.binary()
    return pa.string()


# ---- values in checkpoints and in SQL ----------------------------------------------------------------------


def encode_value(value: Any) -> str:
    """A typed, reversible text form: ``i:42``, ``s:abc``, ``d:2026-01-02``, ``t:2026-01-02T03:04:05`` …"""
    if isinstance(value, bool):
        return f"b:{int(value)}"
    if isinstance(value, int):
        return f"i:{value}"
    if isinstance(value, float):
        return f"f:{value!r}"
    if isinstance(value, Decimal):
        return f"n:{value}"
    if isinstance(value, datetime):
        return f"t:{value.isoformat()}"
    if isinstance(value, date):
        return f"d:{value.isoformat()}"
    if isinstance(value, str):
        return f"s:{value}"
    raise ValueError(f"cannot checkpoint a value of type {type(value).__name__}")


def decode_value(text: str) -> Any:
    tag, _, raw = text.partition(":")
    if tag == "i":
        return int(raw)
    if tag == "b":
        return raw == "1"
    if tag == "f":
        return float(raw)
    if tag == "n":
        return Decimal(raw)
    if tag == "t":
        return datetime.fromisoformat(raw)
    if tag == "d":
        return date.fromisoformat(raw)
    if tag == "s":
        return raw
    raise ValueError(f"bad checkpoint value {text!r}")


def encode_key(values: list[Any]) -> str:
    return json.dumps([encode_value(v) for v in values], ensure_ascii=False)


def decode_key(text: str) -> list[Any]:
    return [decode_value(v) for v in json.loads(text)]


def quote_ident(dialect: str, name: str) -> str:
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def sql_literal(dialect: str, value: Any) -> str:
    """A SQL literal for a checkpointed value. Only numbers, dates, times and text reach here; text is quoted
    (MySQL also escapes backslashes), so a key value cannot change the statement."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(int(value)) if isinstance(value, int) else format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        text = value.isoformat(sep=" ")
        if value.tzinfo is not None:
            return f"TIMESTAMPTZ '{text}'" if dialect != "mysql" else f"TIMESTAMP '{value.replace(tzinfo=None)}'"
        return f"TIMESTAMP '{text}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL in a key value")
        escaped = value.replace("\\", "\\\\") if dialect == "mysql" else value
        return "'" + escaped.replace("'", "''") + "'"
    raise ValueError(f"cannot render a literal of type {type(value).__name__}")
