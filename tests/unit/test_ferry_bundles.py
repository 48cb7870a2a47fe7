"""The ferry between networks, both nodes in this process (each its own data directory and database): approval by
the data authority, the bundle written to the outbound directory, import on the other node, and every refusal —
modified payload, modified manifest, untrusted signer, wrong target, replay, extra files, disallowed types."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.factories import World
from zhengshu.core.config import Settings
from zhengshu.core.db import Base, Database
from zhengshu.core.errors import Forbidden, NotFound, ValidationFailed
from zhengshu.exchange.files import ferry, nodekeys
from zhengshu.exchange.files.models import FerryExport, FerryLedger
from zhengshu.exchange.files.schemas import ExportIn
from zhengshu.exchange.files.service import IncomingFile
from zhengshu.security.actor import SYSTEM_ACTOR
from zhengshu.security.crypto import CryptoError
from zhengshu.workflow.models import Ticket

CSV = "统一社会信用代码,企业名称\n91360000MA35XXXX1A,江西某某有限公司\n".encode()
PDF = b"%PDF-1.7\n" + b"abcdefghij" * 300
EXTERNAL = "360000W"


@dataclass
class Node:
    db: Database
    settings: Settings


@pytest.fixture
def external(tmp_path: Path) -> Iterator[Node]:
    """The node on the other network: its own data directory, database and keys."""
    data = tmp_path / "external"
    data.mkdir()
    db = Database(f"sqlite:///{data / 'zhengshu.db'}")
    Base.metadata.create_all(db.engine)
    settings = Settings(
        data_dir=data, secret_key="external-secret-0123456789abcdef", node_code=EXTERNAL, node_name="互联网区节点"
    )
    yield Node(db, settings)
    db.dispose()


def _key(node: Node, name: str) -> dict[str, str]:
    with node.db.session() as s:
        key = nodekeys.ensure_local_key(
            s,
            actor=SYSTEM_ACTOR,
            node_code=node.settings.node_code,
            node_name=name,
            sig_alg=node.settings.files_signature_algorithm,
            settings=node.settings,
        )
        return {**nodekeys.public_document(key), "key_id": key.key_id}


def trust_each_other(internal: Node, external: Node) -> None:
    a, b = _key(internal, "政务外网节点"), _key(external, "互联网区节点")
    with internal.db.session() as s:
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=b, expected_key_id=b["key_id"][:16])
    with external.db.session() as s:
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=a, expected_key_id=a["key_id"])


@pytest.fixture
def internal(db: Database, settings: Settings) -> Node:
    return Node(db, settings)


def request(node: Node, world: World, files: dict[str, bytes] | None = None, **overrides: str) -> str:
    data = {"title": "企业名录导出", "purpose": "向社会公开", "classification": "非涉密", "target_node": EXTERNAL}
    data.update(overrides)
    with node.db.session() as s:
        export = ferry.request_export(
            s,
            actor=world["market_officer"],
            export_in=ExportIn(**data),
            files=[
                IncomingFile(n, io.BytesIO(c)) for n, c in (files or {"企业名录.csv": CSV, "说明.pdf": PDF}).items()
            ],
            settings=node.settings,
        )
        return export.id


def approve(node: Node, world: World, export_id: str) -> Path:
    with node.db.session() as s:
        export = ferry.decide(
            s, actor=world["reviewer"], export_id=export_id, approve=True, comment="同意", settings=node.settings
        )
        assert export.bundle_path
        return Path(export.bundle_path)


def deliver(bundle: Path, node: Node, name: str | None = None) -> Path:
    target = ferry.inbox_dir(node.settings) / (name or bundle.name)
    shutil.copytree(bundle, target)
    return target


def run_import(node: Node) -> list[ferry.ImportResult]:
    return ferry.import_pending(node.db.session_factory, actor=SYSTEM_ACTOR, settings=node.settings)


def exported(internal: Node, external: Node, world: World, files: dict[str, bytes] | None = None) -> Path:
    trust_each_other(internal, external)
    return approve(internal, world, request(internal, world, files))


def test_export_is_approved_then_imported_on_the_other_node(internal: Node, external: Node, world: World) -> None:
    trust_each_other(internal, external)
    export_id = request(internal, world)
    with internal.db.session() as s:
        export = s.get(FerryExport, export_id)
        assert export is not None and export.state == "submitted" and export.bundle_id is None
        ticket = s.get(Ticket, export.ticket_id)
        assert ticket is not None and ticket.assignee_org_id == world.orgs["authority"]
        with pytest.raises(NotFound):  # another authority's reviewer does not even see it
            ferry.decide(s, actor=world["nc_reviewer"], export_id=export_id, approve=True, settings=internal.settings)
    bundle = approve(internal, world, export_id)
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "manifest.sig", "payload.bin"]
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    assert manifest["approval"]["approved_by"] == "reviewer" and manifest["approval"]["classification"] == "非涉密"
    assert manifest["payload"]["cipher"] == nodekeys.cipher_name()
    assert CSV not in (bundle / "payload.bin").read_bytes()  # encrypted
    with internal.db.session() as s:
        rows = s.scalars(select(FerryLedger)).all()
        assert [(r.direction, r.outcome) for r in rows] == [("export", "exported")]
    deliver(bundle, external)
    [result] = run_import(external)
    assert result.accepted, result.reason
    received = ferry.received_dir(external.settings) / result.bundle_id
    assert (received / "企业名录.csv").read_bytes() == CSV
    assert (received / "说明.pdf").read_bytes() == PDF
    assert ferry.pending_bundles(external.settings) == []
    with external.db.session() as s:
        [row] = s.scalars(select(FerryLedger)).all()
        assert (row.direction, row.outcome, row.accepted_bundle_id) == ("import", "imported", result.bundle_id)


def test_replayed_bundle_is_refused_and_quarantined(internal: Node, external: Node, world: World) -> None:
    bundle = exported(internal, external, world)
    deliver(bundle, external)
    assert run_import(external)[0].accepted
    deliver(bundle, external, name="again")
    [result] = run_import(external)
    assert not result.accepted and result.code == "ferry.replayed"
    reason = json.loads((Path(result.path) / "reason.json").read_text())
    assert reason["code"] == "ferry.replayed"
    assert Path(result.path).parent == ferry.quarantine_dir(external.settings)
    with external.db.session() as s:
        outcomes = [r.outcome for r in s.scalars(select(FerryLedger).order_by(FerryLedger.at))]
        assert outcomes == ["imported", "refused"]


def _import_ledger(node: Node) -> list[tuple[str, str]]:
    with node.db.session() as s:
        return [
            (r.outcome, r.bundle_id) for r in s.scalars(select(FerryLedger).where(FerryLedger.direction == "import"))
        ]


def test_an_import_rolled_back_leaves_the_bundle_in_the_inbox(internal: Node, external: Node, world: World) -> None:
    bundle = exported(internal, external, world)
    target = deliver(bundle, external)
    received = ferry.received_dir(external.settings)
    with external.db.session_factory() as s:
        result = ferry.import_bundle(s, actor=SYSTEM_ACTOR, path=target, settings=external.settings)
        assert result.accepted, result.reason
        assert (received / result.bundle_id / "企业名录.csv").read_bytes() == CSV
        assert target.is_dir()  # not removed before the commit
        s.rollback()
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "manifest.sig", "payload.bin"]
    assert list(received.iterdir()) == []
    assert _import_ledger(external) == []  # on SQLite too (the ledger row is written in a savepoint)
    [again] = run_import(external)
    assert again.accepted, again.reason
    assert (received / again.bundle_id / "说明.pdf").read_bytes() == PDF
    assert ferry.pending_bundles(external.settings) == []
    assert _import_ledger(external) == [("imported", again.bundle_id)]


def test_an_import_in_a_rolled_back_savepoint_or_an_unfinished_session_is_undone(
    internal: Node, external: Node, world: World
) -> None:
    bundle = exported(internal, external, world)
    target = deliver(bundle, external)
    received = ferry.received_dir(external.settings)
    # the outer transaction commits, the savepoint around the import does not
    with external.db.session() as s, pytest.raises(RuntimeError), s.begin_nested():
        assert ferry.import_bundle(s, actor=SYSTEM_ACTOR, path=target, settings=external.settings).accepted
        raise RuntimeError("a later step failed")
    assert target.is_dir() and list(received.iterdir()) == []
    with external.db.session_factory() as s:  # closed without a commit
        assert ferry.import_bundle(s, actor=SYSTEM_ACTOR, path=target, settings=external.settings).accepted
    assert target.is_dir() and list(received.iterdir()) == []
    assert _import_ledger(external) == []
    assert run_import(external)[0].accepted


def test_a_refusal_rolled_back_puts_the_bundle_back(internal: Node, external: Node, world: World) -> None:
    bundle = exported(internal, external, world)
    target = deliver(bundle, external)
    _tamper_payload(target)
    with external.db.session_factory() as s:
        result = ferry.import_bundle(s, actor=SYSTEM_ACTOR, path=target, settings=external.settings)
        assert result.code == "ferry.payload_tampered" and not target.exists()
        s.rollback()
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "manifest.sig", "payload.bin"]
    assert list(ferry.quarantine_dir(external.settings).iterdir()) == []
    assert _import_ledger(external) == []
    [result] = run_import(external)
    assert result.code == "ferry.payload_tampered"
    assert (Path(result.path) / "reason.json").is_file() and not target.exists()
    assert _import_ledger(external) == [("refused", result.bundle_id)]


def _tamper_payload(bundle: Path) -> None:
    payload = bytearray((bundle / "payload.bin").read_bytes())
    payload[100] ^= 0x01
    (bundle / "payload.bin").write_bytes(bytes(payload))


def _tamper_manifest(bundle: Path) -> None:
    raw = (bundle / "manifest.json").read_text(encoding="utf-8")
    (bundle / "manifest.json").write_text(raw.replace("企业名录导出", "企业名录导出2"), encoding="utf-8")


def _payload_and_digest(bundle: Path) -> None:
    """A forger who also fixes the payload digest in the manifest breaks the signature instead."""
    _tamper_payload(bundle)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["payload"]["sha256"] = nodekeys.file_digests(bundle / "payload.bin")[1]
    (bundle / "manifest.json").write_bytes(nodekeys.canonical(manifest))


def _extra_file(bundle: Path) -> None:
    (bundle / "run.sh").write_text("rm -rf /")


def _missing_signature(bundle: Path) -> None:
    (bundle / "manifest.sig").unlink()


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_tamper_payload, "ferry.payload_tampered"),
        (_tamper_manifest, "ferry.bad_signature"),
        (_payload_and_digest, "ferry.bad_signature"),
        (_extra_file, "ferry.unexpected_file"),
        (_missing_signature, "ferry.incomplete"),
    ],
)
def test_modified_bundles_are_refused(internal: Node, external: Node, world: World, tamper: object, code: str) -> None:
    bundle = exported(internal, external, world)
    target = deliver(bundle, external)
    tamper(target)  # type: ignore[operator]
    [result] = run_import(external)
    assert (result.accepted, result.code) == (False, code), result.reason
    assert not (ferry.received_dir(external.settings) / result.bundle_id).exists() or not result.bundle_id
    # the genuine bundle is still accepted afterwards: a refusal does not burn the bundle id
    deliver(bundle, external, name="genuine")
    assert run_import(external)[0].accepted


def test_untrusted_signer_and_wrong_target_are_refused(
    internal: Node, external: Node, world: World, tmp_path: Path
) -> None:
    bundle = exported(internal, external, world)
    with external.db.session() as s:
        [peer] = [k for k in nodekeys.list_keys(s) if not k.is_local]
        nodekeys.revoke(s, key_id=peer.key_id)
    deliver(bundle, external)
    [result] = run_import(external)
    assert result.code == "ferry.untrusted_signer"
    # a third node that trusts the sender but is not the addressee
    third = Node(
        Database(f"sqlite:///{tmp_path / 'third.db'}"), Settings(data_dir=tmp_path / "third", node_code="360100W")
    )
    Base.metadata.create_all(third.db.engine)
    third.settings.secret_key = "third-secret-0123456789abcdef"
    a = _key(internal, "政务外网节点")
    with third.db.session() as s:
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=a)
    deliver(bundle, third)
    [result] = run_import(third)
    assert result.code == "ferry.wrong_target"
    third.db.dispose()


def test_own_bundle_and_disallowed_types_are_refused(internal: Node, external: Node, world: World) -> None:
    bundle = exported(internal, external, world)
    deliver(bundle, internal)
    [result] = run_import(internal)
    assert result.code == "ferry.own_bundle"
    external.settings.files_allowed_types = ["csv"]
    deliver(bundle, external)
    [result] = run_import(external)
    assert result.code == "ferry.file_not_allowed" and "说明.pdf" in result.reason


def test_classified_unknown_peer_and_refusal(internal: Node, external: Node, world: World) -> None:
    with pytest.raises(ValidationFailed) as exc:
        request(internal, world)
    assert exc.value.code == "ferry.unknown_peer"
    trust_each_other(internal, external)
    with pytest.raises(ValidationFailed) as exc:
        request(internal, world, classification="秘密")
    assert exc.value.code == "ferry.classified"
    with internal.db.session() as s, pytest.raises(Forbidden):
        ferry.request_export(
            s,
            actor=world["market_user"],
            export_in=ExportIn(title="x", classification="非涉密", target_node=EXTERNAL),
            files=[IncomingFile("a.csv", io.BytesIO(CSV))],
            settings=internal.settings,
        )
    export_id = request(internal, world)
    with internal.db.session() as s:
        with pytest.raises(ValidationFailed):
            ferry.decide(s, actor=world["reviewer"], export_id=export_id, approve=False, settings=internal.settings)
        export = ferry.decide(
            s,
            actor=world["reviewer"],
            export_id=export_id,
            approve=False,
            comment="含个人信息",
            settings=internal.settings,
        )
        assert export.state == "refused" and export.bundle_id is None
    assert ferry.pending_bundles(internal.settings, ferry.outbox_dir(internal.settings)) == []
    assert not ferry.staging_dir(export_id, internal.settings).exists()


def test_sm2_signed_bundle_and_ctr_fallback(
    internal: Node, external: Node, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    internal.settings.files_signature_algorithm = "sm2"
    monkeypatch.setattr(nodekeys, "cipher_name", lambda: "SM4-CTR-HMAC-SM3")
    bundle = exported(internal, external, world)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    assert manifest["payload"]["cipher"] == "SM4-CTR-HMAC-SM3"
    assert json.loads((bundle / "manifest.sig").read_text())["alg"] == "sm2"
    target = deliver(bundle, external, name="a-tampered")
    _tamper_payload(target)
    deliver(bundle, external, name="b-genuine")
    tampered, genuine = run_import(external)
    assert tampered.code == "ferry.payload_tampered"
    assert genuine.accepted, genuine.reason


def test_fingerprint_must_match_when_trusting(internal: Node, external: Node) -> None:
    b = _key(external, "互联网区节点")
    with internal.db.session() as s, pytest.raises(ValidationFailed) as exc:
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document=b, expected_key_id="0000111122223333")
    assert exc.value.code == "exchange.fingerprint_mismatch"
    with internal.db.session() as s, pytest.raises(ValidationFailed) as exc:
        nodekeys.trust_peer(s, actor=SYSTEM_ACTOR, document={**b, "sign_public": "00"})
    assert exc.value.code == "exchange.bad_key_document"


@pytest.mark.parametrize("cipher", ["SM4-GCM", "SM4-CTR-HMAC-SM3"])
def test_payload_encryption_detects_any_changed_byte(tmp_path: Path, cipher: str) -> None:
    key = nodekeys.new_content_key()
    plain = b"".join(i.to_bytes(4, "big") for i in range(300_000))
    with (tmp_path / "c.bin").open("wb") as out:
        params = nodekeys.encrypt_stream(key, iter([plain[:500_000], plain[500_000:]]), out, aad=b"ctx", cipher=cipher)
    out_buf = io.BytesIO()
    nodekeys.decrypt_file(key, tmp_path / "c.bin", out_buf, params=params, aad=b"ctx", cipher=cipher)
    assert out_buf.getvalue() == plain
    data = bytearray((tmp_path / "c.bin").read_bytes())
    data[777_777] ^= 0x80
    (tmp_path / "c.bin").write_bytes(bytes(data))
    with pytest.raises(CryptoError):
        nodekeys.decrypt_file(key, tmp_path / "c.bin", io.BytesIO(), params=params, aad=b"ctx", cipher=cipher)
    (tmp_path / "c.bin").write_bytes(bytes(data))
    data[777_777] ^= 0x80
    (tmp_path / "c.bin").write_bytes(bytes(data))
    with pytest.raises(CryptoError):  # right bytes, wrong context (another bundle's id)
        nodekeys.decrypt_file(key, tmp_path / "c.bin", io.BytesIO(), params=params, aad=b"other", cipher=cipher)


def test_data_export_carries_only_open_items_masked(internal: Node, external: Node, world: World) -> None:
    """A department's own published table crosses as Parquet: closed items stay, personal data is masked."""
    import pyarrow.parquet as pq

    from tests.factories import published_entry
    from zhengshu.catalog import mounting
    from zhengshu.lake import service as lake_service
    from zhengshu.lake.schemas import DataSourceIn

    trust_each_other(internal, external)
    items = [
        {"name": "统一社会信用代码", "column_name": "tyshxydm", "data_type": "C", "length": 18},
        {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200},
        {"name": "联系电话", "column_name": "lxdh", "data_type": "C", "length": 20, "sensitivity": "一般2"},
        {"name": "法定代表人", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般3"},
        {"name": "内部备注", "column_name": "nbbz", "data_type": "C", "length": 50, "opening_type": "不予开放"},
    ]
    entry_id = published_entry(internal.db, world, opening_type="无条件开放", items=items)
    folder = lake_service.upload_dir(data_dir=internal.settings.data_dir, org_id=world.orgs["market"])
    folder.mkdir(parents=True)
    (folder / "qy.csv").write_text(
        "tyshxydm,qymc,lxdh,fddbr,nbbz\n91360000MA35XXXX1A,江西某某有限公司,13907911234,张三,待核查\n",
        encoding="utf-8",
    )
    officer = world["market_officer"]
    with internal.db.session() as s:
        source = lake_service.register_source(
            s,
            actor=officer,
            source_in=DataSourceIn.model_validate(
                {"name": "企业登记", "kind": "csv", "options": {"path": str(folder / "qy.csv")}}
            ),
            data_dir=internal.settings.data_dir,
        )
        resource = mounting.mount_table(
            s,
            actor=officer,
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=source.id, table="qy.csv", allow_problems=True),
        )
        resource_id = resource.id
    with internal.db.session() as s, pytest.raises(NotFound):
        ferry.request_data_export(
            s,
            actor=world["hrss_officer"],
            export_in=ExportIn(title="x", classification="非涉密", target_node=EXTERNAL),
            resource_id=resource_id,
            settings=internal.settings,
        )
    with internal.db.session() as s:
        export = ferry.request_data_export(
            s,
            actor=officer,
            export_in=ExportIn(title="企业登记信息开放", classification="非涉密", target_node=EXTERNAL),
            resource_id=resource_id,
            settings=internal.settings,
        )
        assert export.data_source["rows"] == 1
        assert {i["name"]: i["masking"] for i in export.data_source["items"]} == {
            "统一社会信用代码": "none",
            "企业名称": "none",
            "联系电话": "mobile_3_4",
        }
        export_id = export.id
    bundle = approve(internal, world, export_id)
    deliver(bundle, external)
    [result] = run_import(external)
    assert result.accepted, result.reason
    table = pq.read_table(Path(result.path) / "企业登记信息.parquet")
    assert table.column_names == ["统一社会信用代码", "企业名称", "联系电话"]
    row = table.to_pylist()[0]
    assert row["联系电话"] != "13907911234" and row["联系电话"].startswith("139") and row["联系电话"].endswith("1234")


def test_a_copy_left_by_an_import_interrupted_before_its_commit_does_not_block_the_bundle(
    internal: Node, external: Node, world: World
) -> None:
    """A process killed between moving the files into the received directory and committing the ledger row left
    the copy behind; with no import committed, the next run replaces it (it used to refuse the bundle for good)."""
    bundle = exported(internal, external, world)
    bundle_id = json.loads((bundle / "manifest.json").read_bytes())["bundle_id"]
    deliver(bundle, external)
    leftover = ferry.received_dir(external.settings) / bundle_id
    leftover.mkdir(parents=True)
    (leftover / "企业名录.csv").write_bytes(b"half-moved")
    (leftover / "stray.tmp").write_bytes(b"x")
    [result] = run_import(external)
    assert result.accepted, result.reason
    assert sorted(p.name for p in leftover.iterdir()) == [".bundle", "企业名录.csv", "说明.pdf"]
    assert (leftover / "企业名录.csv").read_bytes() == CSV
    assert _import_ledger(external) == [("imported", bundle_id)]
    deliver(bundle, external, name="again")  # once committed, the same bundle is a replay
    [again] = run_import(external)
    assert not again.accepted and again.code == "ferry.replayed"
    assert (leftover / "企业名录.csv").read_bytes() == CSV
