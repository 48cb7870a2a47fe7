"""The catalog's ticket machines: review of a version, update after a change of duty, annual re-check."""

from __future__ import annotations

from zhengshu.core.config import get_settings
from zhengshu.security.actor import Role
from zhengshu.workflow.machine import State, declare

REVIEW = "catalog_review"
DUTY_UPDATE = "catalog_duty_update"
RECHECK = "catalog_recheck"


def _entry_link(subject_type: str, subject_id: str) -> str:
    return f"/catalog/{subject_id}"


REVIEW_MACHINE = declare(
    REVIEW,
    "目录审核",
    states=[
        State("draft", "编制中", frozenset({Role.OFFICER})),
        State("submitted", "待审核", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().catalog_review_days),
        State("returned", "已退回", frozenset({Role.OFFICER})),
        State("published", "已发布", final=True),
        State("discarded", "已作废", final=True),
    ],
    transitions=[
        ("submit", "提交审核", {"draft", "returned"}, "submitted"),
        ("recall", "撤回", {"submitted"}, "draft"),
        ("approve", "审核通过并发布", {"submitted"}, "published"),
        ("return", "退回修改", {"submitted"}, "returned"),
        ("discard", "作废", {"draft", "returned", "submitted"}, "discarded"),
    ],
    initial="draft",
    link=_entry_link,
)

DUTY_UPDATE_MACHINE = declare(
    DUTY_UPDATE,
    "职责变更目录更新",
    states=[
        State("open", "待更新", frozenset({Role.OFFICER}), sla_days=lambda: get_settings().catalog_update_days),
        State("updated", "已更新", final=True),
        State("no_change", "确认无需变更", final=True),
    ],
    transitions=[
        ("fulfil", "已提交更新", {"open"}, "updated"),
        ("confirm_no_change", "确认无需变更", {"open"}, "no_change"),
    ],
    initial="open",
    link=lambda t, i: f"/catalog?provider={i}" if t == "organization" else f"/catalog/{i}",
)

RECHECK_MACHINE = declare(
    RECHECK,
    "年度复核",
    states=[
        State("open", "待复核", frozenset({Role.OFFICER})),
        State("confirmed", "复核无变化", final=True),
        State("revised", "复核后已修订", final=True),
    ],
    transitions=[
        ("confirm", "确认无变化", {"open"}, "confirmed"),
        ("revise", "已提交修订", {"open"}, "revised"),
    ],
    initial="open",
    link=_entry_link,
)
