"""``zhengshu opendata <verb>``: open datasets on the command line.

Provider commands act as the user named by ``--as`` and call the same services as the pages and the API
(``opendata.publish`` / ``opendata.manage`` decide). Public reads need no user. ``refresh-due`` is the scheduled
job (as the system): it writes a new published copy of every dataset whose update cycle says one is due.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

opendata_app = typer.Typer(help="数据开放：开放目录、更新开放副本、撤回，查询与导出开放数据", no_args_is_help=True)

JsonOut = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]
AsUser = Annotated[str, typer.Option("--as", help="以哪个用户的身份执行（权限与审计按该用户）")]


def _data_dir() -> Path:
    from zhengshu.core.config import get_settings

    return Path(get_settings().data_dir)


def _print_json(data: Any) -> None:
    from zhengshu.cli import main as cli

    cli.console.print_json(json.dumps(data, ensure_ascii=False, default=str))


def _run(as_user: str | None, work: Any, *, action: str | None = None, target: tuple[str, str] = ("", "")) -> Any:
    from zhengshu.cli.workflows import _run as run_workflow

    return run_workflow(as_user, work, action=action, target=target)


def _show(data: dict[str, Any]) -> None:
    from rich.table import Table

    from zhengshu.cli import main as cli

    table = Table(title=f"{data['title']}（{data['slug']}）", show_header=False)
    for label, key in (
        ("提供部门", "provider"),
        ("领域", "field_label"),
        ("开放属性", "opening_type"),
        ("状态", "status"),
        ("更新周期", "update_cycle"),
        ("版本", "version"),
        ("行数", "row_count"),
        ("完整性", "quality_score"),
        ("许可", "licence_label"),
    ):
        value = data.get(key)
        table.add_row(label, f"{value:,}" if isinstance(value, int) and key == "row_count" else str(value))
    table.add_row("开放信息项", "、".join(f"{i['name']}（{i['column']}，{i['masking_label']}）" for i in data["items"]))
    cli.console.print(table)


@opendata_app.command("list")
def list_datasets(
    q: Annotated[str | None, typer.Option("--q", help="关键词（中文词、拼音、首字母）")] = None,
    field: Annotated[str | None, typer.Option("--field", help="领域代码")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: JsonOut = False,
) -> None:
    """列出（检索）已开放的数据集。"""
    from rich.table import Table

    from zhengshu.cli import main as cli
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        stmt = service.public_query(service.PublicFilters(q=q, field=field)).limit(limit)
        return [service.to_summary(d) for d in session.scalars(stmt)]

    rows = _run(None, work)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"开放数据集（{len(rows)}）")
    for col in ("名称", "标识", "提供部门", "领域", "开放属性", "行数", "下载"):
        table.add_column(col)
    for d in rows:
        table.add_row(
            d["title"],
            d["slug"],
            d["provider"],
            d["field_label"],
            d["opening_type"],
            f"{d['row_count']:,}",
            f"{d['download_count']:,}",
        )
    cli.console.print(table)


@opendata_app.command("show")
def show(ref: str, as_json: JsonOut = False) -> None:
    """显示一个开放数据集（标识或 id）。"""
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        return service.to_read(session, service.get_public(session, ref=ref))

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    _show(data)


def _choices(options: Any, items: list[str]) -> tuple[list[Any], dict[str, str]]:
    from zhengshu.core.errors import ValidationFailed
    from zhengshu.opendata.schemas import ItemChoice

    by_ref = {o.key: o.key for o in options.items}
    by_ref.update({o.column: o.key for o in options.items if o.column})
    by_ref.update({o.name: o.key for o in options.items})
    choices = []
    for raw in items:
        ref, _, rule = raw.partition("=")
        key = by_ref.get(ref.strip())
        if key is None:
            raise ValidationFailed(
                f"该目录没有信息项“{ref}”（可用字段名、信息项名称或 key）", code="opendata.validation_failed"
            )
        choices.append(ItemChoice(item_key=key, masking_rule=rule.strip() or None))
    return choices, by_ref


@opendata_app.command("publish")
def publish(
    entry: Annotated[str, typer.Argument(help="目录 id")],
    as_user: AsUser,
    item: Annotated[list[str], typer.Option("--item", help="开放的信息项，可重复；可写 字段名=脱敏规则")],
    field: Annotated[str, typer.Option("--field", help="领域代码")] = "other",
    title: Annotated[str | None, typer.Option("--title")] = None,
    licence: Annotated[str | None, typer.Option("--licence", help="许可代码，如 CC-BY-4.0")] = None,
    key_item: Annotated[str | None, typer.Option("--key-item", help="主键信息项（开放副本按它排序）")] = None,
    resource: Annotated[str | None, typer.Option("--resource", help="挂接资源 id（有多个时）")] = None,
    as_json: JsonOut = False,
) -> None:
    """开放一个已发布的目录：选择信息项与脱敏规则，生成开放副本。"""
    from zhengshu.cli import main as cli
    from zhengshu.opendata import service
    from zhengshu.opendata.schemas import PublishIn

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        options = service.publish_options(session, actor=actor, entry_id=entry)
        choices, by_ref = _choices(options, item)
        publish_in = PublishIn(
            entry_id=entry,
            resource_id=resource,
            title=title,
            field=field,
            licence=licence,
            items=choices,
            key_item=by_ref.get(key_item, key_item) if key_item else None,
        )
        dataset = service.publish(session, actor=actor, publish_in=publish_in, data_dir=_data_dir())
        cli._audit(session, actor, "opendata.publish", "open_dataset", dataset.id, entry_id=entry)
        return service.to_read(session, dataset)

    data = _run(as_user, work, action="opendata.publish", target=("catalog_entry", entry))
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已开放数据集“{data['title']}”（{data['slug']}），开放副本 {data['row_count']:,} 行")


@opendata_app.command("refresh")
def refresh(
    dataset: Annotated[str, typer.Argument(help="数据集 id")],
    as_user: AsUser,
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: JsonOut = False,
) -> None:
    """从挂接资源重新生成开放副本（新版本）。"""
    from zhengshu.cli import main as cli
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        v = service.refresh(session, actor=actor, dataset_id=dataset, data_dir=_data_dir(), note=note)
        cli._audit(session, actor, "opendata.refresh", "open_dataset", dataset, version=v.number)
        return {"dataset_id": dataset, "version": v.number, "row_count": v.row_count, "checksum": v.checksum}

    data = _run(as_user, work, action="opendata.refresh", target=("open_dataset", dataset))
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已更新开放副本：第 {data['version']} 版，{data['row_count']:,} 行")


@opendata_app.command("refresh-due")
def refresh_due(as_json: JsonOut = False) -> None:
    """按更新周期更新到期的开放副本（定时任务，以系统身份执行）。"""
    from zhengshu.cli import main as cli
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        result = service.refresh_due(session, actor=actor, data_dir=_data_dir())
        cli._audit(
            session, actor, "opendata.refresh_due", refreshed=len(result["refreshed"]), failed=len(result["failed"])
        )
        return result

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已更新 {len(data['refreshed'])} 个数据集，失败 {len(data['failed'])} 个")
    for f in data["failed"]:
        cli.console.print(f"  · {f['dataset_id']}：{f['error']}")


@opendata_app.command("unpublish")
def unpublish(
    dataset: Annotated[str, typer.Argument(help="数据集 id")],
    as_user: AsUser,
    reason: Annotated[str, typer.Option("--reason", help="撤回理由")],
    as_json: JsonOut = False,
) -> None:
    """撤回开放：公众页面、下载与接口不再提供。"""
    from zhengshu.cli import main as cli
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        d = service.unpublish(session, actor=actor, dataset_id=dataset, reason=reason)
        cli._audit(session, actor, "opendata.unpublish", "open_dataset", dataset, reason=reason)
        return service.to_summary(d)

    data = _run(as_user, work, action="opendata.unpublish", target=("open_dataset", dataset))
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已撤回“{data['title']}”")


@opendata_app.command("republish")
def republish(
    dataset: Annotated[str, typer.Argument(help="数据集 id")], as_user: AsUser, as_json: JsonOut = False
) -> None:
    """重新开放已撤回的数据集（重新生成开放副本）。"""
    from zhengshu.cli import main as cli
    from zhengshu.opendata import service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        d = service.republish(session, actor=actor, dataset_id=dataset, data_dir=_data_dir())
        cli._audit(session, actor, "opendata.republish", "open_dataset", dataset)
        return service.to_summary(d)

    data = _run(as_user, work, action="opendata.republish", target=("open_dataset", dataset))
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已重新开放“{data['title']}”，{data['row_count']:,} 行")


@opendata_app.command("query")
def query_rows(
    ref: Annotated[str, typer.Argument(help="数据集标识或 id")],
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="信息项:运算符:值，可重复")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="逗号分隔的信息项")] = None,
    sort: Annotated[str | None, typer.Option("--sort")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    as_json: JsonOut = False,
) -> None:
    """查询无条件开放数据集的开放副本（与数据接口相同的筛选语言）。"""
    from rich.table import Table

    from zhengshu.cli import main as cli
    from zhengshu.core.errors import Forbidden
    from zhengshu.opendata import query, service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        dataset = service.get_public(session, ref=ref)
        if dataset.is_conditional:
            raise Forbidden("有条件开放数据须经授权后通过接口获取", code="opendata.grant_required")
        published = service.published_copy(session, dataset, _data_dir())
        cols = [c.strip() for c in columns.split(",")] if columns else None
        spec = query.QuerySpec(
            columns=cols, filters=query.parse_filters(published, filter_ or []), sort=sort, limit=limit, count=True
        )
        result = query.run_query(published, spec, max_limit=1000)
        return {"items": result.rows, "total": result.total, "columns": result.columns}

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"共 {data['total']:,} 行，显示 {len(data['items'])} 行")
    for c in data["columns"]:
        table.add_column(c)
    for row in data["items"]:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in data["columns"]))
    cli.console.print(table)


@opendata_app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="数据集标识或 id")],
    out: Annotated[Path, typer.Option("--out", help="输出文件")],
    fmt: Annotated[str, typer.Option("--format", help="csv、json、jsonl 或 parquet")] = "csv",
    as_json: JsonOut = False,
) -> None:
    """把无条件开放数据集导出为文件（与门户下载的文件相同）。"""
    from zhengshu.cli import main as cli
    from zhengshu.core.errors import Forbidden, ValidationFailed
    from zhengshu.opendata import downloads, query, service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        dataset = service.get_public(session, ref=ref)
        if dataset.is_conditional:
            raise Forbidden("有条件开放数据不能在命令行导出", code="opendata.grant_required")
        published = service.published_copy(session, dataset, _data_dir())
        if fmt == "csv":
            chunks = downloads.csv_stream(query.iter_batches(published), published.columns)
        elif fmt == "json":
            chunks = downloads.json_stream(query.iter_batches(published))
        elif fmt == "jsonl":
            chunks = downloads.jsonl_stream(query.iter_batches(published))
        elif fmt == "parquet":
            chunks = downloads.file_stream(published.path)
        else:
            raise ValidationFailed("格式应为 csv、json、jsonl 或 parquet", code="opendata.bad_format")
        size = 0
        with out.open("wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
        return {"path": str(out), "bytes": size, "rows": dataset.row_count}

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"已导出 {data['rows']:,} 行到 {data['path']}（{data['bytes']:,} 字节）")
