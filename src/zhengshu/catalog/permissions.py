"""Named actions of the catalog and the row filters they imply."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_

from zhengshu.catalog.enums import EntryStatus
from zhengshu.catalog.models import CatalogEntry
from zhengshu.org.service import region_covers
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role


def covered_region(column: Any, authority_region: str) -> ColumnElement[bool]:
    """SQL form of :func:`zhengshu.org.service.region_covers` over a region-code column."""
    if authority_region.endswith("0000"):
        return column == authority_region  # type: ignore[no-any-return]
    if authority_region.endswith("00"):
        return column.startswith(authority_region[:4])  # type: ignore[no-any-return]
    return column == authority_region  # type: ignore[no-any-return]


def reviewer_region_clause(actor: Actor, column: Any = None) -> ColumnElement[bool]:
    """Rows whose provider sits in the region this reviewer's data authority covers."""
    if not actor.region_code or Role.REVIEWER not in actor.roles:
        return false()
    return covered_region(CatalogEntry.region_code if column is None else column, actor.region_code)


def _own(actor: Actor, entry: Any) -> bool:
    return actor.org_id is not None and entry.provider_org_id == actor.org_id


def _reviews(actor: Actor, entry: Any) -> bool:
    return actor.region_code is not None and region_covers(actor.region_code, entry.region_code)


def _view_scope(actor: Actor) -> ColumnElement[bool]:
    return or_(
        CatalogEntry.status == EntryStatus.PUBLISHED.value,
        CatalogEntry.provider_org_id == (actor.org_id or ""),
        reviewer_region_clause(actor),
    )


def _can_view(actor: Actor, entry: Any) -> bool:
    return (
        entry.status == EntryStatus.PUBLISHED.value
        or _own(actor, entry)
        or (Role.REVIEWER in actor.roles and _reviews(actor, entry))
    )


authz.register(
    "catalog.view", "查看该目录", roles=set(Role), resource="catalog_entry", check=_can_view, scope=_view_scope
)
authz.register(
    "catalog.view_draft",
    "查看该目录未发布的版本",
    roles=set(Role),
    resource="catalog_entry",
    check=lambda a, e: _own(a, e) or (Role.REVIEWER in a.roles and _reviews(a, e)),
)
authz.register(
    "catalog.edit",
    "编制或修改其他部门的目录",
    roles={Role.OFFICER},
    resource="catalog_entry",
    check=_own,
    scope=lambda a: CatalogEntry.provider_org_id == (a.org_id or ""),
)
authz.register("catalog.submit", "提交其他部门的目录", roles={Role.OFFICER}, resource="catalog_entry", check=_own)
authz.register("catalog.mount", "为其他部门的目录挂接资源", roles={Role.OFFICER}, resource="catalog_entry", check=_own)
authz.register("catalog.recheck", "复核其他部门的目录", roles={Role.OFFICER}, resource="catalog_entry", check=_own)
authz.register(
    "catalog.review",
    "审核该目录（不在您的审核范围内）",
    roles={Role.REVIEWER},
    resource="catalog_entry",
    check=_reviews,
    scope=reviewer_region_clause,
)
authz.register(
    "catalog.withdraw",
    "下架该目录",
    roles={Role.OFFICER, Role.REVIEWER},
    resource="catalog_entry",
    check=lambda a, e: _own(a, e) or (Role.REVIEWER in a.roles and _reviews(a, e)),
)
authz.register("catalog.import", "导入目录", roles={Role.OFFICER}, resource="catalog_entry")
authz.register("catalog.duty_change", "登记职责变更", roles={Role.REVIEWER}, resource="organization")
authz.register("catalog.stats", "查看目录统计", roles=set(Role), resource="catalog_entry")
