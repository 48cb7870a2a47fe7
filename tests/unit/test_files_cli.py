"""``zhengshu files …`` and ``zhengshu ferry …`` on a fresh SQLite data directory: send, inbox, a resumed download
checked against the signed manifest and signed for, a receipt saved and verified by the sender (a forged one
refused), refusals with exit code 1 and the stable code, the ferry request → approve → ledger → export again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.factories import World, build_world
from zhengshu.cli import main as cli_main
from zhengshu.cli.main import app
from zhengshu.core.config import get_settings, reset_settings
from zhengshu.core.db import Base, Database
from zhengshu.exchange.files import nodekeys
from zhengshu.security.actor import SYSTEM_ACTOR

runner = CliRunner()
CSV = ("统一社会信用代码,企业名称\n" + "91360000MA35XXXX1A,江西某某有限公司\n" * 5000).encode()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "cli-test-secret-0123456789abcdef")
    monkeypatch.delenv("ZHENGSHU_DATABASE_URL", raising=False)
    reset_settings()
    monkeypatch.setattr(cli_main.console, "_width", 400)
    monkeypatch.setattr(cli_main.err, "_width", 400)
    db = Database(get_settings().resolved_database_url())
    Base.metadata.create_all(db.engine)  # the lead's migration will carry these tables
    world = build_world(db)
    yield world
    db.dispose()
    reset_settings()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json"))


def test_send_download_resume_and_receipt(world: World, tmp_path: Path) -> None:
    source = tmp_path / "企业名单.csv"
    source.write_bytes(CSV)
    sent = run_json("files", "send", str(source), "--as", "market_officer", "--to", "省人社厅", "--title", "企业名单")
    package_id = sent["id"]
    assert sent["recipients"][0]["org_name"] == "江西省人力资源和社会保障厅"
    assert [p["id"] for p in run_json("files", "inbox", "--as", "hrss_officer")] == [package_id]
    assert run_json("files", "inbox", "--as", "nc_police_officer") == []
    assert "企业名单" in run("files", "outbox", "--as", "market_officer")

    # an interrupted download left half of the file behind: the next run continues it
    out = tmp_path / "out"
    out.mkdir()
    (out / "企业名单.csv.part").write_bytes(CSV[: len(CSV) // 2])
    got = run_json("files", "download", package_id, "--as", "hrss_officer", "--out", str(out))
    assert (out / "企业名单.csv").read_bytes() == CSV and not (out / "企业名单.csv.part").exists()
    assert got["receipt"]["verified"] and got["receipt"]["complete"]
    shown = run_json("files", "show", package_id, "--as", "market_officer")
    assert shown["recipients"][0]["received_at"] is not None and len(shown["receipts"]) == 1

    saved = tmp_path / "receipt.json"
    run("files", "receipt", package_id, "--as", "hrss_officer", "--save", str(saved))
    assert "回执有效" in run("files", "verify-receipt", package_id, str(saved), "--as", "market_officer")
    forged = json.loads(saved.read_text(encoding="utf-8"))
    forged["document"] = forged["document"].replace("hrss_officer", "intruder")
    saved.write_text(json.dumps(forged, ensure_ascii=False), encoding="utf-8")
    refused = run("files", "verify-receipt", package_id, str(saved), "--as", "market_officer", code=1)
    assert "files.bad_receipt" in refused

    assert "auth.forbidden" in run("files", "withdraw", package_id, "--as", "hrss_officer", "--reason", "x", code=1)
    assert "已撤回" in run("files", "withdraw", package_id, "--as", "market_officer", "--reason", "误发")
    assert run_json("files", "purge-expired") == {"purged": 0}


def test_bad_file_is_refused_with_its_code(world: World, tmp_path: Path) -> None:
    fake = tmp_path / "报告.pdf"
    fake.write_bytes(b"MZ\x90\x00" + b"\x00" * 100)
    output = run("files", "send", str(fake), "--as", "market_officer", "--to", "省人社厅", "--title", "x", code=1)
    assert "file.disguised" in output and "伪装" in output
    assert run_json("files", "outbox", "--as", "market_officer") == []


def test_ferry_request_approve_ledger_and_export_again(world: World, tmp_path: Path) -> None:
    key = run_json("ferry", "keys", "init")
    assert key["is_local"] and key["sig_alg"] == "ed25519"
    db = Database(get_settings().resolved_database_url())
    with db.session() as s:
        peer = nodekeys.create_local_key(
            s, actor=SYSTEM_ACTOR, node_code="360000W", node_name="互联网区", settings=get_settings()
        )
        document = nodekeys.public_document(peer)
        s.delete(peer)
        s.flush()
        # the retired first key becomes this node's key again (create_local_key retired it)
        [own] = [k for k in nodekeys.list_keys(s) if k.is_local]
        own.status = "active"
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=document)
    db.dispose()
    keys = run_json("ferry", "keys", "list")
    assert sorted((k["node_code"], k["is_local"]) for k in keys) == [("360000", True), ("360000W", False)]
    source = tmp_path / "企业名录.csv"
    source.write_bytes(CSV)
    classified = run(
        "ferry", "request", str(source), "--as", "market_officer", "--title", "x", "--to", "360000W",
        "--classification", "秘密", code=1,
    )  # fmt: skip
    assert "ferry.classified" in classified
    export = run_json(
        "ferry", "request", str(source), "--as", "market_officer", "--title", "企业名录", "--to", "360000W"
    )
    assert export["state"] == "submitted"
    assert "auth.forbidden" in run("ferry", "approve", export["id"], "--as", "market_officer", code=1)
    approved = run_json("ferry", "approve", export["id"], "--as", "reviewer", "--comment", "同意")
    assert approved["state"] == "approved" and Path(approved["bundle_path"]).is_dir()
    again = run_json("ferry", "export", export["id"])
    assert again["bundle_id"] == approved["bundle_id"]
    ledger = run_json("ferry", "list")
    assert [(r["direction"], r["outcome"]) for r in ledger] == [("export", "exported")] * 2
    assert "导出" in run("ferry", "list")
    other = run_json("ferry", "request", str(source), "--as", "market_officer", "--title", "第二批", "--to", "360000W")
    assert "已不予批准" in run("ferry", "refuse", other["id"], "--as", "reviewer", "--reason", "含个人信息")
