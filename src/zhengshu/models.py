"""Imports every feature's tables so ``Base.metadata`` is complete (Alembic and tests use it)."""

from zhengshu.audit import models as audit_models
from zhengshu.calendar import models as calendar_models
from zhengshu.catalog import models as catalog_models
from zhengshu.core import events as core_events
from zhengshu.core.db import Base
from zhengshu.demand import models as demand_models
from zhengshu.exchange.files import models as files_models
from zhengshu.exchange.tables import models as sync_models
from zhengshu.gateway import models as gateway_models
from zhengshu.lake import models as lake_models
from zhengshu.notify import models as notify_models
from zhengshu.objection import models as objection_models
from zhengshu.opendata import models as opendata_models
from zhengshu.opendata import public_models as opendata_public_models
from zhengshu.org import models as org_models
from zhengshu.search import models as search_models
from zhengshu.workflow import models as workflow_models

__all__ = [
    "Base",
    "audit_models",
    "calendar_models",
    "catalog_models",
    "core_events",
    "demand_models",
    "files_models",
    "gateway_models",
    "lake_models",
    "notify_models",
    "objection_models",
    "opendata_models",
    "opendata_public_models",
    "org_models",
    "search_models",
    "sync_models",
    "workflow_models",
]
