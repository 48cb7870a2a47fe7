"""Pages of file exchange and the ferry: inbox and outbox, the send form (upload with a progress bar), a package
with its files, recipients and receipts; ferry export requests with their approval, and the ferry ledger."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.core.errors import NotFound, ZhengshuError
from zhengshu.exchange.files import ferry
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.api import _is_continuation, app_settings, incoming
from zhengshu.exchange.files.models import FerryExport, FilePackage
from zhengshu.exchange.files.schemas import EXPORT_STATE_LABELS, LEDGER_OUTCOME_LABELS, ExportIn, PackageIn
from zhengshu.org.models import Organization
from zhengshu.security import authz, filecheck
from zhengshu.security.actor import Actor
from zhengshu.security.masking import RULES
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, page_links, redirect
from zhengshu.web.pagination import paginate
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
BOXES = {"received": "收件箱", "sent": "发件箱", "all": "全部"}


def _recipient_choices(session: Session, actor: Actor) -> list[Organization]:
    return list(
        session.scalars(
            select(Organization)
            .where(Organization.active.is_(True), Organization.id != (actor.org_id or ""))
            .order_by(Organization.region_code, Organization.name)
        )
    )


def _form_context(
    session: Session, request: Request, actor: Actor, values: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    settings = app_settings(request)
    return {
        "orgs": _recipient_choices(session, actor),
        "values": values,
        "errors": errors,
        "allowed_types": filecheck.allowed_label(settings.files_allowed_types),
        "accept": ",".join(
            ext
            for code in settings.files_allowed_types
            if code in filecheck.TYPES
            for ext in filecheck.TYPES[code].extensions
        ),
        "max_file_mb": settings.files_max_file_mb,
        "max_files": settings.files_max_files,
        "default_days": settings.files_default_expiry_days,
        "max_days": settings.files_max_expiry_days,
    }


@router.get("/exchange/packages", response_class=HTMLResponse)
def packages_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    box: str = "received",
    q: str = "",
    cursor: str | None = None,
) -> Response:
    if box not in BOXES:
        box = "received"
    stmt = files_service.list_query(actor, box=box, q=q or None).order_by(FilePackage.created_at.desc(), FilePackage.id)
    rows, next_cursor, _ = paginate(session, stmt, limit=PAGE_SIZE, cursor=cursor, count=False)
    names = files_service.org_names(session, list({p.sender_org_id for p in rows}))
    return render(
        request,
        "files/list.html",
        {
            "items": [files_service.to_summary(p, actor, names) for p in rows],
            "recipients": {p.id: "、".join(r.org_name for r in p.recipients) for p in rows},
            "box": box,
            "boxes": BOXES,
            "q": q,
            "next_url": page_links(request, next_cursor),
            "may_send": authz.allowed(actor, "files.send"),
        },
    )


@router.get("/exchange/packages/new", response_class=HTMLResponse)
def send_form(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    authz.ensure(actor, "files.send")
    return render(request, "files/send.html", _form_context(session, request, actor, {}, {}))


@router.post("/exchange/packages/new", dependencies=[Csrf], response_class=HTMLResponse)
def send_submit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    title: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    recipient_org_ids: Annotated[list[str] | None, Form()] = None,
    expires_days: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    values = {"title": title, "note": note, "recipient_org_ids": recipient_org_ids or [], "expires_days": expires_days}
    try:
        package_in = PackageIn(
            title=title,
            note=note,
            recipient_org_ids=recipient_org_ids or [],
            expires_days=int(expires_days) if expires_days.strip().isdigit() else None,
        )
        package = files_service.send(
            session, actor=actor, package_in=package_in, files=incoming(files), settings=app_settings(request)
        )
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        ctx = _form_context(session, request, actor, values, form_errors(exc))
        return render(request, "files/send.html", ctx, status_code=422)
    names = "、".join(r.org_name for r in package.recipients)
    flash(
        request,
        f"文件包已发送给{names}，共 {package.file_count} 个文件，清单已签名。",
        link=f"/exchange/packages/{package.id}",
    )
    return redirect(f"/exchange/packages/{package.id}")


@router.get("/exchange/packages/{package_id}", response_class=HTMLResponse)
def package_page(request: Request, session: DbSession, actor: CurrentActor, package_id: str) -> Response:
    package = files_service.get_visible(session, actor=actor, package_id=package_id)
    data = files_service.to_read(session, package, actor, url_prefix="/exchange/packages")
    problem = None
    try:
        files_service.verify_manifest(session, package)
    except ZhengshuError as exc:
        problem = exc.detail
    return render(
        request,
        "files/detail.html",
        {
            "p": data,
            "problem": problem,
            "receipt_orgs": {r.org_id: r.org_name for r in package.recipients},
            "is_sender": authz.allowed(actor, "files.withdraw", package),
        },
    )


@router.get("/exchange/packages/{package_id}/files/{file_id}")
def package_file(request: Request, session: DbSession, actor: CurrentActor, package_id: str, file_id: str) -> Response:
    row, path = files_service.open_file(
        session,
        actor=actor,
        package_id=package_id,
        file_id=file_id,
        settings=app_settings(request),
        count=not _is_continuation(request),
    )
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.name,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store", "X-Content-SM3": row.sm3},
    )


@router.post("/exchange/packages/{package_id}/receipt", dependencies=[Csrf])
def receipt_submit(request: Request, session: DbSession, actor: CurrentActor, package_id: str) -> Response:
    try:
        row = files_service.receipt(session, actor=actor, package_id=package_id, settings=app_settings(request))
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        flash(request, f"签收未完成：{exc.detail}", kind="error")
        return redirect(f"/exchange/packages/{package_id}")
    flash(request, f"已签收，回执已由本节点签名并经发送方核验{'（文件齐全、摘要一致）' if row.complete else ''}。")
    return redirect(f"/exchange/packages/{package_id}")


@router.post("/exchange/packages/{package_id}/withdraw", dependencies=[Csrf])
def withdraw_submit(
    request: Request, session: DbSession, actor: CurrentActor, package_id: str, reason: Annotated[str, Form()] = ""
) -> Response:
    try:
        files_service.withdraw(session, actor=actor, package_id=package_id, reason=reason.strip() or "发送部门撤回")
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        flash(request, exc.detail, kind="error")
        return redirect(f"/exchange/packages/{package_id}")
    flash(request, "文件包已撤回，接收部门不能再下载。")
    return redirect(f"/exchange/packages/{package_id}")


# ---- ferry -----------------------------------------------------------------------------------------------


def _ferry_context(
    session: Session, request: Request, actor: Actor, values: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    rows = list(session.scalars(ferry.list_exports(actor).order_by(FerryExport.created_at.desc()).limit(50)))
    settings = app_settings(request)
    peers = [k for k in files_service.nodekeys.list_keys(session) if not k.is_local and k.status == "active"]
    return {
        "resources": _own_tables(session, actor) if authz.allowed(actor, "ferry.request") else [],
        "exports": rows,
        "state_labels": EXPORT_STATE_LABELS,
        "outcome_labels": LEDGER_OUTCOME_LABELS,
        "ledger": ferry.ledger(session, actor=actor, limit=50) if authz.allowed(actor, "ferry.ledger") else None,
        "may_request": authz.allowed(actor, "ferry.request"),
        "may_operate": authz.allowed(actor, "ferry.operate"),
        "pending": len(ferry.pending_bundles(settings)) if authz.allowed(actor, "ferry.operate") else 0,
        "peers": peers,
        "values": values,
        "errors": errors,
        "allowed_types": filecheck.allowed_label(settings.files_allowed_types),
    }


def _own_tables(session: Session, actor: Actor) -> list[Any]:
    """The department's mounted tables of published entries: what a data export may carry."""
    from zhengshu.catalog.models import CatalogEntry, MountedResource

    return list(
        session.execute(
            select(MountedResource, CatalogEntry.name)
            .join(CatalogEntry, CatalogEntry.id == MountedResource.entry_id)
            .where(
                CatalogEntry.provider_org_id == (actor.org_id or ""),
                CatalogEntry.published_version_id.is_not(None),
                MountedResource.active.is_(True),
                MountedResource.source_id.is_not(None),
            )
            .order_by(CatalogEntry.name)
        ).all()
    )


@router.post("/exchange/ferry/exports/data", dependencies=[Csrf], response_class=HTMLResponse)
def ferry_data_request_submit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    title: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    classification: Annotated[str, Form()] = "",
    target_node: Annotated[str, Form()] = "",
    resource_id: Annotated[str, Form()] = "",
) -> Response:
    values = {"title": title, "purpose": purpose, "classification": classification, "target_node": target_node}
    try:
        export = ferry.request_data_export(
            session,
            actor=actor,
            export_in=ExportIn(title=title, purpose=purpose, classification=classification, target_node=target_node),
            resource_id=resource_id,
            settings=app_settings(request),
        )
    except (ValidationError, ZhengshuError) as exc:
        session.rollback()
        ctx = _ferry_context(session, request, actor, values, form_errors(exc))
        return render(request, "files/ferry.html", ctx, status_code=404 if isinstance(exc, NotFound) else 422)
    flash(
        request,
        f"数据导出申请已提交（{export.data_source['rows']:,} 行，已按规则脱敏），待数据主管部门审批。",
        link=f"/exchange/ferry/exports/{export.id}",
    )
    return redirect(f"/exchange/ferry/exports/{export.id}")


@router.get("/exchange/ferry", response_class=HTMLResponse)
def ferry_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return render(request, "files/ferry.html", _ferry_context(session, request, actor, {}, {}))


@router.post("/exchange/ferry/exports", dependencies=[Csrf], response_class=HTMLResponse)
def ferry_request_submit(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    title: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    classification: Annotated[str, Form()] = "",
    target_node: Annotated[str, Form()] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    values = {"title": title, "purpose": purpose, "classification": classification, "target_node": target_node}
    try:
        export = ferry.request_export(
            session,
            actor=actor,
            export_in=ExportIn(title=title, purpose=purpose, classification=classification, target_node=target_node),
            files=incoming(files),
            settings=app_settings(request),
        )
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        ctx = _ferry_context(session, request, actor, values, form_errors(exc))
        return render(request, "files/ferry.html", ctx, status_code=422)
    flash(request, "摆渡导出申请已提交，待数据主管部门审批。", link=f"/exchange/ferry/exports/{export.id}")
    return redirect(f"/exchange/ferry/exports/{export.id}")


@router.get("/exchange/ferry/exports/{export_id}", response_class=HTMLResponse)
def export_page(request: Request, session: DbSession, actor: CurrentActor, export_id: str) -> Response:
    from zhengshu.workflow import service as workflow_service

    export = ferry.get_export(session, actor=actor, export_id=export_id)
    ticket = workflow_service.get(session, ticket_id=export.ticket_id) if export.ticket_id else None
    return render(
        request,
        "files/export.html",
        {
            "e": export,
            "ticket": ticket,
            "state_labels": EXPORT_STATE_LABELS,
            "masking_labels": RULES,
            "may_decide": export.state == "submitted" and authz.allowed(actor, "ferry.approve", export),
        },
    )


@router.post("/exchange/ferry/exports/{export_id}/{verb}", dependencies=[Csrf])
def export_action(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    export_id: str,
    verb: str,
    comment: Annotated[str, Form()] = "",
) -> Response:
    try:
        if verb not in ("approve", "refuse", "withdraw"):
            raise NotFound("不支持的操作", code="ferry.bad_verb")
        if verb == "withdraw":
            ferry.withdraw_export(session, actor=actor, export_id=export_id, settings=app_settings(request))
            message = "已撤回摆渡导出申请。"
        else:
            export = ferry.decide(
                session,
                actor=actor,
                export_id=export_id,
                approve=verb == "approve",
                comment=comment,
                settings=app_settings(request),
            )
            message = f"已批准，摆渡包 {export.bundle_id} 已写入导出目录。" if verb == "approve" else "已不予批准。"
    except ZhengshuError as exc:
        if isinstance(exc, NotFound):
            raise
        session.rollback()
        flash(request, exc.detail, kind="error")
        return redirect(f"/exchange/ferry/exports/{export_id}")
    flash(request, message)
    return redirect(f"/exchange/ferry/exports/{export_id}")


@router.post("/exchange/ferry/import", dependencies=[Csrf])
def import_submit(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    authz.ensure(actor, "ferry.operate")
    settings = app_settings(request)
    results = [
        ferry.import_bundle(session, actor=actor, path=p, settings=settings) for p in ferry.pending_bundles(settings)
    ]
    accepted = sum(r.accepted for r in results)
    flash(
        request,
        f"已处理 {len(results)} 个摆渡包：导入 {accepted} 个，拒收并隔离 {len(results) - accepted} 个。",
        kind="success" if accepted == len(results) else "error",
    )
    return redirect("/exchange/ferry")
