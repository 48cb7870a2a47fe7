"""Small parts on their own: the circuit breaker's states, the in-process windows, the supervision figures."""

from __future__ import annotations

import datetime as dt

from limits import RateLimitItemPerDay, RateLimitItemPerSecond

from zhengshu.core.db import Database, new_id
from zhengshu.gateway import calllog
from zhengshu.gateway.breaker import CircuitBreaker
from zhengshu.gateway.models import GatewayCall
from zhengshu.gateway.runtime import _LocalWindows


def test_breaker_opens_after_n_failures_and_lets_one_probe_through() -> None:
    now = [100.0]
    breaker = CircuitBreaker(3, 10.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after() == 10.0
    now[0] += 10.5
    assert breaker.allow() and breaker.state == "half_open"
    assert not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again for a full cool-down
    assert breaker.state == "open" and not breaker.allow()
    now[0] += 11
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.failures == 0


def test_local_windows_count_per_identifier_and_roll_over() -> None:
    windows = _LocalWindows()
    per_second = RateLimitItemPerSecond(2)
    assert [windows.hit(per_second, "a") for _ in range(3)] == [True, True, False]
    assert windows.hit(per_second, "b")
    day = RateLimitItemPerDay(1)
    assert windows.hit(day, "a") and not windows.hit(day, "a")
    # a stale window is forgotten at the next sweep
    windows.counts[(1, 0, "old")] = 5
    windows.next_sweep = 0
    windows.hit(per_second, "c")
    assert (1, 0, "old") not in windows.counts


def test_daily_figures_per_provider_consumer_and_service(db: Database) -> None:
    at = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai on the 26th
    rows = [
        ("p1", "c1", "s1", 200),
        ("p1", "c1", "s1", 403),
        ("p1", "c2", "s1", 200),
    ]
    with db.session() as s:
        for provider, consumer, service, status in rows:
            s.add(
                GatewayCall(
                    id=new_id(),
                    at=at,
                    request_id=new_id(),
                    app_id=None,
                    org_id=consumer,
                    service_id=service,
                    provider_org_id=provider,
                    method="GET",
                    path="/gw/x",
                    params_hash="",
                    status=status,
                    code="ok" if status == 200 else "gateway.not_authorized",
                    rows=1,
                    latency_ms=1.0,
                    response_bytes=10,
                )
            )
    with db.session() as s:
        figures = calllog.daily_figures(s, day=dt.date(2026, 11, 26))
        assert calllog.daily_figures(s, day=dt.date(2026, 11, 25)) == []
    by_consumer = {f["consumer_org_id"]: (f["calls"], f["errors"]) for f in figures}
    assert by_consumer == {"c1": (2, 1), "c2": (1, 0)}
