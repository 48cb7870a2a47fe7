"""Masking (脱敏) rules. Only the default rule of an item is decided here for now; the module that applies the
rules to data (gateway, table exchange, downloads, pages) will live here too, so every channel masks alike.

A rule is a short code stored per authorized item (DOMAIN.md "Masking"):
``id_6_4`` 身份证号 keep first 6 and last 4 · ``mobile_3_4`` 手机号 first 3 and last 4 · ``name_first`` 姓名 first
character · ``bank_4_4`` 银行卡 first 4 and last 4 · ``address_county`` 地址 masked after the county ·
``email_first`` 邮箱 first letter of the local part · ``none`` shown as is · ``suppress`` not delivered at all.
"""

from __future__ import annotations

from typing import Protocol

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
