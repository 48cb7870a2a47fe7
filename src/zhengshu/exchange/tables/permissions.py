"""Named actions of table exchange and the row filters they imply.

A sync job belongs to the consumer organization: its data officers create, change, run and delete it, and
manage the organization's targets. The provider's people see the jobs that read their resources (who takes
what, how often, with what outcome); administrators see and do everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_

from zhengshu.exchange.tables.models import SyncJob, SyncTarget
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _consumer(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.consumer_org_id == actor.org_id


def _party(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and actor.org_id in (obj.consumer_org_id, obj.provider_org_id)


def job_scope(actor: Actor) -> ColumnElement[bool]:
    if actor.org_id is None:
        return false()
    return or_(SyncJob.consumer_org_id == actor.org_id, SyncJob.provider_org_id == actor.org_id)


def _owner(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.owner_org_id == actor.org_id


def target_scope(actor: Actor) -> ColumnElement[bool]:
    return SyncTarget.owner_org_id == actor.org_id if actor.org_id else false()


authz.register(
    "sync.view",
    "查看该库表交换作业",
    roles=set(Role),
    resource="sync_job",
    check=_party,
    scope=job_scope,
)
authz.register(
    "sync.manage",
    "创建、修改或删除其他部门的库表交换作业",
    roles={Role.OFFICER},
    resource="sync_job",
    check=_consumer,
    scope=lambda a: SyncJob.consumer_org_id == (a.org_id or ""),
)
authz.register(
    "sync.run",
    "运行其他部门的库表交换作业",
    roles={Role.OFFICER},
    resource="sync_job",
    check=_consumer,
)
authz.register(
    "sync.target",
    "查看或管理其他部门的交换目标库",
    roles={Role.OFFICER},
    resource="sync_target",
    check=_owner,
    scope=target_scope,
)
