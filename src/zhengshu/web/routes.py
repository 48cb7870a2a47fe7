"""The URL map: every feature's API router and page router, mounted in one place.

API routers are authenticated at mount time (``CurrentActor``), so a route is protected unless it sits on
the explicitly public router.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from zhengshu.web.deps import current_actor


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
