"""Pieces of the sync engine without servers: conversions and the quarantine, checkpoint value codecs, SQL
literals that cannot change a statement, resume predicates with ties on the cursor, schedules on working days."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from zhengshu.exchange.tables import schedule
from zhengshu.exchange.tables.plan import (
    ColumnPlan,
    SyncSpec,
    TargetConfig,
    decode_key,
    decode_value,
    delivered_type,
    encode_key,
    encode_value,
    sql_literal,
)
from zhengshu.exchange.tables.readers import SourceReader
from zhengshu.exchange.tables.transform import prepare
from zhengshu.lake.connectors import ColumnInfo, SourceConfig, TableRef

PLANS = [
    ColumnPlan("id", "id", "k1", "编号", "I", None, "none", pa.int64(), True),
    ColumnPlan("xm", "xm", "k2", "姓名", "C", 4, "name_first", pa.string()),
    ColumnPlan("je", "je", "k3", "金额", "N", 12, "none", pa.decimal128(12, 2)),
    ColumnPlan("rq", "rq", "k4", "日期", "D", None, "none", pa.date32()),
    ColumnPlan("dm", "dm", "k5", "代码", "C", 3, "none", pa.string()),
]


def test_unconvertible_values_send_their_row_to_the_quarantine_with_reasons() -> None:
    batch = pa.table(
        {
            "id": [1, 2, 3, 4, None],
            "xm": ["张三", "李四", "王五", "赵六", "钱七"],
            "je": ["1.50", "壹元", "2", " ", "3.456"],
            "rq": ["2026-01-02", "2026-01-03", "2026-02-30", None, "2026-01-05"],
            "dm": ["abc", "abcd", "x", "y", "z"],
            "extra": ["不交换"] * 5,
        }
    )
    prepared = prepare(batch, PLANS)
    assert prepared.table.column_names == ["id", "xm", "je", "rq", "dm"]  # only the planned items leave
    assert prepared.table.to_pylist() == [
        {"id": 1, "xm": "张*", "je": Decimal("1.50"), "rq": dt.date(2026, 1, 2), "dm": "abc"},
        {"id": 4, "xm": "赵*", "je": None, "rq": None, "dm": "y"},  # blank text in a number is a missing value
    ]
    reasons = {(q.row_key, q.column): q.reason for q in prepared.quarantined}
    assert set(reasons) == {("2", "je"), ("2", "dm"), ("3", "rq"), ("None", "id"), ("None", "je")}
    assert reasons[("2", "je")].startswith("无法转换为数值")
    assert reasons[("2", "dm")] == "长度 4 超过信息项“代码”的长度 3"
    assert reasons[("None", "id")] == "主键为空"
    assert "无法转换为数值" in reasons[("None", "je")]  # 3.456 would lose a digit in decimal(12,2)
    assert prepared.bad_keys == ["2", "3", "None"]


def test_delivered_types_follow_the_item_and_the_declared_column() -> None:
    decimal_col = ColumnInfo("je", "decimal(12,2)", "N", 12, True)
    assert delivered_type("N", decimal_col, "none") == pa.decimal128(12, 2)
    assert delivered_type("N", ColumnInfo("je", "double", "B", None, True), "none") == pa.decimal128(38, 8)
    assert delivered_type("Y", None, "none") == pa.decimal128(38, 2)
    assert delivered_type("C", None, "id_6_4") == pa.string()
    assert delivered_type("T", None, "none") == pa.timestamp("us")
    assert delivered_type("I", None, "mobile_3_4") == pa.string()  # masked values are text


@pytest.mark.parametrize(
    "value",
    [42, -7, "36010219900101123X", "it's", dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, 5, 6), Decimal("1.20")],
)
def test_checkpoint_values_round_trip(value: object) -> None:
    assert decode_value(encode_value(value)) == value
    assert decode_key(encode_key([value, 1])) == [value, 1]


def test_literals_quote_text_so_a_key_cannot_change_the_statement() -> None:
    assert sql_literal("postgresql", "a'; DROP TABLE x; --") == "'a''; DROP TABLE x; --'"
    assert sql_literal("mysql", "a\\' OR 1=1 -- ") == "'a\\\\'' OR 1=1 -- '"
    assert sql_literal("mysql", dt.datetime(2026, 1, 2, 3, 4, 5)) == "TIMESTAMP '2026-01-02 03:04:05'"
    with pytest.raises(ValueError):
        sql_literal("postgresql", "a\x00b")
    with pytest.raises(ValueError):
        sql_literal("postgresql", object())


def spec(mode: str, kind: str = "mysql") -> SyncSpec:
    return SyncSpec(
        job_id="j",
        run_id="r",
        mode=mode,
        source=SourceConfig(kind=kind, host="h", database="d", username="u"),
        source_table=TableRef(None, "ry"),
        columns=PLANS,
        target=TargetConfig(kind="duckdb", path="/tmp/x.duckdb"),
        target_table="ry",
        cursor="gxsj" if mode == "incremental" else None,
    )


def test_resume_predicates() -> None:
    full = SourceReader(spec("full"))
    assert full.sql() == "SELECT `id`, `xm`, `je`, `rq`, `dm` FROM `ry` ORDER BY `id`"
    assert full.sql(after_key=[500]).endswith("FROM `ry` WHERE `id` > 500 ORDER BY `id`")
    inc = SourceReader(spec("incremental", "postgresql"))
    sql = inc.sql(after_key=[7], after_cursor=dt.datetime(2026, 11, 1, 8, 0))
    # rows sharing the checkpoint's time continue by key: none lost, none repeated
    assert (
        'WHERE "gxsj" IS NOT NULL AND "gxsj" >= TIMESTAMP \'2026-11-01 08:00:00\' AND '
        '("gxsj" > TIMESTAMP \'2026-11-01 08:00:00\' OR "id" > 7) ORDER BY "gxsj", "id"'
    ) in sql
    assert '"gxsj"' in inc.sql().split("FROM")[0]  # the cursor is read even when it is not an authorized item


def test_range_reads_of_changes_end_at_an_inclusive_position() -> None:
    reader = SourceReader(spec("incremental"))
    upto = (dt.datetime(2026, 11, 1, 9, 0), [42])
    sql = reader.sql(after_key=[7], after_cursor=dt.datetime(2026, 11, 1, 8, 0), upto=upto, ordered=False)
    # a part of a batch: after the previous part's end, up to and including its own end, in any order
    assert sql.endswith(
        "(`gxsj` > TIMESTAMP '2026-11-01 08:00:00' OR `id` > 7) AND `gxsj` <= TIMESTAMP '2026-11-01 09:00:00' "
        "AND (`gxsj` < TIMESTAMP '2026-11-01 09:00:00' OR `id` <= 42)"
    )
    assert reader.sql(columns=["gxsj", "id"]).startswith("SELECT `gxsj`, `id` FROM `ry` WHERE `gxsj` IS NOT NULL")


def test_working_day_schedules_skip_the_national_day_holiday() -> None:
    after = dt.datetime(2026, 9, 30, 12, 0, tzinfo=dt.UTC)  # 20:00 in Beijing, the eve of the holiday
    every_day = schedule.next_run_after("0 2 * * *", after)
    working = schedule.next_run_after("0 2 * * *", after, working_days_only=True)
    assert every_day == dt.datetime(2026, 9, 30, 18, 0, tzinfo=dt.UTC)  # 02:00 on 1 October, Beijing
    assert working == dt.datetime(2026, 10, 7, 18, 0, tzinfo=dt.UTC)  # 02:00 on 8 October, after the holiday
    assert not schedule.is_valid("every night") and schedule.is_valid("*/15 * * * *")
    assert schedule.describe(None, False) == "手动运行"
