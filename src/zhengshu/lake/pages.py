"""Data source pages: my organization's sources, registering one (with a file upload), testing the
connection, its tables and a table's structure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from zhengshu.catalog.enums import DATA_TYPE_LABELS
from zhengshu.core.errors import Forbidden, ZhengshuError
from zhengshu.lake import service as lake_service
from zhengshu.lake.api import upload_file
from zhengshu.lake.connectors import FILE_DB_KINDS, FILE_KINDS, SERVER_KINDS, TableRef
from zhengshu.lake.models import SOURCE_KIND_LABELS
from zhengshu.lake.schemas import DataSourceIn
from zhengshu.org import service as org_service
from zhengshu.security import authz
from zhengshu.security.actor import Actor
from zhengshu.web.deps import Csrf, CurrentActor, DbSession
from zhengshu.web.forms import form_errors, redirect
from zhengshu.web.templating import flash, render

router = APIRouter(include_in_schema=False)

KIND_GROUPS = {
    "server": sorted(SERVER_KINDS),
    "filedb": sorted(FILE_DB_KINDS),
    "file": sorted(FILE_KINDS),
}


def _data_dir(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir)


def _location(source: Any) -> str:
    if source.host:
        port = f":{source.port}" if source.port else ""
        return f"{source.host}{port}/{source.database or ''}"
    return Path(str(source.options.get("path") or "")).name


def _list_page(
    request: Request,
    session: DbSession,
    actor: Actor,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    sources = lake_service.list_sources(session, actor=actor)
    org_ids = {s.owner_org_id for s in sources}
    orgs = {
        o.id: o.short_name or o.name
        for o in org_service.list_organizations(session, include_inactive=True)
        if o.id in org_ids
    }
    return render(
        request,
        "lake/sources.html",
        {
            "sources": sources,
            "org_names": orgs,
            "locations": {s.id: _location(s) for s in sources},
            "kind_labels": SOURCE_KIND_LABELS,
            "kind_groups": KIND_GROUPS,
            "can_manage": authz.allowed(actor, "lake.manage"),
            "form": form or {"kind": "postgresql"},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return _list_page(request, session, actor)


@router.post("/sources", dependencies=[Csrf])
def register_source(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    host: Annotated[str, Form()] = "",
    port: Annotated[str, Form()] = "",
    database: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    schema_name: Annotated[str, Form(alias="schema")] = "",
    path: Annotated[str, Form()] = "",
    sheet: Annotated[str, Form()] = "",
    delimiter: Annotated[str, Form()] = "",
    encoding: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    authz.ensure(actor, "lake.manage")
    form = {
        "name": name.strip(),
        "kind": kind,
        "host": host.strip(),
        "port": port.strip(),
        "database": database.strip(),
        "username": username.strip(),
        "schema": schema_name.strip(),
        "path": path.strip(),
        "sheet": sheet.strip(),
        "delimiter": delimiter,
        "encoding": encoding.strip(),
        "description": description.strip(),
    }
    try:
        if file is not None and file.filename and kind in FILE_KINDS:
            stored, _size = upload_file(actor=actor, data_dir=_data_dir(request), file=file)
            form["path"] = str(stored)
        options = {
            k: v
            for k, v in {
                "schema": form["schema"],
                "path": form["path"],
                "sheet": form["sheet"],
                "delimiter": form["delimiter"],
                "encoding": form["encoding"],
            }.items()
            if v
        }
        source_in = DataSourceIn.model_validate(
            {
                "name": form["name"],
                "kind": kind,
                "host": form["host"] or None,
                "port": form["port"] or None,
                "database": form["database"] or None,
                "username": form["username"] or None,
                "password": password or None,
                "description": form["description"],
                "options": options,
            }
        )
        source = lake_service.register_source(session, actor=actor, source_in=source_in, data_dir=_data_dir(request))
    except (ValidationError, ZhengshuError) as exc:
        if isinstance(exc, ZhengshuError) and exc.status not in (409, 422):
            raise
        errors = form_errors(exc)
        if isinstance(exc, ZhengshuError) and exc.code == "lake.duplicate_name":
            errors = {"name": exc.detail}
        return _list_page(request, session, actor, form=form, errors=errors, status_code=422)
    flash(
        request,
        f"已登记数据源：{source.name}。建议先检测连接，再查看其中的表。",
        link=f"/sources/{source.id}",
    )
    return redirect(f"/sources/{source.id}")


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source_page(request: Request, session: DbSession, actor: CurrentActor, source_id: str) -> Response:
    source = lake_service.get_source(session, actor=actor, source_id=source_id)
    tables: list[TableRef] = []
    tables_error = ""
    can_manage = authz.allowed(actor, "lake.manage", source)
    if can_manage:
        try:
            tables = lake_service.list_source_tables(session, actor=actor, source_id=source_id)
        except Forbidden:
            can_manage = False
        except ZhengshuError as exc:  # an unreachable source is shown, not raised
            tables_error = exc.detail
    owner = org_service.get_organization(session, org_id=source.owner_org_id)
    return render(
        request,
        "lake/source.html",
        {
            "source": source,
            "owner": owner,
            "tables": tables,
            "tables_error": tables_error,
            "can_manage": can_manage,
        },
    )


@router.post("/sources/{source_id}/test", dependencies=[Csrf])
def test_source(request: Request, session: DbSession, actor: CurrentActor, source_id: str) -> Response:
    source = lake_service.test_source(session, actor=actor, source_id=source_id)
    if source.last_check_ok:
        flash(
            request,
            f"连接检测通过：{source.name}。{source.last_check_message or ''}",
            link=f"/sources/{source.id}",
        )
    else:
        flash(
            request,
            f"连接检测未通过：{source.last_check_message}",
            kind="error",
            link=f"/sources/{source.id}",
        )
    return redirect(f"/sources/{source.id}")


@router.post("/sources/{source_id}/delete", dependencies=[Csrf])
def delete_source(request: Request, session: DbSession, actor: CurrentActor, source_id: str) -> Response:
    source = lake_service.get_source(session, actor=actor, source_id=source_id)
    name = source.name
    lake_service.delete_source(session, actor=actor, source_id=source_id)
    flash(request, f"已删除数据源：{name}")
    return redirect("/sources")


@router.get("/sources/{source_id}/tables/{table}", response_class=HTMLResponse)
def table_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    source_id: str,
    table: str,
    schema: str | None = None,
) -> Response:
    source = lake_service.get_source(session, actor=actor, source_id=source_id)
    description = lake_service.describe_table(
        session, actor=actor, source_id=source_id, table=TableRef(schema=schema or None, name=table)
    )
    return render(request, "lake/table.html", {"source": source, "d": description, "type_labels": DATA_TYPE_LABELS})
