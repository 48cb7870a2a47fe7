"""Panels other features add to the catalog entry page (objections, applications …).

The catalog does not import those features: each registers a template and a context function here when it is
loaded, and the entry page renders every registered panel in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from zhengshu.catalog.models import CatalogEntry
from zhengshu.security.actor import Actor

PanelContext = Callable[[Session, Actor, CatalogEntry], dict[str, Any]]


@dataclass(frozen=True)
class EntryPanel:
    name: str
    template: str
    context: PanelContext
    order: int = 100


ENTRY_PANELS: dict[str, EntryPanel] = {}


def register_entry_panel(name: str, template: str, context: PanelContext, *, order: int = 100) -> None:
    ENTRY_PANELS[name] = EntryPanel(name, template, context, order)


def render_context(session: Session, actor: Actor, entry: CatalogEntry) -> dict[str, Any]:
    """The registered panels (in order) and the merged context their templates read."""
    panels = sorted(ENTRY_PANELS.values(), key=lambda p: (p.order, p.name))
    context: dict[str, Any] = {"entry_panels": [p.template for p in panels]}
    for panel in panels:
        context.update(panel.context(session, actor, entry))
    return context
