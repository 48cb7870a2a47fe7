"""File exchange packages through the service: streaming receipt with SHA-256 and SM3, the signed manifest, every
refusal a recipient relies on (tampered file, tampered manifest, wrong signer, expired, withdrawn, zip bomb, path
traversal, disguised types, limits), downloads for the parties only, signed receipts verified by the sender."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from tests.factories import World
from zhengshu.audit.models import AuditRecord
from zhengshu.core.config import Settings
from zhengshu.core.db import Database, utcnow
from zhengshu.core.errors import Forbidden, NotFound, ValidationFailed
from zhengshu.core.events import OutboxEvent, process_pending
from zhengshu.exchange.files import nodekeys
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.models import FilePackage, NodeKey
from zhengshu.exchange.files.schemas import PackageIn, ReceivedFile
from zhengshu.exchange.files.service import IncomingFile, PackageRefused
from zhengshu.notify.models import Notification
from zhengshu.security.crypto import sm3_hex
from zhengshu.security.filecheck import FileRefused

CSV = "统一社会信用代码,企业名称\n91360000MA35XXXX1A,江西某某有限公司\n".encode()
PDF = b"%PDF-1.7\n" + b"0123456789" * 500


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def send(
    db: Database,
    world: World,
    settings: Settings,
    files: dict[str, bytes] | None = None,
    *,
    sender: str = "market_officer",
    to: tuple[str, ...] = ("hrss",),
    **extra: object,
) -> str:
    files = files if files is not None else {"企业名单.csv": CSV, "说明.pdf": PDF}
    with db.session() as s:
        package = files_service.send(
            s,
            actor=world[sender],
            package_in=PackageIn(title="企业登记数据交换", recipient_org_ids=[world.orgs[o] for o in to], **extra),
            files=[IncomingFile(name, io.BytesIO(data)) for name, data in files.items()],
            settings=settings,
        )
        return package.id


def test_send_stores_files_with_digests_and_a_signed_manifest(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        assert package.file_count == 2 and package.total_size == len(CSV) + len(PDF)
        by_name = {f.name: f for f in package.files}
        assert by_name["企业名单.csv"].sha256 == hashlib.sha256(CSV).hexdigest()
        assert by_name["企业名单.csv"].sm3 == sm3_hex(CSV)
        assert by_name["企业名单.csv"].content_type.startswith("text/csv")
        assert by_name["说明.pdf"].file_type == "pdf"
        manifest = json.loads(package.manifest)
        assert manifest["package_id"] == package_id
        assert [f["name"] for f in manifest["files"]] == ["企业名单.csv", "说明.pdf"]
        assert manifest["recipients"][0]["org_id"] == world.orgs["hrss"]
        assert nodekeys.canonical(manifest) == package.manifest.encode()  # canonical: exactly the signed bytes
        stored = files_service.package_dir(package_id, settings) / by_name["说明.pdf"].stored_name
        assert stored.read_bytes() == PDF
        files_service.verify_package(s, package, settings)
        assert s.scalar(select(func.count()).where(OutboxEvent.name == "file_package.sent")) == 1
        process_pending(db.session_factory)
        notice = s.scalars(select(Notification).where(Notification.kind == "files.received")).one()
        assert notice.org_id == world.orgs["hrss"] and notice.link == f"/exchange/packages/{package_id}"
        doc = files_service.manifest_for(s, actor=world["hrss_officer"], package_id=package_id)
        # a client checks the signature itself with the public key it is given
        public = bytes.fromhex(doc["signer_public_key"]["sign_public"])
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        Ed25519PublicKey.from_public_bytes(public).verify(
            base64.b64decode(doc["signature"]["value"]), doc["canonical"].encode()
        )


def test_recipient_downloads_and_outsiders_see_nothing(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        file_id = package.files[0].id
        _row, path = files_service.open_file(
            s, actor=world["hrss_officer"], package_id=package_id, file_id=file_id, settings=settings
        )
        assert path.read_bytes() == CSV
        files_service.open_file(
            s, actor=world["hrss_officer"], package_id=package_id, file_id=file_id, settings=settings
        )
        recipient = package.recipients[0]
        assert recipient.download_count == 2 and recipient.first_download_at is not None
        audited = s.scalars(select(AuditRecord).where(AuditRecord.action == "files.download")).all()
        assert [(a.actor_username, a.target_id) for a in audited] == [("hrss_officer", package_id)] * 2
        # the sender may fetch its own files (not counted as a delivery)
        files_service.open_file(
            s, actor=world["market_user"], package_id=package_id, file_id=file_id, settings=settings
        )
        assert recipient.download_count == 2
        with pytest.raises(NotFound):
            files_service.open_file(
                s, actor=world["nc_police_officer"], package_id=package_id, file_id=file_id, settings=settings
            )
        outsider = files_service.list_query(world["nc_police_officer"])
        assert s.scalars(outsider).all() == []
        inbox = s.scalars(files_service.list_query(world["hrss_officer"], box="received")).all()
        assert [p.id for p in inbox] == [package_id]
        assert s.scalars(files_service.list_query(world["hrss_officer"], box="sent")).all() == []


def test_tampered_file_is_refused(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        target = package.files[0]
        path = files_service.package_dir(package_id, settings) / target.stored_name
        path.write_bytes(CSV.replace(b"91360000", b"91360001"))
        with pytest.raises(PackageRefused) as exc:
            files_service.open_file(
                s, actor=world["hrss_officer"], package_id=package_id, file_id=target.id, settings=settings
            )
        assert exc.value.code == "files.file_tampered"


def test_tampered_manifest_is_refused(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        package.manifest = package.manifest.replace("企业登记数据交换", "企业登记数据交换（改）")
        with pytest.raises(PackageRefused) as exc:
            files_service.verify_package(s, package, settings)
        assert exc.value.code == "files.manifest_tampered"
        s.rollback()
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        # the manifest and signature intact, but a file row changed behind them
        package.files[0].sha256 = "0" * 64
        with pytest.raises(PackageRefused) as exc:
            files_service.verify_package(s, package, settings)
        assert exc.value.code == "files.manifest_tampered"
        s.rollback()


def test_wrong_signer_is_refused(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        intruder = Ed25519PrivateKey.generate()
        package.signature = base64.b64encode(intruder.sign(package.manifest.encode())).decode()
        with pytest.raises(PackageRefused) as exc:
            files_service.verify_package(s, package, settings)
        assert exc.value.code == "files.manifest_tampered"  # signed, but not by the key it names
        package.key_id = "f" * 64
        with pytest.raises(PackageRefused) as exc:
            files_service.verify_package(s, package, settings)
        assert exc.value.code == "files.untrusted_signer"
        s.rollback()
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        nodekeys.revoke(s, key_id=package.key_id)
        with pytest.raises(PackageRefused) as exc:
            files_service.verify_package(s, package, settings)
        assert exc.value.code == "files.untrusted_signer"


def test_expired_and_withdrawn_packages_are_refused(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings, expires_days=3)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        assert package.expires_at - package.created_at == timedelta(days=3)
        package.expires_at = utcnow() - timedelta(seconds=1)
        s.flush()
        with pytest.raises(PackageRefused) as exc:
            files_service.open_file(
                s, actor=world["hrss_officer"], package_id=package_id, file_id=package.files[0].id, settings=settings
            )
        assert exc.value.code == "files.expired"
        assert files_service.actions_for(world["hrss_officer"], package) == []
        assert files_service.purge_expired(s, actor=world["admin"], settings=settings) == 1
        assert not files_service.package_dir(package_id, settings).exists()
        assert package.status == "purged"
    other = send(db, world, settings)
    with db.session() as s:
        with pytest.raises(Forbidden):
            files_service.withdraw(s, actor=world["hrss_officer"], package_id=other, reason="误发")
        files_service.withdraw(s, actor=world["market_user"], package_id=other, reason="误发")
    with db.session() as s:
        package = s.get(FilePackage, other)
        assert package is not None
        with pytest.raises(PackageRefused) as exc:
            files_service.open_file(
                s, actor=world["hrss_officer"], package_id=other, file_id=package.files[0].id, settings=settings
            )
        assert exc.value.code == "files.withdrawn"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"bomb.zip": _zip({"zeros.csv": b"0" * (20 * 1024 * 1024)})}, "archive"),
        ({"evil.zip": _zip({"../../etc/cron.d/job.txt": b"x"})}, "archive"),
        ({"nested.zip": _zip({"inner.zip": _zip({"a.txt": b"a"})})}, "archive"),
        ({"报告.pdf": b"\x89PNG\r\n\x1a\n" + b"\x00" * 32}, "disguised"),
        ({"tool.exe": b"MZ" + b"\x00" * 64}, "extension"),
        ({"a.csv": CSV, "空.txt": b""}, "empty"),
    ],
)
def test_bad_files_are_refused_and_nothing_stays_on_disk(
    db: Database, world: World, settings: Settings, files: dict[str, bytes], reason: str
) -> None:
    with pytest.raises(FileRefused) as exc:
        send(db, world, settings, files)
    assert exc.value.reason == reason
    assert exc.value.problem()["errors"][0]["message"]
    root = files_service.packages_root(settings)
    assert not root.exists() or list(root.iterdir()) == []
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(FilePackage)) == 0


def test_size_count_recipient_and_expiry_limits(db: Database, world: World, settings: Settings) -> None:
    settings.files_max_file_mb = 1
    with pytest.raises(FileRefused) as exc:
        send(db, world, settings, {"big.csv": b"a,b\n" * 300_000})
    assert exc.value.reason == "too_large"
    settings.files_max_files = 1
    with pytest.raises(ValidationFailed) as exc2:
        send(db, world, settings)
    assert exc2.value.code == "files.invalid"
    settings.files_max_files = 50
    with pytest.raises(ValidationFailed) as exc2:
        send(db, world, settings, to=("market",))
    assert "本部门" in exc2.value.errors[0].message
    with pytest.raises(ValidationFailed) as exc2:
        send(db, world, settings, expires_days=999)
    assert exc2.value.errors[0].field == "expires_days"
    with pytest.raises(FileRefused) as exc:
        send(db, world, settings, {"a.csv": CSV, "../a.csv": CSV})
    assert exc.value.code == "files.duplicate_name"
    with pytest.raises(Forbidden):
        send(db, world, settings, sender="reviewer")


def test_receipt_is_signed_and_verified_by_the_sender(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings, to=("hrss", "nc_police"))
    with db.session() as s:
        with pytest.raises(Forbidden):
            files_service.receipt(s, actor=world["market_officer"], package_id=package_id, settings=settings)
        row = files_service.receipt(s, actor=world["hrss_officer"], package_id=package_id, settings=settings)
        assert row.verified and row.complete and row.recipient_org_id == world.orgs["hrss"]
        s.commit()
        process_pending(db.session_factory)
        notice = s.scalars(select(Notification).where(Notification.kind == "files.receipt")).one()
        assert notice.org_id == world.orgs["market"] and "已签收" in notice.title
        doc = json.loads(row.document)
        assert doc["manifest_sha256"] == row.package.manifest_sha256
        assert {f["name"] for f in doc["files"]} == {"企业名单.csv", "说明.pdf"}
        receipt_id = row.id
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None
        received = {r.org_id: r.received_at for r in package.recipients}
        assert received[world.orgs["hrss"]] is not None and received[world.orgs["nc_police"]] is None
        # the sender verifies the signed receipt document it holds
        signed = files_service.receipt_document(
            s, actor=world["market_officer"], package_id=package_id, receipt_id=receipt_id
        )
        checked = files_service.recheck_receipt(s, actor=world["market_officer"], package_id=package_id, **signed)
        assert checked["recipient"]["org_id"] == world.orgs["hrss"]
        forged = signed["document"].replace(world.orgs["hrss"], world.orgs["nc_police"])
        with pytest.raises(PackageRefused) as exc:
            files_service.recheck_receipt(
                s, actor=world["market_officer"], package_id=package_id, document=forged, signature=signed["signature"]
            )
        assert exc.value.code == "files.bad_receipt"
    with db.session() as s:
        # a recipient reporting other digests than the manifest's: recorded, verified, but not complete
        bad = [ReceivedFile(name="企业名单.csv", sha256="0" * 64, sm3="0" * 64)]
        row = files_service.receipt(
            s, actor=world["nc_police_officer"], package_id=package_id, received=bad, settings=settings
        )
        assert row.verified and not row.complete and "不一致" in row.verify_error


def test_sm2_signatures_work_end_to_end(db: Database, world: World, settings: Settings) -> None:
    settings.files_signature_algorithm = "sm2"
    package_id = send(db, world, settings)
    with db.session() as s:
        package = s.get(FilePackage, package_id)
        assert package is not None and package.sig_alg == "sm2"
        files_service.verify_package(s, package, settings)
        assert files_service.receipt(s, actor=world["hrss_officer"], package_id=package_id, settings=settings).verified
        package.manifest = package.manifest.replace("hrss", "HRSS") + " "
        with pytest.raises(PackageRefused):
            files_service.verify_manifest(s, package)
        s.rollback()


def test_sm2_key_whose_public_half_starts_with_04_signs_and_verifies(
    db: Database, world: World, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gmssl strips leading 0s and 4s from a public key (one key in 256 starts with them): d = 11 gives 04b3cb…"""
    monkeypatch.setattr(nodekeys.secrets, "randbelow", lambda _n: 10)
    with db.session() as s:
        key = nodekeys.create_local_key(
            s, actor=world["admin"], node_code="360000", node_name="省平台", sig_alg="sm2", settings=settings
        )
        assert key.sign_public.startswith("04b3cb")
        signature = nodekeys.sign(key, b"manifest", settings=settings)
        assert nodekeys.verify(s, data=b"manifest", **signature.as_dict()) is key
        with pytest.raises(nodekeys.SignatureError):
            nodekeys.verify(s, data=b"manifest!", **signature.as_dict())
        s.rollback()


def test_keys_rotate_and_old_signatures_still_verify(db: Database, world: World, settings: Settings) -> None:
    package_id = send(db, world, settings)
    with db.session() as s:
        old = nodekeys.local_key(s)
        assert old is not None
        new = nodekeys.create_local_key(
            s, actor=world["admin"], node_code="360000", node_name="省平台", settings=settings
        )
        assert old.status == "retired" and nodekeys.local_key(s) is new
        package = s.get(FilePackage, package_id)
        assert package is not None
        files_service.verify_package(s, package, settings)
        assert s.scalar(select(func.count()).select_from(NodeKey)) == 2


def test_large_file_streams_without_reading_it_whole(db: Database, world: World, settings: Settings) -> None:
    class Chunks(io.RawIOBase):
        """A 24 MB CSV produced on the fly; read() never returns more than asked."""

        def __init__(self) -> None:
            self.left = 24 * 1024 * 1024
            self.line = "360102199001011234,张三,南昌市东湖区\n".encode()

        def readable(self) -> bool:
            return True

        def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
            n = min(len(buf), self.left)
            if n <= 0:
                return 0
            data = (self.line * (n // len(self.line) + 1))[:n]
            buf[:n] = data
            self.left -= n
            return n

    with db.session() as s:
        package = files_service.send(
            s,
            actor=world["market_officer"],
            package_in=PackageIn(title="大文件", recipient_org_ids=[world.orgs["hrss"]]),
            files=[IncomingFile("big.csv", io.BufferedReader(Chunks()))],
            settings=settings,
        )
        assert package.total_size == 24 * 1024 * 1024
        path = files_service.package_dir(package.id, settings) / package.files[0].stored_name
        assert Path(path).stat().st_size == 24 * 1024 * 1024
        assert package.files[0].sha256 == nodekeys.file_digests(path)[1]


def test_written_directories_follow_the_transaction_not_its_savepoints(db: Database, tmp_path: Path) -> None:
    """A package directory written in a transaction that commits stays, even when a savepoint in it (say, the
    delivery of the request's events) is rolled back; one written inside a savepoint rolled back goes."""
    kept, dropped, undone = tmp_path / "kept", tmp_path / "dropped", tmp_path / "undone"
    with db.session() as s:
        kept.mkdir()
        files_service.track_written(s, kept)
        with pytest.raises(RuntimeError), s.begin_nested():
            dropped.mkdir()
            files_service.track_written(s, dropped)
            raise RuntimeError("a consumer failed")
        assert kept.is_dir() and not dropped.exists()
    assert kept.is_dir()  # committed
    with pytest.raises(RuntimeError), db.session() as s:
        undone.mkdir()
        files_service.track_written(s, undone)
        raise RuntimeError("the request failed")
    assert not undone.exists()
