"""The audit log through the HTTP API: search with backwards paging, and chain verification."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from tests.factories import token_for
from zhengshu.audit.models import AuditRecord
from zhengshu.demo.identities import uscc


def some_activity(client, world) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    admin = token_for(client, "admin")
    officer = token_for(client, "market_officer")
    body = {
        "name": "江西省民政厅",
        "uscc": uscc(random.Random(5), region_code="360000", authority="1"),
        "region_code": "360000",
    }
    assert client.post("/api/v1/org/organizations", json=body, headers=admin).status_code == 201
    assert client.post("/api/v1/org/organizations", json=body, headers=officer).status_code == 403
    me = world["market_officer"].user_id
    assert client.patch(f"/api/v1/org/users/{me}", json={"phone": "13900000000"}, headers=officer).status_code == 200
    return {"admin": admin, "officer": officer}


def test_anonymous_is_401(client, world) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/audit/records").status_code == 401
    assert client.post("/api/v1/audit/verify").status_code == 401


def test_admin_searches_everything_with_filters_and_paging(client, world, db) -> None:  # type: ignore[no-untyped-def]
    headers = some_activity(client, world)
    r = client.get("/api/v1/audit/records", params={"limit": 200}, headers=headers["admin"])
    assert r.status_code == 200
    records = r.json()["items"]
    seqs = [x["seq"] for x in records]
    assert seqs == sorted(seqs, reverse=True)
    with db.session() as s:
        assert len(records) == s.scalar(select(func.count()).select_from(AuditRecord))
    actions = {(x["action"], x["outcome"], x["actor_username"]) for x in records}
    assert ("auth.token", "success", "admin") in actions
    assert ("org.create_organization", "success", "admin") in actions
    assert ("org.create_organization", "failure", "market_officer") in actions
    failure = next(x for x in records if x["action"] == "org.create_organization" and x["outcome"] == "failure")
    assert failure["detail"]["error"] == "auth.forbidden"
    assert failure["via"] == "api" and failure["source_ip"]

    only_tokens = client.get(
        "/api/v1/audit/records", params={"action_prefix": "auth."}, headers=headers["admin"]
    ).json()["items"]
    assert only_tokens and {x["action"] for x in only_tokens} == {"auth.token"}
    by_user = client.get(
        "/api/v1/audit/records", params={"actor_username": "market_officer"}, headers=headers["admin"]
    ).json()["items"]
    assert by_user and {x["actor_username"] for x in by_user} == {"market_officer"}

    # Backwards paging: pages follow each other without gaps or overlaps.
    seen: list[int] = []
    params: dict[str, int] = {"limit": 2}
    for _ in range(100):
        page = client.get("/api/v1/audit/records", params=params, headers=headers["admin"]).json()
        seen += [x["seq"] for x in page["items"]]
        if page["next_before_seq"] is None:
            assert page["next_cursor"] is None
            break
        assert page["next_cursor"] == str(page["next_before_seq"])
        params = {"limit": 2, "before_seq": page["next_before_seq"]}
    # Reading the log through the API is itself not a change, so nothing was appended meanwhile.
    assert seen == seqs


def test_non_admin_sees_only_their_own_trail(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = some_activity(client, world)
    r = client.get(
        "/api/v1/audit/records", params={"actor_username": "admin", "limit": 200}, headers=headers["officer"]
    )
    assert r.status_code == 200 and r.json()["items"] == []
    mine = client.get("/api/v1/audit/records", params={"limit": 200}, headers=headers["officer"]).json()["items"]
    assert mine and {x["actor_username"] for x in mine} == {"market_officer"}


def test_verify_is_admin_only_and_ok_after_activity(client, world, db) -> None:  # type: ignore[no-untyped-def]
    headers = some_activity(client, world)
    refused = client.post("/api/v1/audit/verify", headers=headers["officer"])
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"

    with db.session() as s:
        count = s.scalar(select(func.count()).select_from(AuditRecord))
    report = client.post("/api/v1/audit/verify", headers=headers["admin"])
    assert report.status_code == 200
    body = report.json()
    assert body["ok"] is True and body["first_bad_seq"] is None
    # 2 token issues, 2 organization creations (one refused), 1 user update, 1 refused verify
    assert body["checked"] == count == 6
    # The verification is recorded too, and the chain still holds after it.
    again = client.post("/api/v1/audit/verify", headers=headers["admin"]).json()
    assert again["ok"] is True and again["checked"] == count + 1  # plus the record of the first verify


def test_bad_filters_are_named(client, world) -> None:  # type: ignore[no-untyped-def]
    headers = token_for(client, "admin")
    r = client.get("/api/v1/audit/records", params={"since": "yesterday", "before_seq": 0}, headers=headers)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"since", "before_seq"}
