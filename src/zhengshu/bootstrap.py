"""Loads every feature so its permission actions, ticket machines and event consumers are registered."""

from __future__ import annotations

import importlib

FEATURE_MODULES = (
    "zhengshu.models",
    "zhengshu.org.service",
    "zhengshu.workflow.service",
    "zhengshu.catalog.service",
    "zhengshu.catalog.indexing",
    "zhengshu.lake.service",
    "zhengshu.calendar.service",
    "zhengshu.audit.permissions",
    "zhengshu.notify.service",
    "zhengshu.demand.requests",
    "zhengshu.demand.applications",
    "zhengshu.objection.service",
    "zhengshu.gateway.service",
    "zhengshu.exchange.tables.service",
    "zhengshu.exchange.files.service",
    "zhengshu.opendata.service",
    "zhengshu.opendata.conditional",
    "zhengshu.opendata.showcase",
    "zhengshu.opendata.responsibility",
)


def load_features() -> None:
    for name in FEATURE_MODULES:
        importlib.import_module(name)
