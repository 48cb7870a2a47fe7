"""Typed dependencies: the unit of work, the current actor, CSRF.

The session dependency owns the transaction (services only flush): it commits when the route returns,
rolls back on any error, and writes an audit record of every state-changing request either way. The domain
events the request produced are delivered in the same transaction, in a savepoint; any a consumer failed on
are retried right after the commit, each in a transaction of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from zhengshu.audit import service as audit_service
from zhengshu.core.db import Database, hold_loaded_objects
from zhengshu.core.errors import Forbidden, Unauthenticated, ZhengshuError
from zhengshu.core.events import deliver_in_transaction, emitted_ids, process_pending, will_deliver_in_transaction
from zhengshu.org import service as org_service
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import hmac_sm3

CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that write their own, more specific audit record (login outcomes with the reason).
RECORDS_ITS_OWN_AUDIT = {("POST", "/login"), ("POST", "/logout"), ("POST", "/api/v1/auth/token")}


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def client_ip(request: Request) -> str | None:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and request.app.state.settings.trust_forwarded_for:
        # the load balancer appends the address it saw; entries left of it are the client's own claims
        return forwarded.split(",")[-1].strip()
    return request.client.host if request.client else None


def _audit_action(request: Request) -> tuple[str, str, str]:
    """A stable dotted action name: ``<feature>.<route name>[.<verb>]`` (e.g. ``catalog.entry_action.approve``)."""
    route = request.scope.get("route")
    params = dict(request.path_params)
    feature = request.url.path.removeprefix("/api/v1/").strip("/").split("/")[0] or "portal"
    name = f"{feature}.{getattr(route, 'name', None) or 'unknown'}"
    if "verb" in params:
        name += f".{params.pop('verb')}"
    target_id = next(iter(params.values()), "") if params else ""
    return name, feature if params else "", str(target_id)


async def db_session(request: Request) -> AsyncIterator[Session]:
    # Creating a session does no I/O (its connection is taken at the first statement, in the thread pool), so
    # it is made here on the event loop: one thread hop less per request. The end of the unit of work (commit
    # or rollback, audit, event delivery) does I/O and runs off the loop.
    database = get_database(request)
    session = database.session_factory()
    hold_loaded_objects(session)
    if request.app.state.settings.process_outbox_inline:
        will_deliver_in_transaction(session)  # its events are written delivered: no UPDATE once they are
    request.state.session = session
    audited = request.method in CHANGING_METHODS and (request.method, request.url.path) not in RECORDS_ITS_OWN_AUDIT
    try:
        yield session
    except BaseException as exc:
        await _off_loop(_abort, database, session, request, audited, exc)
        raise
    await _off_loop(_commit, database, session, request, audited)


async def _off_loop(fn: Callable[..., None], *args: Any) -> None:
    """Run the end of a unit of work in a worker thread, shielded from cancellation like FastAPI's own teardown
    of sync dependencies. It gets a limiter of its own: it returns a connection to the pool, so it must not
    queue for a worker thread behind requests that wait for a connection."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(fn, *args, limiter=anyio.CapacityLimiter(1))


def _commit(database: Database, session: Session, request: Request, audited: bool) -> None:
    left: list[str] = []
    try:
        emitted = emitted_ids(session)
        if emitted and request.app.state.settings.process_outbox_inline:
            # in a savepoint: a failing consumer is undone without undoing the request's change
            left = deliver_in_transaction(session, emitted)
        if audited:
            action, target_type, target_id = _audit_action(request)
            audit_service.record(
                session,
                actor=getattr(request.state, "actor", None),
                action=action,
                target_type=target_type,
                target_id=target_id,
                source_ip=client_ip(request),
                detail={"method": request.method, "path": request.url.path},
            )
        session.commit()
    except BaseException as exc:
        _roll_back(database, session, request, audited, exc)
        raise
    finally:
        session.close()
    if left:
        # a consumer failed inside the request: retry each on its own now; the worker picks up what still fails
        process_pending(database.session_factory, only=left)


def _abort(database: Database, session: Session, request: Request, audited: bool, exc: BaseException) -> None:
    try:
        _roll_back(database, session, request, audited, exc)
    finally:
        session.close()


def _roll_back(database: Database, session: Session, request: Request, audited: bool, exc: BaseException) -> None:
    session.rollback()
    if audited and isinstance(exc, Exception):
        _audit_failure(database, request, exc)


def _audit_failure(database: Database, request: Request, exc: BaseException) -> None:
    action, target_type, target_id = _audit_action(request)
    code = exc.code if isinstance(exc, ZhengshuError) else type(exc).__name__
    with database.session() as s:
        audit_service.record(
            s,
            actor=getattr(request.state, "actor", None),
            action=action,
            target_type=target_type,
            target_id=target_id,
            outcome="failure",
            source_ip=client_ip(request),
            detail={"method": request.method, "path": request.url.path, "error": code},
        )


DbSession = Annotated[Session, Depends(db_session, scope="function")]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def session_epoch(request: Request, user: org_service.User) -> str:
    """Changes when the password changes, so other sessions end; reveals nothing of the hash."""
    secret = request.app.state.settings.resolved_secret_key().encode()
    return hmac_sm3(secret, user.password_hash.encode()).hex()[:20]


def optional_actor(request: Request, session: DbSession) -> Actor | None:
    token = _bearer(request)
    via = "api" if request.url.path.startswith("/api/") else "web"
    if token:
        user = org_service.user_for_token(session, raw_token=token)
        actor = org_service.actor_for(user, source_ip=client_ip(request), via="api")
    else:
        user_id = request.session.get("user_id") if "session" in request.scope else None
        if not user_id:
            return None
        user = session.get(org_service.User, user_id)
        if user is None or not user.active or request.session.get("pw") != session_epoch(request, user):
            request.session.clear()
            return None
        actor = org_service.actor_for(user, source_ip=client_ip(request), via=via)
    request.state.actor = actor
    return actor


async def current_actor(actor: Annotated[Actor | None, Depends(optional_actor)]) -> Actor:
    # a pure check: async, so FastAPI runs it on the event loop instead of handing it to a worker thread
    if actor is None:
        raise Unauthenticated()
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
OptionalActor = Annotated[Actor | None, Depends(optional_actor)]


# ---- CSRF for form posts (the API uses bearer tokens, which browsers never send on their own) -------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


async def verify_csrf(request: Request) -> None:
    if request.method not in CHANGING_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        form = await request.form()
        value: Any = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise Forbidden("页面已过期或请求来源不可信，请刷新页面后重试", code="auth.csrf")


Csrf = Depends(verify_csrf)
