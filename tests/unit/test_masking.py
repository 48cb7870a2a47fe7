"""The masking rules applied to values and to Arrow data: DOMAIN.md's examples, and the vectorised path agreeing
with the per-value one for any text."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhengshu.security.masking import RULES, delivered_columns, mask_array, mask_table, mask_value, value_masker

TEXT_RULES = [rule for rule in RULES if rule not in {"none", "suppress"}]


@pytest.mark.parametrize(
    ("rule", "value", "masked"),
    [
        ("id_6_4", "360102199001011234", "360102********1234"),
        ("mobile_3_4", "13812345678", "138****5678"),
        ("name_first", "李小明", "李**"),
        ("name_first", "张", "*"),
        ("bank_4_4", "6222020200112233445", "6222***********3445"),
        ("address_county", "江西省南昌市东湖区八一大道100号", "江西省南昌市东湖区****"),
        ("address_county", "南昌县莲塘镇市场路8号", "南昌县****"),
        ("address_county", "九江市瑞昌市桂林街道", "九江市瑞昌市****"),
        ("address_county", "八一大道100号", "****"),
        ("email_first", "zhang.san@example.com", "z***@example.com"),
        ("email_first", "no-at-sign", "**********"),
        ("id_6_4", "12345", "*****"),
        ("mobile_3_4", 13812345678, "138****5678"),
        ("none", "原样", "原样"),
        ("suppress", "不提供", None),
        ("id_6_4", None, None),
    ],
)
def test_each_rule_masks_as_domain_md_says(rule: str, value: object, masked: object) -> None:
    assert mask_value(rule, value) == masked


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        value_masker("reveal_all")


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=20), rule=st.sampled_from(TEXT_RULES))
def test_the_arrow_path_agrees_with_the_value_path(values: list[str | None], rule: str) -> None:
    assert mask_array(rule, pa.array(values, type=pa.string())).to_pylist() == [mask_value(rule, v) for v in values]


def test_chunked_columns_are_masked_chunk_by_chunk() -> None:
    column = pa.chunked_array([["13812345678"], ["13987654321", None]])
    assert mask_array("mobile_3_4", column).to_pylist() == ["138****5678", "139****4321", None]


def test_mask_table_drops_suppressed_columns_and_keeps_unnamed_ones() -> None:
    table = pa.table({"证件号": ["360102199001011234"], "年龄": [30], "病历": ["机密"]})
    rules = {"证件号": "id_6_4", "病历": "suppress"}
    masked = mask_table(table, rules)
    assert masked.schema.names == ["证件号", "年龄"]
    assert masked.to_pylist() == [{"证件号": "360102********1234", "年龄": 30}]
    batch = mask_table(table.to_batches()[0], rules)
    assert isinstance(batch, pa.RecordBatch) and batch.num_columns == 2
    assert delivered_columns(rules) == ["证件号"]
