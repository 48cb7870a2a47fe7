"""Named actions of the audit log."""

from __future__ import annotations

from zhengshu.security import authz
from zhengshu.security.actor import Role

authz.register("audit.verify", "校验审计日志的完整性", roles={Role.ADMIN}, resource="audit_record")
authz.register(
    "audit.view",
    "查看审计日志",
    roles=set(Role),
    resource="audit_record",
    description="管理员可查看全部记录，其他用户只能查看本人的操作记录",
)
