"""File exchange and ferry over HTTP: multipart send, inbox/outbox, resumable downloads with Range (206, 416,
multi-range), digests in headers, signed receipts verified by the sender, refusals as problem+json, ferry
export approval and the ledger."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import World, token_for
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.exchange.files import nodekeys
from zhengshu.exchange.files import service as files_service
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.security.crypto import sm3_hex

CSV = ("统一社会信用代码,企业名称\n" + "91360000MA35XXXX1A,江西某某有限公司\n" * 2000).encode()
BASE = "/api/v1/exchange/packages"


def _send(client: TestClient, world: World, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    files = extra.pop("files", [("files", ("企业名单.csv", CSV, "text/csv"))])
    response = client.post(
        BASE,
        headers=headers,
        data={"title": "企业登记数据", "recipient_org_ids": [world.orgs["hrss"]], "expires_days": "7", **extra},
        files=files,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_send_list_and_resumable_download(client: TestClient, world: World) -> None:
    sender = token_for(client, "market_officer")
    recipient = token_for(client, "hrss_officer")
    outsider = token_for(client, "nc_police_officer")
    package = _send(client, world, sender)
    assert package["file_count"] == 1 and package["files"][0]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert package["actions"] == ["download", "withdraw"]
    inbox = client.get(BASE, params={"box": "received", "count": "true"}, headers=recipient).json()
    assert inbox["total"] == 1 and inbox["items"][0]["sender_org_name"] == "江西省市场监督管理局"
    assert client.get(BASE, headers=outsider).json()["items"] == []
    assert client.get(f"{BASE}/{package['id']}", headers=outsider).status_code == 404

    url = package["files"][0]["download_url"]
    full = client.get(url, headers=recipient)
    assert full.status_code == 200 and full.content == CSV
    assert full.headers["x-content-sm3"] == sm3_hex(CSV)
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["repr-digest"].startswith("sha-256=:")
    # a resumed download: the first part, then the rest
    half = len(CSV) // 2
    first = client.get(url, headers={**recipient, "Range": f"bytes=0-{half - 1}"})
    rest = client.get(url, headers={**recipient, "Range": f"bytes={half}-"})
    assert first.status_code == rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {half}-{len(CSV) - 1}/{len(CSV)}"
    assert first.content + rest.content == CSV
    bad = client.get(url, headers={**recipient, "Range": f"bytes={len(CSV) + 10}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(CSV)}"
    multi = client.get(url, headers={**recipient, "Range": "bytes=0-1,10-11"})
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")
    detail = client.get(f"{BASE}/{package['id']}", headers=sender).json()
    # the whole download and the resumed one's first request count; continuations do not
    assert detail["recipients"][0]["download_count"] == 3
    assert client.get(url, headers=outsider).status_code == 404


def test_manifest_and_receipt_verified_by_the_sender(client: TestClient, world: World) -> None:
    sender = token_for(client, "market_officer")
    recipient = token_for(client, "hrss_officer")
    package = _send(client, world, sender)
    manifest = client.get(f"{BASE}/{package['id']}/manifest", headers=recipient).json()
    assert json.loads(manifest["canonical"]) == manifest["manifest"]
    assert manifest["signature"]["alg"] == "ed25519"
    body = {"files": [{"name": "企业名单.csv", "sha256": hashlib.sha256(CSV).hexdigest(), "sm3": sm3_hex(CSV)}]}
    assert client.post(f"{BASE}/{package['id']}/receipt", json=body, headers=sender).status_code == 403
    receipt = client.post(f"{BASE}/{package['id']}/receipt", json=body, headers=recipient)
    assert receipt.status_code == 201, receipt.text
    assert receipt.json()["verified"] and receipt.json()["complete"]
    signed = client.get(f"{BASE}/{package['id']}/receipts/{receipt.json()['id']}", headers=sender).json()
    checked = client.post(f"{BASE}/{package['id']}/receipts/verify", json=signed, headers=sender)
    assert checked.status_code == 200 and checked.json()["valid"]
    forged = {**signed, "document": signed["document"].replace("hrss_officer", "someone")}
    refused = client.post(f"{BASE}/{package['id']}/receipts/verify", json=forged, headers=sender)
    assert refused.status_code == 409 and refused.json()["code"] == "files.bad_receipt"
    detail = client.get(f"{BASE}/{package['id']}", headers=sender).json()
    assert detail["recipients"][0]["received_at"] is not None
    assert [r["verified"] for r in detail["receipts"]] == [True]


def test_refusals_are_problem_json(client: TestClient, world: World, db: Database, settings: Settings) -> None:
    sender = token_for(client, "market_officer")
    recipient = token_for(client, "hrss_officer")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.csv", b"0" * (20 * 1024 * 1024))
    bomb = client.post(
        BASE,
        headers=sender,
        data={"title": "x", "recipient_org_ids": [world.orgs["hrss"]]},
        files=[("files", ("data.zip", buf.getvalue(), "application/zip"))],
    )
    assert bomb.status_code == 422 and bomb.json()["code"] == "file.archive"
    assert "压缩炸弹" in bomb.json()["detail"]
    disguised = client.post(
        BASE,
        headers=sender,
        data={"title": "x", "recipient_org_ids": [world.orgs["hrss"]]},
        files=[("files", ("a.pdf", b"MZ\x90\x00" * 10, "application/pdf"))],
    )
    assert disguised.status_code == 422 and disguised.json()["code"] == "file.disguised"
    missing = client.post(BASE, headers=sender, data={"title": "", "recipient_org_ids": []}, files=[])
    assert missing.status_code == 422
    package = _send(client, world, sender)
    stored = files_service.package_dir(package["id"], settings) / "001.csv"
    stored.write_bytes(CSV[:-1] + b"X")
    tampered = client.get(package["files"][0]["download_url"], headers=recipient)
    assert tampered.status_code == 409 and tampered.json()["code"] == "files.file_tampered"
    withdrawn = client.post(f"{BASE}/{package['id']}/withdraw", json={"reason": "误发"}, headers=sender)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"


def test_ferry_export_over_http(client: TestClient, world: World, db: Database, settings: Settings) -> None:
    with db.session() as s:
        peer = nodekeys.create_local_key(
            s, actor=SYSTEM_ACTOR, node_code="360000W", node_name="互联网区", settings=settings
        )
        document = nodekeys.public_document(peer)
        s.delete(peer)  # only its public half stays, as a trusted peer
        s.flush()
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=document)
    officer = token_for(client, "market_officer")
    reviewer = token_for(client, "reviewer")
    created = client.post(
        "/api/v1/exchange/ferry/exports",
        headers=officer,
        data={"title": "企业名录", "classification": "非涉密", "target_node": "360000W"},
        files=[("files", ("企业名录.csv", CSV, "text/csv"))],
    )
    assert created.status_code == 201, created.text
    export = created.json()
    assert export["state"] == "submitted" and "stored_name" not in export["files"][0]
    classified = client.post(
        "/api/v1/exchange/ferry/exports",
        headers=officer,
        data={"title": "x", "classification": "机密", "target_node": "360000W"},
        files=[("files", ("a.csv", CSV, "text/csv"))],
    )
    assert classified.json()["code"] == "ferry.classified"
    assert client.post(f"/api/v1/exchange/ferry/exports/{export['id']}/approve", headers=officer).status_code == 403
    approved = client.post(
        f"/api/v1/exchange/ferry/exports/{export['id']}/approve", json={"comment": "同意"}, headers=reviewer
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved" and Path(approved.json()["bundle_path"]).is_dir()
    ledger = client.get("/api/v1/exchange/ferry/ledger", headers=reviewer).json()
    assert [(r["direction"], r["outcome"]) for r in ledger["items"]] == [("export", "exported")]
    assert client.get("/api/v1/exchange/ferry/ledger", headers=officer).status_code == 403
    unknown = client.post(
        "/api/v1/exchange/ferry/exports/data",
        headers=officer,
        json={"title": "x", "classification": "非涉密", "target_node": "360000W", "resource_id": "nope"},
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "ferry.resource_not_found"
    admin = token_for(client, "admin")
    keys = client.get("/api/v1/exchange/ferry/keys", headers=admin).json()
    assert {k["is_local"] for k in keys} == {True, False}
    imported = client.post("/api/v1/exchange/ferry/import", headers=admin).json()
    assert imported == {"imported": 0, "refused": 0, "results": []}
