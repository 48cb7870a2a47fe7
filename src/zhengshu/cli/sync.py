"""CLI: 库表交换 — ``zhengshu sync targets|target-add|jobs|create|show|update|delete|run|runs|quarantine|run-due``.

Commands act as the user named by ``--as`` through the same services as the pages and the API. ``run``
moves the data in this process with a progress bar; a run that was killed is resumed from the target's
checkpoint by the next ``run``. Exit codes: 0 done, 1 failed or refused, 2 usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

sync_app = typer.Typer(help="库表交换：目标库、交换作业、运行（断点续传）、运行记录与隔离数据", no_args_is_help=True)

from zhengshu.cli import main as cli  # noqa: E402

Limit = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="最多显示多少条")]


def _wf() -> Any:
    from zhengshu.cli import workflows

    return workflows


# ---- targets ----------------------------------------------------------------------------------------------


@sync_app.command("targets")
def targets(as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """列出本部门的交换目标库。"""
    from zhengshu.exchange.tables import service

    wf = _wf()
    rows = wf._run(as_user, lambda s, a: [service.target_to_read(t) for t in service.list_targets(s, actor=a)])
    if as_json:
        wf._print_json(rows)
        return
    wf._table(
        "交换目标库",
        ("ID", "名称", "类型", "所属部门", "位置"),
        [
            (
                r["id"],
                r["name"],
                r["kind_label"],
                r["owner_name"],
                r["path"] or f"{r['host']}:{r['port']}/{r['database']}",
            )
            for r in rows
        ],
        empty="（无，可用 zhengshu sync target-add 登记）",
    )


@sync_app.command("target-add")
def target_add(
    as_user: cli.AsUser,
    name: Annotated[str, typer.Option(help="目标库名称")],
    kind: Annotated[str, typer.Option(help="postgresql / mysql / duckdb / parquet")],
    host: Annotated[str | None, typer.Option(help="服务器地址")] = None,
    port: Annotated[int | None, typer.Option(help="端口")] = None,
    database: Annotated[str | None, typer.Option(help="数据库名")] = None,
    username: Annotated[str | None, typer.Option(help="用户名")] = None,
    password: Annotated[
        str | None, typer.Option(help="口令（加密保存）", envvar="ZHENGSHU_SYNC_TARGET_PASSWORD")
    ] = None,
    schema: Annotated[str | None, typer.Option(help="模式（PostgreSQL）")] = None,
    path: Annotated[str | None, typer.Option(help="DuckDB 文件或 Parquet 目录（默认本部门交换区）")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """登记本部门的交换目标库。"""
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import SyncTargetIn

    wf = _wf()

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        target_in = SyncTargetIn.model_validate(
            {
                "name": name,
                "kind": kind,
                "host": host,
                "port": port,
                "database": database,
                "username": username,
                "password": password,
                "schema_name": schema,
                "path": path,
            }
        )
        target = service.create_target(session, actor=actor, target_in=target_in)
        cli._audit(session, actor, "sync.target_add", "sync_target", target.id)
        return service.target_to_read(target)

    data = wf._run(as_user, work, action="sync.target_add")
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已登记目标库“{data['name']}”（{data['id']}）")


# ---- jobs -------------------------------------------------------------------------------------------------


def _job_read(session: Session, job: Any) -> dict[str, Any]:
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import SyncJobRead

    return _wf()._read(SyncJobRead, service.to_read(session, job))


@sync_app.command("jobs")
def jobs(
    as_user: cli.AsUser,
    q: Annotated[str | None, typer.Option("--q", help="关键词")] = None,
    mode: Annotated[str | None, typer.Option(help="full / incremental / cdc")] = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """列出 --as 用户可见的库表交换作业（使用部门与提供部门可见）。"""
    from zhengshu.exchange.tables import service

    wf = _wf()

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        stmt = service.list_query(actor, service.JobFilters(q=q, mode=mode)).limit(limit)
        return [_job_read(session, j) for j in session.scalars(stmt)]

    rows = wf._run(as_user, work)
    if as_json:
        wf._print_json(rows)
        return
    wf._table(
        "库表交换作业",
        ("ID", "名称", "目录", "使用部门", "方式", "调度", "上次运行", "结果"),
        [
            (
                r["id"],
                r["name"],
                r["entry_name"],
                r["consumer_name"],
                r["mode_label"],
                r["schedule_label"],
                wf._when(r["last_run_at"]),
                _status(r["last_status"]),
            )
            for r in rows
        ],
        empty="（无）",
    )
    wf._limited(len(rows), limit)


def _status(status: str | None) -> str:
    from zhengshu.exchange.tables.service import run_status_label

    return run_status_label(status)


@sync_app.command("create")
def create(
    as_user: cli.AsUser,
    name: Annotated[str, typer.Option(help="作业名称")],
    authorization: Annotated[str, typer.Option(help="共享授权 ID（共享方式为库表）")],
    target: Annotated[str, typer.Option(help="目标库 ID")],
    table: Annotated[str, typer.Option(help="目标表名")],
    key: Annotated[list[str], typer.Option(help="主键信息项（名称或标识），可重复")],
    mode: Annotated[str, typer.Option(help="full 全量 / incremental 增量 / cdc 变更比对")] = "incremental",
    cursor: Annotated[str | None, typer.Option(help="增量游标字段（源表字段名）")] = None,
    schedule: Annotated[str | None, typer.Option(help="cron 表达式（北京时间），如 '0 2 * * *'")] = None,
    working_days_only: Annotated[bool, typer.Option("--working-days-only", help="只在工作日运行")] = False,
    batch_size: Annotated[int | None, typer.Option(help="每批行数")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """为本部门持有的库表授权创建交换作业（创建时即核对源表与授权）。"""
    from zhengshu.demand import authorizations
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import SyncJobIn

    wf = _wf()

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        auth = authorizations.get(session, actor=actor, authorization_id=authorization)
        names = {i.name: i.item_key for i in auth.items}
        job_in = SyncJobIn.model_validate(
            {
                "name": name,
                "authorization_id": authorization,
                "target_id": target,
                "target_table": table,
                "mode": mode,
                "key_items": [wf._key(k, names) for k in key],
                "cursor_column": cursor,
                "schedule": schedule,
                "working_days_only": working_days_only,
                "batch_size": batch_size,
            }
        )
        job = service.create_job(session, actor=actor, job_in=job_in)
        cli._audit(session, actor, "sync.create", "sync_job", job.id)
        return _job_read(session, job)

    data = wf._run(as_user, work, action="sync.create")
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已创建交换作业“{data['name']}”（{data['id']}），{data['schedule_label']}")


@sync_app.command("show")
def show(job_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """交换作业详情与最近的运行记录。"""
    from zhengshu.exchange.tables import service

    wf = _wf()

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        job = service.get_job(session, actor=actor, job_id=job_id)
        data = _job_read(session, job)
        data["runs"] = [_run_read(r) for r in session.scalars(service.runs_query(job.id).limit(10))]
        return data

    data = wf._run(as_user, work)
    if as_json:
        wf._print_json(data)
        return
    wf._fields(
        f"库表交换作业 {data['id']}",
        [
            ("名称", data["name"]),
            ("目录", data["entry_name"]),
            ("提供部门 → 使用部门", f"{data['provider_name']} → {data['consumer_name']}（{data['direction']}）"),
            ("共享授权", data["authorization_id"]),
            ("目标", f"{data['target_name']} / {data['target_table']}"),
            ("方式", data["mode_label"] + (f"，游标 {data['cursor_column']}" if data["cursor_column"] else "")),
            ("调度", data["schedule_label"]),
            ("启用", data["enabled"]),
            ("下次运行", wf._when(data["next_run_at"])),
        ],
    )
    _runs_table(data["runs"])


def _run_read(run: Any) -> dict[str, Any]:
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import SyncRunRead

    return _wf()._read(SyncRunRead, service.run_to_read(run))


def _runs_table(runs: list[dict[str, Any]]) -> None:
    wf = _wf()
    wf._table(
        "运行记录",
        ("ID", "开始", "方式", "结果", "读取", "写入", "删除", "隔离", "耗时(秒)", "说明"),
        [
            (
                r["id"],
                wf._when(r["started_at"]),
                r["mode"],
                r["status_label"],
                f"{r['rows_read']:,}",
                f"{r['rows_written']:,}",
                f"{r['rows_deleted']:,}",
                f"{r['rows_quarantined']:,}",
                f"{(r['duration_ms'] or 0) / 1000:.1f}",
                r["error"] or (f"接续运行 {r['resumed_from']}" if r["resumed_from"] else ""),
            )
            for r in runs
        ],
        empty="（尚未运行）",
    )


@sync_app.command("update")
def update(
    job_id: str,
    as_user: cli.AsUser,
    schedule: Annotated[str | None, typer.Option(help="cron 表达式；传空字符串改为手动")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="启用或停用")] = None,
    working_days_only: Annotated[bool | None, typer.Option("--working-days-only/--every-day")] = None,
    mode: Annotated[str | None, typer.Option(help="full / incremental / cdc")] = None,
    cursor: Annotated[str | None, typer.Option(help="增量游标字段")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """修改作业的调度、启用状态或方式。"""
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import SyncJobUpdate

    wf = _wf()
    given = {
        k: v
        for k, v in {
            "schedule": schedule,
            "enabled": enabled,
            "working_days_only": working_days_only,
            "mode": mode,
            "cursor_column": cursor,
        }.items()
        if v is not None
    }

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        job = service.update_job(session, actor=actor, job_id=job_id, job_in=SyncJobUpdate.model_validate(given))
        return _job_read(session, job)

    data = wf._run(as_user, work, action="sync.update", target=("sync_job", job_id))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已修改作业“{data['name']}”：{data['schedule_label']}，{'启用' if data['enabled'] else '停用'}")


@sync_app.command("delete")
def delete(job_id: str, as_user: cli.AsUser) -> None:
    """删除交换作业及其运行记录（目标库中的数据保留）。"""
    from zhengshu.exchange.tables import service

    _wf()._run(
        as_user,
        lambda s, a: service.delete_job(s, actor=a, job_id=job_id),
        action="sync.delete",
        target=("sync_job", job_id),
    )
    cli.console.print(f"已删除作业 {job_id}")


@sync_app.command("run")
def run(job_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """立即运行交换作业（带进度条）；上次被中断的运行从目标库的检查点接续。"""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zhengshu.core.errors import ZhengshuError
    from zhengshu.exchange.tables import runner
    from zhengshu.exchange.tables.engine import RunResult

    wf = _wf()
    database = cli._database()
    try:
        with database.session() as session:
            actor = cli._actor(session, as_user)
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.fields[of]} 行"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=cli.console,
            disable=as_json,
        )
        with bar:
            task = bar.add_task("库表交换", total=None, of="?", rate="")

            def on_progress(result: RunResult) -> None:
                elapsed = bar.tasks[task].elapsed or 0.0
                rate = f"{result.rows_read / elapsed:,.0f} 行/秒" if elapsed > 0 else ""
                total = result.total if result.total is not None else None
                bar.update(
                    task,
                    completed=result.rows_read,
                    total=total,
                    of=f"{total:,}" if total is not None else "?",
                    rate=rate,
                )

            try:
                outcome = runner.run_job(database, actor=actor, job_id=job_id, trigger="cli", on_progress=on_progress)
            except ZhengshuError as exc:
                cli._fail(exc)
                return
        data = _run_read(outcome)
    finally:
        database.dispose()
    if as_json:
        wf._print_json(data)
    else:
        _runs_table([data])
    if data["status"] != "succeeded":
        raise typer.Exit(1)


@sync_app.command("runs")
def runs(job_id: str, as_user: cli.AsUser, limit: Limit = 20, as_json: cli.JsonOut = False) -> None:
    """作业的运行记录：读取、写入、删除、隔离的行数，字节数，耗时与错误。"""
    from zhengshu.exchange.tables import service

    wf = _wf()

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        job = service.get_job(session, actor=actor, job_id=job_id)
        return [_run_read(r) for r in session.scalars(service.runs_query(job.id).limit(limit))]

    rows = wf._run(as_user, work)
    if as_json:
        wf._print_json(rows)
        return
    _runs_table(rows)


@sync_app.command("quarantine")
def quarantine(
    job_id: str,
    as_user: cli.AsUser,
    run_id: Annotated[str | None, typer.Option("--run", help="只看某次运行")] = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """无法转换而被隔离的值及原因（其所在行未交换）。"""
    from zhengshu.exchange.tables import service
    from zhengshu.exchange.tables.schemas import QuarantineRead

    wf = _wf()

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        job = service.get_job(session, actor=actor, job_id=job_id)
        stmt = service.quarantine_query(job.id, run_id).limit(limit)
        return [wf._read(QuarantineRead, q) for q in session.scalars(stmt)]

    rows = wf._run(as_user, work)
    if as_json:
        wf._print_json(rows)
        return
    wf._table(
        "隔离数据",
        ("运行", "主键", "字段", "值", "原因"),
        [(r["run_id"], r["row_key"], r["column_name"], r["value"], r["reason"]) for r in rows],
        empty="（无）",
    )
    wf._limited(len(rows), limit)


@sync_app.command("run-due")
def run_due(as_json: cli.JsonOut = False) -> None:
    """以系统身份运行所有到期的定时作业（与后台定时任务相同，用于补跑）。"""
    from zhengshu.exchange.tables import runner

    database = cli._database()
    try:
        outcomes = runner.run_due(database)
    finally:
        database.dispose()
    if as_json:
        _wf()._print_json(outcomes)
        return
    cli.console.print(
        f"运行到期作业 {len(outcomes)} 个"
        + ("：" + "，".join(f"{k} {v}" for k, v in outcomes.items()) if outcomes else "")
    )
