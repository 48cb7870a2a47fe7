"""Named actions of data requests (数据需求) and the row filters they imply."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_

from zhengshu.demand.models import DataRequest
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _requester(actor: Actor, req: Any) -> bool:
    return actor.org_id is not None and req.requester_org_id == actor.org_id


def _provider(actor: Actor, req: Any) -> bool:
    return actor.org_id is not None and req.provider_org_id == actor.org_id


def _authority(actor: Actor, req: Any) -> bool:
    return Role.REVIEWER in actor.roles and actor.org_id is not None and req.authority_org_id == actor.org_id


def _can_view(actor: Actor, req: Any) -> bool:
    return _requester(actor, req) or _provider(actor, req) or _authority(actor, req)


def view_scope(actor: Actor) -> ColumnElement[bool]:
    if actor.org_id is None:
        return false()
    clauses = [DataRequest.requester_org_id == actor.org_id, DataRequest.provider_org_id == actor.org_id]
    if Role.REVIEWER in actor.roles:
        clauses.append(DataRequest.authority_org_id == actor.org_id)
    return or_(*clauses)


authz.register(
    "data_request.view",
    "查看该数据需求",
    roles=set(Role),
    resource="data_request",
    check=_can_view,
    scope=view_scope,
    description="需求方、当前提供方与负责协调的数据主管部门可见",
)
authz.register(
    "data_request.create",
    "提出数据需求",
    roles={Role.OFFICER, Role.USER},
    resource="data_request",
    check=_requester,
)
authz.register(
    "data_request.manage",
    "处理其他部门的数据需求（撤回、改派、提请协调、办结）",
    roles={Role.OFFICER, Role.USER},
    resource="data_request",
    check=_requester,
    scope=lambda a: DataRequest.requester_org_id == (a.org_id or ""),
)
authz.register(
    "data_request.answer",
    "答复该数据需求（不是本部门承办）",
    roles={Role.OFFICER},
    resource="data_request",
    check=_provider,
    scope=lambda a: DataRequest.provider_org_id == (a.org_id or ""),
)
authz.register(
    "data_request.coordinate",
    "协调该数据需求（不在本数据主管部门协调范围内）",
    roles={Role.REVIEWER},
    resource="data_request",
    check=_authority,
    scope=lambda a: DataRequest.authority_org_id == (a.org_id or ""),
)
authz.register("data_request.stats", "查看数据需求统计", roles=set(Role), resource="data_request", scope=view_scope)
