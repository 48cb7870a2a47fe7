"""The bearer token's user: one narrow statement, the same refusals (unknown, revoked, expired, inactive user)
and the same "last used" touch at most every five minutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.factories import build_world
from tests.statements import statements
from zhengshu.core.db import Database, hold_loaded_objects, utcnow
from zhengshu.core.errors import Unauthenticated
from zhengshu.org import service as org_service
from zhengshu.org.models import ApiToken, Organization, User
from zhengshu.security.actor import Actor, Role


def _issue(db: Database, username: str = "market_officer", expires_days: int | None = 30) -> tuple[str, str]:
    with db.session() as s:
        user = org_service.get_user_by_username(s, username=username)
        raw, token = org_service.issue_token(s, user=user, name="t", expires_days=expires_days)
        return raw, token.id


def _last_used(db: Database, token_id: str) -> Any:
    with db.session() as s:
        return s.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))


def test_the_token_gives_the_user_and_actor_in_one_statement(db: Database) -> None:
    world = build_world(db)
    raw, _ = _issue(db)
    with db.session() as s:
        hold_loaded_objects(s)
        org_service.user_for_token(s, raw_token=raw)  # the first use also records it: not counted below
    with db.session() as s, statements(db) as seen:
        hold_loaded_objects(s)
        user = org_service.user_for_token(s, raw_token=raw)
        actor = org_service.actor_for(user, source_ip="10.0.0.1", via="api")
        # what the request reads later is in the identity map already: no lazy load of the user or its organization
        assert s.get(User, actor.user_id) is user
        assert s.get(Organization, actor.org_id) is user.org
        assert (user.email, user.last_login_at, user.org.uscc, user.org.is_data_authority) is not None
        assert len(seen) == 1, seen
    officer = world["market_officer"]
    assert actor == Actor(
        user_id=officer.user_id,
        username="market_officer",
        display_name=officer.display_name,
        org_id=world.orgs["market"],
        org_name="江西省市场监督管理局",
        region_code=officer.region_code,
        roles=frozenset({Role.OFFICER}),
        source_ip="10.0.0.1",
        via="api",
    )
    with db.session() as s:  # the organization's region still loads when something asks for it
        user = org_service.user_for_token(s, raw_token=raw)
        assert user.org.region.code == user.org.region_code


def _refused(db: Database, raw: str) -> None:
    with db.session() as s, pytest.raises(Unauthenticated) as exc:
        org_service.user_for_token(s, raw_token=raw)
    assert exc.value.code == "auth.bad_token"


def test_unknown_revoked_expired_and_inactive_are_refused(db: Database) -> None:
    build_world(db)
    _refused(db, "zs_not-a-token")

    revoked, revoked_id = _issue(db)
    with db.session() as s:
        s.execute(update(ApiToken).where(ApiToken.id == revoked_id).values(revoked=True))
    _refused(db, revoked)

    expired, expired_id = _issue(db)
    with db.session() as s:
        s.execute(update(ApiToken).where(ApiToken.id == expired_id).values(expires_at=utcnow() - timedelta(seconds=1)))
    _refused(db, expired)

    forever, _ = _issue(db, expires_days=None)  # no expiry date: valid
    with db.session() as s:
        assert org_service.user_for_token(s, raw_token=forever).username == "market_officer"

    inactive, _ = _issue(db, username="hrss_officer")
    with db.session() as s:
        s.execute(update(User).where(User.username == "hrss_officer").values(active=False))
    _refused(db, inactive)
    assert _last_used(db, revoked_id) is None and _last_used(db, expired_id) is None  # refused: not touched


def _use(db: Database, raw: str) -> None:
    with db.session() as s:
        org_service.user_for_token(s, raw_token=raw)


def test_last_used_is_recorded_at_most_every_five_minutes(db: Database) -> None:
    build_world(db)
    raw, token_id = _issue(db)
    assert _last_used(db, token_id) is None
    _use(db, raw)
    first = _last_used(db, token_id)
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    _use(db, raw)
    assert _last_used(db, token_id) == first  # within five minutes: not written again

    older = utcnow() - org_service.TOKEN_TOUCH_EVERY - timedelta(seconds=5)
    with db.session() as s:
        s.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=older))
    _use(db, raw)
    assert _last_used(db, token_id) > older + timedelta(minutes=4)


def test_the_touch_is_kept_when_the_request_rolls_back(db: Database) -> None:
    build_world(db)
    raw, token_id = _issue(db)
    s = Session(db.engine)
    try:
        org_service.user_for_token(s, raw_token=raw)
        s.rollback()
    finally:
        s.close()
    assert _last_used(db, token_id) is not None
