"""Tokens, the current user, regions, organizations and users through the HTTP API."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from tests.factories import PASSWORD, token_for
from zhengshu.audit.models import AuditRecord
from zhengshu.demo.identities import uscc

PROBLEM = "application/problem+json"


def fields(response: Any) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


def new_uscc(seed: int, region: str = "360000") -> str:
    return uscc(random.Random(seed), region_code=region, authority="1", org_type="1")


def bad_uscc(seed: int) -> str:
    good = new_uscc(seed)
    last = "0" if good[-1] != "0" else "1"
    return good[:-1] + last


# ---- tokens ---------------------------------------------------------------------------------------------


def test_token_issue_and_me(client, world, db) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/auth/token", json={"username": "market_officer", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token"].startswith("zs_") and body["token_type"] == "bearer"
    assert body["expires_at"] is not None

    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    data = me.json()
    assert data["username"] == "market_officer"
    assert data["roles"] == [{"code": "officer", "label": "数据专员"}]
    assert data["is_admin"] is False
    assert data["org"]["id"] == world.orgs["market"]
    assert data["org"]["name"] == "江西省市场监督管理局"

    with db.session() as s:
        actions = s.scalars(select(AuditRecord).where(AuditRecord.action == "auth.token")).all()
        assert [(a.actor_username, a.outcome) for a in actions] == [("market_officer", "success")]


def test_wrong_password_is_401_problem_and_audited(client, world, db) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/auth/token", json={"username": "market_officer", "password": "wrong-pass1"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "auth.bad_credentials"
    assert "token" not in response.json()
    with db.session() as s:
        failures = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "auth.token", AuditRecord.outcome == "failure")
        ).all()
        assert len(failures) == 1
        assert failures[0].target_id == "market_officer"
        assert failures[0].detail == {"reason": "auth.bad_credentials"}


def test_repeated_failures_lock_the_account_through_the_api(client, world) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        r = client.post("/api/v1/auth/token", json={"username": "hrss_officer", "password": "nope-nope1"})
        assert r.json()["code"] == "auth.bad_credentials"
    # The counter survived the error responses: now even the right password is refused for a while.
    r = client.post("/api/v1/auth/token", json={"username": "hrss_officer", "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["code"] == "auth.locked"


def test_token_body_validation_names_fields(client, world) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/auth/token", json={"username": "admin", "expires_days": 0})
    assert r.status_code == 422
    assert {"password", "expires_days"} <= fields(r)


def test_anonymous_calls_are_401(client, world) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/auth/me", "/api/v1/org/organizations", "/api/v1/org/users", "/api/v1/org/regions"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["code"] == "auth.unauthenticated"
    r = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer zs_not-a-token"})
    assert r.status_code == 401 and r.json()["code"] == "auth.bad_token"


def test_revoke_current_token(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = token_for(client, "reviewer")
    other = token_for(client, "reviewer")
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    r = client.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "auth.bad_token"
    # Only the token used is revoked.
    assert client.get("/api/v1/auth/me", headers=other).status_code == 200


# ---- regions --------------------------------------------------------------------------------------------


def test_regions_list_filter_and_admin_upsert(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    officer = token_for(client, "market_officer")
    r = client.get("/api/v1/org/regions", params={"parent_code": "360000", "count": "true"}, headers=officer)
    assert r.status_code == 200
    assert [x["code"] for x in r.json()["items"]] == ["360100", "360400"]
    assert r.json()["total"] == 2

    body = {"name": "西湖区", "level": "county", "parent_code": "360100"}
    refused = client.put("/api/v1/org/regions/360103", json=body, headers=officer)
    assert refused.status_code == 403
    assert refused.json()["code"] == "auth.forbidden"

    created = client.put("/api/v1/org/regions/360103", json=body, headers=admin)
    assert created.status_code == 200
    assert created.json()["code"] == "360103"
    r = client.get("/api/v1/org/regions", params={"parent_code": "360100"}, headers=officer)
    assert [x["name"] for x in r.json()["items"]] == ["东湖区", "西湖区"]

    renamed = client.put("/api/v1/org/regions/360103", json={**body, "name": "西湖区（测试）"}, headers=admin)
    assert renamed.json()["name"] == "西湖区（测试）"
    assert client.get("/api/v1/org/regions/360103", headers=officer).json()["name"] == "西湖区（测试）"


def test_region_validation(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    r = client.put("/api/v1/org/regions/36010", json={"name": "x", "level": "county"}, headers=admin)
    assert r.status_code == 422 and "code" in fields(r)
    r = client.put("/api/v1/org/regions/360199", json={"name": "x", "level": "town"}, headers=admin)
    assert r.status_code == 422 and "level" in fields(r)
    r = client.put(
        "/api/v1/org/regions/360199",
        json={"name": "x", "level": "county", "parent_code": "369900"},
        headers=admin,
    )
    assert r.status_code == 422 and fields(r) == {"parent_code"}
    assert client.get("/api/v1/org/regions/360199", headers=admin).status_code == 404


# ---- organizations --------------------------------------------------------------------------------------


def test_organizations_pagination_and_filters(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = token_for(client, "market_user")
    first = client.get("/api/v1/org/organizations", params={"limit": 4, "count": "true"}, headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert page["total"] == 6 and len(page["items"]) == 4 and page["next_cursor"]
    second = client.get(
        "/api/v1/org/organizations", params={"limit": 4, "cursor": page["next_cursor"]}, headers=headers
    ).json()
    assert len(second["items"]) == 2 and second["next_cursor"] is None and second["total"] is None
    ids = [o["id"] for o in page["items"] + second["items"]]
    assert sorted(ids) == sorted(world.orgs.values())

    nanchang = client.get("/api/v1/org/organizations", params={"region_code": "360100"}, headers=headers).json()
    assert {o["id"] for o in nanchang["items"]} == {world.orgs["nc_authority"], world.orgs["nc_police"]}
    q = client.get("/api/v1/org/organizations", params={"q": "数据局"}, headers=headers).json()
    assert len(q["items"]) == 3

    bad = client.get("/api/v1/org/organizations", params={"limit": 500}, headers=headers)
    assert bad.status_code == 422 and "limit" in fields(bad)
    bad = client.get("/api/v1/org/organizations", params={"cursor": "%%%"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "pagination.bad_cursor"


def test_create_organization_checks_uscc_and_role(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    officer = token_for(client, "market_officer")
    body = {"name": "江西省民政厅", "short_name": "省民政厅", "uscc": new_uscc(99), "region_code": "360000"}

    refused = client.post("/api/v1/org/organizations", json=body, headers=officer)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["code"] == "auth.forbidden"

    bad = client.post("/api/v1/org/organizations", json={**body, "uscc": bad_uscc(99)}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["code"] == "org.invalid"
    assert fields(bad) == {"uscc"}
    assert "统一社会信用代码" in bad.json()["errors"][0]["message"]

    short = client.post("/api/v1/org/organizations", json={**body, "uscc": "123"}, headers=admin)
    assert short.status_code == 422 and "uscc" in fields(short)

    created = client.post("/api/v1/org/organizations", json=body, headers=admin)
    assert created.status_code == 201
    org = created.json()
    assert org["uscc"] == body["uscc"] and org["active"] is True

    duplicate = client.post("/api/v1/org/organizations", json={**body, "uscc": new_uscc(100)}, headers=admin)
    assert duplicate.status_code == 422 and fields(duplicate) == {"name"}

    got = client.get(f"/api/v1/org/organizations/{org['id']}", headers=officer)
    assert got.status_code == 200 and got.json()["name"] == "江西省民政厅"
    assert client.get("/api/v1/org/organizations/nope", headers=officer).json()["code"] == "org.not_found"


def test_update_organization(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    officer = token_for(client, "market_officer")
    org_id = world.orgs["hrss"]
    assert (
        client.patch(f"/api/v1/org/organizations/{org_id}", json={"short_name": "x"}, headers=officer).status_code
        == 403
    )
    r = client.patch(
        f"/api/v1/org/organizations/{org_id}", json={"short_name": "人社厅", "active": False}, headers=admin
    )
    assert r.status_code == 200
    assert r.json()["short_name"] == "人社厅" and r.json()["active"] is False
    listed = client.get("/api/v1/org/organizations", headers=admin).json()["items"]
    assert org_id not in {o["id"] for o in listed}
    listed = client.get("/api/v1/org/organizations", params={"include_inactive": "true"}, headers=admin).json()
    assert org_id in {o["id"] for o in listed["items"]}
    r = client.patch(f"/api/v1/org/organizations/{org_id}", json={"parent_id": org_id}, headers=admin)
    assert r.status_code == 422 and fields(r) == {"parent_id"}


# ---- users ----------------------------------------------------------------------------------------------


def user_body(world: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "username": "market_new",
        "display_name": "新专员",
        "password": "Str0ngPass!",
        "org_id": world.orgs["market"],
        "roles": ["officer"],
    }
    body.update(overrides)
    return body


def test_officer_cannot_create_users(client, world) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/org/users", json=user_body(world), headers=token_for(client, "market_officer"))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == "auth.forbidden" and problem["status"] == 403 and problem["title"]


def test_admin_creates_user_who_can_then_log_in(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    r = client.post("/api/v1/org/users", json=user_body(world), headers=admin)
    assert r.status_code == 201
    user = r.json()
    assert user["roles"] == ["officer"] and "password" not in user and "password_hash" not in user
    token = client.post("/api/v1/auth/token", json={"username": "market_new", "password": "Str0ngPass!"})
    assert token.status_code == 200
    assert client.get(f"/api/v1/org/users/{user['id']}", headers=admin).json()["username"] == "market_new"


def test_user_validation_names_fields(client, world) -> None:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    r = client.post("/api/v1/org/users", json=user_body(world, roles=[], username="a b"), headers=admin)
    assert r.status_code == 422 and {"roles", "username"} <= fields(r)
    r = client.post("/api/v1/org/users", json=user_body(world, password="abcdefgh"), headers=admin)
    assert r.status_code == 422 and fields(r) == {"password"}
    r = client.post("/api/v1/org/users", json=user_body(world, username="admin"), headers=admin)
    assert r.status_code == 422 and fields(r) == {"username"}
    r = client.post("/api/v1/org/users", json=user_body(world, roles=["reviewer"]), headers=admin)
    assert r.status_code == 422 and fields(r) == {"roles"}
    r = client.post("/api/v1/org/users", json=user_body(world, roles=["king"]), headers=admin)
    assert r.status_code == 422 and "roles[0]" in fields(r)


def test_users_are_scoped_to_the_organization(client, world) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    listed = client.get("/api/v1/org/users", params={"count": "true"}, headers=officer).json()
    assert {u["username"] for u in listed["items"]} == {"market_officer", "market_user"}
    assert listed["total"] == 2
    admin = token_for(client, "admin")
    everyone = client.get("/api/v1/org/users", params={"count": "true", "limit": 3}, headers=admin).json()
    assert everyone["total"] == 8 and len(everyone["items"]) == 3 and everyone["next_cursor"]

    other = world["hrss_officer"].user_id
    assert client.get(f"/api/v1/org/users/{other}", headers=officer).status_code == 404
    assert client.patch(f"/api/v1/org/users/{other}", json={"display_name": "x"}, headers=officer).status_code == 404


def test_self_service_and_admin_updates(client, world) -> None:  # type: ignore[no-untyped-def]
    officer = token_for(client, "market_officer")
    me = world["market_officer"].user_id
    r = client.patch(
        f"/api/v1/org/users/{me}",
        json={"display_name": "市场监管专员甲", "phone": "13800000000"},
        headers=officer,
    )
    assert r.status_code == 200 and r.json()["display_name"] == "市场监管专员甲"
    r = client.patch(f"/api/v1/org/users/{me}", json={"roles": ["admin"]}, headers=officer)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    colleague = world["market_user"].user_id
    assert (
        client.patch(f"/api/v1/org/users/{colleague}", json={"display_name": "x"}, headers=officer).status_code == 403
    )

    admin = token_for(client, "admin")
    r = client.patch(f"/api/v1/org/users/{colleague}", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    r = client.post("/api/v1/auth/token", json={"username": "market_user", "password": PASSWORD})
    assert r.status_code == 401
