"""File exchange (文件交换): a department sends a package of files to named recipient departments.

Files stream to ``<data dir>/exchange/packages/<package id>/`` with SHA-256 and SM3 computed while writing, pass
the shared file checks (type by content, size, archive safety), and are listed in a canonical JSON manifest signed
with this node's key. Every download re-checks the signature, the expiry and the file's digests; the recipient's
node signs a receipt (回执) that the sender verifies against the manifest.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from zhengshu.audit import service as audit_service
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import after_transaction, new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound, ValidationFailed, ZhengshuError
from zhengshu.core.events import emit
from zhengshu.exchange.files import flows as _flows  # noqa: F401  (registers event consumers)
from zhengshu.exchange.files import nodekeys
from zhengshu.exchange.files import permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.exchange.files import workflows as _workflows  # noqa: F401  (declares the ferry machine)
from zhengshu.exchange.files.models import FilePackage, PackageFile, PackageReceipt, PackageRecipient
from zhengshu.exchange.files.schemas import STATUS_LABELS, PackageIn, ReceivedFile
from zhengshu.org.models import Organization
from zhengshu.security import authz, filecheck
from zhengshu.security.actor import Actor

MANIFEST_FORMAT = "zhengshu-package/1"
RECEIPT_FORMAT = "zhengshu-receipt/1"


class PackageRefused(ZhengshuError):
    """A package that must not be handed out: tampered, signed by an unknown key, expired or withdrawn."""

    status = 409
    code = "files.refused"
    title = "文件包校验未通过"


@dataclass
class IncomingFile:
    """A file as received: its name and a readable binary stream (an upload's spooled file, an open file)."""

    name: str
    stream: IO[bytes]


# ---- storage ---------------------------------------------------------------------------------------------


def packages_root(settings: Settings | None = None) -> Path:
    return Path((settings or get_settings()).data_dir) / "exchange" / "packages"


def package_dir(package_id: str, settings: Settings | None = None) -> Path:
    if not package_id.isalnum():
        raise NotFound("未找到该文件包", code="files.not_found")
    return packages_root(settings) / package_id


def track_written(session: Session, path: Path) -> None:
    """A directory written in this transaction: a rollback removes it, so the disk holds nothing unknown. Only
    a real rollback does (of the transaction, or of the savepoint it was written in), not a savepoint's end
    inside a transaction that then commits."""
    after_transaction(session, rolled_back=lambda: shutil.rmtree(path, ignore_errors=True))


def archive_limits(settings: Settings) -> filecheck.ArchiveLimits:
    return filecheck.ArchiveLimits(
        max_entries=settings.archive_max_entries,
        max_total_bytes=settings.archive_max_uncompressed_mb * 1024 * 1024,
        max_ratio=float(settings.archive_max_ratio),
        allow_nested=settings.archive_allow_nested,
    )


def _local_key(session: Session, settings: Settings) -> nodekeys.NodeKey:
    return nodekeys.ensure_local_key(
        session,
        actor=_system(),
        node_code=settings.node_code,
        node_name=settings.node_name,
        sig_alg=settings.files_signature_algorithm,
        settings=settings,
    )


def _system() -> Actor:
    from zhengshu.security.actor import SYSTEM_ACTOR

    return SYSTEM_ACTOR


# ---- sending ---------------------------------------------------------------------------------------------


def _recipients(session: Session, actor: Actor, org_ids: Sequence[str], errors: ErrorCollector) -> list[Organization]:
    orgs = []
    for org_id in dict.fromkeys(org_ids):
        org = session.get(Organization, org_id)
        if org is None or not org.active:
            errors.add("recipient_org_ids", f"接收部门 {org_id} 不存在或已停用")
        elif org.id == actor.org_id:
            errors.add("recipient_org_ids", "不能把文件包发给本部门")
        else:
            orgs.append(org)
    return orgs


def receive_files(
    files: Sequence[IncomingFile], target: Path, settings: Settings
) -> list[tuple[str, str, int, str, str, filecheck.FileType]]:
    """Stream each file to disk with its digests and check it; raises on the first refusal."""
    per_file = settings.files_max_file_mb * 1024 * 1024
    per_package = settings.files_max_package_mb * 1024 * 1024
    limits = archive_limits(settings)
    out = []
    total = 0
    names: set[str] = set()
    for seq, incoming in enumerate(files, start=1):
        name = filecheck.clean_filename(incoming.name, default=f"文件{seq}")
        if name in names:
            message = f"文件包中有两个同名文件“{name}”"
            raise filecheck.FileRefused(message, reason="duplicate", filename=name, code="files.duplicate_name")
        names.add(name)
        stored = f"{seq:03d}{filecheck.extension_of(name)}"
        path = target / stored
        try:
            with path.open("wb") as fh:
                size, sha, sm3 = nodekeys.copy_with_digests(incoming.stream, fh, limit=per_file)
        except nodekeys.TooLarge:
            path.unlink(missing_ok=True)
            raise filecheck.FileRefused(
                f"文件“{name}”超过 {settings.files_max_file_mb} MB 的大小上限", reason="too_large", filename=name
            ) from None
        total += size
        if total > per_package:
            raise filecheck.FileRefused(
                f"文件包总大小超过 {settings.files_max_package_mb} MB 的上限",
                reason="too_large",
                filename=name,
                code="files.package_too_large",
            )
        file_type = filecheck.check_file(
            path, name, allowed=settings.files_allowed_types, limit=per_file, archive_limits=limits
        )
        out.append((name, stored, size, sha, sm3, file_type))
    return out


def build_manifest(package: FilePackage, sender: Organization) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "package_id": package.id,
        "title": package.title,
        "node_code": package.node_code,
        "sender": {"org_id": sender.id, "org_name": sender.name, "user": package.sender_username},
        "recipients": sorted(({"org_id": r.org_id, "org_name": r.org_name} for r in package.recipients), key=str),
        "created_at": package.created_at.isoformat(),
        "expires_at": package.expires_at.isoformat(),
        "files": [
            {
                "name": f.name,
                "size": f.size,
                "sha256": f.sha256,
                "sm3": f.sm3,
                "content_type": f.content_type,
            }
            for f in package.files
        ],
    }


def send(
    session: Session,
    *,
    actor: Actor,
    package_in: PackageIn,
    files: Sequence[IncomingFile],
    settings: Settings | None = None,
) -> FilePackage:
    """Receive, check, store, sign and announce a package; nothing stays on disk when anything is refused."""
    settings = settings or get_settings()
    authz.ensure(actor, "files.send")
    errors = ErrorCollector()
    if actor.org_id is None:
        errors.add("recipient_org_ids", "只有部门用户可以发送文件包")
    recipients = _recipients(session, actor, package_in.recipient_org_ids, errors)
    if not files:
        errors.add("files", "请至少选择一个文件")
    elif len(files) > settings.files_max_files:
        errors.add("files", f"每个文件包最多 {settings.files_max_files} 个文件")
    days = package_in.expires_days or settings.files_default_expiry_days
    if days > settings.files_max_expiry_days:
        errors.add("expires_days", f"有效期最长 {settings.files_max_expiry_days} 天")
    errors.raise_if_any(code="files.invalid")
    sender = session.get(Organization, actor.org_id)
    assert sender is not None
    package_id = new_id()
    target = package_dir(package_id, settings)
    target.mkdir(parents=True)
    try:
        received = receive_files(files, target, settings)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    track_written(session, target)
    now = utcnow()
    package = FilePackage(
        id=package_id,
        title=package_in.title.strip(),
        note=package_in.note.strip(),
        sender_org_id=sender.id,
        sender_username=actor.username,
        node_code=settings.node_code,
        created_at=now,
        expires_at=now + timedelta(days=days),
        file_count=len(received),
        total_size=sum(r[2] for r in received),
        manifest="",
        manifest_sha256="",
        sig_alg="",
        key_id="",
        signature="",
    )
    for seq, (name, stored, size, sha, sm3, file_type) in enumerate(received, start=1):
        package.files.append(
            PackageFile(
                seq=seq,
                name=name,
                stored_name=stored,
                size=size,
                sha256=sha,
                sm3=sm3,
                file_type=file_type.code,
                content_type=file_type.content_type,
            )
        )
    for org in recipients:
        package.recipients.append(PackageRecipient(org_id=org.id, org_name=org.name))
    canonical = nodekeys.canonical(build_manifest(package, sender))
    signature = nodekeys.sign(_local_key(session, settings), canonical, settings=settings)
    package.manifest = canonical.decode("utf-8")
    package.manifest_sha256 = nodekeys.sha256_hex(canonical)
    package.sig_alg, package.key_id, package.signature = signature.alg, signature.key_id, signature.value
    session.add(package)
    session.flush()
    emit(
        session,
        "file_package.sent",
        package_id=package.id,
        sender_org_id=sender.id,
        recipient_org_ids=[org.id for org in recipients],
        file_count=package.file_count,
        total_size=package.total_size,
    )
    return package


# ---- reading ---------------------------------------------------------------------------------------------

BOXES = ("all", "sent", "received")


def list_query(actor: Actor, *, box: str = "all", q: str | None = None, status: str | None = None) -> Select[Any]:
    if box not in BOXES:
        raise ValidationFailed(f"不支持的列表 {box}（可选 all、sent、received）", code="files.bad_box")
    stmt = select(FilePackage).where(authz.scope(actor, "files.view"))
    if box == "sent":
        stmt = stmt.where(FilePackage.sender_org_id == (actor.org_id or ""))
    elif box == "received":
        stmt = stmt.where(
            FilePackage.id.in_(
                select(PackageRecipient.package_id).where(PackageRecipient.org_id == (actor.org_id or ""))
            )
        )
    if q:
        stmt = stmt.where(or_(FilePackage.title.contains(q), FilePackage.id == q))
    if status:
        stmt = stmt.where(FilePackage.status == status)
    return stmt.options(selectinload(FilePackage.recipients))


def get_visible(session: Session, *, actor: Actor, package_id: str) -> FilePackage:
    package = session.get(FilePackage, package_id)
    if package is None or not authz.allowed(actor, "files.view", package):
        raise NotFound("未找到该文件包", code="files.not_found")
    return package


def is_expired(package: FilePackage, now: datetime | None = None) -> bool:
    return (now or utcnow()) >= package.expires_at


def org_names(session: Session, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Organization.id, Organization.name).where(Organization.id.in_(ids))).all())


def actions_for(actor: Actor, package: FilePackage) -> list[str]:
    out = []
    usable = package.status == "sent" and not is_expired(package)
    if usable and authz.allowed(actor, "files.download", package):
        out.append("download")
    if usable and authz.allowed(actor, "files.receipt", package):
        out.append("receipt")
    if package.status == "sent" and authz.allowed(actor, "files.withdraw", package):
        out.append("withdraw")
    return out


def to_summary(package: FilePackage, actor: Actor, names: dict[str, str]) -> dict[str, Any]:
    mine = next((r for r in package.recipients if r.org_id == actor.org_id), None)
    return {
        "id": package.id,
        "title": package.title,
        "sender_org_id": package.sender_org_id,
        "sender_org_name": names.get(package.sender_org_id, ""),
        "sender_username": package.sender_username,
        "status": package.status,
        "status_label": STATUS_LABELS.get(package.status, package.status),
        "expired": is_expired(package),
        "file_count": package.file_count,
        "total_size": package.total_size,
        "created_at": package.created_at,
        "expires_at": package.expires_at,
        "received": bool(mine and mine.received_at),
    }


def to_read(session: Session, package: FilePackage, actor: Actor, *, url_prefix: str = "") -> dict[str, Any]:
    names = org_names(session, [package.sender_org_id])
    data = to_summary(package, actor, names)
    data.update(
        note=package.note,
        node_code=package.node_code,
        manifest_sha256=package.manifest_sha256,
        sig_alg=package.sig_alg,
        key_id=package.key_id,
        files=[
            {
                "id": f.id,
                "seq": f.seq,
                "name": f.name,
                "size": f.size,
                "sha256": f.sha256,
                "sm3": f.sm3,
                "file_type": f.file_type,
                "content_type": f.content_type,
                "download_url": f"{url_prefix}/{package.id}/files/{f.id}" if url_prefix else "",
            }
            for f in package.files
        ],
        recipients=list(package.recipients),
        receipts=list(package.receipts),
        actions=actions_for(actor, package),
    )
    return data


# ---- verification ----------------------------------------------------------------------------------------

# (path, size, mtime_ns, inode) → (sha256, sm3): a file unchanged on disk since its last full check is not
# hashed again on every Range request of a resumed download.
_verified: dict[tuple[str, int, int, int], tuple[str, str]] = {}


def _disk_digests(path: Path) -> tuple[int, str, str]:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _verified.get(key)
    if cached is not None:
        return st.st_size, cached[0], cached[1]
    size, sha, sm3 = nodekeys.file_digests(path)
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[key] = (sha, sm3)
    return size, sha, sm3


def verify_manifest(session: Session, package: FilePackage) -> dict[str, Any]:
    """The signed manifest, checked: signature by a trusted key, and the same files as the database lists."""
    raw = package.manifest.encode("utf-8")
    try:
        nodekeys.verify(session, data=raw, alg=package.sig_alg, key_id=package.key_id, value=package.signature)
    except nodekeys.UntrustedSigner as exc:
        raise PackageRefused(exc.detail, code="files.untrusted_signer") from exc
    except nodekeys.SignatureError as exc:
        raise PackageRefused(
            "文件包清单的签名验证失败：清单在签名后被修改，已拒绝提供下载", code="files.manifest_tampered"
        ) from exc
    if nodekeys.sha256_hex(raw) != package.manifest_sha256:
        raise PackageRefused("文件包清单摘要与登记不符，已拒绝提供下载", code="files.manifest_tampered")
    manifest: dict[str, Any] = json.loads(raw)
    listed = [(f["name"], f["size"], f["sha256"], f["sm3"]) for f in manifest.get("files", [])]
    stored = [(f.name, f.size, f.sha256, f.sm3) for f in package.files]
    if manifest.get("package_id") != package.id or listed != stored:
        raise PackageRefused("文件包登记的文件与签名清单不一致，已拒绝提供下载", code="files.manifest_tampered")
    return manifest


def _usable(package: FilePackage) -> None:
    if package.status == "withdrawn":
        raise PackageRefused("发送部门已撤回该文件包", code="files.withdrawn")
    if package.status == "purged" or is_expired(package):
        raise PackageRefused(
            f"文件包已于 {package.expires_at.astimezone().strftime('%Y-%m-%d %H:%M')} 过期，不能再下载",
            code="files.expired",
        )


def verify_file(package: FilePackage, file: PackageFile, settings: Settings) -> Path:
    path = package_dir(package.id, settings) / file.stored_name
    if not path.is_file():
        raise PackageRefused(f"文件“{file.name}”已不在存储中", code="files.file_missing")
    size, sha, sm3 = _disk_digests(path)
    if size != file.size or sha != file.sha256 or sm3 != file.sm3:
        raise PackageRefused(
            f"文件“{file.name}”的摘要与签名清单不符（存储内容被修改），已拒绝提供下载", code="files.file_tampered"
        )
    return path


def verify_package(session: Session, package: FilePackage, settings: Settings | None = None) -> dict[str, Any]:
    """Everything a recipient relies on: usable (not expired/withdrawn), signed manifest, every file's digests."""
    settings = settings or get_settings()
    _usable(package)
    manifest = verify_manifest(session, package)
    for f in package.files:
        verify_file(package, f, settings)
    return manifest


def manifest_for(session: Session, *, actor: Actor, package_id: str) -> dict[str, Any]:
    package = get_visible(session, actor=actor, package_id=package_id)
    manifest = verify_manifest(session, package)
    signer = session.scalars(select(nodekeys.NodeKey).where(nodekeys.NodeKey.key_id == package.key_id)).one()
    return {
        "manifest": manifest,
        "canonical": package.manifest,
        "signature": {"alg": package.sig_alg, "key_id": package.key_id, "value": package.signature},
        "signer_public_key": {**nodekeys.public_document(signer), "key_id": signer.key_id},
    }


def open_file(
    session: Session,
    *,
    actor: Actor,
    package_id: str,
    file_id: str,
    settings: Settings | None = None,
    count: bool = True,
) -> tuple[PackageFile, Path]:
    """A file for download, after every check; a recipient's download is recorded (``count=False`` for the
    follow-up Range requests of one resumed download)."""
    settings = settings or get_settings()
    package = get_visible(session, actor=actor, package_id=package_id)
    authz.ensure(actor, "files.download", package)
    file = next((f for f in package.files if f.id == file_id or f.name == file_id), None)
    if file is None:
        raise NotFound("文件包中没有该文件", code="files.file_not_found")
    _usable(package)
    verify_manifest(session, package)
    path = verify_file(package, file, settings)
    mine = next((r for r in package.recipients if r.org_id == actor.org_id), None)
    if count:
        if mine is not None:
            now = utcnow()
            mine.first_download_at = mine.first_download_at or now
            mine.last_download_at = now
            mine.download_count += 1
        # who fetched which file is kept in the tamper-evident audit log, not only in the counters
        audit_service.record(
            session,
            actor=actor,
            action="files.download",
            target_type="file_package",
            target_id=package.id,
            detail={"file": file.name, "sha256": file.sha256},
        )
    return file, path


# ---- receipts --------------------------------------------------------------------------------------------


def receipt(
    session: Session,
    *,
    actor: Actor,
    package_id: str,
    received: Sequence[ReceivedFile] | None = None,
    settings: Settings | None = None,
) -> PackageReceipt:
    """The recipient signs for the package (its node's key) and the sender verifies the receipt at once.
    ``received``: the digests the recipient computed; None means the platform's verified stored copy."""
    settings = settings or get_settings()
    package = get_visible(session, actor=actor, package_id=package_id)
    authz.ensure(actor, "files.receipt", package)
    _usable(package)
    verify_manifest(session, package)
    if received is None:
        files = []
        for f in package.files:
            verify_file(package, f, settings)
            files.append({"name": f.name, "sha256": f.sha256, "sm3": f.sm3})
    else:
        files = [{"name": r.name, "sha256": r.sha256, "sm3": r.sm3} for r in received]
    org = session.get(Organization, actor.org_id)
    document = {
        "format": RECEIPT_FORMAT,
        "package_id": package.id,
        "manifest_sha256": package.manifest_sha256,
        "recipient": {"org_id": actor.org_id, "org_name": org.name if org else "", "user": actor.username},
        "node_code": settings.node_code,
        "received_at": utcnow().isoformat(),
        "files": sorted(files, key=lambda f: f["name"]),
    }
    raw = nodekeys.canonical(document)
    signature = nodekeys.sign(_local_key(session, settings), raw, settings=settings)
    return accept_receipt(session, package=package, document=raw.decode("utf-8"), signature=signature.as_dict())


def accept_receipt(
    session: Session, *, package: FilePackage, document: str, signature: dict[str, str]
) -> PackageReceipt:
    """The sender's side: verify a signed receipt against the manifest and record it (verified or not)."""
    row = PackageReceipt(
        package_id=package.id,
        recipient_org_id="",
        received_by="",
        document=document,
        sig_alg=str(signature.get("alg", "")),
        key_id=str(signature.get("key_id", "")),
        signature=str(signature.get("value", "")),
    )
    try:
        doc = verify_receipt(session, package=package, document=document, signature=signature)
    except ZhengshuError as exc:
        try:
            parsed = json.loads(document)
            row.recipient_org_id = str(parsed["recipient"]["org_id"])
            row.received_by = str(parsed["recipient"].get("user", ""))
        except (ValueError, KeyError, TypeError):
            pass
        if not any(r.org_id == row.recipient_org_id for r in package.recipients):
            raise
        row.verify_error = exc.detail[:300]
        package.receipts.append(row)
        session.flush()
        raise
    row.recipient_org_id = doc["recipient"]["org_id"]
    row.received_by = str(doc["recipient"].get("user", ""))
    manifest_files = {(f.name, f.sha256, f.sm3) for f in package.files}
    receipt_files = {(f["name"], f["sha256"], f["sm3"]) for f in doc["files"]}
    row.complete = receipt_files == manifest_files
    row.verified = True
    row.verified_at = utcnow()
    if not row.complete:
        row.verify_error = "回执所列文件或摘要与清单不一致（部分文件未收到或内容不符）"
    package.receipts.append(row)
    recipient = next(r for r in package.recipients if r.org_id == row.recipient_org_id)
    if row.complete and recipient.received_at is None:
        recipient.received_at = row.verified_at
    session.flush()
    emit(
        session,
        "file_package.received",
        package_id=package.id,
        recipient_org_id=row.recipient_org_id,
        complete=row.complete,
        receipt_id=row.id,
    )
    return row


def verify_receipt(
    session: Session, *, package: FilePackage, document: str, signature: dict[str, str]
) -> dict[str, Any]:
    """Signature by a trusted node key, the right package and manifest, a recipient of this package."""
    raw = document.encode("utf-8")
    try:
        nodekeys.verify(
            session,
            data=raw,
            alg=str(signature.get("alg", "")),
            key_id=str(signature.get("key_id", "")),
            value=str(signature.get("value", "")),
            what="回执",
        )
    except (nodekeys.SignatureError, nodekeys.UntrustedSigner) as exc:
        raise PackageRefused(exc.detail, code="files.bad_receipt") from exc
    try:
        doc: dict[str, Any] = json.loads(raw)
        ok = (
            doc.get("format") == RECEIPT_FORMAT
            and doc.get("package_id") == package.id
            and isinstance(doc.get("files"), list)
            and all({"name", "sha256", "sm3"} <= set(f) for f in doc["files"])
        )
        recipient_org = doc["recipient"]["org_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackageRefused("回执格式不正确", code="files.bad_receipt") from exc
    if not ok:
        raise PackageRefused("回执不属于该文件包或格式不正确", code="files.bad_receipt")
    if doc.get("manifest_sha256") != package.manifest_sha256:
        raise PackageRefused("回执所签收的清单与本文件包的清单不一致", code="files.bad_receipt")
    if not any(r.org_id == recipient_org for r in package.recipients):
        raise PackageRefused("回执的签收部门不是该文件包的接收部门", code="files.bad_receipt")
    return doc


def receipt_document(session: Session, *, actor: Actor, package_id: str, receipt_id: str) -> dict[str, Any]:
    package = get_visible(session, actor=actor, package_id=package_id)
    row = next((r for r in package.receipts if r.id == receipt_id), None)
    if row is None:
        raise NotFound("未找到该回执", code="files.receipt_not_found")
    return {"document": row.document, "signature": {"alg": row.sig_alg, "key_id": row.key_id, "value": row.signature}}


def recheck_receipt(
    session: Session, *, actor: Actor, package_id: str, document: str, signature: dict[str, str]
) -> dict[str, Any]:
    """The sender verifies a receipt it holds (e.g. one that came back from another node)."""
    package = get_visible(session, actor=actor, package_id=package_id)
    if not authz.allowed(actor, "files.withdraw", package) and not actor.is_admin:
        raise NotFound("未找到该文件包", code="files.not_found")
    return verify_receipt(session, package=package, document=document, signature=signature)


# ---- withdraw, expire ------------------------------------------------------------------------------------


def withdraw(session: Session, *, actor: Actor, package_id: str, reason: str) -> FilePackage:
    package = get_visible(session, actor=actor, package_id=package_id)
    authz.ensure(actor, "files.withdraw", package)
    if package.status != "sent":
        raise Conflict("该文件包已撤回或已清理", code="files.not_sent")
    package.status = "withdrawn"
    session.flush()
    emit(session, "file_package.withdrawn", package_id=package.id, reason=reason)
    return package


def purge_expired(
    session: Session, *, actor: Actor, settings: Settings | None = None, now: datetime | None = None
) -> int:
    """Daily job: remove the stored files of expired packages; the rows, manifests and receipts stay."""
    settings = settings or get_settings()
    now = now or utcnow()
    rows = session.scalars(
        select(FilePackage).where(FilePackage.status != "purged", FilePackage.expires_at <= now)
    ).all()
    for package in rows:
        shutil.rmtree(package_dir(package.id, settings), ignore_errors=True)
        package.status = "purged"
    session.flush()
    return len(rows)
