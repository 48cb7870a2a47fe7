"""Notifications through the HTTP API and the pages: mine only, unread first, mark read, read all, the count,
the header badge fragment."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from tests.factories import PASSWORD, World, token_for
from zhengshu.core.db import Database
from zhengshu.notify import service as notify_service
from zhengshu.security.actor import Role

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"Accept": "text/html,application/xhtml+xml"}


def seed(db: Database, world: World) -> dict[str, str]:
    with db.session() as s:
        ids = {
            "old": notify_service.notify(s, org_id=world.orgs["market"], title="旧通知", link="/catalog").id,
            "officers": notify_service.notify(
                s, org_id=world.orgs["market"], roles=[Role.OFFICER], title="数据专员待办", kind="ticket.todo"
            ).id,
            "hrss": notify_service.notify(s, org_id=world.orgs["hrss"], title="人社通知").id,
        }
        ids["new"] = notify_service.notify(s, user_id=world["market_officer"].user_id, title="个人通知").id
    return ids


def test_anonymous_is_401(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.get("/api/v1/notifications/unread-count").status_code == 401
    assert client.post("/api/v1/notifications/read-all").status_code == 401
    assert client.post("/api/v1/notifications/x/read").status_code == 401


def test_list_mark_read_and_count(client: TestClient, world: World, db: Database) -> None:
    ids = seed(db, world)
    officer = token_for(client, "market_officer")
    r = client.get("/api/v1/notifications", params={"count": "true"}, headers=officer)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 3 and page["next_cursor"] is None
    assert [n["title"] for n in page["items"]] == ["个人通知", "数据专员待办", "旧通知"]  # newest first
    assert all(n["read"] is False and n["read_at"] is None for n in page["items"])
    assert page["items"][1]["roles"] == ["officer"] and page["items"][1]["kind_label"] == "待办"
    assert client.get("/api/v1/notifications/unread-count", headers=officer).json() == {"unread": 3}

    r = client.post(f"/api/v1/notifications/{ids['new']}/read", headers=officer)
    assert r.status_code == 200 and r.json()["read"] is True and r.json()["read_at"]
    titles = [n["title"] for n in client.get("/api/v1/notifications", headers=officer).json()["items"]]
    assert titles == ["数据专员待办", "旧通知", "个人通知"]  # unread first
    unread = client.get("/api/v1/notifications", params={"unread": "true"}, headers=officer).json()["items"]
    assert [n["id"] for n in unread] == [ids["officers"], ids["old"]]
    by_time = client.get("/api/v1/notifications", params={"sort": "created_at"}, headers=officer).json()["items"]
    assert [n["id"] for n in by_time] == [ids["old"], ids["officers"], ids["new"]]
    todo = client.get("/api/v1/notifications", params={"kind": "ticket.todo"}, headers=officer).json()["items"]
    assert [n["id"] for n in todo] == [ids["officers"]]

    # paging
    first = client.get("/api/v1/notifications", params={"limit": 2}, headers=officer).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(
        "/api/v1/notifications", params={"limit": 2, "cursor": first["next_cursor"]}, headers=officer
    ).json()
    assert [n["id"] for n in rest["items"]] == [ids["new"]] and rest["next_cursor"] is None

    # read state is per user: the colleague still has the organization's notice unread
    user = token_for(client, "market_user")
    assert client.get("/api/v1/notifications/unread-count", headers=user).json() == {"unread": 1}
    assert client.post("/api/v1/notifications/read-all", headers=officer).json() == {"marked": 2}
    assert client.get("/api/v1/notifications/unread-count", headers=officer).json() == {"unread": 0}
    assert client.get("/api/v1/notifications/unread-count", headers=user).json() == {"unread": 1}


def test_others_notifications_look_missing(client: TestClient, world: World, db: Database) -> None:
    ids = seed(db, world)
    user = token_for(client, "market_user")
    for nid in (ids["hrss"], ids["officers"], ids["new"], "no-such-id"):
        r = client.post(f"/api/v1/notifications/{nid}/read", headers=user)
        assert r.status_code == 404 and r.json()["code"] == "notify.not_found"
    r = client.get("/api/v1/notifications", params={"sort": "title"}, headers=user)
    assert r.status_code == 422 and r.json()["code"] == "notify.bad_sort"


def login(client: TestClient, username: str) -> str:
    page = client.get("/login", headers=HTML)
    token = html.unescape(CSRF.search(page.text).group(1))  # type: ignore[union-attr]
    r = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/notifications"},
        headers=HTML,
        follow_redirects=False,
    )
    assert r.status_code == 303
    return token


def test_pages_badge_and_open(client: TestClient, world: World, db: Database) -> None:
    ids = seed(db, world)
    login(client, "market_officer")
    badge = client.get("/notifications/badge", headers=HTML)
    assert badge.status_code == 200 and badge.text.strip().startswith("通知") and ">3<" in badge.text
    page = client.get("/notifications", headers=HTML)
    assert page.status_code == 200 and "个人通知" in page.text and "全部标为已读" in page.text
    token = html.unescape(CSRF.search(page.text).group(1))  # type: ignore[union-attr]
    # following a notification marks it read and goes to its page
    r = client.get(f"/notifications/{ids['old']}/open", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/catalog"
    assert ">2<" in client.get("/notifications/badge", headers=HTML).text
    # a form post without the token is refused; with it, the notice is read
    assert client.post(f"/notifications/{ids['new']}/read", headers=HTML).status_code == 403
    r = client.post(f"/notifications/{ids['new']}/read", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    r = client.post("/notifications/read-all", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    badge = client.get("/notifications/badge", headers=HTML)
    assert badge.text.strip() == "通知"
    assert "没有未读通知" in client.get("/notifications", headers=HTML).text
