"""Named actions of the open-data portal's provider side.

The public side needs no action: anyone sees published datasets (conditionally open ones are checked per
account by ``opendata.access``). Providers manage the open datasets of their own organization.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from zhengshu.opendata.models import OpenDataset
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _own(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.provider_org_id == actor.org_id


def _own_scope(actor: Actor) -> ColumnElement[bool]:
    return OpenDataset.provider_org_id == (actor.org_id or "")


authz.register(
    "opendata.publish",
    "将其他部门的目录开放",
    roles={Role.OFFICER},
    resource="catalog_entry",
    check=_own,
)
authz.register(
    "opendata.manage",
    "管理其他部门的开放数据集",
    roles={Role.OFFICER},
    resource="open_dataset",
    check=_own,
    scope=_own_scope,
)
authz.register(
    "opendata.view_manage",
    "查看其他部门开放数据集的管理信息",
    roles=set(Role),
    resource="open_dataset",
    check=_own,
    scope=_own_scope,
)
