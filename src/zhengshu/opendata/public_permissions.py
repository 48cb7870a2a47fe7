"""Named actions of the public side of the open-data portal (government users acting on it).

Members of the public are not actors: what they may do is decided by :mod:`zhengshu.opendata.access` (grants,
quotas) and by ownership of their own records. These actions cover the government side: the provider's officers
decide conditional-open applications; the data authority plans the annual responsibility lists and, with the
platform administrators, moderates the showcase; administrators manage public accounts and their quotas.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, true

from zhengshu.opendata.public_models import OpenAccessApplication
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _provider_officer(actor: Actor, obj: Any) -> bool:
    return Role.OFFICER in actor.roles and actor.org_id is not None and obj.provider_org_id == actor.org_id


def _application_scope(actor: Actor) -> ColumnElement[bool]:
    if Role.REVIEWER in actor.roles:
        return true()
    return OpenAccessApplication.provider_org_id == (actor.org_id or "")


authz.register(
    "opendata.access_view",
    "查看该有条件开放申请",
    roles=set(Role),
    resource="open_access_application",
    check=lambda a, o: Role.REVIEWER in a.roles or (a.org_id is not None and o.provider_org_id == a.org_id),
    scope=_application_scope,
)
authz.register(
    "opendata.access_decide",
    "审核其他部门数据集的有条件开放申请",
    roles={Role.OFFICER},
    resource="open_access_application",
    check=_provider_officer,
    scope=lambda a: OpenAccessApplication.provider_org_id == (a.org_id or ""),
)
authz.register(
    "opendata.showcase_moderate",
    "审核优秀应用",
    roles={Role.REVIEWER},
    resource="open_showcase_app",
)
authz.register(
    "opendata.responsibility_manage",
    "编制年度开放责任清单",
    roles={Role.REVIEWER},
    resource="open_responsibility_item",
)
authz.register(
    "opendata.account_manage",
    "管理开放平台注册账号与调用额度",
    roles={Role.ADMIN},
    resource="open_account",
)
