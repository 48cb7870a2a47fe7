"""HTTP API of data objections: /api/v1/objections/…"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError

from zhengshu.catalog import service as catalog_service
from zhengshu.core.config import Settings
from zhengshu.core.errors import ValidationFailed
from zhengshu.objection import attachments as files
from zhengshu.objection import service as objection_service
from zhengshu.objection.models import Objection
from zhengshu.objection.schemas import (
    AnswerIn,
    ArbitrateIn,
    AttachmentRead,
    CommentIn,
    CorrectionRead,
    FlagRead,
    ForwardIn,
    ObjectionIn,
    ObjectionRead,
    ObjectionSummary,
    ReasonIn,
    StateCountRead,
    SupervisionRowRead,
)
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, paginate

router = APIRouter(prefix="/objections", tags=["objection"])

ListFilter = Annotated[list[str] | None, Query()]


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def read_uploads(uploads: list[UploadFile] | None, settings: Settings) -> list[files.Upload]:
    """Read at most one byte over the limit, so an oversized file is refused without holding all of it."""
    limit = files.max_bytes(settings)
    out = []
    for upload in uploads or []:
        if not upload.filename:
            continue  # an empty file input in a browser form
        out.append(files.Upload(upload.filename, upload.file.read(limit + 1)))
    return out


def validation_error(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(exc.errors())


# ---- lists, flags, corrections, supervision (fixed paths before /{objection_id}) -----------------------


@router.get("", response_model=Page[ObjectionSummary], summary="数据异议列表")
def list_objections(
    session: DbSession,
    actor: CurrentActor,
    box: Annotated[
        str,
        Query(
            description=(
                "all 全部可见 / mine 本部门提出 / todo 待本部门处理 / "
                "provider 针对本部门数据 / arbitration 待督办与仲裁"
            )
        ),
    ] = "all",
    q: str | None = None,
    state: ListFilter = None,
    kind: ListFilter = None,
    target_type: ListFilter = None,
    entry_id: str | None = None,
    group_id: str | None = None,
    record_key: str | None = None,
    handler_org_id: ListFilter = None,
    objector_org_id: ListFilter = None,
    sort: Annotated[
        str, Query(description="排序字段：created_at, raised_on, answer_due_on, state, updated_at")
    ] = "-created_at",
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    field = sort.lstrip("-")
    if field not in objection_service.SORTS:
        raise ValidationFailed(f"不支持按 {field} 排序", code="objection.bad_sort")
    column = objection_service.SORTS[field]
    filters = objection_service.ObjectionFilters(
        box=box,
        q=q,
        state=state,
        kind=kind,
        target_type=target_type,
        entry_id=entry_id,
        group_id=group_id,
        record_key=record_key,
        handler_org_id=handler_org_id,
        objector_org_id=objector_org_id,
    )
    stmt = objection_service.list_query(actor, filters).order_by(
        column.desc() if sort.startswith("-") else column.asc(), Objection.id
    )
    rows, next_cursor, total = paginate(session, stmt, limit=limit, cursor=cursor, count=count)
    tickets = objection_service.tickets_by_id(session, rows)
    items = [objection_service.to_summary(o, tickets.get(o.ticket_id or "")) for o in rows]
    return {"items": items, "next_cursor": next_cursor, "total": total}


@router.get("/flags", response_model=list[FlagRead], summary="目录或记录上的异议标注")
def list_flags(
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    record_key: ListFilter = None,
    include_closed: bool = False,
) -> list[Any]:
    catalog_service.get(session, actor=actor, entry_id=entry_id)  # readers of the entry see its flags
    return objection_service.flags_for(
        session, entry_id=entry_id, record_keys=record_key, include_closed=include_closed
    )


@router.get("/corrections", response_model=list[CorrectionRead], summary="因异议作出的更正记录")
def list_corrections(
    session: DbSession,
    actor: CurrentActor,
    entry_id: str,
    record_key: str | None = None,
    item_key: str | None = None,
) -> list[Any]:
    catalog_service.get(session, actor=actor, entry_id=entry_id)
    return [
        objection_service.correction_read(c)
        for c in objection_service.corrections_for(session, entry_id=entry_id, record_key=record_key, item_key=item_key)
    ]


@router.get("/stats/states", response_model=list[StateCountRead], summary="按状态统计数据异议")
def stats_by_state(session: DbSession, actor: CurrentActor) -> list[dict[str, Any]]:
    return [
        {"state": s, "state_label": label, "count": n}
        for s, label, n in objection_service.counts_by_state(session, actor=actor)
    ]


@router.get(
    "/stats", response_model=list[SupervisionRowRead], summary="按办理部门和月份统计：数量、按时答复率、平均办理工作日"
)
def stats(
    session: DbSession, actor: CurrentActor, date_from: date | None = None, date_to: date | None = None
) -> list[dict[str, Any]]:
    rows = objection_service.supervision_rows(session, actor=actor, date_from=date_from, date_to=date_to)
    return [r.as_dict() for r in rows]


# ---- create and detail --------------------------------------------------------------------------------


@router.post("", response_model=ObjectionRead, status_code=201, summary="提出数据异议（multipart，可附佐证材料）")
def create_objection(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    entry_id: Annotated[str, Form(description="目录 id")],
    kind: Annotated[str, Form(description="wrong / missing / outdated / inconsistent")],
    description: Annotated[str, Form(description="异议说明")],
    item_key: Annotated[str | None, Form()] = None,
    resource_id: Annotated[str | None, Form()] = None,
    record_key: Annotated[str | None, Form()] = None,
    other_source: Annotated[str, Form()] = "",
    claimed_value: Annotated[str, Form()] = "",
    attachments: Annotated[
        list[UploadFile] | None, File(description="佐证材料：PDF、OFD、JPG、PNG、XLSX、DOCX、TXT、CSV")
    ] = None,
) -> dict[str, Any]:
    settings = app_settings(request)
    try:
        objection_in = ObjectionIn.model_validate(
            {
                "entry_id": entry_id,
                "kind": kind,
                "description": description,
                "item_key": item_key,
                "resource_id": resource_id,
                "record_key": record_key,
                "other_source": other_source,
                "claimed_value": claimed_value,
            }
        )
    except ValidationError as exc:
        raise validation_error(exc) from exc
    obj = objection_service.raise_objection(
        session,
        actor=actor,
        objection_in=objection_in,
        attachments=read_uploads(attachments, settings),
        settings=settings,
    )
    return objection_service.to_read(session, obj, actor=actor, just_raised=True)


@router.get("/{objection_id}", response_model=ObjectionRead, summary="异议详情（含办理时间线、附件、标注与更正）")
def get_objection(session: DbSession, actor: CurrentActor, objection_id: str) -> dict[str, Any]:
    obj = objection_service.get(session, actor=actor, objection_id=objection_id)
    return objection_service.to_read(session, obj, actor=actor)


# ---- actions ------------------------------------------------------------------------------------------


def _done(session: DbSession, actor: CurrentActor, obj: Objection) -> dict[str, Any]:
    return objection_service.to_read(session, obj, actor=actor)


@router.post("/{objection_id}/accept", response_model=ObjectionRead, summary="受理（同组异议一并受理，并标注数据）")
def accept(session: DbSession, actor: CurrentActor, objection_id: str, body: CommentIn | None = None) -> dict[str, Any]:
    obj = objection_service.accept(
        session, actor=actor, objection_id=objection_id, comment=body.comment if body else ""
    )
    return _done(session, actor, obj)


@router.post("/{objection_id}/answer", response_model=ObjectionRead, summary="答复：已更正 / 经核实无误")
def answer(session: DbSession, actor: CurrentActor, objection_id: str, body: AnswerIn) -> dict[str, Any]:
    return _done(
        session, actor, objection_service.answer(session, actor=actor, objection_id=objection_id, answer_in=body)
    )


@router.post("/{objection_id}/forward", response_model=ObjectionRead, summary="转办至实际数据来源部门（期限重新计算）")
def forward(session: DbSession, actor: CurrentActor, objection_id: str, body: ForwardIn) -> dict[str, Any]:
    return _done(
        session, actor, objection_service.forward(session, actor=actor, objection_id=objection_id, forward_in=body)
    )


@router.post("/{objection_id}/urge", response_model=ObjectionRead, summary="督办逾期异议（数据主管部门）")
def urge(session: DbSession, actor: CurrentActor, objection_id: str, body: CommentIn | None = None) -> dict[str, Any]:
    obj = objection_service.urge(session, actor=actor, objection_id=objection_id, comment=body.comment if body else "")
    return _done(session, actor, obj)


@router.post("/{objection_id}/confirm", response_model=ObjectionRead, summary="确认答复并办结")
def confirm(
    session: DbSession, actor: CurrentActor, objection_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    obj = objection_service.confirm(
        session, actor=actor, objection_id=objection_id, comment=body.comment if body else ""
    )
    return _done(session, actor, obj)


@router.post("/{objection_id}/dispute", response_model=ObjectionRead, summary="对答复有异议，提请数据主管部门仲裁")
def dispute(session: DbSession, actor: CurrentActor, objection_id: str, body: ReasonIn) -> dict[str, Any]:
    obj = objection_service.dispute(session, actor=actor, objection_id=objection_id, reason=body.reason)
    return _done(session, actor, obj)


@router.post("/{objection_id}/arbitrate", response_model=ObjectionRead, summary="仲裁裁定：维持更正 / 责令更正 / 驳回")
def arbitrate(session: DbSession, actor: CurrentActor, objection_id: str, body: ArbitrateIn) -> dict[str, Any]:
    obj = objection_service.arbitrate(session, actor=actor, objection_id=objection_id, arbitrate_in=body)
    return _done(session, actor, obj)


@router.post("/{objection_id}/withdraw", response_model=ObjectionRead, summary="撤回异议")
def withdraw(
    session: DbSession, actor: CurrentActor, objection_id: str, body: CommentIn | None = None
) -> dict[str, Any]:
    obj = objection_service.withdraw(
        session, actor=actor, objection_id=objection_id, reason=body.comment if body else ""
    )
    return _done(session, actor, obj)


# ---- attachments --------------------------------------------------------------------------------------


@router.post(
    "/{objection_id}/attachments", response_model=list[AttachmentRead], status_code=201, summary="补充上传佐证材料"
)
def upload_attachments(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    objection_id: str,
    attachments: Annotated[list[UploadFile], File(description="佐证材料")],
) -> list[dict[str, Any]]:
    settings = app_settings(request)
    rows = objection_service.add_attachments(
        session,
        actor=actor,
        objection_id=objection_id,
        attachments=read_uploads(attachments, settings),
        settings=settings,
    )
    return [
        {
            **AttachmentRead.model_validate(r).model_dump(),
            "download_url": f"/api/v1/objections/{objection_id}/attachments/{r.id}",
        }
        for r in rows
    ]


def download_response(row: Any, path: Any) -> FileResponse:
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.filename,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )


@router.get("/{objection_id}/attachments/{attachment_id}", summary="下载佐证材料（仅限异议相关方）")
def download_attachment(
    request: Request, session: DbSession, actor: CurrentActor, objection_id: str, attachment_id: str
) -> FileResponse:
    row, path = objection_service.attachment_file(
        session,
        actor=actor,
        objection_id=objection_id,
        attachment_id=attachment_id,
        data_dir=app_settings(request).data_dir,
    )
    return download_response(row, path)
