"""The request stack around every API call: the unit of work of ``db_session`` (commit before the response,
rollback and a failure audit on any error, problem+json either way) and the router gate that skips whole
included routers (it must select exactly the route FastAPI's own scan selects)."""

from __future__ import annotations

import re
from typing import Any

import fastapi.routing
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Match

from tests.factories import World, token_for
from zhengshu.audit.models import AuditRecord
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict
from zhengshu.notify import service as notify_service
from zhengshu.notify.models import Notification
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.routes import _gate_included_routers, _GatedRouter

PROBLEM = "application/problem+json"
# FastAPI's private internals the gate builds on (the gate itself stands aside without them)
_IncludedRouter: Any = getattr(fastapi.routing, "_IncludedRouter", None)
iter_route_contexts: Any = getattr(fastapi.routing, "iter_route_contexts", None)
needs_included_routers = pytest.mark.skipif(
    _IncludedRouter is None or iter_route_contexts is None, reason="this FastAPI has no included-router internals"
)


def _add_probe(app: FastAPI) -> None:
    """A route that notifies its caller, then succeeds or fails as ``verb`` says."""

    @app.post("/api/v1/probe/{probe_id}/{verb}")
    def probe(probe_id: str, verb: str, session: DbSession, actor: CurrentActor) -> dict[str, str]:
        notify_service.notify(session, user_id=actor.user_id, title=f"probe {probe_id}")
        session.flush()  # the row is written: only the rollback can take it back
        if verb == "conflict":
            raise Conflict("探针冲突", code="probe.conflict")
        if verb == "crash":
            raise RuntimeError("probe crash")
        return {"id": probe_id}


def _notifications(db: Database, probe_id: str) -> int:
    with db.session() as s:
        return len(s.scalars(select(Notification).where(Notification.title == f"probe {probe_id}")).all())


def _audit(db: Database, probe_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with db.session() as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.target_id == probe_id)).all()
        return [(r.action, r.target_type, r.outcome, r.detail) for r in rows]


def test_success_commits_before_the_response_and_is_audited(app: FastAPI, db: Database, world: World) -> None:
    _add_probe(app)
    with TestClient(app) as client:
        officer = token_for(client, "market_officer")
        r = client.post("/api/v1/probe/p-ok/run", headers=officer)
        assert r.status_code == 200 and r.json() == {"id": "p-ok"}
        # read right after the response, from another session: already committed
        assert _notifications(db, "p-ok") == 1
    assert _audit(db, "p-ok") == [
        ("probe.probe.run", "probe", "success", {"method": "POST", "path": "/api/v1/probe/p-ok/run"})
    ]


def test_domain_error_rolls_back_and_answers_problem_json(app: FastAPI, db: Database, world: World) -> None:
    _add_probe(app)
    with TestClient(app) as client:
        officer = token_for(client, "market_officer")
        r = client.post("/api/v1/probe/p-conflict/conflict", headers=officer)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "probe.conflict" and r.json()["detail"] == "探针冲突"
    assert _notifications(db, "p-conflict") == 0
    detail = {"method": "POST", "path": "/api/v1/probe/p-conflict/conflict", "error": "probe.conflict"}
    assert _audit(db, "p-conflict") == [("probe.probe.conflict", "probe", "failure", detail)]


def test_unexpected_error_rolls_back_and_answers_internal(app: FastAPI, db: Database, world: World) -> None:
    _add_probe(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        officer = token_for(client, "market_officer")
        r = client.post("/api/v1/probe/p-crash/crash", headers=officer)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(PROBLEM) and r.json()["code"] == "internal"
    assert _notifications(db, "p-crash") == 0
    detail = {"method": "POST", "path": "/api/v1/probe/p-crash/crash", "error": "RuntimeError"}
    assert _audit(db, "p-crash") == [("probe.probe.crash", "probe", "failure", detail)]


def test_anonymous_call_is_refused_before_the_route_runs(app: FastAPI, db: Database, world: World) -> None:
    _add_probe(app)
    with TestClient(app) as client:
        r = client.post("/api/v1/probe/p-anon/run")
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "auth.unauthenticated" or r.json()["status"] == 401
    assert _notifications(db, "p-anon") == 0


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+(:path)?\}", lambda m: "a/b" if m.group(1) else "7", path)


@needs_included_routers
def test_gated_routers_match_exactly_like_fastapi(app: FastAPI) -> None:
    top = app.router.routes
    gated = [route for route in top if isinstance(route, _GatedRouter)]
    assert gated and not [route for route in top if type(route) is _IncludedRouter]
    paths = {_concrete(rc.path) for rc in iter_route_contexts(top) if rc.path}
    paths |= {p + "/" for p in list(paths)} | {"/", "/api/v1/nowhere", "/api/v1", "/static/app.css", "/open"}
    checked = 0
    for path in sorted(paths):
        for method in ("GET", "POST"):
            scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
            for route in gated:
                expected, expected_scope = _IncludedRouter.matches(route, dict(scope))
                got, got_scope = route.matches(dict(scope))
                assert (got, got_scope) == (expected, expected_scope), (method, path, route.original_router)
                checked += 1
    assert checked > 1000


def _one_gated_router() -> tuple[APIRouter, Any]:
    """A router with ``/things/{thing_id}`` included under ``/api/v1``, and its gate."""
    app = FastAPI()
    router = APIRouter()
    router.add_api_route("/things/{thing_id}", lambda thing_id: {}, methods=["GET"])
    app.include_router(router, prefix="/api/v1")
    _gate_included_routers(app)
    (gated,) = app.router.routes[-1:]
    assert isinstance(gated, _GatedRouter)
    return router, gated


def _match(gated: Any, path: str) -> Match:
    scope = {"type": "http", "path": path, "root_path": "", "method": "GET", "headers": []}
    match: Match = gated.matches(scope)[0]
    return match


@needs_included_routers
def test_gate_follows_routes_added_after_the_include() -> None:
    router, gated = _one_gated_router()

    def match(path: str) -> Match:
        return _match(gated, path)

    assert match("/api/v1/things/7") == Match.FULL
    assert match("/api/v1/late") == match("/api/v1/nested/late") == Match.NONE
    router.add_api_route("/late", lambda: {}, methods=["GET"])  # added to the router after the include
    assert match("/api/v1/late") == Match.FULL
    nested = APIRouter()
    nested.add_api_route("/late", lambda: {}, methods=["GET"])
    router.include_router(nested, prefix="/nested")  # a router included into it later
    assert match("/api/v1/nested/late") == Match.FULL


@needs_included_routers
def test_gate_stands_aside_when_fastapi_internals_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    _, gated = _one_gated_router()

    def changed_internals(self: Any) -> tuple[str, ...]:
        raise AttributeError("_routes_version")

    monkeypatch.setattr(_GatedRouter, "_leads", changed_internals)
    assert _match(gated, "/api/v1/things/7") == Match.FULL  # FastAPI's own scan, not an error
    assert _match(gated, "/elsewhere") == Match.NONE
