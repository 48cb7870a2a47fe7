"""The ticket machine of a ferry export request (摆渡导出申请): the data authority's reviewer approves or refuses."""

from __future__ import annotations

from zhengshu.core.config import get_settings
from zhengshu.security.actor import Role
from zhengshu.workflow.machine import State, declare

FERRY_EXPORT = "ferry_export"
SUBJECT = "ferry_export"


def _link(subject_type: str, subject_id: str) -> str:
    return f"/exchange/ferry/exports/{subject_id}"


FERRY_MACHINE = declare(
    FERRY_EXPORT,
    "摆渡导出申请",
    states=[
        State("submitted", "待审批", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().ferry_review_days),
        State("approved", "已批准", final=True),
        State("refused", "未批准", final=True),
        State("withdrawn", "已撤回", final=True),
    ],
    transitions=[
        ("approve", "批准导出", {"submitted"}, "approved"),
        ("refuse", "不予批准", {"submitted"}, "refused"),
        ("withdraw", "申请人撤回", {"submitted"}, "withdrawn"),
    ],
    initial="submitted",
    link=_link,
)
