"""Named actions of applications and authorizations, with the row filters they imply.

Applicants (officers and users of the consumer organization) see their organization's applications; providers
see applications for their entries; the data authority covering the provider sees those it reviews and
coordinates; administrators see all. Authorizations follow the same three parties.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_

from zhengshu.demand.models import Authorization, DataApplication
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role

APPLICANT_ROLES = {Role.OFFICER, Role.USER}


def _org(actor: Actor) -> str:
    return actor.org_id or ""


def _consumer(actor: Actor, obj: Any) -> bool:
    return actor.org_id is not None and obj.consumer_org_id == actor.org_id


def _provider_officer(actor: Actor, obj: Any) -> bool:
    return Role.OFFICER in actor.roles and actor.org_id is not None and obj.provider_org_id == actor.org_id


def _authority(actor: Actor, obj: Any) -> bool:
    return Role.REVIEWER in actor.roles and actor.org_id is not None and obj.authority_org_id == actor.org_id


def _party(actor: Actor, obj: Any) -> bool:
    return (
        _consumer(actor, obj)
        or (actor.org_id is not None and obj.provider_org_id == actor.org_id)
        or _authority(actor, obj)
    )


def _authority_clause(actor: Actor, column: Any) -> ColumnElement[bool]:
    if Role.REVIEWER not in actor.roles or actor.org_id is None:
        return false()
    return column == actor.org_id  # type: ignore[no-any-return]


def application_scope(actor: Actor) -> ColumnElement[bool]:
    return or_(
        DataApplication.consumer_org_id == _org(actor),
        DataApplication.provider_org_id == _org(actor),
        _authority_clause(actor, DataApplication.authority_org_id),
    )


def authorization_scope(actor: Actor) -> ColumnElement[bool]:
    return or_(
        Authorization.consumer_org_id == _org(actor),
        Authorization.provider_org_id == _org(actor),
        _authority_clause(actor, Authorization.authority_org_id),
    )


# ---- applications -----------------------------------------------------------------------------------------

authz.register(
    "application.view",
    "查看该共享申请",
    roles=set(Role),
    resource="data_application",
    check=_party,
    scope=application_scope,
)
authz.register("application.create", "提交共享申请", roles=APPLICANT_ROLES, resource="data_application")
authz.register(
    "application.withdraw",
    "撤回其他部门的共享申请",
    roles=APPLICANT_ROLES,
    resource="data_application",
    check=_consumer,
)
authz.register(
    "application.supplement",
    "为其他部门的共享申请补充材料",
    roles=APPLICANT_ROLES,
    resource="data_application",
    check=_consumer,
)
authz.register(
    "application.appeal",
    "对其他部门的共享申请答复提出申诉或确认",
    roles=APPLICANT_ROLES,
    resource="data_application",
    check=_consumer,
)
authz.register(
    "application.comply",
    "对该共享申请进行合规审查（不在您的审查范围内）",
    roles={Role.REVIEWER},
    resource="data_application",
    check=_authority,
    scope=lambda a: _authority_clause(a, DataApplication.authority_org_id),
)
authz.register(
    "application.decide",
    "审核其他部门目录的共享申请",
    roles={Role.OFFICER},
    resource="data_application",
    check=_provider_officer,
    scope=lambda a: DataApplication.provider_org_id == _org(a),
)
authz.register(
    "application.coordinate",
    "协调该共享申请（不在您的协调范围内）",
    roles={Role.REVIEWER},
    resource="data_application",
    check=_authority,
    scope=lambda a: _authority_clause(a, DataApplication.authority_org_id),
)
authz.register(
    "application.stats",
    "查看共享申请督查统计",
    roles={Role.REVIEWER},
    resource="data_application",
    scope=lambda a: _authority_clause(a, DataApplication.authority_org_id),
)

# ---- authorizations ---------------------------------------------------------------------------------------

authz.register(
    "authorization.view",
    "查看该共享授权",
    roles=set(Role),
    resource="share_authorization",
    check=_party,
    scope=authorization_scope,
)
authz.register(
    "authorization.manage",
    "暂停、续期或撤销该共享授权",
    roles={Role.OFFICER, Role.REVIEWER},
    resource="share_authorization",
    check=lambda a, o: _provider_officer(a, o) or _authority(a, o),
)
authz.register(
    "authorization.audit",
    "查询该目录信息项的授权使用方",
    roles={Role.OFFICER, Role.REVIEWER},
    resource="catalog_entry",
    # obj: the catalog entry; its provider's officers and the data authority covering it may ask
    check=lambda a, e: (
        (Role.OFFICER in a.roles and a.org_id == e.provider_org_id)
        or (Role.REVIEWER in a.roles and bool(a.region_code) and _covers(a.region_code or "", e.region_code))
    ),
)


def _covers(authority_region: str, region: str) -> bool:
    from zhengshu.org.service import region_covers

    return region_covers(authority_region, region)
