"""To-do list, overdue report, ticket timelines and declared machines through the HTTP API."""

from __future__ import annotations

import datetime as dt

from tests.factories import entry_in, token_for
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.workflows import REVIEW
from zhengshu.core import clock
from zhengshu.workflow import service as workflow


def submitted_entry(db, world) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A catalog entry submitted for review; returns (entry id, review ticket id)."""
    with db.session() as s:
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in())
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry.id)
        ticket = workflow.open_for_subject(s, kind=REVIEW, subject_type="catalog_entry", subject_id=entry.id)
        assert ticket is not None
        return entry.id, ticket.id


def overdue_ticket(db, world, org_key: str) -> str:  # type: ignore[no-untyped-def]
    """A review ticket opened long ago at ``org_key``, whose due date has passed."""
    with db.session() as s:
        ticket = workflow.open_ticket(
            s,
            actor=world["market_officer"],
            kind=REVIEW,
            title=f"逾期测试 {org_key}",
            subject_type="catalog_entry",
            subject_id=f"old-{org_key}",
            assignee_org_id=world.orgs[org_key],
            requester_org_id=world.orgs["market"],
            state="submitted",
            today=dt.date(2025, 3, 3),
        )
        return ticket.id


def test_anonymous_is_401(client, world) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/workflow/todo", "/api/v1/workflow/overdue", "/api/v1/workflow/machines"):
        assert client.get(path).status_code == 401


def test_todo_lists_the_handlers_tickets(client, world, db) -> None:  # type: ignore[no-untyped-def]
    entry_id, ticket_id = submitted_entry(db, world)
    reviewer = token_for(client, "reviewer")
    r = client.get("/api/v1/workflow/todo", params={"count": "true"}, headers=reviewer)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 1 and [t["id"] for t in page["items"]] == [ticket_id]
    t = page["items"][0]
    assert t["kind"] == REVIEW and t["kind_label"] == "目录审核"
    assert t["state"] == "submitted" and t["state_label"] == "待审核"
    assert t["assignee_org_id"] == world.orgs["authority"]
    assert t["subject_id"] == entry_id and t["link"] == f"/catalog/{entry_id}"
    expected_due = clock.add_working_days(dt.date.fromisoformat(t["state_entered_on"]), 5)
    assert t["due_on"] == expected_due.isoformat() and t["sla_days"] == 5 and t["overdue"] is False

    # The submitter's organization does not review, and a city reviewer is not the assignee.
    for username in ("market_officer", "nc_reviewer"):
        assert client.get("/api/v1/workflow/todo", headers=token_for(client, username)).json()["items"] == []


def test_ticket_detail_with_events_and_visibility(client, world, db) -> None:  # type: ignore[no-untyped-def]
    _entry_id, ticket_id = submitted_entry(db, world)
    for username in ("reviewer", "market_officer", "admin"):
        r = client.get(f"/api/v1/workflow/tickets/{ticket_id}", headers=token_for(client, username))
        assert r.status_code == 200, username
    detail = r.json()
    actions = [e["action"] for e in detail["events"]]
    assert actions[-1] == "submit" and "open" in actions
    submit = detail["events"][-1]
    assert submit["action_label"] == "提交审核" and submit["to_state"] == "submitted"
    assert submit["actor_name"] == "市场监管数据专员" and submit["actor_org_name"] == "江西省市场监督管理局"

    r = client.get(f"/api/v1/workflow/tickets/{ticket_id}", headers=token_for(client, "hrss_officer"))
    assert r.status_code == 404 and r.json()["code"] == "workflow.ticket_not_found"
    assert client.get("/api/v1/workflow/tickets/nope", headers=token_for(client, "admin")).status_code == 404


def test_overdue_admins_see_all_others_their_org(client, world, db) -> None:  # type: ignore[no-untyped-def]
    provincial = overdue_ticket(db, world, "authority")
    city = overdue_ticket(db, world, "nc_authority")
    submitted_entry(db, world)  # open but not overdue

    admin = client.get("/api/v1/workflow/overdue", params={"count": "true"}, headers=token_for(client, "admin"))
    assert admin.status_code == 200
    assert admin.json()["total"] == 2
    assert {t["id"] for t in admin.json()["items"]} == {provincial, city}
    assert all(t["overdue"] for t in admin.json()["items"])

    reviewer = client.get("/api/v1/workflow/overdue", headers=token_for(client, "reviewer")).json()
    assert [t["id"] for t in reviewer["items"]] == [provincial]
    nc = client.get("/api/v1/workflow/overdue", headers=token_for(client, "nc_reviewer")).json()
    assert [t["id"] for t in nc["items"]] == [city]
    assert client.get("/api/v1/workflow/overdue", headers=token_for(client, "hrss_officer")).json()["items"] == []

    first = client.get("/api/v1/workflow/overdue", params={"limit": 1}, headers=token_for(client, "admin")).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = client.get(
        "/api/v1/workflow/overdue",
        params={"limit": 1, "cursor": first["next_cursor"]},
        headers=token_for(client, "admin"),
    ).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {provincial, city}


def test_machines_document_states_and_transitions(client, world) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/workflow/machines", headers=token_for(client, "market_user"))
    assert r.status_code == 200
    machines = {m["kind"]: m for m in r.json()["items"]}
    review = machines[REVIEW]
    assert review["label"] == "目录审核" and review["initial"] == "draft"
    states = {s["name"]: s for s in review["states"]}
    assert states["submitted"]["handler_roles"] == ["reviewer"] and states["submitted"]["sla_days"] == 5
    assert states["published"]["final"] is True
    transitions = {t["name"]: t for t in review["transitions"]}
    assert transitions["approve"] == {
        "name": "approve",
        "label": "审核通过并发布",
        "sources": ["submitted"],
        "target": "published",
    }
    assert set(transitions["submit"]["sources"]) == {"draft", "returned"}
