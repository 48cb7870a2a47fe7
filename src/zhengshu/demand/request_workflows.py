"""The ticket machine of a data request (数据需求).

submitted (the probable provider answers within ``demand_reply_days``):
- we hold it: link a published entry → fulfilled (the requester then applies normally), or compile a new entry
  → compiling until that entry is published (the ``catalog.entry.published`` consumer or an explicit link
  closes the loop);
- we do not hold it → not_held: the requester redirects to another provider (the limit restarts), asks the
  data authority to coordinate, or closes;
- it cannot be shared (legal basis required) → refused: the requester accepts (closes) or appeals to the
  data authority.
Unanswered requests escalate to the data authority (coordination), which assigns a provider or closes. A
request naming no provider starts in coordination. The requester can withdraw until the request is finished.
"""

from __future__ import annotations

from zhengshu.core.config import get_settings
from zhengshu.security.actor import Role
from zhengshu.workflow.machine import State, declare

REQUEST = "data_request"
SUBJECT = "data_request"


def _link(subject_type: str, subject_id: str) -> str:
    return f"/requests/{subject_id}"


OPEN_STATES = frozenset({"submitted", "compiling", "not_held", "refused", "coordination"})
PROVIDER_STATES = frozenset({"submitted", "compiling"})  # the provider must answer (counted for overdue)

REQUEST_MACHINE = declare(
    REQUEST,
    "数据需求",
    states=[
        State(
            "submitted", "待提供方答复", frozenset({Role.OFFICER}), sla_days=lambda: get_settings().demand_reply_days
        ),
        State("compiling", "编目中", frozenset({Role.OFFICER}), sla_days=lambda: get_settings().demand_reply_days),
        State("not_held", "提供方无此数据", frozenset({Role.OFFICER, Role.USER})),
        State("refused", "不予共享", frozenset({Role.OFFICER, Role.USER})),
        State("coordination", "协调中", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().coordination_days),
        State("fulfilled", "已对接目录", final=True),
        State("closed", "已办结", final=True),
        State("withdrawn", "已撤回", final=True),
    ],
    transitions=[
        ("link_entry", "答复：已有目录", {"submitted", "compiling"}, "fulfilled"),
        ("compile", "答复：编目后提供", {"submitted"}, "compiling"),
        ("catalogued", "目录已发布", {"compiling"}, "fulfilled"),
        ("not_held", "答复：无此数据", {"submitted", "compiling"}, "not_held"),
        ("refuse", "答复：不予共享", {"submitted", "compiling"}, "refused"),
        ("redirect", "改派提供方", {"not_held", "refused"}, "submitted"),
        ("ask_coordination", "提请数据主管部门协调", {"not_held", "refused"}, "coordination"),
        ("escalate", "逾期未答复，提请协调", {"submitted", "compiling"}, "coordination"),
        ("assign", "协调：指定提供方", {"coordination"}, "submitted"),
        ("close", "办结", {"not_held", "refused", "coordination"}, "closed"),
        ("withdraw", "需求方撤回", set(OPEN_STATES), "withdrawn"),
    ],
    initial="submitted",
    link=_link,
)

STATE_LABELS = {name: s.label for name, s in REQUEST_MACHINE.states.items()}

ANSWER_LABELS = {
    "linked": "已有目录",
    "compiling": "编目后提供",
    "not_held": "无此数据",
    "not_shareable": "不予共享",
}

URGENCIES = ("一般", "紧急", "特急")
