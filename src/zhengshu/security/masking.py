"""Masking (脱敏) rules: the default rule of an item, and applying rules to values and Arrow data, so the gateway,
table exchange, downloads and pages mask alike.

A rule is a short code stored per authorized item (DOMAIN.md "Masking"):
``id_6_4`` 身份证号 keep first 6 and last 4 · ``mobile_3_4`` 手机号 first 3 and last 4 · ``name_first`` 姓名 first
character · ``bank_4_4`` 银行卡 first 4 and last 4 · ``address_county`` 地址 masked after the county ·
``email_first`` 邮箱 first letter of the local part · ``none`` shown as is · ``suppress`` not delivered at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from zhengshu.catalog.enums import Sensitivity

RULES: dict[str, str] = {
    "none": "不脱敏",
    "id_6_4": "证件号保留前6位和后4位",
    "mobile_3_4": "电话保留前3位和后4位",
    "name_first": "姓名保留首字",
    "bank_4_4": "卡号保留前4位和后4位",
    "address_county": "地址保留到区县",
    "email_first": "邮箱保留首字母",
    "suppress": "不提供（屏蔽）",
}

# Checked in order: the first keyword found in the item's name decides (身份证号 before 号码-like words).
NAME_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("身份证", "公民身份号码", "证件号"), "id_6_4"),
    (("手机", "联系电话", "电话"), "mobile_3_4"),
    (("银行卡", "银行账号", "账号", "卡号"), "bank_4_4"),
    (("邮箱", "电子邮件", "email", "e-mail"), "email_first"),
    (("地址", "住所", "住址"), "address_county"),
    (("姓名",), "name_first"),
)

# Without a name rule: the lower 一般 grades are shown as is; anything graded higher is withheld unless the
# provider overrides it (就高从严: 一般3/一般4 are not named by the policy, so the stricter default applies).
PLAIN_GRADES = frozenset({Sensitivity.GENERAL1.value, Sensitivity.GENERAL2.value})


class MaskableItem(Protocol):
    name: str
    sensitivity: str


def default_rule_for(name: str, sensitivity: str) -> str:
    lowered = name.lower()
    for keywords, rule in NAME_RULES:
        if any(k in lowered for k in keywords):
            return rule
    return "none" if sensitivity in PLAIN_GRADES else "suppress"


def default_rule(item: MaskableItem) -> str:
    """The masking rule an item gets unless the provider overrides it."""
    return default_rule_for(item.name, item.sensitivity)


def rule_label(rule: str) -> str:
    return RULES.get(rule, rule)


def is_rule(rule: str) -> bool:
    return rule in RULES


# --- Applying rules to data: one implementation for the gateway, table exchange, downloads and pages. ---

MASK_CHAR = "*"
_KEEP_ENDS: dict[str, tuple[int, int]] = {"id_6_4": (6, 4), "mobile_3_4": (3, 4), "bank_4_4": (4, 4)}
# Province, then prefecture, then the county-level unit; characters of a level name exclude the level words so
# "南昌县莲塘镇市场路" stops at 南昌县 rather than running on to 市.
_COUNTY_PREFIX = (
    r"^((?:[^省市县区旗]{2,8}?(?:省|自治区))?"
    r"(?:[^省市县区旗]{2,10}?(?:市|自治州|地区|盟))?"
    r"[^省市县区旗]{1,10}?(?:自治县|县|区|市|旗))"
)
_COUNTY_RE = re.compile(_COUNTY_PREFIX + r"(.*)$", re.DOTALL)
_EMAIL_RE = re.compile(r"^(.)[^@]*(@.*)$", re.DOTALL)
_ADDRESS_TAIL = MASK_CHAR * 4
_EMAIL_MIDDLE = MASK_CHAR * 3


def _keep_ends(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return MASK_CHAR * len(text)
    return text[:head] + MASK_CHAR * (len(text) - head - tail) + text[len(text) - tail :]


def _name_first(text: str) -> str:
    return text[:1] + MASK_CHAR * (len(text) - 1) if len(text) > 1 else MASK_CHAR * len(text)


def _address_county(text: str) -> str:
    m = _COUNTY_RE.match(text)
    if m is None:
        return _ADDRESS_TAIL  # no recognisable county: nothing of it is shown
    return m.group(1) + (_ADDRESS_TAIL if m.group(2) else "")


def _email_first(text: str) -> str:
    m = _EMAIL_RE.match(text)
    return m.group(1) + _EMAIL_MIDDLE + m.group(2) if m else MASK_CHAR * len(text)


def _text_masker(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    def mask(value: Any) -> Any:
        return None if value is None else fn(value if isinstance(value, str) else str(value))

    return mask


def _identity(value: Any) -> Any:
    return value


def _suppressed(value: Any) -> None:
    return None


def value_masker(rule: str) -> Callable[[Any], Any]:
    """A per-value function for ``rule`` (hot paths build it once per item, then call it per row)."""
    if rule == "none":
        return _identity
    if rule == "suppress":
        return _suppressed
    if rule in _KEEP_ENDS:
        head, tail = _KEEP_ENDS[rule]
        return _text_masker(lambda text: _keep_ends(text, head, tail))
    if rule == "name_first":
        return _text_masker(_name_first)
    if rule == "address_county":
        return _text_masker(_address_county)
    if rule == "email_first":
        return _text_masker(_email_first)
    raise ValueError(f"unknown masking rule: {rule}")


def mask_value(rule: str, value: Any) -> Any:
    """``value`` masked by ``rule``: None stays None, "suppress" gives None, non-text values are masked as text."""
    return value_masker(rule)(value)


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, type=pa.large_string())


def _stars(lengths: pa.Array) -> pa.Array:
    return pc.binary_repeat(_large(MASK_CHAR), pc.max_element_wise(lengths, 0))


def _mask_text_array(rule: str, text: pa.Array) -> pa.Array:
    length = pc.utf8_length(text)
    if rule in _KEEP_ENDS:
        head, tail = _KEEP_ENDS[rule]
        masked = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(text, 0, head),
            _stars(pc.subtract(length, head + tail)),
            pc.utf8_slice_codeunits(text, -tail) if tail else _large(""),
            _large(""),
        )
        return pc.if_else(pc.greater(length, head + tail), masked, _stars(length))
    if rule == "name_first":
        masked = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(text, 0, 1), _stars(pc.subtract(length, 1)), _large("")
        )
        return pc.if_else(pc.greater(length, 1), masked, _stars(length))
    if rule == "address_county":
        kept = pc.replace_substring_regex(text, pattern=_COUNTY_PREFIX + r".+$", replacement=r"\1" + _ADDRESS_TAIL)
        return pc.if_else(pc.match_substring_regex(text, pattern=_COUNTY_PREFIX), kept, _large(_ADDRESS_TAIL))
    if rule == "email_first":
        masked = pc.replace_substring_regex(text, pattern=_EMAIL_RE.pattern, replacement=r"\1" + _EMAIL_MIDDLE + r"\2")
        return pc.if_else(pc.match_substring_regex(text, pattern=_EMAIL_RE.pattern), masked, _stars(length))
    raise ValueError(f"unknown masking rule: {rule}")


def mask_array(rule: str, array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``array`` masked by ``rule`` with Arrow compute (no Python per value). Masked values are text; "suppress"
    gives an all-null column of the same type (callers that can drop the column should, see ``mask_table``)."""
    if rule == "none":
        return array
    if rule == "suppress":
        return pa.nulls(len(array), type=array.type)
    if isinstance(array, pa.ChunkedArray):
        return pa.chunked_array([mask_array(rule, chunk) for chunk in array.chunks], type=pa.large_string())
    text = array.cast(pa.large_string()) if not pa.types.is_large_string(array.type) else array
    return _mask_text_array(rule, text)


TableLike = TypeVar("TableLike", pa.Table, pa.RecordBatch)


def delivered_columns(rules: Mapping[str, str]) -> list[str]:
    """Names whose rule delivers something (everything but "suppress"), in the mapping's order."""
    return [name for name, rule in rules.items() if rule != "suppress"]


def mask_table(table: TableLike, rules: Mapping[str, str]) -> TableLike:
    """``table`` with each column named in ``rules`` masked by its rule; "suppress" columns are dropped and
    columns not named in ``rules`` pass unchanged."""
    names: list[str] = []
    columns: list[Any] = []
    for name, column in zip(table.schema.names, table.columns, strict=True):
        rule = rules.get(name, "none")
        if rule == "suppress":
            continue
        names.append(name)
        columns.append(mask_array(rule, column))
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, names=names)
    return pa.Table.from_arrays(columns, names=names)
