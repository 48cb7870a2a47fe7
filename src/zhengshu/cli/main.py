"""The ``zhengshu`` command: ``zhengshu <feature> <verb>``; ``--json`` for machines, Rich for people.
Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import Database
from zhengshu.core.errors import ZhengshuError

app = typer.Typer(help="政数：一体化政务大数据体系平台", no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="数据库迁移", no_args_is_help=True)
catalog_app = typer.Typer(help="资源目录：导入、导出、检索索引", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志", no_args_is_help=True)
user_app = typer.Typer(help="用户管理", no_args_is_help=True)
org_app = typer.Typer(help="组织机构与行政区划", no_args_is_help=True)
calendar_app = typer.Typer(help="工作日与节假日安排", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(calendar_app, name="calendar")
# workflows.py defines its apps before importing this module back for the helpers: either may load first
from zhengshu.cli.workflows import application_app, authorization_app, objection_app, request_app  # noqa: E402

app.add_typer(application_app, name="application")
app.add_typer(authorization_app, name="authorization")
app.add_typer(request_app, name="request")
app.add_typer(objection_app, name="objection")
from zhengshu.cli.files import ferry_app, files_app  # noqa: E402
from zhengshu.cli.gateway import gateway_app  # noqa: E402
from zhengshu.cli.opendata import opendata_app  # noqa: E402
from zhengshu.cli.sync import sync_app  # noqa: E402

app.add_typer(gateway_app, name="gateway")
app.add_typer(sync_app, name="sync")
app.add_typer(files_app, name="files")
app.add_typer(ferry_app, name="ferry")
app.add_typer(opendata_app, name="opendata")
from zhengshu.cli.open_public import open_public_app  # noqa: E402

app.add_typer(open_public_app, name="open-public")

console = Console()
err = Console(stderr=True)

AsUser = Annotated[str, typer.Option("--as", help="以哪个用户的身份执行（权限与审计按该用户）")]
JsonOut = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]


def _database(settings: Settings | None = None) -> Database:
    from zhengshu.bootstrap import load_features

    load_features()
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url())


def _actor(session: Any, username: str) -> Any:
    from zhengshu.org import service as org_service

    user = org_service.get_user_by_username(session, username=username)
    return org_service.actor_for(user, via="cli")


def _cli_actor() -> Any:
    from zhengshu.security.actor import SYSTEM_ACTOR

    return replace(SYSTEM_ACTOR, username="cli", display_name="命令行", via="cli")


def _audit(session: Any, actor: Any, action: str, target_type: str = "", target_id: str = "", **detail: Any) -> None:
    """Operator commands are audited like requests: who, what, when, from where (the local host)."""
    from zhengshu.audit import service as audit_service

    audit_service.record(
        session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        source_ip="127.0.0.1",
        detail=detail,
    )


def _fail(exc: ZhengshuError) -> None:
    err.print(f"[red]错误[/red] {exc.title}：{exc.detail}（{exc.code}）")
    for e in exc.errors[:50]:
        err.print(f"  · {e.field}：{e.message}")
    raise typer.Exit(1)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


# ---- serve and demo -----------------------------------------------------------------------------------


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    upgrade: Annotated[bool, typer.Option(help="启动前执行数据库迁移")] = True,
) -> None:
    """启动网页与接口服务。"""
    import uvicorn

    from zhengshu.core import migrate

    database = _database()
    if upgrade:
        migrate.upgrade(database)
    database.dispose()
    if workers > 1 and get_settings().runs_embedded_jobs():
        # each worker process would run its own consumer and repeat every periodic job
        os.environ["ZHENGSHU_EMBEDDED_JOBS"] = "false"
        console.print("多进程运行：后台任务不在服务进程内执行，请另行运行 [bold]zhengshu worker[/bold]")
    uvicorn.run("zhengshu.web.asgi:app", host=host, port=port, workers=workers, proxy_headers=True)


@app.command()
def worker(workers: int = 2) -> None:
    """运行后台任务（事件投递、每日复核提醒等；生产环境配合 Redis 使用）。"""
    from zhengshu.jobs import huey

    _database().dispose()
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=True)
    console.print(f"后台任务已启动（{workers} 个线程）")
    consumer.run()


@app.command()
def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    rebuild: Annotated[bool, typer.Option(help="删除已有的演示数据后重建")] = False,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="建好后启动服务")] = True,
    seed: int = 2026,
) -> None:
    """在数据目录中建立演示省（SQLite + DuckDB），并在 http://127.0.0.1:8000 提供服务。"""
    from zhengshu.demo.builder import DEMO_PASSWORD, build_demo

    settings = get_settings()
    marker = settings.data_dir / "demo.json"
    if rebuild or not marker.exists():
        if rebuild and settings.data_dir.exists():
            import shutil

            keep = settings.data_dir / "secret.key"
            secret = keep.read_text() if keep.exists() else None
            shutil.rmtree(settings.data_dir)
            if secret:
                settings.data_dir.mkdir(parents=True)
                keep.write_text(secret)
        database = _database(settings)
        summary = build_demo(database, settings=settings, seed=seed, console=console)
        database.dispose()
        marker.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    summary = json.loads(marker.read_text())
    table = Table(title=f"演示账号（密码均为 {DEMO_PASSWORD}）")
    for col in ("用户名", "姓名", "单位", "角色"):
        table.add_column(col)
    for u in summary["users"]:
        table.add_row(u["username"], u["display_name"], u["org"], u["roles"])
    console.print(table)
    console.print(f"目录 {summary['entries']:,} 条，数据目录 {settings.data_dir.resolve()}")
    if serve_after:
        console.print(f"[bold green]服务地址 http://{host}:{port}[/bold green]")
        serve(host=host, port=port, workers=1, upgrade=True)


# ---- db -----------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """把数据库迁移到最新版本（SQLite 与 PostgreSQL 均可）。"""
    from zhengshu.core import migrate

    database = _database()
    migrate.upgrade(database, revision)
    console.print(f"数据库已迁移到 {migrate.current(database)}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    from zhengshu.core import migrate

    database = _database()
    migrate.downgrade(database, revision)
    console.print(f"数据库已回退到 {migrate.current(database)}")


@db_app.command("current")
def db_current() -> None:
    from zhengshu.core import migrate

    console.print(migrate.current(_database()) or "（未初始化）")


# ---- catalog ------------------------------------------------------------------------------------------


@catalog_app.command("import")
def catalog_import(
    file: Path,
    as_user: AsUser,
    valid_only: Annotated[bool, typer.Option("--valid-only", help="文件有错误时仅导入无误的目录")] = False,
    as_json: JsonOut = False,
) -> None:
    """从 Excel 模板导入目录（有错误时默认不导入任何目录）。"""
    from zhengshu.catalog import excel, importing

    database = _database()
    content = file.read_bytes()
    try:
        with database.session() as session, progress() as bar:
            report = excel.parse_workbook(content)
            task = bar.add_task("导入目录", total=len(report.entries))
            result = importing.import_workbook(
                session,
                actor=_actor(session, as_user),
                content=content,
                valid_only=valid_only,
                progress=lambda: bar.advance(task),
            )
            _audit(
                session,
                _actor(session, as_user),
                "catalog.import",
                "file",
                file.name,
                created=result.created,
                updated=result.updated,
            )
    except ZhengshuError as exc:
        _fail(exc)
    if as_json:
        print(
            json.dumps(
                {
                    "created": result.created,
                    "updated": result.updated,
                    "skipped_entries": result.skipped_entries,
                    "errors": [e.__dict__ for e in result.errors],
                },
                ensure_ascii=False,
            )
        )
        return
    console.print(f"新建 {len(result.created)} 条，更新 {len(result.updated)} 条，跳过 {result.skipped_entries} 条")
    for e in result.errors:
        console.print(f"  [yellow]第 {e.row} 行「{e.column}」[/yellow]：{e.message}")


@catalog_app.command("export")
def catalog_export(file: Path, as_user: AsUser, status: Annotated[list[str] | None, typer.Option()] = None) -> None:
    """把可见的目录导出为 Excel 模板格式。"""
    from zhengshu.catalog import excel
    from zhengshu.catalog import service as catalog_service
    from zhengshu.catalog.models import CatalogEntry

    database = _database()
    with database.session() as session:
        actor = _actor(session, as_user)
        stmt = catalog_service.list_query(actor, catalog_service.EntryFilters(status=status))
        entries = list(session.scalars(stmt.order_by(CatalogEntry.code)))
        rows = []
        with progress() as bar:
            task = bar.add_task("读取目录", total=len(entries))
            for e in entries:
                rows.append(catalog_service.to_read(session, e))
                bar.advance(task)
        file.write_bytes(excel.export_workbook(rows))
    console.print(f"已导出 {len(rows):,} 条目录到 {file}")


@catalog_app.command("template")
def catalog_template(file: Path) -> None:
    """生成空白的目录编制模板。"""
    from zhengshu.catalog import excel

    file.write_bytes(excel.template_workbook())
    console.print(f"模板已写入 {file}")


@catalog_app.command("reindex")
def catalog_reindex() -> None:
    """重建目录检索索引。"""
    from sqlalchemy import select

    from zhengshu.catalog import indexing
    from zhengshu.catalog.models import CatalogEntry

    database = _database()
    with database.session() as session:
        ids = list(session.scalars(select(CatalogEntry.id)))
        with progress() as bar:
            task = bar.add_task("重建索引", total=len(ids))
            for entry_id in ids:
                indexing.reindex(session, entry_id)
                bar.advance(task)
    console.print(f"已重建 {len(ids):,} 条目录的索引")


# ---- audit --------------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(as_json: JsonOut = False) -> None:
    """校验审计日志哈希链（SM3），发现篡改时以 1 退出。"""
    from sqlalchemy import func, select

    from zhengshu.audit import service as audit_service
    from zhengshu.audit.models import AuditRecord

    database = _database()
    with database.session() as session:
        total = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
        with progress() as bar:
            task = bar.add_task("校验审计记录", total=total)
            report = audit_service.verify(session, progress=lambda done, _t: bar.update(task, completed=done))
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "first_bad_seq": report.first_bad_seq,
                    "reason": report.reason,
                },
                ensure_ascii=False,
            )
        )
    elif report.ok:
        console.print(f"[green]审计日志完整[/green]：共校验 {report.checked:,} 条记录")
    else:
        console.print(f"[red]审计日志被篡改[/red]：{report.reason}")
    raise typer.Exit(0 if report.ok else 1)


# ---- users and organizations --------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    username: str,
    org: Annotated[str, typer.Option(help="所属机构名称或 ID")],
    role: Annotated[list[str], typer.Option(help="admin / reviewer / officer / user")],
    display_name: Annotated[str, typer.Option("--name")] = "",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """新建用户。"""
    from sqlalchemy import or_, select

    from zhengshu.org import service as org_service
    from zhengshu.org.models import Organization
    from zhengshu.org.schemas import UserIn
    from zhengshu.security.actor import Role

    database = _database()
    try:
        with database.session() as session:
            found = session.scalars(
                select(Organization).where(or_(Organization.id == org, Organization.name == org))
            ).first()
            if found is None:
                err.print(f"[red]未找到机构 {org}[/red]")
                raise typer.Exit(1)
            user = org_service.create_user(
                session,
                actor=_cli_actor(),
                user_in=UserIn(
                    username=username,
                    display_name=display_name or username,
                    password=password,
                    org_id=found.id,
                    roles=[Role(r) for r in role],
                ),
            )
            _audit(session, _cli_actor(), "user.create", "user", user.id, roles=list(role))
            console.print(f"已创建用户 {user.username}（{found.name}）")
    except ZhengshuError as exc:
        _fail(exc)


@user_app.command("list")
def user_list(as_json: JsonOut = False) -> None:
    from zhengshu.org import service as org_service
    from zhengshu.security.actor import SYSTEM_ACTOR

    database = _database()
    with database.session() as session:
        users = org_service.list_users(session, actor=SYSTEM_ACTOR)
        rows = [
            {
                "username": u.username,
                "display_name": u.display_name,
                "org": u.org.name,
                "roles": ",".join(u.roles),
                "active": u.active,
            }
            for u in users
        ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("用户名", "姓名", "单位", "角色", "状态")
    for r in rows:
        table.add_row(r["username"], r["display_name"], r["org"], r["roles"], "启用" if r["active"] else "停用")
    console.print(table)


@user_app.command("passwd")
def user_passwd(
    username: str, password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)]
) -> None:
    """重置用户密码。"""
    from zhengshu.org import service as org_service
    from zhengshu.org.schemas import UserUpdate

    database = _database()
    try:
        with database.session() as session:
            user = org_service.get_user_by_username(session, username=username)
            org_service.update_user(session, actor=_cli_actor(), user_id=user.id, user_in=UserUpdate(password=password))
            _audit(session, _cli_actor(), "user.passwd", "user", user.id)
    except ZhengshuError as exc:
        _fail(exc)
    console.print(f"已重置 {username} 的密码")


@org_app.command("list")
def org_list(as_json: JsonOut = False) -> None:
    from zhengshu.org import service as org_service

    database = _database()
    with database.session() as session:
        rows = [
            {
                "id": o.id,
                "name": o.name,
                "uscc": o.uscc,
                "region_code": o.region_code,
                "is_data_authority": o.is_data_authority,
            }
            for o in org_service.list_organizations(session)
        ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("名称", "统一社会信用代码", "行政区划", "数据主管部门")
    for r in rows:
        table.add_row(r["name"], r["uscc"], r["region_code"], "是" if r["is_data_authority"] else "")
    console.print(table)


@org_app.command("create")
def org_create(
    name: str,
    uscc: str,
    region: str,
    short_name: str = "",
    parent: str | None = None,
    data_authority: bool = False,
    dept_number: str | None = None,
) -> None:
    """新建组织机构（统一社会信用代码会被校验）。"""
    from zhengshu.org import service as org_service
    from zhengshu.org.schemas import OrganizationIn

    database = _database()
    try:
        with database.session() as session:
            org = org_service.create_organization(
                session,
                actor=_cli_actor(),
                org_in=OrganizationIn(
                    name=name,
                    short_name=short_name,
                    uscc=uscc,
                    region_code=region,
                    parent_id=parent,
                    is_data_authority=data_authority,
                    dept_number=dept_number,
                ),
            )
            _audit(session, _cli_actor(), "org.create", "organization", org.id)
            console.print(f"已创建机构 {org.name}（{org.id}）")
    except ZhengshuError as exc:
        _fail(exc)


@org_app.command("load-regions")
def org_load_regions(province: str = "36") -> None:
    """从 GB/T 2260 区划表载入本省的市、县（含历史代码及其有效年份）。"""
    from zhengshu.demo.builder import load_regions

    database = _database()
    with database.session() as session:
        n = load_regions(session, province_prefix=province)
    console.print(f"已载入 {n} 个行政区划")


# ---- calendar -----------------------------------------------------------------------------------------


@calendar_app.command("import")
def calendar_import(year: int, file: Path, source: str = "", note: str = "") -> None:
    """导入国务院办公厅公布的某年节假日安排（CSV：date,kind,name），并重算已设定的办理期限。"""
    from zhengshu.calendar import service as calendar_service
    from zhengshu.calendar.schemas import HolidayYearIn
    from zhengshu.core.events import process_pending

    database = _database()
    try:
        with database.session() as session:
            calendar_service.load_schedules(session)
            days = calendar_service.parse_schedule_csv(file.read_text(encoding="utf-8-sig"))
            calendar_service.import_schedule(
                session,
                actor=_cli_actor(),
                year_in=HolidayYearIn(year=year, source=source, note=note, days=days),
            )
            _audit(session, _cli_actor(), "calendar.import", "holiday_year", str(year), days=len(days))
    except ZhengshuError as exc:
        _fail(exc)
    process_pending(database.session_factory)
    console.print(f"已导入 {year} 年节假日安排（{len(days)} 天），相关办理期限已重算")


@calendar_app.command("show")
def calendar_show(year: int) -> None:
    from zhengshu.calendar import service as calendar_service

    database = _database()
    with database.session() as session:
        calendar_service.load_schedules(session)
        info = calendar_service.get_year(session, year=year)
    status = {"official": "正式", "library": "内置", "provisional": "暂定"}[info.status]
    table = Table("日期", "类型", "名称", title=f"{year} 年（{status}）")
    for d in info.days:
        table.add_row(d.date.isoformat(), "休" if d.kind == "holiday" else "班", d.name)
    console.print(table)


def main() -> None:
    try:
        app()
    except ZhengshuError as exc:
        err.print(f"错误：{exc.detail}（{exc.code}）")
        sys.exit(1)


if __name__ == "__main__":
    main()
