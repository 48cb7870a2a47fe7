"""The URL map: every feature's API router and page router, mounted in one place.

API routers are authenticated at mount time (``CurrentActor``), so a route is protected unless it sits on
the explicitly public router.

FastAPI tries the routes of every included router in turn, each against its full regular expression, until one
matches: a workflow call under ``/api/v1/objections`` first went through over a hundred routes of the routers
included before it. :class:`_GatedRouter` skips an included router as a whole when the path does not start
with the literal beginning of any of its routes, which no route of it could then match.
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
from fastapi import Depends, FastAPI
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

from zhengshu.web.deps import current_actor

# FastAPI keeps an included router whole as an ``_IncludedRouter``; an older FastAPI copied its routes into the
# app's own list, where nothing is left to skip (``object``: no route is of that type).
_IncludedRouter: Any = getattr(fastapi.routing, "_IncludedRouter", object)


class _GatedRouter(_IncludedRouter):
    """An included router that answers "no match" at once for paths none of its routes can match."""

    _gate: tuple[int, tuple[str, ...]] | None = None  # (the routes' version, their leads)
    _nested = True  # whether the router includes routers of its own (their versions count too)

    _open = False  # the gate could not be built: every path goes to FastAPI's own scan

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not self._open:
            try:
                leads = self._leads()
            except (AttributeError, TypeError):  # another FastAPI's private internals: no gate, nothing skipped
                self._open = True
            else:
                if not get_route_path(scope).startswith(leads):
                    return Match.NONE, {}
        return super().matches(scope)

    def _leads(self) -> tuple[str, ...]:
        """The literal beginnings of the routes' paths (up to the first parameter); ``""`` for a route whose
        path is unknown (it lets every path through). Rebuilt when routes are added to the router."""
        router = self.original_router
        # a router's own version counts its changes, including routers it includes; their versions count
        # the changes inside them (the sum walks the tree, so it is only taken where there is a tree)
        version = router._get_routes_version() if self._nested else router._routes_version
        if self._gate is not None and self._gate[0] == version:
            return self._gate[1]
        leads: set[str] = set()
        for context in self.effective_route_contexts():
            route: Any = context.starlette_route or context
            path_format = getattr(route, "path_format", None)
            leads.add(path_format.partition("{")[0] if isinstance(path_format, str) and path_format else "")
        # keep the shortest: a lead that starts with another adds nothing
        kept = tuple(lead for lead in leads if not any(lead != other and lead.startswith(other) for other in leads))
        self._nested = any(isinstance(route, _IncludedRouter) for route in router.routes)
        self._gate = (router._get_routes_version() if self._nested else router._routes_version, kept)
        return kept


def _gate_included_routers(app: FastAPI) -> None:
    routes = app.router.routes
    for i, route in enumerate(routes):
        if type(route) is _IncludedRouter:
            routes[i] = _GatedRouter(original_router=route.original_router, include_context=route.include_context)


def mount_all(app: FastAPI) -> None:
    from zhengshu.audit.api import router as audit_api
    from zhengshu.audit.pages import router as audit_pages
    from zhengshu.calendar.api import router as calendar_api
    from zhengshu.calendar.pages import router as calendar_pages
    from zhengshu.catalog.api import router as catalog_api
    from zhengshu.catalog.pages import router as catalog_pages
    from zhengshu.demand.api import router as applications_api
    from zhengshu.demand.pages import router as applications_pages
    from zhengshu.demand.request_api import router as requests_api
    from zhengshu.demand.request_pages import router as requests_pages
    from zhengshu.exchange.files.api import router as files_api
    from zhengshu.exchange.files.pages import router as files_pages
    from zhengshu.exchange.tables.api import router as sync_api
    from zhengshu.exchange.tables.pages import router as sync_pages
    from zhengshu.gateway.api import router as gateway_api
    from zhengshu.gateway.pages import router as gateway_pages
    from zhengshu.lake.api import router as lake_api
    from zhengshu.lake.pages import router as lake_pages
    from zhengshu.notify.api import router as notify_api
    from zhengshu.notify.pages import router as notify_pages
    from zhengshu.objection.api import router as objection_api
    from zhengshu.objection.pages import router as objection_pages
    from zhengshu.opendata.api import router as opendata_api
    from zhengshu.opendata.ckan import ckan_router
    from zhengshu.opendata.dcat import dcat_router
    from zhengshu.opendata.pages import router as opendata_pages
    from zhengshu.opendata.public_api import public_api_router as opendata_public_api
    from zhengshu.opendata.public_pages import public_pages_router as opendata_public_pages
    from zhengshu.org.api import public_router as auth_api
    from zhengshu.org.api import router as org_api
    from zhengshu.org.pages import router as org_pages
    from zhengshu.web.pages import router as portal_pages
    from zhengshu.workflow.api import router as workflow_api

    authenticated = [Depends(current_actor)]
    app.include_router(auth_api, prefix="/api/v1")
    # The open-data APIs are public: they authenticate registered users by API key where a route needs one;
    # the CKAN-compatible Action API and the DCAT-AP catalog keep the paths their clients expect.
    for router in (opendata_api, opendata_public_api, ckan_router, dcat_router):
        app.include_router(router)
    for router in (
        catalog_api,
        applications_api,
        requests_api,
        objection_api,
        notify_api,
        workflow_api,
        org_api,
        calendar_api,
        lake_api,
        audit_api,
        gateway_api,
        sync_api,
        files_api,
    ):
        app.include_router(router, prefix="/api/v1", dependencies=authenticated)
    for router in (
        portal_pages,
        catalog_pages,
        applications_pages,
        requests_pages,
        objection_pages,
        notify_pages,
        org_pages,
        calendar_pages,
        lake_pages,
        audit_pages,
        gateway_pages,
        sync_pages,
        files_pages,
        opendata_pages,
        opendata_public_pages,
    ):
        app.include_router(router)
    _gate_included_routers(app)
