"""Named actions of file exchange and the ferry, with the row filters they imply.

A package is seen by its sending organization and its recipient organizations; only recipients sign for it.
A ferry export request is seen by the requesting organization and decided by the reviewers of the data authority
covering it; importing bundles and managing node keys is for administrators (operators run it from the CLI).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, select

from zhengshu.exchange.files.models import FerryExport, FilePackage, PackageRecipient
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role

SENDER_ROLES = {Role.OFFICER, Role.USER}


def _org(actor: Actor) -> str:
    return actor.org_id or ""


def is_sender(actor: Actor, package: Any) -> bool:
    return actor.org_id is not None and package.sender_org_id == actor.org_id


def is_recipient(actor: Actor, package: Any) -> bool:
    return actor.org_id is not None and any(r.org_id == actor.org_id for r in package.recipients)


def package_scope(actor: Actor) -> ColumnElement[bool]:
    received = select(PackageRecipient.package_id).where(PackageRecipient.org_id == _org(actor))
    return or_(FilePackage.sender_org_id == _org(actor), FilePackage.id.in_(received))


def _authority(actor: Actor, obj: Any) -> bool:
    return Role.REVIEWER in actor.roles and actor.org_id is not None and obj.authority_org_id == actor.org_id


def export_scope(actor: Actor) -> ColumnElement[bool]:
    authority = FerryExport.authority_org_id == _org(actor) if Role.REVIEWER in actor.roles else false()
    return or_(FerryExport.org_id == _org(actor), authority)


authz.register("files.send", "发送文件包", roles=SENDER_ROLES, resource="file_package")
authz.register(
    "files.view",
    "查看该文件包",
    roles=set(Role),
    resource="file_package",
    check=lambda a, p: is_sender(a, p) or is_recipient(a, p),
    scope=package_scope,
)
authz.register(
    "files.download",
    "下载该文件包（仅限发送与接收部门）",
    roles=set(Role),
    resource="file_package",
    check=lambda a, p: is_sender(a, p) or is_recipient(a, p),
)
authz.register(
    "files.receipt",
    "签收该文件包（仅限接收部门）",
    roles=SENDER_ROLES,
    resource="file_package",
    check=is_recipient,
    admin_bypass=False,
)
authz.register(
    "files.withdraw",
    "撤回其他部门的文件包",
    roles=SENDER_ROLES,
    resource="file_package",
    check=is_sender,
)
authz.register("ferry.request", "提交摆渡导出申请", roles={Role.OFFICER}, resource="ferry_export")
authz.register(
    "ferry.view",
    "查看该摆渡导出申请",
    roles=set(Role),
    resource="ferry_export",
    check=lambda a, e: (a.org_id is not None and e.org_id == a.org_id) or _authority(a, e),
    scope=export_scope,
)
authz.register(
    "ferry.approve",
    "审批该摆渡导出申请（不在您的审批范围内）",
    roles={Role.REVIEWER},
    resource="ferry_export",
    check=_authority,
)
authz.register("ferry.ledger", "查看摆渡台账", roles={Role.REVIEWER}, resource="ferry_ledger")
authz.register("ferry.operate", "执行摆渡导入或管理节点密钥", roles={Role.ADMIN}, resource="node_key")
