"""The ferry across two processes: this test is the internal node; the external node is another process with its
own data directory, database and keys, driven only through ``zhengshu ferry …`` commands. Keys are exchanged as
files and trusted by fingerprint; a bundle exported here is imported there; a replay and a modified bundle are
refused and quarantined; the ledger on the other side lists all three."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.factories import World
from zhengshu.core.config import Settings
from zhengshu.core.db import Base, Database
from zhengshu.exchange.files import ferry, nodekeys
from zhengshu.exchange.files.schemas import ExportIn
from zhengshu.exchange.files.service import IncomingFile
from zhengshu.security.actor import SYSTEM_ACTOR

CSV = "统一社会信用代码,企业名称\n91360000MA35XXXX1A,江西某某有限公司\n".encode()


class ExternalNode:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        url = f"sqlite:///{root / 'zhengshu.db'}"
        db = Database(url)
        Base.metadata.create_all(db.engine)  # migrations for these tables come with the lead's revision
        db.dispose()
        self.env = {
            **os.environ,
            "ZHENGSHU_DATA_DIR": str(root),
            "ZHENGSHU_DATABASE_URL": url,
            "ZHENGSHU_SECRET_KEY": "external-node-secret-0123456789",
            "ZHENGSHU_NODE_CODE": "360000W",
            "ZHENGSHU_NODE_NAME": "互联网区节点",
        }

    def run(self, *args: str, expect: int = 0) -> Any:
        proc = subprocess.run(
            [sys.executable, "-c", "from zhengshu.cli.main import main; main()", "ferry", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == expect, proc.stdout + proc.stderr
        return json.loads(proc.stdout) if "--json" in args else proc.stdout

    @property
    def inbox(self) -> Path:
        path = self.root / "ferry" / "inbox"
        path.mkdir(parents=True, exist_ok=True)
        return path


def test_bundle_exported_here_is_imported_by_another_process(
    db: Database, settings: Settings, world: World, tmp_path: Path
) -> None:
    external = ExternalNode(tmp_path / "external")
    theirs = external.run("keys", "init", "--json")
    external.run("keys", "export", "--out", str(tmp_path / "external.key.json"))
    with db.session() as s:
        document = json.loads((tmp_path / "external.key.json").read_text(encoding="utf-8"))
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=document, expected_key_id=theirs["key_id"][:16])
        ours = nodekeys.ensure_local_key(
            s, actor=SYSTEM_ACTOR, node_code="360000", node_name="政务外网节点", sig_alg="ed25519", settings=settings
        )
        (tmp_path / "internal.key.json").write_text(
            json.dumps({**nodekeys.public_document(ours), "key_id": ours.key_id}), encoding="utf-8"
        )
        our_fingerprint = ours.key_id[:20]
    # a wrong fingerprint read over the phone: refused, nothing trusted
    external.run("keys", "trust", str(tmp_path / "internal.key.json"), "--fingerprint", "0" * 16, expect=1)
    external.run("keys", "trust", str(tmp_path / "internal.key.json"), "--fingerprint", our_fingerprint)

    with db.session() as s:
        export = ferry.request_export(
            s,
            actor=world["market_officer"],
            export_in=ExportIn(title="企业名录", classification="非涉密", target_node="360000W"),
            files=[IncomingFile("企业名录.csv", io.BytesIO(CSV))],
            settings=settings,
        )
        export_id = export.id
    with db.session() as s:
        export = ferry.decide(s, actor=world["reviewer"], export_id=export_id, approve=True, settings=settings)
        bundle = Path(export.bundle_path or "")
        bundle_id = export.bundle_id

    # a copy modified on the way arrives first (sorted before the genuine one); then the genuine bundle
    modified = external.inbox / "0-modified"
    shutil.copytree(bundle, modified)
    payload = bytearray((modified / "payload.bin").read_bytes())
    payload[-1] ^= 0xFF
    (modified / "payload.bin").write_bytes(bytes(payload))
    shutil.copytree(bundle, external.inbox / bundle.name)
    first = external.run("import", "--json", expect=1)
    assert (first["imported"], first["refused"]) == (1, 1), first
    assert [(r["name"], r["accepted"], r["code"]) for r in first["results"]] == [
        ("0-modified", False, "ferry.payload_tampered"),
        (bundle.name, True, ""),
    ]
    received = external.root / "ferry" / "received" / str(bundle_id)
    assert (received / "企业名录.csv").read_bytes() == CSV
    assert not (external.inbox / bundle.name).exists()

    shutil.copytree(bundle, external.inbox / "replayed")
    second = external.run("import", "--json", expect=1)
    assert [(r["name"], r["code"]) for r in second["results"]] == [("replayed", "ferry.replayed")]
    quarantined = sorted(p.name.rsplit("-", 1)[0] for p in (external.root / "ferry" / "quarantine").iterdir())
    assert quarantined == ["0-modified", "replayed"]
    assert (
        json.loads((next((external.root / "ferry" / "quarantine").glob("replayed-*")) / "reason.json").read_text())[
            "code"
        ]
        == "ferry.replayed"
    )
    ledger = external.run("list", "--json")
    assert sorted(r["outcome"] for r in ledger) == ["imported", "refused", "refused"]
    assert {r["bundle_id"] for r in ledger} == {bundle_id}
