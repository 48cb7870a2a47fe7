"""The answers of the workflow's changing calls (applications and objections) are built from what the step
loaded, with fewer statements: each answer must equal a fresh read of the same subject by the same user, and
the statements a step saves must stay saved (items and histories read with their rows, one insert per new
row, notifications written together)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_applications_api import apply, decisions, post

# fixtures of the two features' API tests, reused
from tests.api.test_applications_api import as_user as as_user
from tests.api.test_applications_api import entry_id as entry_id
from tests.api.test_objections_api import USCC, Users, act, create
from tests.api.test_objections_api import h as h
from tests.api.test_objections_api import settings as settings
from tests.api.test_objections_api import target as target
from tests.factories import World
from tests.statements import starting, statements
from zhengshu.core.db import Database

OBJECTIONS = "/api/v1/objections"


def same_as_fresh_read(client: TestClient, answer: Any, path: str, headers: dict[str, str]) -> dict[str, Any]:
    assert 200 <= answer.status_code < 300, answer.text
    fresh = client.get(path, headers=headers)
    assert fresh.status_code == 200, fresh.text
    assert answer.json() == fresh.json()
    return dict(answer.json())


def test_objection_answers_equal_a_fresh_read_through_the_group_life(
    client: TestClient, h: Users, target: dict[str, str], world: World
) -> None:
    def check(r: Any, who: str) -> dict[str, Any]:
        return same_as_fresh_read(client, r, f"{OBJECTIONS}/{r.json()['id']}", h[who])

    # a new group, then a member joining it while it waits, then one joining after the provider accepted
    first = check(create(client, h["hrss_officer"], target), "hrss_officer")
    assert first["group_members"] == [first["id"]] and first["flags"] == [] and first["corrections"] == []
    assert first["attachments"] == []
    second = check(create(client, h["nc_police_officer"], target), "nc_police_officer")
    assert second["group_members"] == [first["id"], second["id"]]
    accepted = check(act(client, h["market_officer"], first["id"], "accept", {"comment": "受理"}), "market_officer")
    assert accepted["state"] == "verifying" and accepted["flags"][0]["record_key"] == USCC
    # a member joining a group already accepted is moved to the group's step by the platform, in the same flush
    joined = check(create(client, h["hrss_officer"], target, description="又发现一处错误"), "hrss_officer")
    assert joined["state"] == "verifying" and [e["action"] for e in joined["timeline"]] == ["open", "accept"]
    assert joined["flags"] == accepted["flags"] and len(joined["group_members"]) == 3
    answer = {"resolution": "corrected", "corrected_value": "张三", "note": "已更正"}
    answered = check(act(client, h["market_officer"], first["id"], "answer", answer), "market_officer")
    assert answered["corrections"][0]["corrected_value"] == "张三"
    check(act(client, h["hrss_officer"], first["id"], "confirm", {"comment": "确认"}), "hrss_officer")
    disputed = check(
        act(client, h["nc_police_officer"], second["id"], "dispute", {"reason": "不一致"}), "nc_police_officer"
    )
    assert disputed["state"] == "arbitrating"
    ruling = {"decision": "dismiss", "reason": "以登记档案为准"}
    done = check(act(client, h["reviewer"], second["id"], "arbitrate", ruling), "reviewer")
    assert done["state"] == "archived"

    other = create(client, h["hrss_officer"], target, record_key="91360000MA35YYYY2B").json()["id"]
    check(act(client, h["hrss_officer"], other, "withdraw", {"comment": "误报"}), "hrss_officer")


def test_objection_with_evidence_answers_with_its_attachments(
    client: TestClient, h: Users, target: dict[str, str]
) -> None:
    pdf = b"%PDF-1.4\n%evidence\n%%EOF\n"
    files = [("attachments", ("通知书.pdf", pdf, "application/pdf"))]
    r = create(client, h["hrss_officer"], target, files=files)
    body = same_as_fresh_read(client, r, f"{OBJECTIONS}/{r.json()['id']}", h["hrss_officer"])
    assert [a["filename"] for a in body["attachments"]] == ["通知书.pdf"]
    r = act(client, h["market_officer"], body["id"], "accept")
    assert same_as_fresh_read(client, r, f"{OBJECTIONS}/{body['id']}", h["market_officer"])["attachments"]


def test_application_answers_equal_a_fresh_read(
    client: TestClient,
    as_user: Any,
    db: Database,
    entry_id: str,
) -> None:
    app = apply(client, as_user, db, entry_id, ["企业名称", "法定代表人", "联系电话"])
    path = f"/api/v1/applications/{app['id']}"
    fresh = client.get(path, headers=as_user("hrss_officer")).json()
    assert app == fresh and app["authorization_ids"] == []
    r = post(client, as_user, "reviewer", f"/applications/{app['id']}/comply", {"comment": "合规"})
    app = same_as_fresh_read(client, r, path, as_user("reviewer"))
    assert len(app["authorization_ids"]) == 1
    r = post(client, as_user, "market_officer", f"/applications/{app['id']}/request-supplement", {"reason": "补充"})
    same_as_fresh_read(client, r, path, as_user("market_officer"))
    r = post(client, as_user, "hrss_officer", f"/applications/{app['id']}/supplement", {"material": "已补充"})
    app = same_as_fresh_read(client, r, path, as_user("hrss_officer"))
    choice = {"法定代表人": "approve", "联系电话": ("refuse", "与用途无关")}
    r = post(client, as_user, "market_officer", f"/applications/{app['id']}/decide", decisions(app, choice))
    app = same_as_fresh_read(client, r, path, as_user("market_officer"))
    assert app["state"] == "decided" and len(app["authorization_ids"]) == 2
    r = post(client, as_user, "hrss_officer", f"/applications/{app['id']}/accept", {"comment": "接受"})
    assert same_as_fresh_read(client, r, path, as_user("hrss_officer"))["state"] == "closed"


def test_a_new_objection_is_written_in_one_insert_per_row(
    client: TestClient, h: Users, target: dict[str, str], db: Database
) -> None:
    headers = h["hrss_officer"]
    with statements(db) as seen:
        r = create(client, headers, target)
    assert r.status_code == 201, r.text
    assert len(starting(seen, "INSERT INTO objection ")) == 1
    assert starting(seen, "UPDATE objection ") == [], "named its ticket before the insert"
    assert len(starting(seen, "INSERT INTO ticket ")) == 1
    # the new group has no other member, flag nor correction: the answer does not ask
    assert starting(seen, "SELECT objection_correction") == []
    assert starting(seen, "SELECT objection_attachment") == []


def test_steps_read_items_and_histories_with_their_rows(
    client: TestClient,
    as_user: Any,
    db: Database,
    entry_id: str,
    h: Users,
    target: dict[str, str],
) -> None:
    app = apply(client, as_user, db, entry_id, ["企业名称", "法定代表人"])
    with statements(db) as seen:
        r = post(client, as_user, "reviewer", f"/applications/{app['id']}/comply", {"comment": "合规"})
    assert r.status_code == 200, r.text
    assert starting(seen, "SELECT data_application_item") == [], "the items come with the locked application"
    assert starting(seen, "SELECT ticket_event") == [], "the history comes with the ticket"
    # two notifications at most, one statement: notify does not flush each on its own
    assert len(starting(seen, "INSERT INTO notification ")) <= 1
    # the organizations come with the rows that name them; their regions, which no step reads, do not
    assert [s for s in seen if "JOIN region" in s or "FROM region" in s] == []

    oid = create(client, h["hrss_officer"], target).json()["id"]
    for verb, body in (("accept", None), ("answer", {"resolution": "not_error", "note": "无误"})):
        with statements(db) as seen:
            r = act(client, h["market_officer"], oid, verb, body)
        assert r.status_code == 200, r.text
        assert len(starting(seen, "SELECT objection.title")) == 1, "the group is found and locked in one query"
        assert starting(seen, "SELECT ticket_event") == []
        assert starting(seen, "SELECT objection_attachment") == []
        # the step finds the group's flag, and the answer lists the group's flags, from one read
        assert len(starting(seen, "SELECT objection_flag")) == 1, verb
        assert [s for s in seen if "JOIN region" in s or "FROM region" in s] == []
    with statements(db) as seen:
        r = act(client, h["hrss_officer"], oid, "confirm")
    assert r.status_code == 200, r.text
    assert starting(seen, "SELECT ticket_event") == [] and starting(seen, "SELECT objection_attachment") == []
    # whether the group is done, and the answer's members and flags: one read of each
    assert len(starting(seen, "SELECT objection.id")) == 1 and starting(seen, "SELECT count(*)") == []
    assert len(starting(seen, "SELECT objection_flag")) == 1
    assert r.json()["flags"][0]["closed_at"] is not None, "the last member closed: the flag is removed"


@pytest.mark.parametrize("who", ["nc_police_officer", "market_user"])
def test_a_group_step_on_an_objection_one_may_not_see_or_act_on_is_refused(
    client: TestClient, h: Users, target: dict[str, str], who: str
) -> None:
    oid = create(client, h["hrss_officer"], target).json()["id"]
    r = act(client, h[who], oid, "accept")
    assert r.status_code == (404 if who == "nc_police_officer" else 403), r.text
    assert client.get(f"{OBJECTIONS}/{oid}", headers=h["hrss_officer"]).json()["state"] == "raised"
    assert act(client, h["market_officer"], "0" * 24, "accept").status_code == 404
