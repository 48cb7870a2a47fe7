"""HTTP API of file exchange (/api/v1/exchange/packages/…) and the ferry (/api/v1/exchange/ferry/…).

``router`` is the one mounted (authenticated) by ``web/routes.py``; it carries both sub-routers.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import ValidationError

from zhengshu.core.config import Settings
from zhengshu.core.errors import ValidationFailed
from zhengshu.exchange.files import ferry, nodekeys
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.models import FerryExport, FerryLedger, FilePackage
from zhengshu.exchange.files.schemas import (
    EXPORT_STATE_LABELS,
    DataExportIn,
    DecisionIn,
    ExportIn,
    ExportRead,
    LedgerRead,
    ManifestRead,
    NodeKeyRead,
    PackageIn,
    PackageRead,
    PackageSummary,
    ReceiptDocument,
    ReceiptIn,
    ReceiptRead,
    WithdrawIn,
)
from zhengshu.security import authz
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

PREFIX = "/api/v1/exchange/packages"
router = APIRouter()
packages_router = APIRouter(prefix="/exchange/packages", tags=["exchange"])
ferry_router = APIRouter(prefix="/exchange/ferry", tags=["exchange"])

SORTS = {"created_at": FilePackage.created_at, "expires_at": FilePackage.expires_at, "title": FilePackage.title}


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def incoming(uploads: list[UploadFile] | None) -> list[files_service.IncomingFile]:
    """Uploads as streams: the service copies them to disk in chunks, never whole into memory."""
    return [files_service.IncomingFile(u.filename or "", u.file) for u in uploads or [] if u.filename]


def _invalid(exc: ValidationError) -> ValidationFailed:
    from zhengshu.core.errors import FieldError
    from zhengshu.web.errors import pydantic_errors

    errors = [FieldError(e["field"], e["message"]) for e in pydantic_errors(list(exc.errors()))]
    return ValidationFailed("请根据错误提示修改后重新提交", errors=errors)


# ---- packages --------------------------------------------------------------------------------------------


@packages_router.get("", response_model=Page[PackageSummary], summary="文件包列表（发件箱与收件箱）")
def list_packages(
    session: DbSession,
    actor: CurrentActor,
    box: Annotated[str, Query(description="all 全部 / sent 本部门发出 / received 发给本部门")] = "all",
    q: str | None = None,
    status: Annotated[str | None, Query(description="sent 已发送 / withdrawn 已撤回 / purged 已过期清理")] = None,
    sort: Annotated[str, Query(description="排序字段：created_at, expires_at, title；前加 - 为降序")] = "-created_at",
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    field = sort.lstrip("-")
    if field not in SORTS:
        raise ValidationFailed(f"不支持按 {field} 排序", code="files.bad_sort")
    column = SORTS[field]
    stmt = files_service.list_query(actor, box=box, q=q, status=status).order_by(
        column.desc() if sort.startswith("-") else column.asc(), FilePackage.id
    )
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    names = files_service.org_names(session, list({p.sender_org_id for p in rows}))
    return {
        "items": [files_service.to_summary(p, actor, names) for p in rows],
        "next_cursor": next_cursor,
        "total": total,
    }


@packages_router.post("", response_model=PackageRead, status_code=201, summary="发送文件包")
def send_package(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    title: Annotated[str, Form(description="文件包标题")],
    recipient_org_ids: Annotated[list[str], Form(description="接收部门 ID，可重复")],
    files: Annotated[list[UploadFile], File(description="文件，可多个")],
    note: Annotated[str, Form()] = "",
    expires_days: Annotated[int | None, Form(description="有效期（天）")] = None,
) -> dict[str, Any]:
    try:
        package_in = PackageIn(title=title, note=note, recipient_org_ids=recipient_org_ids, expires_days=expires_days)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    package = files_service.send(
        session, actor=actor, package_in=package_in, files=incoming(files), settings=app_settings(request)
    )
    return files_service.to_read(session, package, actor, url_prefix=PREFIX)


@packages_router.get("/{package_id}", response_model=PackageRead, summary="文件包详情：文件、接收部门、回执")
def get_package(session: DbSession, actor: CurrentActor, package_id: str) -> dict[str, Any]:
    package = files_service.get_visible(session, actor=actor, package_id=package_id)
    return files_service.to_read(session, package, actor, url_prefix=PREFIX)


@packages_router.get("/{package_id}/manifest", response_model=ManifestRead, summary="签名清单（含签名与签名公钥）")
def get_manifest(session: DbSession, actor: CurrentActor, package_id: str) -> dict[str, Any]:
    return files_service.manifest_for(session, actor=actor, package_id=package_id)


def _is_continuation(request: Request) -> bool:
    """A Range request past the first byte continues a download already counted."""
    value = request.headers.get("range", "")
    return value.startswith("bytes=") and not value.startswith("bytes=0-")


@packages_router.get(
    "/{package_id}/files/{file_id}",
    summary="下载文件（支持断点续传：HTTP Range）",
    response_class=FileResponse,
)
def download_file(
    request: Request, session: DbSession, actor: CurrentActor, package_id: str, file_id: str
) -> FileResponse:
    row, path = files_service.open_file(
        session,
        actor=actor,
        package_id=package_id,
        file_id=file_id,
        settings=app_settings(request),
        count=not _is_continuation(request),
    )
    sha = base64.b64encode(bytes.fromhex(row.sha256)).decode()
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.name,
        content_disposition_type="attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Repr-Digest": f"sha-256=:{sha}:",
            "X-Content-SHA256": row.sha256,
            "X-Content-SM3": row.sm3,
        },
    )


@packages_router.post(
    "/{package_id}/receipt", response_model=ReceiptRead, status_code=201, summary="签收（由本节点签名的回执）"
)
def sign_receipt(
    request: Request, session: DbSession, actor: CurrentActor, package_id: str, body: ReceiptIn | None = None
) -> Any:
    return files_service.receipt(
        session,
        actor=actor,
        package_id=package_id,
        received=body.files if body else None,
        settings=app_settings(request),
    )


@packages_router.get(
    "/{package_id}/receipts/{receipt_id}", response_model=ReceiptDocument, summary="回执原文与签名（可离线核验）"
)
def get_receipt(session: DbSession, actor: CurrentActor, package_id: str, receipt_id: str) -> dict[str, Any]:
    return files_service.receipt_document(session, actor=actor, package_id=package_id, receipt_id=receipt_id)


@packages_router.post("/{package_id}/receipts/verify", summary="发送方核验一份回执")
def verify_receipt(session: DbSession, actor: CurrentActor, package_id: str, body: ReceiptDocument) -> dict[str, Any]:
    doc = files_service.recheck_receipt(
        session, actor=actor, package_id=package_id, document=body.document, signature=body.signature
    )
    return {"valid": True, "recipient": doc["recipient"], "received_at": doc["received_at"], "files": doc["files"]}


@packages_router.post("/{package_id}/withdraw", response_model=PackageRead, summary="撤回文件包（不再提供下载）")
def withdraw_package(session: DbSession, actor: CurrentActor, package_id: str, body: WithdrawIn) -> dict[str, Any]:
    package = files_service.withdraw(session, actor=actor, package_id=package_id, reason=body.reason)
    return files_service.to_read(session, package, actor, url_prefix=PREFIX)


# ---- ferry -----------------------------------------------------------------------------------------------


def export_read(export: FerryExport) -> dict[str, Any]:
    data = ExportRead.model_validate(export).model_dump()
    data["state_label"] = EXPORT_STATE_LABELS.get(export.state, export.state)
    data["files"] = [{k: v for k, v in f.items() if k != "stored_name"} for f in export.files]
    return data


@ferry_router.get("/exports", response_model=Page[ExportRead], summary="摆渡导出申请列表")
def list_exports(
    session: DbSession,
    actor: CurrentActor,
    state: str | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    stmt = ferry.list_exports(actor, state=state).order_by(FerryExport.created_at.desc(), FerryExport.id)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": [export_read(e) for e in rows], "next_cursor": next_cursor, "total": total}


@ferry_router.post("/exports", response_model=ExportRead, status_code=201, summary="提交摆渡导出申请")
def create_export(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    title: Annotated[str, Form()],
    classification: Annotated[str, Form(description="密级，须为“非涉密”")],
    target_node: Annotated[str, Form(description="目标节点代码（对方网络的节点）")],
    files: Annotated[list[UploadFile], File()],
    purpose: Annotated[str, Form()] = "",
) -> dict[str, Any]:
    try:
        export_in = ExportIn(title=title, purpose=purpose, classification=classification, target_node=target_node)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    export = ferry.request_export(
        session, actor=actor, export_in=export_in, files=incoming(files), settings=app_settings(request)
    )
    return export_read(export)


@ferry_router.post(
    "/exports/data", response_model=ExportRead, status_code=201, summary="提交数据导出申请（开放信息项，按规则脱敏）"
)
def create_data_export(request: Request, session: DbSession, actor: CurrentActor, body: DataExportIn) -> dict[str, Any]:
    export = ferry.request_data_export(
        session,
        actor=actor,
        export_in=ExportIn.model_validate(body.model_dump(exclude={"resource_id"})),
        resource_id=body.resource_id,
        settings=app_settings(request),
    )
    return export_read(export)


@ferry_router.get("/exports/{export_id}", response_model=ExportRead, summary="摆渡导出申请详情")
def get_export(session: DbSession, actor: CurrentActor, export_id: str) -> dict[str, Any]:
    return export_read(ferry.get_export(session, actor=actor, export_id=export_id))


@ferry_router.post(
    "/exports/{export_id}/{verb}", response_model=ExportRead, summary="审批或撤回：approve / refuse / withdraw"
)
def export_action(
    request: Request, session: DbSession, actor: CurrentActor, export_id: str, verb: str, body: DecisionIn | None = None
) -> dict[str, Any]:
    settings = app_settings(request)
    comment = body.comment if body else ""
    if verb in ("approve", "refuse"):
        export = ferry.decide(
            session, actor=actor, export_id=export_id, approve=verb == "approve", comment=comment, settings=settings
        )
    elif verb == "withdraw":
        export = ferry.withdraw_export(session, actor=actor, export_id=export_id, settings=settings)
    else:
        raise ValidationFailed(f"不支持的操作 {verb}", code="ferry.bad_verb")
    return export_read(export)


@ferry_router.get("/ledger", response_model=Page[LedgerRead], summary="摆渡台账：导出、导入与拒收记录")
def list_ledger(
    session: DbSession,
    actor: CurrentActor,
    direction: Annotated[str | None, Query(description="export / import")] = None,
    outcome: Annotated[str | None, Query(description="exported / imported / refused")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    authz.ensure(actor, "ferry.ledger")
    stmt = ferry.ledger_query(direction=direction, outcome=outcome).order_by(FerryLedger.at.desc(), FerryLedger.id)
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    return {"items": rows, "next_cursor": next_cursor, "total": total}


@ferry_router.post("/import", summary="导入摆渡导入目录中的全部摆渡包")
def import_inbox(request: Request, session: DbSession, actor: CurrentActor) -> dict[str, Any]:
    authz.ensure(actor, "ferry.operate")
    settings = app_settings(request)
    results = [
        ferry.import_bundle(session, actor=actor, path=path, settings=settings)
        for path in ferry.pending_bundles(settings)
    ]
    return {
        "imported": sum(r.accepted for r in results),
        "refused": sum(not r.accepted for r in results),
        "results": [r.__dict__ for r in results],
    }


@ferry_router.get("/keys", response_model=list[NodeKeyRead], summary="本节点密钥与受信任的对端公钥")
def list_keys(session: DbSession, actor: CurrentActor) -> list[Any]:
    authz.ensure(actor, "ferry.operate")
    return nodekeys.list_keys(session)


router.include_router(packages_router)
router.include_router(ferry_router)
