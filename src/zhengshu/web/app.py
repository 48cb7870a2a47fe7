"""The ASGI application: API under /api/v1, pages for the portals, static files."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from zhengshu import __version__
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import Database
from zhengshu.web import errors
from zhengshu.web.admission import AdmissionLimit
from zhengshu.web.bodylimit import MULTIPART_OVERHEAD, BodySizeLimit
from zhengshu.web.templating import build_environment
from zhengshu.web.textguard import NulTextGuard

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"

OPENAPI_TAGS = [
    {"name": "auth", "description": "登录与访问令牌"},
    {"name": "catalog", "description": "资源目录：编制、审核、发布、版本、挂接、导入导出、检索"},
    {"name": "applications", "description": "共享申请：提交、合规审查、逐项审核、补充材料、申诉与协调"},
    {"name": "authorizations", "description": "共享授权：暂停、恢复、续期、撤销；谁能看到哪个信息项"},
    {"name": "requests", "description": "数据需求：未编目数据的需求、答复、改派与协调"},
    {"name": "objection", "description": "数据异议：提出、受理标注、答复更正、转办、仲裁、标注与更正记录"},
    {"name": "notify", "description": "站内通知"},
    {"name": "workflow", "description": "待办、逾期与工单时间线"},
    {"name": "org", "description": "行政区划、组织机构与用户"},
    {"name": "calendar", "description": "工作日与节假日安排"},
    {"name": "lake", "description": "数据源登记与探查"},
    {"name": "audit", "description": "审计日志"},
    {"name": "gateway", "description": "接口服务：服务注册与版本、应用与凭据、调用日志"},
    {"name": "exchange", "description": "共享交换：库表交换任务、文件交换包与回执、内外网安全摆渡"},
    {"name": "opendata", "description": "数据开放：开放数据集、数据接口、下载"},
    {"name": "opendata-public", "description": "数据开放：注册用户、API Key、有条件开放申请、统计、优秀应用、责任清单"},
    {"name": "dcat", "description": "DCAT-AP 3.0 开放目录（Turtle、JSON-LD、RDF/XML）"},
]


async def _refresh_calendar(database: Database, every_s: float = 300.0) -> None:
    """Each server process reloads the holiday schedule now and then, so an administrator's import made
    through another process reaches every due-date computation."""
    from zhengshu.calendar import service as calendar_service

    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(_load_calendar, database, calendar_service)
        except Exception:  # keep serving with the schedule already loaded
            log.exception("reloading the holiday schedule failed")


def _load_calendar(database: Database, calendar_service: Any) -> None:
    with database.session() as session:
        calendar_service.load_schedules(session)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    if database is None:
        url = settings.resolved_database_url()
        pool = {} if url.startswith("sqlite") else {"pool_size": settings.db_pool_size, "max_overflow": 5}
        database = Database(url, **pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from zhengshu.calendar import service as calendar_service

        with database.session() as session:
            calendar_service.load_schedules(session)
        refresher = asyncio.create_task(_refresh_calendar(database))
        consumer = None
        if settings.runs_embedded_jobs():
            from zhengshu.jobs import start_embedded

            consumer = start_embedded()
        try:
            yield
        finally:
            refresher.cancel()
            if consumer is not None:
                consumer.stop(graceful=False)

    app = FastAPI(
        title="政数 zhengshu API",
        version=__version__,
        description="一体化政务大数据体系平台接口。错误以 application/problem+json 返回，code 字段稳定。",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    # Arrow's default allocator keeps freed buffers per thread: 20 concurrent downloads peaked at 755 MB with
    # it, ~300 MB with the system allocator, which hands memory back.
    pa.set_memory_pool(pa.system_memory_pool())
    app.state.templates = build_environment(settings.templates_dir)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie="zhengshu_session",
        max_age=8 * 3600,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    # text with a NUL character is refused before any route reads it (PostgreSQL cannot store it)
    app.add_middleware(NulTextGuard)
    # bodies are bounded before anything is spooled (uploads are parsed before the route's checks run)
    app.add_middleware(
        BodySizeLimit,
        upload_limit=settings.files_max_package_mb * 1024 * 1024 + MULTIPART_OVERHEAD,
        other_limit=settings.max_request_body_mb * 1024 * 1024,
    )
    # outermost: requests beyond the cap wait here, holding no thread and no connection
    app.add_middleware(AdmissionLimit, max_inflight=settings.max_inflight_requests)
    errors.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    from zhengshu.web.routes import mount_all

    mount_all(app)
    from zhengshu.gateway.runtime import mount as mount_gateway

    # the interface gateway answers at its own path in front of the page middleware (it starts on its first call)
    mount_gateway(app, settings)
    return app
