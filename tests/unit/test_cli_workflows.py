"""The workflow commands end to end on a fresh SQLite data directory: an application for three items decided
two approved one refused, the authorization it grants (who can see which item, revocation), a data request
answered by linking an entry, an objection on a record raised with evidence and answered with a correction,
and refusals — the wrong user, someone who may not see the ticket, a disguised attachment — each exit 1 with
the Chinese message and the stable code, change nothing and are audited as failures."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.factories import World, build_world, published_entry
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.cli import main as cli_main
from zhengshu.cli.main import app
from zhengshu.core.config import get_settings, reset_settings
from zhengshu.core.db import Database
from zhengshu.core.events import process_pending
from zhengshu.core.timeutil import local_today

runner = CliRunner()
USCC = "91360000MA35XXXX1A"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass
class Setup:
    data_dir: Path
    db: Database
    world: World
    entry_id: str
    entry_code: str
    keys: dict[str, str]  # item name → key


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "cli-test-secret-0123456789abcdef")
    monkeypatch.delenv("ZHENGSHU_DATABASE_URL", raising=False)
    reset_settings()
    # wide enough that Rich never wraps or truncates a Chinese cell, whatever the terminal (or xdist) says
    monkeypatch.setattr(cli_main.console, "_width", 400)
    monkeypatch.setattr(cli_main.err, "_width", 400)
    run("db", "upgrade")
    db = Database(get_settings().resolved_database_url())
    world = build_world(db)
    entry_id = published_entry(db, world)
    process_pending(db.session_factory)  # what the server does after a commit: the search index among others
    with db.session() as s:
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None
        keys = {i.name: i.key for i in catalog_service.display_version(s, entry).items}
        code = entry.code
    yield Setup(tmp_path, db, world, entry_id, code, keys)
    db.dispose()
    reset_settings()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def refused(result: Result, message: str, code: str) -> None:
    assert result.exit_code == 1, result.output
    flat = "".join(result.output.split())
    assert "".join(message.split()) in flat, result.output
    assert f"（{code}）" in flat, result.output


def audit_rows(setup: Setup) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(setup.data_dir / "zhengshu.db") as conn:
        return list(
            conn.execute("SELECT action, outcome, actor_username, target_id FROM audit_record ORDER BY seq").fetchall()
        )


def apply_args(setup: Setup, *items: str) -> list[str]:
    today = local_today()
    args = ["application", "apply", setup.entry_code, "--as", "hrss_officer"]
    for item in items:
        args += ["--item", item]
    return [
        *args,
        "--purpose",
        "办理企业职工社会保险登记时核验企业身份",
        "--basis",
        "《社会保险法》第五十七条",
        "--system",
        "江西省社会保险信息系统",
        "--end",
        (today + timedelta(days=365)).isoformat(),
        "--contact-name",
        "王晓",
        "--contact-phone",
        "0791-88888888",
    ]


# ---- applications and authorizations ----------------------------------------------------------------------


def test_application_decided_item_by_item_grants_exactly_the_approved_items(setup: Setup) -> None:
    keys = setup.keys
    # items by key or by name; the entry by its resource code
    applied = run_json(*apply_args(setup, keys["统一社会信用代码"], "企业名称", "法定代表人"))
    app_id = applied["id"]
    assert applied["state"] == "compliance" and applied["entry_id"] == setup.entry_id
    assert [i["item_key"] for i in applied["items"]] == [keys["统一社会信用代码"], keys["企业名称"], keys["法定代表人"]]

    # the provider sees it in its list, with the compliance step's due date
    listed = run_json("application", "list", "--as", "market_officer", "--box", "provider")
    assert [r["id"] for r in listed] == [app_id] and listed[0]["due_on"]
    table = run("application", "list", "--as", "market_officer")
    assert app_id in table and "待合规审查" in table and listed[0]["due_on"] in table

    complied = run_json("application", "comply", app_id, "--as", "reviewer")
    assert complied["state"] == "provider_review"

    # the consumer may see the application but not decide it: refused, audited, nothing changed
    refused(
        invoke("application", "decide", app_id, "--as", "hrss_officer", "--approve-rest"),
        "您无权审核其他部门目录的共享申请",
        "auth.forbidden",
    )
    assert run_json("application", "show", app_id, "--as", "hrss_officer")["state"] == "provider_review"
    assert ("application.decide", "failure", "hrss_officer", app_id) in audit_rows(setup)
    # a department that is no party sees nothing at all
    refused(
        invoke("application", "show", app_id, "--as", "nc_police_officer"), "未找到该共享申请", "application.not_found"
    )
    # a refusal needs its reason: the service says so, per item
    refused(
        invoke("application", "decide", app_id, "--as", "market_officer", "--approve-rest", "--refuse", "法定代表人"),
        "不同意「法定代表人」时必须说明理由",
        "application.invalid",
    )

    decided = run_json(
        "application",
        "decide",
        app_id,
        "--as",
        "market_officer",
        "--approve",
        "统一社会信用代码",
        "--approve",
        keys["企业名称"],
        "--refuse",
        "法定代表人=涉及个人信息，社会保险登记无需使用",
    )
    assert {i["name"]: i["status"] for i in decided["items"]} == {
        "统一社会信用代码": "approved",
        "企业名称": "approved",
        "法定代表人": "refused",
    }
    assert decided["state"] == "decided" and decided["outcome"] == "partial"
    assert (
        decided["appeal_until"]
        and "appeal" in run_json("application", "show", app_id, "--as", "hrss_officer")["actions"]
    )

    # one authorization, for exactly the approved items
    auths = run_json("authorization", "list", "--as", "hrss_officer")
    assert len(auths) == 1 and decided["authorization_ids"] == [auths[0]["id"]]
    auth_id = auths[0]["id"]
    assert auths[0]["status"] == "active" and auths[0]["item_count"] == 2
    assert auths[0]["consumer_name"] == "江西省人力资源和社会保障厅"
    shown = run_json("authorization", "show", auth_id, "--as", "hrss_officer")
    assert {i["item_key"] for i in shown["items"]} == {keys["统一社会信用代码"], keys["企业名称"]}
    assert "江西省社会保险信息系统" in run("authorization", "list", "--as", "hrss_officer")

    # who can see: the consumer for an approved item, nobody for the refused one
    who = run_json("authorization", "who-can-see", setup.entry_id, "企业名称", "--as", "market_officer")
    assert [(r["consumer_name"], r["consumer_system"]) for r in who] == [
        ("江西省人力资源和社会保障厅", "江西省社会保险信息系统")
    ]
    assert run_json("authorization", "who-can-see", setup.entry_id, keys["法定代表人"], "--as", "market_officer") == []
    assert "江西省人力资源和社会保障厅" in run(
        "authorization", "who-can-see", setup.entry_code, "企业名称", "--as", "reviewer"
    )
    # the consumer may not ask who else uses the provider's data, nor revoke its own authorization
    refused(
        invoke("authorization", "who-can-see", setup.entry_id, "企业名称", "--as", "hrss_officer"),
        "您无权查询该目录信息项的授权使用方",
        "auth.forbidden",
    )
    refused(
        invoke("authorization", "revoke", auth_id, "--as", "hrss_officer", "--reason", "不再需要"),
        "您无权暂停、续期或撤销该共享授权",
        "auth.forbidden",
    )

    revoked = run_json("authorization", "revoke", auth_id, "--as", "market_officer", "--reason", "业务系统停用")
    assert revoked["status"] == "revoked"
    assert run_json("authorization", "who-can-see", setup.entry_id, "企业名称", "--as", "market_officer") == []
    assert "当前没有部门获得授权" in run("authorization", "who-can-see", setup.entry_id, "企业名称", "--as", "reviewer")
    assert [a["status"] for a in run_json("authorization", "list", "--as", "hrss_officer", "--status", "revoked")] == [
        "revoked"
    ]

    # every change left one audit record, by the user named with --as, and the chain is intact
    rows = audit_rows(setup)
    successes = [(action, who, target) for action, outcome, who, target in rows if outcome == "success"]
    assert ("application.apply", "hrss_officer", app_id) in successes
    assert ("application.comply", "reviewer", app_id) in successes
    assert ("application.decide", "market_officer", app_id) in successes
    assert ("authorization.revoke", "market_officer", auth_id) in successes
    assert [a for a, *_ in successes].count("application.decide") == 1
    assert '"ok": true' in run("audit", "verify", "--json")


def test_application_decisions_from_a_file_and_the_apply_options(setup: Setup, tmp_path: Path) -> None:
    options = run_json("application", "options", setup.entry_id, "--as", "hrss_officer")
    assert {o["name"]: o["key"] for o in options["items"]} == setup.keys
    assert "法定代表人" in run("application", "options", setup.entry_code, "--as", "hrss_officer")

    app_id = run_json(*apply_args(setup, "企业名称", "法定代表人"))["id"]
    # applying again for an item still being handled is refused and creates nothing
    refused(invoke(*apply_args(setup, "企业名称")), "已在本部门办理中的申请中", "application.invalid")
    assert len(run_json("application", "list", "--as", "hrss_officer")) == 1

    run("application", "comply", app_id, "--as", "reviewer")
    decisions = tmp_path / "decisions.json"
    decisions.write_text(
        json.dumps(
            {
                "items": [
                    {"item_key": "企业名称", "decision": "approve"},
                    {"item_key": setup.keys["法定代表人"], "decision": "approve", "masking_rule": "name_first"},
                ],
                "comment": "同意",
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    mixed = invoke(
        "application", "decide", app_id, "--as", "market_officer", "--file", str(decisions), "--approve-rest"
    )
    assert mixed.exit_code == 2
    decided = run_json("application", "decide", app_id, "--as", "market_officer", "--file", str(decisions))
    assert decided["state"] == "approved" and decided["outcome"] == "all"
    assert {i["name"]: i["masking_rule"] for i in decided["items"]}["法定代表人"] == "name_first"
    shown = run_json("authorization", "show", decided["authorization_ids"][0], "--as", "market_officer")
    assert {i["name"]: i["masking_rule"] for i in shown["items"]} == {"企业名称": "none", "法定代表人": "name_first"}


# ---- data requests ----------------------------------------------------------------------------------------


def test_data_request_answered_by_linking_an_entry(setup: Setup) -> None:
    # the platform suggests the provider from the published catalog
    suggested = run_json("request", "suggest", "企业登记信息", "--as", "hrss_officer")
    assert [s["org_name"] for s in suggested][:1] == ["江西省市场监督管理局"]
    assert suggested[0]["entries"][0]["id"] == setup.entry_id
    assert "江西省市场监督管理局" in run("request", "suggest", "企业登记信息", "--as", "hrss_officer")
    created = run_json(
        "request",
        "create",
        "--as",
        "hrss_officer",
        "--title",
        "企业登记信息",
        "--description",
        "核验参保企业的登记状态",
        "--items",
        "统一社会信用代码、企业名称",
        "--purpose",
        "社会保险登记",
        "--basis",
        "《社会保险法》第五十七条",
        "--system",
        "江西省社会保险信息系统",
        "--provider",
        "省市场监管局",
    )
    req_id = created["id"]
    assert created["state"] == "submitted" and created["provider_name"] == "江西省市场监督管理局"
    assert created["due_on"]
    assert req_id in run("request", "list", "--as", "market_officer", "--box", "todo")

    # only the provider answers
    refused(
        invoke("request", "link-entry", req_id, setup.entry_id, "--as", "hrss_officer"),
        "您无权答复该数据需求（不是本部门承办）",
        "auth.forbidden",
    )
    linked = run_json("request", "link-entry", req_id, setup.entry_code, "--as", "market_officer")
    assert linked["state"] == "fulfilled" and linked["entry_id"] == setup.entry_id and linked["answer"] == "linked"

    shown = run_json("request", "show", req_id, "--as", "hrss_officer")
    assert [i["stage"] for i in shown["timeline"]].count("need") >= 2
    assert any("答复：已有目录" in i["title"] for i in shown["timeline"])
    assert "已对接目录" in run("request", "show", req_id, "--as", "hrss_officer")
    assert ("data_request.link_entry", "success", "market_officer", req_id) in audit_rows(setup)


# ---- objections -------------------------------------------------------------------------------------------


def test_objection_on_a_record_with_evidence_answered_with_a_correction(setup: Setup) -> None:
    with setup.db.session() as s:
        resource = MountedResource(
            entry_id=setup.entry_id,
            kind="api",
            api_endpoint="https://qy.example.gov.cn/api",
            created_by="market_officer",
        )
        s.add(resource)
        s.flush()
        resource_id = resource.id
    evidence = setup.data_dir / "变更登记通知书.pdf"
    evidence.write_bytes(PDF)
    disguised = setup.data_dir / "证明.pdf"
    disguised.write_bytes(b"MZ\x90\x00" + b"\x00" * 64)
    record = ["--resource", resource_id, "--record", USCC, "--item", "法定代表人"]
    common = ["--kind", "wrong", "--claimed", "张三", "--description", "法定代表人已于 2026 年 8 月变更"]

    # a disguised attachment is refused and nothing is raised or stored
    refused(
        invoke(
            "objection", "raise", setup.entry_id, "--as", "hrss_officer", *record, *common, "--attach", str(disguised)
        ),
        "可能是伪装的文件",
        "objection.attachment_type",
    )
    assert run_json("objection", "list", "--as", "hrss_officer") == []
    assert not (setup.data_dir / "attachments").exists() or not any((setup.data_dir / "attachments").rglob("*.*"))

    raised = run_json(
        "objection", "raise", setup.entry_code, "--as", "hrss_officer", *record, *common, "--attach", str(evidence)
    )
    obj_id = raised["id"]
    assert raised["state"] == "raised" and raised["target_type"] == "record" and raised["record_key"] == USCC
    assert raised["item_key"] == setup.keys["法定代表人"]
    assert [(a["filename"], a["file_type"], a["size"]) for a in raised["attachments"]] == [
        ("变更登记通知书.pdf", "pdf", len(PDF))
    ]
    stored = list((setup.data_dir / "attachments" / obj_id).iterdir())
    assert [p.read_bytes() for p in stored] == [PDF]
    assert obj_id in run("objection", "list", "--as", "market_officer", "--box", "todo")

    # the objector cannot answer its own objection
    refused(
        invoke("objection", "answer", obj_id, "--as", "hrss_officer", "--corrected", "张三"),
        "您无权答复该数据异议",
        "auth.forbidden",
    )
    assert run_json("objection", "accept", obj_id, "--as", "market_officer")["state"] == "verifying"
    usage = invoke("objection", "answer", obj_id, "--as", "market_officer", "--corrected", "张三", "--not-error")
    assert usage.exit_code == 2
    answered = run_json(
        "objection",
        "answer",
        obj_id,
        "--as",
        "market_officer",
        "--corrected",
        "张三",
        "--old-value",
        "李四",
        "--note",
        "经核实已于 8 月变更登记",
    )
    assert answered["state"] == "answered" and answered["resolution"] == "corrected"
    [correction] = answered["corrections"]
    assert correction["record_key"] == USCC and correction["item_key"] == setup.keys["法定代表人"]
    assert (correction["old_value"], correction["corrected_value"]) == ("李四", "张三")
    assert correction["corrected_by"] == "market_officer" and correction["effective_from"] == local_today().isoformat()

    text = run("objection", "show", obj_id, "--as", "hrss_officer")
    assert "已更正" in text and "变更登记通知书.pdf" in text and "张三" in text
    assert run_json("objection", "confirm", obj_id, "--as", "hrss_officer")["state"] == "archived"
    actions = [(a, o) for a, o, _, t in audit_rows(setup) if t == obj_id]
    assert ("objection.raise", "success") in actions and ("objection.answer", "success") in actions
    assert ("objection.answer", "failure") in actions


# ---- scheduled work and usage -----------------------------------------------------------------------------


def test_scheduled_commands_run_as_the_system_and_report_counts(setup: Setup) -> None:
    app_id = run_json(*apply_args(setup, "企业名称"))["id"]
    run("application", "comply", app_id, "--as", "reviewer")
    due = run_json("application", "show", app_id, "--as", "reviewer")["due_on"]
    # before the due date nothing moves; well after it the review goes to the data authority
    assert run_json("application", "escalate-overdue", "--today", due) == {"escalated": 0}
    later = (local_today() + timedelta(days=60)).isoformat()
    assert run_json("application", "escalate-overdue", "--today", later) == {"escalated": 1}
    assert run_json("application", "show", app_id, "--as", "reviewer")["state"] == "coordination"
    coordinated = run_json("application", "coordinate", app_id, "--as", "reviewer", "--approve-rest")
    assert coordinated["state"] == "approved"
    assert run_json("request", "escalate-overdue", "--today", later) == {"escalated": 0}
    assert run_json("objection", "escalate-overdue", "--today", later) == {"escalated": 0}
    assert run_json("authorization", "expire-due", "--today", later) == {"expired": 0}
    rows = audit_rows(setup)
    assert ("application.escalate_overdue", "success", "cli", "") in rows
    # an unknown user is an error, not a silent system action
    refused(invoke("application", "list", "--as", "nobody"), "未找到用户 nobody", "org.user_not_found")
