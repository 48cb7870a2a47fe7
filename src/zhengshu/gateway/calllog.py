"""The call log: every gateway call recorded without slowing the hot path, and the questions asked of it.

The hot path appends a tuple to an in-process buffer; a background task writes the buffer in batches (one
multi-row INSERT per batch) every ``ZHENGSHU_GATEWAY_LOG_FLUSH_MS`` or when it fills up. Parameters are kept
only as a keyed SM3 digest. The read side answers providers ("who called my service, how often, errors") and
consumers, and gives supervision its daily figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, insert, select
from sqlalchemy.orm import Session

from zhengshu.core.db import Database
from zhengshu.core.timeutil import to_local
from zhengshu.gateway import permissions
from zhengshu.gateway.models import GatewayApp, GatewayCall, GatewayService
from zhengshu.org.models import Organization
from zhengshu.security.actor import Actor

log = logging.getLogger(__name__)

COLUMNS = (
    "id",
    "at",
    "request_id",
    "app_id",
    "org_id",
    "service_id",
    "service_version",
    "entry_id",
    "provider_org_id",
    "method",
    "path",
    "params_hash",
    "status",
    "code",
    "rows",
    "latency_ms",
    "upstream_ms",
    "response_bytes",
    "source_ip",
)


class CallLogWriter:
    """Buffer plus batched writer. ``append`` is cheap and never blocks on the database."""

    def __init__(self, database: Database, *, flush_ms: int = 500, batch: int = 5000, max_buffer: int = 200_000):
        self.database = database
        self.flush_s = flush_ms / 1000
        self.batch = batch
        self.max_buffer = max_buffer
        self.buffer: list[tuple[Any, ...]] = []
        self.dropped = 0
        self.written = 0
        self._write_lock = threading.Lock()
        self._wake = asyncio.Event()

    def append(self, row: tuple[Any, ...]) -> None:
        if len(self.buffer) >= self.max_buffer:  # the database is away: keep serving, count what is lost
            self.dropped += 1
            return
        self.buffer.append(row)
        if len(self.buffer) >= self.batch:
            self._wake.set()

    def take(self) -> list[tuple[Any, ...]]:
        rows, self.buffer = self.buffer, []
        return rows

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._write_lock, self.database.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # COPY: a few microseconds a row, where executemany through the ORM layer costs tens
                raw: Any = conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(f"COPY gateway_call ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                for start in range(0, len(rows), self.batch):
                    chunk = rows[start : start + self.batch]
                    conn.execute(insert(GatewayCall), [dict(zip(COLUMNS, r, strict=True)) for r in chunk])
        self.written += len(rows)

    def flush_sync(self) -> int:
        rows = self.take()
        self.write(rows)
        return len(rows)

    async def flush(self) -> int:
        rows = self.take()
        if rows:
            try:
                await asyncio.to_thread(self.write, rows)
            except Exception:
                log.exception("writing %d gateway call records failed; they are kept for the next try", len(rows))
                self.buffer[:0] = rows[: self.max_buffer]
                raise
        return len(rows)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # logged in flush; wait and retry
                await asyncio.sleep(self.flush_s)


# ---- queries ----------------------------------------------------------------------------------------------


@dataclass
class CallFilters:
    service_id: str | None = None
    app_id: str | None = None
    org_id: str | None = None
    provider_org_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    errors_only: bool = False
    code: str | None = None


def _filtered(stmt: Select[Any], actor: Actor, filters: CallFilters) -> Select[Any]:
    stmt = stmt.where(permissions.call_scope(actor))
    if filters.service_id:
        stmt = stmt.where(GatewayCall.service_id == filters.service_id)
    if filters.app_id:
        stmt = stmt.where(GatewayCall.app_id == filters.app_id)
    if filters.org_id:
        stmt = stmt.where(GatewayCall.org_id == filters.org_id)
    if filters.provider_org_id:
        stmt = stmt.where(GatewayCall.provider_org_id == filters.provider_org_id)
    if filters.since:
        stmt = stmt.where(GatewayCall.at >= filters.since)
    if filters.until:
        stmt = stmt.where(GatewayCall.at < filters.until)
    if filters.errors_only:
        stmt = stmt.where(GatewayCall.status >= 400)
    if filters.code:
        stmt = stmt.where(GatewayCall.code == filters.code)
    return stmt


def list_query(actor: Actor, filters: CallFilters) -> Select[tuple[GatewayCall]]:
    return _filtered(select(GatewayCall), actor, filters).order_by(GatewayCall.at.desc(), GatewayCall.id.desc())


def _errors() -> Any:
    return func.sum(case((GatewayCall.status >= 400, 1), else_=0))


def stats(session: Session, *, actor: Actor, filters: CallFilters) -> dict[str, Any]:
    """Totals, the breakdown by calling app, by service and by outcome, and calls per day (Asia/Shanghai)."""
    base = _filtered(
        select(
            func.count(),
            _errors(),
            func.coalesce(func.sum(GatewayCall.rows), 0),
            func.avg(GatewayCall.latency_ms),
            func.max(GatewayCall.latency_ms),
            func.avg(GatewayCall.upstream_ms),
        ),
        actor,
        filters,
    )
    calls, errors, rows, avg_ms, max_ms, avg_up = session.execute(base).one()
    by_app = session.execute(
        _filtered(
            select(GatewayCall.app_id, GatewayApp.name, Organization.name, func.count(), _errors())
            .join(GatewayApp, GatewayApp.id == GatewayCall.app_id)
            .join(Organization, Organization.id == GatewayCall.org_id),
            actor,
            filters,
        )
        .group_by(GatewayCall.app_id, GatewayApp.name, Organization.name)
        .order_by(func.count().desc())
        .limit(50)
    ).all()
    by_service = session.execute(
        _filtered(
            select(GatewayCall.service_id, GatewayService.name, func.count(), _errors()).join(
                GatewayService, GatewayService.id == GatewayCall.service_id
            ),
            actor,
            filters,
        )
        .group_by(GatewayCall.service_id, GatewayService.name)
        .order_by(func.count().desc())
        .limit(50)
    ).all()
    by_code = session.execute(
        _filtered(select(GatewayCall.code, func.count()), actor, filters)
        .group_by(GatewayCall.code)
        .order_by(func.count().desc())
    ).all()
    days: dict[date, list[int]] = {}
    # per-day figures are bucketed in Python in local time (portable across SQLite and PostgreSQL)
    for at, status in session.execute(
        _filtered(select(GatewayCall.at, GatewayCall.status), actor, filters).limit(200_000)
    ):
        day = to_local(at).date()
        bucket = days.setdefault(day, [0, 0])
        bucket[0] += 1
        bucket[1] += 1 if status >= 400 else 0
    return {
        "calls": int(calls or 0),
        "errors": int(errors or 0),
        "rows": int(rows or 0),
        "error_rate": round((errors or 0) / calls, 4) if calls else 0.0,
        "avg_latency_ms": round(float(avg_ms), 2) if avg_ms is not None else None,
        "max_latency_ms": round(float(max_ms), 2) if max_ms is not None else None,
        "avg_upstream_ms": round(float(avg_up), 2) if avg_up is not None else None,
        "by_app": [
            {"app_id": a, "app_name": n, "org_name": o, "calls": c, "errors": int(e or 0)} for a, n, o, c, e in by_app
        ],
        "by_service": [
            {"service_id": s, "service_name": n, "calls": c, "errors": int(e or 0)} for s, n, c, e in by_service
        ],
        "by_code": [{"code": code, "calls": c} for code, c in by_code],
        "by_day": [{"day": d.isoformat(), "calls": v[0], "errors": v[1]} for d, v in sorted(days.items())],
    }


def daily_figures(session: Session, *, day: date) -> list[dict[str, Any]]:
    """Supervision's daily figures: per providing and per calling organization, calls and errors on ``day``."""
    from zhengshu.core.timeutil import SHANGHAI

    start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI)
    end = start + timedelta(days=1)
    rows = session.execute(
        select(GatewayCall.provider_org_id, GatewayCall.org_id, GatewayCall.service_id, func.count(), _errors())
        .where(GatewayCall.at >= start, GatewayCall.at < end)
        .group_by(GatewayCall.provider_org_id, GatewayCall.org_id, GatewayCall.service_id)
    ).all()
    return [
        {"provider_org_id": p, "consumer_org_id": o, "service_id": s, "calls": c, "errors": int(e or 0)}
        for p, o, s, c, e in rows
    ]
