"""One batch on its way out: keep the authorized columns, mask them, convert them to the items' types.

Values that cannot be converted (text in a number item, a date that does not exist, a value longer than the
item allows, a decimal that would lose digits, an empty key) send their whole row to the quarantine with the
reason; the rest of the batch goes on. Conversions are vectorised; only a column whose cast fails is looked
at value by value to find the culprits.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from zhengshu.catalog.enums import DATA_TYPE_LABELS
from zhengshu.exchange.tables.plan import ColumnPlan
from zhengshu.security.masking import mask_table

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError, ValueError)
MAX_VALUE_TEXT = 500


@dataclass(frozen=True)
class Quarantined:
    row_key: str
    column: str
    value: str | None
    reason: str


@dataclass
class Prepared:
    table: pa.Table  # target column names, delivered types, good rows only
    quarantined: list[Quarantined]
    bad_keys: list[str]  # row keys of the rows left out (change detection must not read them as deletes)


def _label(code: str) -> str:
    return DATA_TYPE_LABELS.get(code.upper(), code)


def _value_text(array: pa.Array, i: int) -> str | None:
    value = array[i].as_py()
    if value is None:
        return None
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text[:MAX_VALUE_TEXT]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if pa.types.is_timestamp(array.type) and pa.types.is_timestamp(target):
        if array.type.tz is not None:  # type: ignore[attr-defined]
            # zoned instants are delivered as Beijing wall time, like the naive times of department databases
            array = pc.local_timestamp(array.cast(pa.timestamp("us", tz="Asia/Shanghai")))
        return array.cast(target)
    if pa.types.is_large_string(array.type) and pa.types.is_string(target):
        return array.cast(target)
    if (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)) and not pa.types.is_string(target):
        array = pc.utf8_trim_whitespace(array)
        # empty text in a typed column is a missing value, not a conversion failure
        array = pc.if_else(pc.equal(pc.utf8_length(array), 0), pa.scalar(None, array.type), array)
    return pc.cast(array, target, safe=True)


def convert_column(array: pa.Array, plan: ColumnPlan) -> tuple[pa.Array, dict[int, str]]:
    """``array`` as ``plan.arrow_type`` and the failures by row index (failed values become null)."""
    failures: dict[int, str] = {}
    try:
        converted = _cast(array, plan.arrow_type)
    except _CAST_ERRORS:
        values: list[pa.Array] = []
        for i in range(len(array)):
            piece = array.slice(i, 1)
            try:
                values.append(_cast(piece, plan.arrow_type))
            except _CAST_ERRORS as exc:
                failures[i] = f"无法转换为{_label(plan.code)}：{_short(exc)}"
                values.append(pa.nulls(1, type=plan.arrow_type))
        converted = pa.concat_arrays(values) if values else pa.array([], type=plan.arrow_type)
    if plan.length and pa.types.is_string(plan.arrow_type) and plan.code.upper() == "C":
        too_long = pc.fill_null(pc.greater(pc.utf8_length(converted), plan.length), False)
        for i in pc.indices_nonzero(too_long).to_pylist():
            n = len(converted[i].as_py() or "")
            failures.setdefault(i, f"长度 {n} 超过信息项“{plan.item_name}”的长度 {plan.length}")
    if plan.is_key and converted.null_count:
        for i in pc.indices_nonzero(pc.is_null(converted)).to_pylist():
            failures.setdefault(i, "主键为空")
    return converted, failures


def prepare(batch: pa.RecordBatch | pa.Table, columns: list[ColumnPlan]) -> Prepared:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    selected = table.select([c.source for c in columns])
    masked = mask_table(selected, {c.source: c.rule for c in columns})
    arrays: list[pa.Array] = []
    failures: dict[int, list[tuple[ColumnPlan, str]]] = {}
    originals: list[pa.Array] = []
    for plan in columns:
        original = masked.column(plan.source).combine_chunks()
        converted, failed = convert_column(original, plan)
        arrays.append(converted)
        originals.append(original)
        for i, reason in failed.items():
            failures.setdefault(i, []).append((plan, reason))
    result = pa.Table.from_arrays(arrays, names=[c.target for c in columns])
    if not failures:
        return Prepared(result, [], [])
    key_positions = [n for n, c in enumerate(columns) if c.is_key]
    quarantined: list[Quarantined] = []
    bad_keys: list[str] = []
    for i in sorted(failures):
        row_key = "|".join(str(originals[n][i].as_py()) for n in key_positions)
        bad_keys.append(row_key)
        for plan, reason in failures[i]:
            position = columns.index(plan)
            quarantined.append(Quarantined(row_key, plan.target, _value_text(originals[position], i), reason))
    keep = pa.array([i not in failures for i in range(result.num_rows)], type=pa.bool_())
    return Prepared(result.filter(keep), quarantined, bad_keys)
