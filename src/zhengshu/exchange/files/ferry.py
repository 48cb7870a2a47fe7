"""The secure import/export channel between the internal and the external network (内外网安全导入导出通道).

Export: a department asks to carry non-classified files across; the data authority's reviewer approves (a ticket);
the approved files are written as a bundle directory into the outbound directory (the ferry)::

    <bundle id>/manifest.json   canonical JSON: bundle id, approval, source and target node, files with digests,
                                the payload's digest, cipher parameters and its SM4 key wrapped for the target node
    <bundle id>/manifest.sig    {"alg": "ed25519"|"sm2", "key_id": …, "value": base64}
    <bundle id>/payload.bin     a tar of the files, SM4-GCM encrypted (SM4-CTR + HMAC-SM3 where GCM is missing)

Import on the other side (another process, data directory and database): signature by a trusted peer, addressed
to this node, approval present, not imported before (the replay ledger), payload digest and tag, every file's
digests, the allow list and archive checks. Accepted files go to the received directory; anything else is moved to
quarantine with ``reason.json``. Both sides write every bundle to the ledger and the audit log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhengshu.audit import service as audit_service
from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import after_transaction, new_id, utcnow
from zhengshu.core.errors import Conflict, NotFound, ValidationFailed, ZhengshuError
from zhengshu.core.events import emit
from zhengshu.exchange.files import nodekeys
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.models import FerryExport, FerryLedger, NodeKey
from zhengshu.exchange.files.schemas import ExportIn
from zhengshu.exchange.files.workflows import FERRY_EXPORT, SUBJECT
from zhengshu.org import service as org_service
from zhengshu.org.models import Organization
from zhengshu.security import authz, filecheck
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import CryptoError
from zhengshu.workflow import service as workflow_service

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "zhengshu-ferry/1"
NON_CLASSIFIED = "非涉密"
BUNDLE_FILES = frozenset({"manifest.json", "manifest.sig", "payload.bin"})
MAX_MANIFEST_BYTES = 10 * 1024 * 1024


class BundleRefused(ZhengshuError):
    status = 422
    code = "ferry.refused"
    title = "摆渡包未通过校验"


# ---- directories -----------------------------------------------------------------------------------------


def _dir(configured: Path | None, settings: Settings, name: str) -> Path:
    path = Path(configured) if configured else Path(settings.data_dir) / "ferry" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def outbox_dir(settings: Settings) -> Path:
    return _dir(settings.ferry_outbox_dir, settings, "outbox")


def inbox_dir(settings: Settings) -> Path:
    return _dir(settings.ferry_inbox_dir, settings, "inbox")


def received_dir(settings: Settings) -> Path:
    return _dir(settings.ferry_received_dir, settings, "received")


def quarantine_dir(settings: Settings) -> Path:
    return _dir(settings.ferry_quarantine_dir, settings, "quarantine")


def _work_dir(settings: Settings) -> Path:
    return _dir(None, settings, "work")


def staging_dir(export_id: str, settings: Settings) -> Path:
    if not export_id.isalnum():
        raise NotFound("未找到该摆渡导出申请", code="ferry.not_found")
    return Path(settings.data_dir) / "ferry" / "staging" / export_id


# ---- peers -----------------------------------------------------------------------------------------------


def peer_key(session: Session, node_code: str) -> NodeKey | None:
    return session.scalars(
        select(NodeKey)
        .where(NodeKey.node_code == node_code, NodeKey.is_local.is_(False), NodeKey.status == "active")
        .order_by(NodeKey.created_at.desc())
    ).first()


# ---- export requests -------------------------------------------------------------------------------------


def request_export(
    session: Session,
    *,
    actor: Actor,
    export_in: ExportIn,
    files: Sequence[files_service.IncomingFile],
    settings: Settings | None = None,
) -> FerryExport:
    settings = settings or get_settings()
    authz.ensure(actor, "ferry.request")
    if export_in.classification.strip() != NON_CLASSIFIED:
        raise ValidationFailed(
            "涉密数据不得经摆渡通道导出：只能导出密级为“非涉密”的数据和文件", code="ferry.classified"
        )
    if peer_key(session, export_in.target_node) is None:
        raise ValidationFailed(
            f"目标节点 {export_in.target_node} 不在信任列表中，请管理员先导入并核对对方节点的公钥",
            code="ferry.unknown_peer",
        )
    if not files:
        raise ValidationFailed("请至少选择一个文件", code="ferry.no_files")
    if len(files) > settings.files_max_files:
        raise ValidationFailed(f"每次最多导出 {settings.files_max_files} 个文件", code="ferry.too_many_files")
    org = session.get(Organization, actor.org_id) if actor.org_id else None
    if org is None:
        raise ValidationFailed("只有部门用户可以提交摆渡导出申请", code="ferry.no_org")
    export = FerryExport(
        id=new_id(),
        title=export_in.title.strip(),
        purpose=export_in.purpose.strip(),
        classification=NON_CLASSIFIED,
        org_id=org.id,
        requested_by=actor.username,
        target_node=export_in.target_node,
    )
    authority = org_service.data_authority_for(session, region_code=org.region_code)
    export.authority_org_id = authority.id if authority else None
    target = staging_dir(export.id, settings)
    target.mkdir(parents=True)
    try:
        received = files_service.receive_files(files, target, settings)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    files_service.track_written(session, target)
    export.files = [
        {
            "name": name,
            "stored_name": stored,
            "size": size,
            "sha256": sha,
            "sm3": sm3,
            "content_type": ftype.content_type,
            "file_type": ftype.code,
        }
        for name, stored, size, sha, sm3, ftype in received
    ]
    session.add(export)
    session.flush()
    ticket = workflow_service.open_ticket(
        session,
        actor=actor,
        kind=FERRY_EXPORT,
        title=f"摆渡导出：{export.title}",
        subject_type=SUBJECT,
        subject_id=export.id,
        assignee_org_id=export.authority_org_id,
        requester_org_id=org.id,
        comment=export.purpose,
    )
    export.ticket_id = ticket.id
    session.flush()
    emit(session, "ferry.export_requested", export_id=export.id, org_id=org.id, target_node=export.target_node)
    return export


def request_data_export(
    session: Session,
    *,
    actor: Actor,
    export_in: ExportIn,
    resource_id: str,
    settings: Settings | None = None,
) -> FerryExport:
    """Export the department's own published data (a mounted table) as one Parquet file: only items whose
    opening attribute allows it leave, each masked by its default rule before it is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zhengshu.catalog import service as catalog_service
    from zhengshu.catalog.enums import OpeningType
    from zhengshu.catalog.models import MountedResource
    from zhengshu.lake import service as lake_service
    from zhengshu.lake.connectors import TableRef
    from zhengshu.security import masking

    settings = settings or get_settings()
    authz.ensure(actor, "ferry.request")
    resource = session.get(MountedResource, resource_id)
    if (
        resource is None
        or not resource.active
        or resource.source_id is None
        or resource.entry.provider_org_id != actor.org_id
    ):
        raise NotFound("未找到本部门挂接的该数据资源", code="ferry.resource_not_found")
    entry = resource.entry
    if entry.published_version_id is None:
        raise ValidationFailed("只能导出已发布目录的数据", code="ferry.entry_not_published")
    version = catalog_service.display_version(session, entry)
    rules: dict[str, str] = {}
    items = []
    for item in version.items:
        opening = item.opening_type or version.opening_type
        if not item.column_name or opening == OpeningType.NOT_OPEN.value:
            continue
        rule = masking.default_rule(item)
        if rule == "suppress":
            continue
        rules[item.column_name] = rule
        items.append({"key": item.key, "name": item.name, "column": item.column_name, "masking": rule})
    if not items:
        raise ValidationFailed("该目录没有可以导出（开放且不屏蔽）的信息项", code="ferry.no_open_items")
    source = lake_service.get_source(session, actor=actor, source_id=resource.source_id)
    table = lake_service.connector_for(source).read_arrow(
        TableRef(schema=resource.table_schema, name=resource.table_name or ""), columns=list(rules)
    )
    masked = masking.mask_table(table, rules)
    masked = masked.rename_columns([next(i["name"] for i in items if i["column"] == c) for c in masked.column_names])
    buffer = pa.BufferOutputStream()
    pq.write_table(masked, buffer, compression="zstd")
    name = filecheck.clean_filename(f"{entry.name}.parquet")
    export = request_export(
        session,
        actor=actor,
        export_in=export_in,
        files=[files_service.IncomingFile(name, pa.BufferReader(buffer.getvalue()))],  # type: ignore[arg-type]
        settings=settings,
    )
    export.data_source = {
        "entry_id": entry.id,
        "entry_code": entry.code,
        "resource_id": resource.id,
        "items": items,
        "rows": masked.num_rows,
    }
    session.flush()
    return export


def list_exports(actor: Actor, *, state: str | None = None) -> Select[Any]:
    stmt = select(FerryExport).where(authz.scope(actor, "ferry.view"))
    if state:
        stmt = stmt.where(FerryExport.state == state)
    return stmt


def get_export(session: Session, *, actor: Actor, export_id: str) -> FerryExport:
    export = session.get(FerryExport, export_id)
    if export is None or not authz.allowed(actor, "ferry.view", export):
        raise NotFound("未找到该摆渡导出申请", code="ferry.not_found")
    return export


def _ticket(session: Session, export: FerryExport) -> Any:
    if export.ticket_id is None:
        raise Conflict("该申请没有审批工单", code="ferry.no_ticket")
    return workflow_service.get(session, ticket_id=export.ticket_id)


def decide(
    session: Session,
    *,
    actor: Actor,
    export_id: str,
    approve: bool,
    comment: str = "",
    settings: Settings | None = None,
) -> FerryExport:
    """The reviewer's decision; an approval writes the bundle into the outbound directory at once."""
    settings = settings or get_settings()
    export = get_export(session, actor=actor, export_id=export_id)
    authz.ensure(actor, "ferry.approve", export)
    if not approve and not comment.strip():
        raise ValidationFailed("不予批准时须说明理由", code="ferry.reason_required")
    workflow_service.transition(
        session, actor=actor, ticket=_ticket(session, export), name="approve" if approve else "refuse", comment=comment
    )
    export.state = "approved" if approve else "refused"
    export.decided_by = actor.username
    export.decided_at = utcnow()
    export.decision_comment = comment.strip()
    session.flush()
    emit(session, f"ferry.export_{export.state}", export_id=export.id)
    if approve:
        write_bundle(session, actor=actor, export=export, settings=settings)
    else:
        shutil.rmtree(staging_dir(export.id, settings), ignore_errors=True)
    return export


def withdraw_export(session: Session, *, actor: Actor, export_id: str, settings: Settings | None = None) -> FerryExport:
    settings = settings or get_settings()
    export = get_export(session, actor=actor, export_id=export_id)
    if export.requested_by != actor.username and not actor.is_admin:
        authz.ensure(actor, "ferry.request")
        if export.org_id != actor.org_id:
            raise NotFound("未找到该摆渡导出申请", code="ferry.not_found")
    workflow_service.transition(session, actor=actor, ticket=_ticket(session, export), name="withdraw")
    export.state = "withdrawn"
    session.flush()
    shutil.rmtree(staging_dir(export.id, settings), ignore_errors=True)
    return export


# ---- writing a bundle ------------------------------------------------------------------------------------


def _context(bundle_id: str) -> bytes:
    return f"zhengshu-ferry:{bundle_id}".encode()


def write_bundle(session: Session, *, actor: Actor, export: FerryExport, settings: Settings | None = None) -> Path:
    """Write (or write again, with the same bundle id) an approved export into the outbound directory."""
    settings = settings or get_settings()
    if export.state != "approved":
        raise Conflict("只有已批准的申请才能导出", code="ferry.not_approved")
    peer = peer_key(session, export.target_node)
    if peer is None:
        raise ValidationFailed(f"目标节点 {export.target_node} 的公钥不在信任列表中", code="ferry.unknown_peer")
    signer = files_service._local_key(session, settings)
    bundle_id = export.bundle_id or new_id()
    staged = staging_dir(export.id, settings)
    outbox = outbox_dir(settings)
    partial = outbox / f".{bundle_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        plain = partial / ".payload.tar"
        with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tar:
            for f in export.files:
                source = staged / str(f["stored_name"])
                size, sha, sm3 = nodekeys.file_digests(source)
                if (size, sha, sm3) != (f["size"], f["sha256"], f["sm3"]):
                    raise Conflict(f"待导出的文件“{f['name']}”在审批后被修改，不能导出", code="ferry.staged_changed")
                info = tarfile.TarInfo(str(f["name"]))
                info.size = size
                info.mtime = int(export.created_at.timestamp())
                info.mode = 0o644
                with source.open("rb") as fh:
                    tar.addfile(info, fh)
        content_key = nodekeys.new_content_key()
        cipher = nodekeys.cipher_name()
        payload = partial / "payload.bin"
        with plain.open("rb") as src, payload.open("wb") as out:
            params = nodekeys.encrypt_stream(
                content_key, iter(lambda: src.read(nodekeys.CHUNK), b""), out, aad=_context(bundle_id), cipher=cipher
            )
        plain.unlink()
        payload_size, payload_sha, _ = nodekeys.file_digests(payload)
        approver = session.get(Organization, export.org_id)
        manifest = {
            "format": BUNDLE_FORMAT,
            "bundle_id": bundle_id,
            "title": export.title,
            "source_node": settings.node_code,
            "source_node_name": settings.node_name,
            "target_node": export.target_node,
            "created_at": utcnow().isoformat(),
            "approval": {
                "export_id": export.id,
                "ticket_id": export.ticket_id,
                "classification": export.classification,
                "org_name": approver.name if approver else "",
                "requested_by": export.requested_by,
                "approved_by": export.decided_by,
                "approved_at": export.decided_at.isoformat() if export.decided_at else None,
                "comment": export.decision_comment,
            },
            "data_source": export.data_source or None,
            "files": [{k: f[k] for k in ("name", "size", "sha256", "sm3", "content_type")} for f in export.files],
            "payload": {
                "file": "payload.bin",
                "cipher": cipher,
                "size": payload_size,
                "sha256": payload_sha,
                "params": params,
                "key": nodekeys.wrap_key(peer, content_key, context=_context(bundle_id)),
            },
        }
        raw = nodekeys.canonical(manifest)
        (partial / "manifest.json").write_bytes(raw)
        (partial / "manifest.sig").write_text(
            json.dumps(nodekeys.sign(signer, raw, settings=settings).as_dict()), encoding="utf-8"
        )
        final = outbox / bundle_id
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)  # the importer never sees a half-written bundle
        files_service.track_written(session, final)  # a rolled-back approval leaves no bundle behind
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    export.bundle_id = bundle_id
    export.bundle_path = str(final)
    export.exported_at = utcnow()
    session.add(
        FerryLedger(
            direction="export",
            outcome="exported",
            bundle_id=bundle_id,
            source_node=settings.node_code,
            target_node=export.target_node,
            export_id=export.id,
            title=export.title,
            file_count=len(export.files),
            total_size=sum(int(f["size"]) for f in export.files),
            path=str(final),
            actor=actor.username,
            manifest_sha256=nodekeys.sha256_hex(raw),
        )
    )
    audit_service.record(
        session,
        actor=actor,
        action="ferry.bundle_exported",
        target_type="ferry_export",
        target_id=export.id,
        detail={"bundle_id": bundle_id, "target_node": export.target_node, "files": len(export.files)},
    )
    session.flush()
    emit(session, "ferry.bundle_exported", export_id=export.id, bundle_id=bundle_id)
    return final


# ---- importing ---------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    name: str
    bundle_id: str
    accepted: bool
    code: str
    reason: str
    path: str
    ledger_id: str


def _refuse(code: str, reason: str) -> BundleRefused:
    return BundleRefused(reason, code=code)


def _read_manifest(path: Path) -> tuple[bytes, dict[str, Any], dict[str, str]]:
    if path.is_symlink() or not path.is_dir():
        raise _refuse("ferry.not_a_bundle", "不是摆渡包目录")
    present = {p.name for p in path.iterdir()}
    missing = BUNDLE_FILES - present
    if missing:
        raise _refuse("ferry.incomplete", f"摆渡包缺少 {', '.join(sorted(missing))}")
    extra = present - BUNDLE_FILES
    if extra:
        raise _refuse("ferry.unexpected_file", f"摆渡包含有清单之外的文件：{', '.join(sorted(extra))}")
    if any((path / n).is_symlink() for n in BUNDLE_FILES):
        raise _refuse("ferry.unexpected_file", "摆渡包中含有符号链接")
    if (path / "manifest.json").stat().st_size > MAX_MANIFEST_BYTES:
        raise _refuse("ferry.bad_manifest", "清单过大")
    raw = (path / "manifest.json").read_bytes()
    try:
        manifest = json.loads(raw)
        signature = json.loads((path / "manifest.sig").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not isinstance(signature, dict):
            raise ValueError("not objects")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse("ferry.bad_manifest", "清单或签名文件不是有效的 JSON") from exc
    return raw, manifest, signature


def _check_manifest(
    session: Session, raw: bytes, manifest: dict[str, Any], signature: dict[str, Any], settings: Settings
) -> NodeKey:
    try:
        signer = nodekeys.verify(
            session,
            data=raw,
            alg=str(signature.get("alg", "")),
            key_id=str(signature.get("key_id", "")),
            value=str(signature.get("value", "")),
            what="摆渡包清单",
        )
    except nodekeys.UntrustedSigner as exc:
        raise _refuse("ferry.untrusted_signer", exc.detail) from exc
    except nodekeys.SignatureError as exc:
        raise _refuse("ferry.bad_signature", exc.detail) from exc
    if signer.is_local:
        raise _refuse("ferry.own_bundle", "这是本节点自己导出的摆渡包，不能在本节点导入")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise _refuse("ferry.bad_manifest", "清单格式不受支持")
    if manifest.get("source_node") != signer.node_code:
        raise _refuse("ferry.bad_signature", "清单声明的来源节点与签名者不符")
    if manifest.get("target_node") != settings.node_code:
        raise _refuse("ferry.wrong_target", f"该摆渡包发往节点 {manifest.get('target_node')}，不是本节点")
    approval = manifest.get("approval")
    if (
        not isinstance(approval, dict)
        or not approval.get("export_id")
        or not approval.get("approved_by")
        or not approval.get("approved_at")
    ):
        raise _refuse("ferry.not_approved", "清单中没有导出审批记录")
    if approval.get("classification") != NON_CLASSIFIED:
        raise _refuse("ferry.classified", "只接收密级为“非涉密”的摆渡包")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise _refuse("ferry.bad_manifest", "清单中没有文件")
    names = [str(f.get("name", "")) for f in files if isinstance(f, dict)]
    if (
        len(names) != len(files)
        or len(set(names)) != len(names)
        or any(filecheck.clean_filename(n) != n for n in names)
    ):
        raise _refuse("ferry.bad_manifest", "清单中的文件名重复或不安全")
    return signer


def _replayed(session: Session, bundle_id: str) -> bool:
    return (
        session.scalars(select(FerryLedger.id).where(FerryLedger.accepted_bundle_id == bundle_id)).first() is not None
    )


def _unpack(session: Session, path: Path, manifest: dict[str, Any], work: Path, settings: Settings) -> list[Path]:
    payload_info = manifest.get("payload") or {}
    payload = path / "payload.bin"
    if payload.stat().st_size > settings.ferry_max_bundle_mb * 1024 * 1024:
        raise _refuse("ferry.too_large", f"摆渡包超过 {settings.ferry_max_bundle_mb} MB 的上限")
    size, sha, _ = nodekeys.file_digests(payload)
    if size != payload_info.get("size") or sha != payload_info.get("sha256"):
        raise _refuse("ferry.payload_tampered", "载荷的摘要与清单不符：载荷在导出后被修改")
    bundle_id = str(manifest["bundle_id"])
    cipher = str(payload_info.get("cipher", ""))
    if cipher not in ("SM4-GCM", "SM4-CTR-HMAC-SM3"):
        raise _refuse("ferry.bad_manifest", f"不支持的加密算法 {cipher}")
    try:
        key = nodekeys.unwrap_key(
            session, dict(payload_info.get("key") or {}), context=_context(bundle_id), settings=settings
        )
        plain = work / "payload.tar"
        with plain.open("wb") as out:
            nodekeys.decrypt_file(
                key, payload, out, params=dict(payload_info.get("params") or {}), aad=_context(bundle_id), cipher=cipher
            )
    except CryptoError as exc:
        raise _refuse(exc.code if exc.code.startswith("ferry.") else "ferry.payload_tampered", exc.detail) from exc
    except (KeyError, ValueError, ZhengshuError) as exc:
        raise _refuse("ferry.payload_tampered", "载荷无法解密") from exc
    expected = {str(f["name"]): f for f in manifest["files"]}
    out_dir = work / "files"
    out_dir.mkdir()
    extracted: list[Path] = []
    try:
        with tarfile.open(plain, "r:") as tar:
            for member in tar:
                if not member.isfile() or member.name not in expected or member.name in {p.name for p in extracted}:
                    raise _refuse("ferry.unexpected_file", f"载荷中含有清单之外或不安全的成员“{member.name}”")
                target = out_dir / member.name
                source = tar.extractfile(member)
                assert source is not None
                with target.open("wb") as fh:
                    got_size, got_sha, got_sm3 = nodekeys.copy_with_digests(source, fh)
                f = expected[member.name]
                if (got_size, got_sha, got_sm3) != (f.get("size"), f.get("sha256"), f.get("sm3")):
                    raise _refuse("ferry.file_tampered", f"文件“{member.name}”的摘要与清单不符")
                extracted.append(target)
    except tarfile.TarError as exc:
        raise _refuse("ferry.payload_tampered", "载荷不是有效的归档") from exc
    finally:
        plain.unlink(missing_ok=True)
    if len(extracted) != len(expected):
        raise _refuse("ferry.file_missing", "载荷缺少清单中列出的文件")
    limits = files_service.archive_limits(settings)
    for target in extracted:
        try:
            filecheck.check_file(
                target,
                target.name,
                allowed=settings.files_allowed_types,
                limit=settings.files_max_file_mb * 1024 * 1024,
                archive_limits=limits,
            )
        except filecheck.FileRefused as exc:
            raise _refuse("ferry.file_not_allowed", exc.detail) from exc
    return extracted


def _move_aside(path: Path, target_root: Path, name: str) -> Path:
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    target = target_root / f"{name}-{stamp}"
    shutil.move(str(path), str(target))
    return target


def _move_back(moved: Path, original: Path) -> None:
    """Undo a move into quarantine (the refusal was rolled back); never over a newer entry of the same name."""
    if not moved.exists() or original.exists():
        return
    if moved.is_dir():
        (moved / "reason.json").unlink(missing_ok=True)
    shutil.move(str(moved), str(original))


def import_bundle(session: Session, *, actor: Actor, path: Path, settings: Settings | None = None) -> ImportResult:
    """Check one bundle and accept it or quarantine it; never raises for a bad bundle (the ledger says why).
    An accepted bundle leaves the inbox when the caller's transaction commits; if it rolls back, the inbox,
    the received and the quarantine directories are as they were, and the next run imports the bundle."""
    settings = settings or get_settings()
    authz.ensure(actor, "ferry.operate")
    name = path.name
    bundle_id = ""
    manifest: dict[str, Any] = {}
    raw = b""
    work = _work_dir(settings) / f"{name}-{new_id()}"
    work.mkdir(parents=True)
    try:
        raw, manifest, signature = _read_manifest(path)
        bundle_id = str(manifest.get("bundle_id", ""))[:64]
        if not bundle_id.isalnum():
            raise _refuse("ferry.bad_manifest", "清单中的摆渡包编号无效")
        _check_manifest(session, raw, manifest, signature, settings)
        if _replayed(session, bundle_id):
            raise _refuse("ferry.replayed", f"摆渡包 {bundle_id} 已经导入过，重复导入被拒绝（重放）")
        extracted = _unpack(session, path, manifest, work, settings)
        destination = received_dir(settings) / bundle_id
        ledger = FerryLedger(
            direction="import",
            outcome="imported",
            bundle_id=bundle_id,
            accepted_bundle_id=bundle_id,
            source_node=str(manifest.get("source_node", "")),
            target_node=settings.node_code,
            export_id=str(manifest["approval"]["export_id"])[:32],
            title=str(manifest.get("title", ""))[:200],
            file_count=len(extracted),
            total_size=sum(int(f["size"]) for f in manifest["files"]),
            path=str(destination),
            actor=actor.username,
            manifest_sha256=nodekeys.sha256_hex(raw),
        )
        # The ledger row first: its unique bundle id makes a second importer of the same bundle wait for this
        # transaction (and be refused as a replay if it commits), so the received directory is ours from here.
        try:
            with session.begin_nested():
                session.add(ledger)
                session.flush()
        except IntegrityError:
            raise _refuse("ferry.replayed", f"摆渡包 {bundle_id} 已经导入过，重复导入被拒绝（重放）") from None
        if destination.exists():
            # no import of this bundle was committed: a copy left by one interrupted between its move and its
            # commit (a crash), which must not block the bundle for good
            log.warning("ferry: removing the received copy an interrupted import of %s left behind", bundle_id)
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        try:
            for f in extracted:
                shutil.move(str(f), str(destination / f.name))
            evidence = destination / ".bundle"
            evidence.mkdir()
            shutil.copy2(path / "manifest.json", evidence / "manifest.json")
            shutil.copy2(path / "manifest.sig", evidence / "manifest.sig")
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
        # The bundle leaves the inbox only once the ledger row is committed; if the transaction rolls back
        # instead, the received copy goes and the bundle, still in the inbox, is imported by the next run.
        after_transaction(
            session,
            committed=lambda: shutil.rmtree(path, ignore_errors=True),
            rolled_back=lambda: shutil.rmtree(destination, ignore_errors=True),
        )
        _audit(session, actor, "ferry.bundle_imported", bundle_id, "success", {"files": len(extracted)})
        emit(session, "ferry.bundle_imported", bundle_id=bundle_id, ledger_id=ledger.id)
        return ImportResult(name, bundle_id, True, "", "", str(destination), ledger.id)
    except BundleRefused as exc:
        moved = path
        if path.exists():
            moved = _move_aside(path, quarantine_dir(settings), name)
            # no ledger row if the transaction rolls back: the bundle goes back to the inbox for the next run
            after_transaction(session, rolled_back=lambda: _move_back(moved, path))
        if moved.is_dir():
            (moved / "reason.json").write_text(
                json.dumps({"code": exc.code, "reason": exc.detail, "at": utcnow().isoformat()}, ensure_ascii=False),
                encoding="utf-8",
            )
        ledger = FerryLedger(
            direction="import",
            outcome="refused",
            bundle_id=bundle_id,
            source_node=str(manifest.get("source_node", ""))[:12],
            target_node=settings.node_code,
            title=str(manifest.get("title", ""))[:200],
            file_count=len(manifest.get("files") or []) if isinstance(manifest.get("files"), list) else 0,
            reason_code=exc.code,
            reason=exc.detail[:500],
            path=str(moved),
            actor=actor.username,
            manifest_sha256=nodekeys.sha256_hex(raw) if raw else "",
        )
        session.add(ledger)
        session.flush()
        _audit(session, actor, "ferry.bundle_refused", bundle_id or name, "failure", {"error": exc.code})
        emit(session, "ferry.bundle_refused", bundle_id=bundle_id, code=exc.code, ledger_id=ledger.id)
        return ImportResult(name, bundle_id, False, exc.code, exc.detail, str(moved), ledger.id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _audit(session: Session, actor: Actor, action: str, target: str, outcome: str, detail: dict[str, Any]) -> None:
    audit_service.record(
        session,
        actor=actor,
        action=action,
        target_type="ferry_bundle",
        target_id=target,
        outcome=outcome,
        detail=detail,
    )


def import_pending(
    session_factory: Any, *, actor: Actor, settings: Settings | None = None, inbox: Path | None = None
) -> list[ImportResult]:
    """Import every waiting bundle, each in its own transaction (one bad bundle never holds back the others).
    What ``zhengshu ferry import`` runs; a periodic job can run the same."""
    from zhengshu.core.events import emitted_ids, process_pending

    settings = settings or get_settings()
    results = []
    for path in pending_bundles(settings, inbox):
        with session_factory() as session:
            results.append(import_bundle(session, actor=actor, path=path, settings=settings))
            emitted = emitted_ids(session)
            session.commit()
        if emitted and settings.process_outbox_inline:
            process_pending(session_factory, only=emitted)
    return results


def pending_bundles(settings: Settings, inbox: Path | None = None) -> list[Path]:
    """Entries waiting in the inbox (hidden names are bundles still being written)."""
    root = inbox or inbox_dir(settings)
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def ledger_query(
    *, direction: str | None = None, outcome: str | None = None, since: datetime | None = None
) -> Select[Any]:
    stmt = select(FerryLedger)
    if direction:
        stmt = stmt.where(FerryLedger.direction == direction)
    if outcome:
        stmt = stmt.where(FerryLedger.outcome == outcome)
    if since:
        stmt = stmt.where(FerryLedger.at >= since)
    return stmt


def ledger(
    session: Session, *, actor: Actor, direction: str | None = None, outcome: str | None = None, limit: int = 200
) -> list[FerryLedger]:
    authz.ensure(actor, "ferry.ledger")
    stmt = ledger_query(direction=direction, outcome=outcome).order_by(FerryLedger.at.desc(), FerryLedger.id.desc())
    return list(session.scalars(stmt.limit(limit)))
