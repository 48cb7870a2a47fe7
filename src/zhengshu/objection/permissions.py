"""Named actions of objections and the row filters they imply.

Parties: the objector's organization, the entry's provider, the department currently handling it (after a
forward), and the data authority covering the entry's region (its reviewers). Everyone else sees nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from zhengshu.catalog.permissions import reviewer_region_clause
from zhengshu.objection.models import Objection
from zhengshu.org.service import region_covers
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def _in(actor: Actor, org_id: str | None) -> bool:
    return actor.org_id is not None and org_id == actor.org_id


def _covers(actor: Actor, obj: Any) -> bool:
    return (
        Role.REVIEWER in actor.roles
        and actor.region_code is not None
        and region_covers(actor.region_code, obj.region_code)
    )


def _objector(actor: Actor, obj: Any) -> bool:
    """The objector's people; for objections the platform raised, the data authority speaks for it."""
    if obj.objector_org_id is None:
        return _covers(actor, obj)
    return actor.has_role(Role.OFFICER, Role.USER) and _in(actor, obj.objector_org_id)


def _handler(actor: Actor, obj: Any) -> bool:
    return Role.OFFICER in actor.roles and _in(actor, obj.handler_org_id)


def _party(actor: Actor, obj: Any) -> bool:
    return (
        _in(actor, obj.objector_org_id)
        or _in(actor, obj.provider_org_id)
        or _in(actor, obj.handler_org_id)
        or _covers(actor, obj)
    )


def _org(actor: Actor) -> str:
    return actor.org_id or ""


def _party_scope(actor: Actor) -> ColumnElement[bool]:
    org = _org(actor)
    return or_(
        Objection.objector_org_id == org,
        Objection.provider_org_id == org,
        Objection.handler_org_id == org,
        reviewer_region_clause(actor, Objection.region_code),
    )


def _handler_scope(actor: Actor) -> ColumnElement[bool]:
    if Role.OFFICER not in actor.roles:
        return false()
    return Objection.handler_org_id == _org(actor)


def _objector_scope(actor: Actor) -> ColumnElement[bool]:
    clauses = []
    if actor.has_role(Role.OFFICER, Role.USER):
        clauses.append(Objection.objector_org_id == _org(actor))
    if Role.REVIEWER in actor.roles:
        clauses.append(and_(Objection.objector_org_id.is_(None), reviewer_region_clause(actor, Objection.region_code)))
    return or_(*clauses) if clauses else false()


def _authority_scope(actor: Actor) -> ColumnElement[bool]:
    return reviewer_region_clause(actor, Objection.region_code)


CONSUMERS = {Role.OFFICER, Role.USER}
OBJECTORS = {Role.OFFICER, Role.USER, Role.REVIEWER}

authz.register(
    "objection.view", "查看该数据异议", roles=set(Role), resource="objection", check=_party, scope=_party_scope
)
authz.register(
    "objection.create",
    "提出数据异议",
    roles=CONSUMERS,
    resource="catalog_entry",
    check=lambda a, entry: a.org_id is not None,
)
authz.register(
    "objection.accept",
    "受理该数据异议",
    roles={Role.OFFICER},
    resource="objection",
    check=_handler,
    scope=_handler_scope,
)
authz.register(
    "objection.answer",
    "答复该数据异议",
    roles={Role.OFFICER},
    resource="objection",
    check=_handler,
    scope=_handler_scope,
)
authz.register(
    "objection.forward",
    "转办该数据异议",
    roles={Role.OFFICER, Role.REVIEWER},
    resource="objection",
    check=lambda a, o: _handler(a, o) or _covers(a, o),
)
authz.register(
    "objection.confirm",
    "确认该数据异议的答复",
    roles=OBJECTORS,
    resource="objection",
    check=_objector,
    scope=_objector_scope,
)
authz.register("objection.dispute", "对该答复提请仲裁", roles=OBJECTORS, resource="objection", check=_objector)
authz.register("objection.withdraw", "撤回该数据异议", roles=OBJECTORS, resource="objection", check=_objector)
authz.register(
    "objection.arbitrate",
    "仲裁该数据异议（不在您的管辖范围内）",
    roles={Role.REVIEWER},
    resource="objection",
    check=_covers,
    scope=_authority_scope,
)
authz.register(
    "objection.urge", "督办该数据异议（不在您的管辖范围内）", roles={Role.REVIEWER}, resource="objection", check=_covers
)
authz.register(
    "objection.attach",
    "为该数据异议上传佐证材料",
    roles=CONSUMERS,
    resource="objection",
    check=lambda a, o: _in(a, o.objector_org_id) or _in(a, o.handler_org_id),
)
authz.register(
    "objection.download",
    "下载该数据异议的佐证材料",
    roles=set(Role),
    resource="objection",
    check=_party,
)
authz.register(
    "objection.stats", "查看数据异议统计", roles={Role.REVIEWER}, resource="objection", scope=_authority_scope
)
