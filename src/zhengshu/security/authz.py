"""Named permission actions (catalog.publish, catalog.edit …).

Each action answers both questions a feature needs:
- ``allowed(actor, name, obj)`` — may this actor do this to that object?
- ``scope(actor, name)`` — which rows may this actor act on? (a default-deny SQL condition for lists)
Feature modules register their actions in their own ``permissions.py``; services call ``ensure`` so the API,
the pages and the CLI enforce the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, true

from zhengshu.core.errors import Forbidden
from zhengshu.security.actor import Actor, Role

ObjectCheck = Callable[[Actor, Any], bool]
ScopeFilter = Callable[[Actor], ColumnElement[bool]]


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # Chinese, completes "无权…"
    roles: frozenset[Role]
    resource: str | None = None
    check: ObjectCheck | None = None
    scope: ScopeFilter | None = None
    admin_bypass: bool = True
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ACTIONS: dict[str, Action] = {}


def register(
    name: str,
    label: str,
    *,
    roles: set[Role] | frozenset[Role],
    resource: str | None = None,
    check: ObjectCheck | None = None,
    scope: ScopeFilter | None = None,
    admin_bypass: bool = True,
    description: str = "",
) -> Action:
    action = Action(
        name=name,
        label=label,
        roles=frozenset(roles),
        resource=resource,
        check=check,
        scope=scope,
        admin_bypass=admin_bypass,
        description=description,
    )
    ACTIONS[name] = action
    return action


def get_action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise LookupError(f"unregistered permission action {name!r}") from None


def allowed(actor: Actor, name: str, obj: Any = None) -> bool:
    action = get_action(name)
    if action.admin_bypass and actor.is_admin:
        return True
    if not actor.roles.intersection(action.roles):
        return False
    if obj is not None and action.check is not None:
        return action.check(actor, obj)
    return True


def ensure(actor: Actor, name: str, obj: Any = None) -> None:
    if not allowed(actor, name, obj):
        action = ACTIONS[name]
        raise Forbidden(f"您无权{action.label}", code="auth.forbidden", extra={"action": name})


def scope(actor: Actor, name: str) -> ColumnElement[bool]:
    """Default-deny filter for the rows this actor may act on under ``name``."""
    action = get_action(name)
    if action.admin_bypass and actor.is_admin:
        return true()
    if not actor.roles.intersection(action.roles):
        return false()
    if action.scope is None:
        return true()
    return action.scope(actor)


ALL_ROLES = frozenset(Role)
