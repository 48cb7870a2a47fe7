"""The objection ticket machine (DOMAIN.md: raised → accepted → flagged → handled → flag removed → archived).

Limits are policy settings: the provider answers within ``objection_reply_days`` working days counted from
when it received the objection (raising or forwarding; accepting does not restart the count); an overdue
answer escalates to the data authority; a disputed answer goes to the data authority, which decides within
``coordination_days``.
"""

from __future__ import annotations

from zhengshu.core.config import get_settings
from zhengshu.security.actor import Role
from zhengshu.workflow.machine import State, declare

KIND = "data_objection"

RAISED = "raised"
VERIFYING = "verifying"
ESCALATED = "escalated"
ANSWERED = "answered"
ARBITRATING = "arbitrating"
ARCHIVED = "archived"
WITHDRAWN = "withdrawn"

# states in which the provider has not answered yet: a new objection on the same target joins the group
PRE_ANSWER = frozenset({RAISED, VERIFYING, ESCALATED})
ANSWERABLE = frozenset({VERIFYING, ESCALATED})
OVERDUE_ESCALATES = frozenset({RAISED, VERIFYING})


def _link(subject_type: str, subject_id: str) -> str:
    return f"/objections/{subject_id}"


MACHINE = declare(
    KIND,
    "数据异议",
    states=[
        State(RAISED, "待受理", frozenset({Role.OFFICER}), sla_days=lambda: get_settings().objection_reply_days),
        State(VERIFYING, "核实处理中", frozenset({Role.OFFICER}), sla_days=lambda: get_settings().objection_reply_days),
        State(ESCALATED, "逾期督办中", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().coordination_days),
        State(ANSWERED, "待异议方确认", frozenset({Role.OFFICER, Role.USER})),
        State(ARBITRATING, "仲裁中", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().coordination_days),
        State(ARCHIVED, "已办结", final=True),
        State(WITHDRAWN, "已撤回", final=True),
    ],
    transitions=[
        ("accept", "受理并标注", {RAISED}, VERIFYING),
        ("answer", "答复", {VERIFYING, ESCALATED}, ANSWERED),
        ("forward", "转办", {RAISED, VERIFYING, ESCALATED}, RAISED),
        ("escalate", "逾期提交数据主管部门", {RAISED, VERIFYING}, ESCALATED),
        ("urge", "督办", {ESCALATED}, VERIFYING),
        ("confirm", "确认答复并办结", {ANSWERED}, ARCHIVED),
        ("dispute", "对答复有异议，提请仲裁", {ANSWERED}, ARBITRATING),
        ("arbitrate", "仲裁裁定", {ARBITRATING}, ARCHIVED),
        ("withdraw", "撤回异议", "*", WITHDRAWN),
    ],
    initial=RAISED,
    link=_link,
)

STATE_LABELS = {name: s.label for name, s in MACHINE.states.items()}
OPEN_STATES = frozenset(name for name, s in MACHINE.states.items() if not s.final)
