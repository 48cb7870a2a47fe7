"""The ticket machine of a data application (共享申请).

submitted → compliance review by the data authority covering the provider → unconditional items granted by
rule, conditional items reviewed by the provider item by item → decided. The applicant may withdraw before
the decision, supplement material when asked and appeal a refusal to the data authority, which coordinates
and may decide for the provider. Overdue provider reviews escalate to the data authority (see
``applications.escalate_overdue``).
"""

from __future__ import annotations

from zhengshu.core.config import get_settings
from zhengshu.security.actor import Role
from zhengshu.workflow.machine import State, declare

APPLICATION = "data_application"
SUBJECT = "data_application"


def supplement_days() -> int:
    return get_settings().application_supplement_days


def appeal_days() -> int:
    return get_settings().application_appeal_days


def _link(subject_type: str, subject_id: str) -> str:
    return f"/applications/{subject_id}"


# States in which the applicant still waits for a decision (a second application for the same items is refused).
PENDING_STATES = frozenset({"compliance", "provider_review", "supplement", "coordination"})
FINAL_STATES = frozenset({"approved", "closed", "rejected", "withdrawn", "expired"})

APPLICATION_MACHINE = declare(
    APPLICATION,
    "共享申请",
    states=[
        State(
            "compliance",
            "待合规审查",
            frozenset({Role.REVIEWER}),
            sla_days=lambda: get_settings().application_compliance_days,
        ),
        State(
            "provider_review",
            "待提供方审核",
            frozenset({Role.OFFICER}),
            sla_days=lambda: get_settings().application_reply_days,
        ),
        State("supplement", "待补充材料", frozenset({Role.OFFICER, Role.USER}), sla_days=supplement_days),
        State("coordination", "协调中", frozenset({Role.REVIEWER}), sla_days=lambda: get_settings().coordination_days),
        # the applicant's turn: appeal a refusal or accept the answer (the window is ``appeal_until``)
        State("decided", "已答复（可申诉）", frozenset({Role.OFFICER, Role.USER})),
        State("approved", "已同意", final=True),
        State("closed", "已办结", final=True),
        State("rejected", "合规审查未通过", final=True),
        State("withdrawn", "已撤回", final=True),
        State("expired", "已失效", final=True),
    ],
    transitions=[
        ("comply", "合规审查通过", {"compliance"}, "provider_review"),
        ("reject", "合规审查不通过", {"compliance"}, "rejected"),
        ("auto_grant", "规则自动授权", {"provider_review"}, "provider_review"),
        ("auto_grant_all", "规则自动授权", {"provider_review"}, "approved"),
        ("approve_all", "提供方同意", {"provider_review"}, "approved"),
        ("decide", "提供方逐项答复", {"provider_review"}, "decided"),
        ("request_supplement", "要求补充材料", {"provider_review"}, "supplement"),
        ("supplement", "补充材料", {"supplement"}, "provider_review"),
        ("lapse", "逾期未补充，申请失效", {"supplement"}, "expired"),
        ("escalate", "逾期未答复，提请协调", {"provider_review"}, "coordination"),
        ("appeal", "申诉", {"decided"}, "coordination"),
        ("accept", "接受答复", {"decided"}, "closed"),
        ("close", "申诉期满办结", {"decided"}, "closed"),
        ("coordinate_all", "协调决定同意", {"coordination"}, "approved"),
        ("coordinate", "协调决定", {"coordination"}, "closed"),
        ("remand", "退回提供方审核", {"coordination"}, "provider_review"),
        ("withdraw", "申请人撤回", {"compliance", "provider_review", "supplement", "coordination"}, "withdrawn"),
    ],
    initial="compliance",
    link=_link,
)

STATE_LABELS = {name: s.label for name, s in APPLICATION_MACHINE.states.items()}

ITEM_STATUS_LABELS = {
    "pending": "待审核",
    "granted": "规则自动授权",
    "approved": "同意",
    "refused": "不同意",
    "withdrawn": "已撤回",
}

OUTCOME_LABELS = {"all": "全部同意", "partial": "部分同意", "none": "未同意"}
