"""Named actions of the interface services, with the row filters they imply.

A provider's data officers register and change the services of their own entries; a consumer's officers
register their organization's apps and hold their secrets; everyone may browse the services of published
entries; call logs are visible to the calling organization (its apps' calls) and the providing organization
(calls of its services); administrators see everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

from zhengshu.gateway.models import GatewayApp, GatewayCall, GatewayService
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _org(actor: Actor) -> str:
    return actor.org_id or ""


def _provider(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.provider_org_id == actor.org_id


def _app_owner(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.org_id == actor.org_id


def _call_party(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and actor.org_id in (obj.org_id, obj.provider_org_id)


authz.register(
    "gateway.view",
    "查看该接口服务",
    roles=set(Role),
    resource="gateway_service",
    check=lambda a, s: s.status == "active" or _provider(a, s),
    scope=lambda a: or_(GatewayService.status == "active", GatewayService.provider_org_id == _org(a)),
)
authz.register(
    "gateway.manage_service",
    "登记或修改其他部门的接口服务",
    roles={Role.OFFICER},
    resource="gateway_service",
    check=_provider,
    scope=lambda a: GatewayService.provider_org_id == _org(a),
)
authz.register(
    "gateway.view_app",
    "查看其他部门的应用",
    roles=set(Role),
    resource="gateway_app",
    check=_app_owner,
    scope=lambda a: GatewayApp.org_id == _org(a),
)
authz.register(
    "gateway.manage_app",
    "登记应用或管理其他部门应用的密钥",
    roles={Role.OFFICER},
    resource="gateway_app",
    check=_app_owner,
    scope=lambda a: GatewayApp.org_id == _org(a),
)
authz.register(
    "gateway.view_calls",
    "查看其他部门的接口调用记录",
    roles=set(Role),
    resource="gateway_call",
    check=_call_party,
    scope=lambda a: or_(GatewayCall.org_id == _org(a), GatewayCall.provider_org_id == _org(a)),
)


def call_scope(actor: Actor) -> ColumnElement[bool]:
    return authz.scope(actor, "gateway.view_calls")
