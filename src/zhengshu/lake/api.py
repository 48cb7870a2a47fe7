"""HTTP API of registered data sources: /api/v1/lake/… (secrets are write-only and never returned)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhengshu.core.errors import FieldError, ValidationFailed
from zhengshu.lake import service as lake_service
from zhengshu.lake.connectors import TableRef
from zhengshu.lake.schemas import (
    DataSourceIn,
    DataSourceRead,
    DataSourceUpdate,
    SourceKind,
    TableDescriptionRead,
    TableRefRead,
)
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.web.deps import CurrentActor, DbSession
from zhengshu.web.pagination import Count, Cursor, Limit, Page, page_of

router = APIRouter(prefix="/lake", tags=["lake"])


class UploadRead(BaseModel):
    path: str = Field(description="服务器上的存放路径；登记 csv/xlsx/parquet 数据源时填入 options.path")
    filename: str = Field(description="上传时的文件名")
    size: int = Field(description="字节数")


def data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


@router.get("/sources", response_model=Page[DataSourceRead], summary="数据源列表（本部门；管理员为全部）")
def list_sources(
    session: DbSession,
    actor: CurrentActor,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
    kind: Annotated[SourceKind | None, Query(description="按类型筛选")] = None,
) -> dict[str, Any]:
    sources = lake_service.list_sources(session, actor=actor, kind=kind)
    return page_of(sources, limit=limit, cursor=cursor, count=count)


@router.post("/sources", response_model=DataSourceRead, status_code=201, summary="登记数据源")
def register_source(request: Request, session: DbSession, actor: CurrentActor, source_in: DataSourceIn) -> Any:
    return lake_service.register_source(session, actor=actor, source_in=source_in, data_dir=data_dir(request))


@router.get("/sources/{source_id}", response_model=DataSourceRead, summary="数据源详情")
def get_source(session: DbSession, actor: CurrentActor, source_id: str) -> Any:
    return lake_service.get_source(session, actor=actor, source_id=source_id)


@router.patch("/sources/{source_id}", response_model=DataSourceRead, summary="修改数据源（口令不填则保持不变）")
def update_source(
    request: Request, session: DbSession, actor: CurrentActor, source_id: str, source_in: DataSourceUpdate
) -> Any:
    return lake_service.update_source(
        session, actor=actor, source_id=source_id, source_in=source_in, data_dir=data_dir(request)
    )


@router.delete("/sources/{source_id}", status_code=204, summary="删除数据源")
def delete_source(session: DbSession, actor: CurrentActor, source_id: str) -> Response:
    lake_service.delete_source(session, actor=actor, source_id=source_id)
    return Response(status_code=204)


@router.post(
    "/sources/{source_id}/test",
    response_model=DataSourceRead,
    summary="检测连接（结果记入 last_check_ok / last_check_message）",
)
def test_source(session: DbSession, actor: CurrentActor, source_id: str) -> Any:
    return lake_service.test_source(session, actor=actor, source_id=source_id)


@router.get("/sources/{source_id}/tables", response_model=Page[TableRefRead], summary="数据源中的表和视图")
def list_tables(
    session: DbSession,
    actor: CurrentActor,
    source_id: str,
    limit: Limit = 20,
    cursor: Cursor = None,
    count: Count = False,
) -> dict[str, Any]:
    tables = lake_service.list_source_tables(session, actor=actor, source_id=source_id)
    return page_of(tables, limit=limit, cursor=cursor, count=count)


@router.get(
    "/sources/{source_id}/tables/{table}",
    response_model=TableDescriptionRead,
    summary="表结构：字段、类型、行数、更新时间",
)
def describe_table(
    session: DbSession,
    actor: CurrentActor,
    source_id: str,
    table: str,
    schema: Annotated[str | None, Query(max_length=128, description="模式名（不填用数据源的默认模式）")] = None,
) -> Any:
    ref = TableRef(schema=schema or None, name=table)
    return lake_service.describe_table(session, actor=actor, source_id=source_id, table=ref)


def upload_file(*, actor: Actor, data_dir: Path, file: UploadFile) -> tuple[Path, int]:
    """Store an uploaded file in the actor's organization's upload area (shared with the pages)."""
    # Uploading is the first step of registering a file source: the same people may do it.
    authz.ensure(actor, "lake.manage")
    if not actor.org_id:
        raise ValidationFailed(
            "当前身份不属于任何部门，不能上传文件",
            code="lake.invalid_upload",
            errors=[FieldError("file", "当前身份不属于任何部门")],
        )
    content = file.file.read(lake_service.DEFAULT_UPLOAD_MAX_BYTES + 1)
    path = lake_service.save_upload(
        data_dir=data_dir, org_id=actor.org_id, filename=file.filename or "", content=content
    )
    return path, len(content)


@router.post(
    "/uploads",
    response_model=UploadRead,
    status_code=201,
    summary="上传 CSV/XLSX/Parquet 文件到本部门上传区（随后以返回的路径登记数据源）",
)
def upload(request: Request, actor: CurrentActor, file: Annotated[UploadFile, File()]) -> UploadRead:
    path, size = upload_file(actor=actor, data_dir=data_dir(request), file=file)
    return UploadRead(path=str(path), filename=file.filename or "", size=size)
