"""Background jobs on huey: SQLite store in the data directory by default, Redis in production.

Scheduled work is declared here by name; ``zhengshu worker`` runs it. In the embedded default ``serve`` runs
an in-process consumer instead, so a single command gives a complete platform.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from zhengshu.core.config import get_settings
from zhengshu.core.db import Database

log = logging.getLogger(__name__)


def _make_huey() -> Huey:
    settings = get_settings()
    if settings.redis_url:
        return RedisHuey("zhengshu", url=settings.redis_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("zhengshu", filename=str(settings.data_dir / "jobs.db"))


huey = _make_huey()


@lru_cache
def _database() -> Database:
    from zhengshu.bootstrap import load_features

    load_features()
    return Database(get_settings().resolved_database_url())


@huey.periodic_task(crontab(minute="*"), name="outbox.process")
def process_outbox() -> int:
    """Deliver domain events the requests did not deliver inline (or that failed and wait for a retry)."""
    from zhengshu.core.events import process_pending

    return process_pending(_database().session_factory)


@huey.periodic_task(crontab(minute="*"), name="audit.seal")
def seal_audit_records() -> int:
    """Backstop for the seal that follows each commit: link committed audit records into the chain (huey's
    finest schedule is a minute). Skips at once when another sealer is at work."""
    from zhengshu.audit import service as audit_service

    return audit_service.seal(_database().engine) or 0


# huey reads crontabs in UTC: 17:10 UTC is 01:10 in Beijing.


@huey.periodic_task(crontab(minute="5", hour="17"), name="outbox.prune")
def prune_outbox() -> int:
    """Delivered domain events older than ``ZHENGSHU_OUTBOX_RETENTION_DAYS`` are deleted (failed ones stay)."""
    from datetime import timedelta

    from zhengshu.core.events import prune_delivered

    days = get_settings().outbox_retention_days
    return prune_delivered(_database().session_factory, older_than=timedelta(days=days))


@huey.periodic_task(crontab(minute="10", hour="17"), name="catalog.open_due_rechecks")
def open_due_rechecks() -> int:
    """Daily: open the annual re-check tickets falling due within 30 days."""
    from zhengshu.catalog import service as catalog_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return catalog_service.open_due_rechecks(session, actor=SYSTEM_ACTOR)


class EmbeddedConsumer(Consumer):
    """A consumer that runs beside the web server: no signal handlers (the server owns them)."""

    def _set_signal_handlers(self) -> None:
        return None


def start_embedded() -> EmbeddedConsumer:
    consumer = EmbeddedConsumer(huey, workers=1, worker_type="thread", periodic=True)
    consumer.start()
    return consumer


# ---- escalation of overdue work (daily, 01:20 Beijing) -------------------------------------------------


@huey.periodic_task(crontab(minute="20", hour="17"), name="demand.requests.escalate_overdue")
def escalate_overdue_requests() -> int:
    """Unanswered data requests go to the data authority for coordination."""
    from zhengshu.demand import requests as request_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return request_service.escalate_overdue(session, actor=SYSTEM_ACTOR)


@huey.periodic_task(crontab(minute="25", hour="17"), name="objection.escalate_overdue")
def escalate_overdue_objections() -> int:
    """Objections not answered within the limit go to the data authority."""
    from zhengshu.objection import service as objection_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return objection_service.escalate_overdue(session, actor=SYSTEM_ACTOR)


@huey.periodic_task(crontab(minute="30", hour="17"), name="demand.applications.daily")
def application_deadlines() -> dict[str, int]:
    """Overdue provider reviews go to the data authority; lapsed supplements and appeal windows close;
    authorizations past their end date expire."""
    from zhengshu.demand import applications, authorizations
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return {
            "escalated": applications.escalate_overdue(session, actor=SYSTEM_ACTOR),
            "closed": applications.close_lapsed(session, actor=SYSTEM_ACTOR),
            "expired": authorizations.expire_due(session, actor=SYSTEM_ACTOR),
        }


# ---- table exchange (库表交换): every minute, runs queued by hand and scheduled jobs whose time has come --------


@huey.periodic_task(crontab(minute="*"), name="sync.run_due")
def run_due_sync_jobs() -> dict[str, str]:
    """Start runs queued through the API and sync jobs due by their cron schedule (Beijing time) on the process's
    sync threads (``ZHENGSHU_SYNC_PARALLEL_RUNS``), without waiting for them."""
    from zhengshu.exchange.tables import runner

    return runner.dispatch_due(_database())


# ---- file exchange and the ferry (文件交换、安全摆渡) ------------------------------------------------------------


@huey.periodic_task(crontab(minute="35", hour="17"), name="files.purge_expired")
def purge_expired_packages() -> int:
    """Stored files of expired packages are removed; their manifests, receipts and ledger rows stay."""
    from zhengshu.exchange.files import service as files_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return files_service.purge_expired(session, actor=SYSTEM_ACTOR)


@huey.periodic_task(crontab(minute="*/5"), name="ferry.import_pending")
def import_ferry_bundles() -> int:
    """Bundles the ferry dropped into this node's inbox are verified and imported (or quarantined)."""
    from zhengshu.exchange.files import ferry
    from zhengshu.security.actor import SYSTEM_ACTOR

    return len(ferry.import_pending(_database().session_factory, actor=SYSTEM_ACTOR))


# ---- open data (数据开放) -------------------------------------------------------------------------------------


@huey.periodic_task(crontab(minute="40", hour="17"), name="opendata.refresh_due")
def refresh_open_datasets() -> dict[str, object]:
    """Open datasets whose update cycle has elapsed get a new published copy from their mounted resource."""
    from zhengshu.opendata import service as opendata_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    with _database().session() as session:
        return opendata_service.refresh_due(session, actor=SYSTEM_ACTOR, data_dir=get_settings().data_dir)
