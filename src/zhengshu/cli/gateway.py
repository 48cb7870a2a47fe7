"""``zhengshu gateway``: run the interface gateway on its own (no subcommand), or manage its control plane.

Every control-plane command acts as the user named by ``--as`` and calls the same services as the pages and
the HTTP API. A secret is printed only by the command that issues it (``create-app``, ``rotate-secret``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

gateway_app = typer.Typer(
    help="接口服务：单独运行接口网关（不带子命令），或管理服务、应用、密钥与调用记录", invoke_without_command=True
)

AsUser = Annotated[str, typer.Option("--as", help="以哪个用户的身份执行（权限与审计按该用户）")]
JsonOut = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]


def _run(as_user: str, work: Any, *, action: str | None = None, target: tuple[str, str] = ("", "")) -> Any:
    from zhengshu.cli import workflows

    return workflows._run(as_user, work, action=action, target=target)


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _console() -> Any:
    from zhengshu.cli import main as cli

    return cli.console


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from zhengshu.cli import workflows

    workflows._table(title, columns, rows)


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="监听端口")] = 8100,
    workers: Annotated[
        int, typer.Option(min=1, help="工作进程数（多进程时请配置 ZHENGSHU_REDIS_URL 共享限流计数）")
    ] = 1,
) -> None:
    """单独运行接口网关（调用地址 http://<host>:<port>/gw/<服务代码>…）。"""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from zhengshu.core.config import get_settings

    settings = get_settings()
    if workers > 1 and not (settings.gateway_limits_url or settings.redis_url):
        _console().print("[yellow]提示[/yellow] 未配置 Redis：每个进程各自计算限流与防重放，请配置 ZHENGSHU_REDIS_URL")
    _console().print(f"接口网关：http://{host}:{port}{settings.gateway_mount_path}/<服务代码>")
    uvicorn.run(
        "zhengshu.gateway.runtime:create_standalone_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        http="zhengshu.gateway.server:GatewayHttpProtocol",  # each answer leaves in one write
        log_level="warning",
        access_log=False,
    )


# ---- apps and credentials ---------------------------------------------------------------------------------


@gateway_app.command("apps")
def apps(as_user: AsUser, as_json: JsonOut = False) -> None:
    """应用列表（本部门；管理员为全部）。"""
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import AppRead

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        return [
            AppRead.model_validate(gw_service.app_to_read(a)).model_dump(mode="json")
            for a in gw_service.list_apps(session, actor=actor)
        ]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "应用",
        ["应用", "部门", "状态", "访问密钥", "速率/秒", "日配额"],
        [
            [
                a["name"],
                a["org_name"],
                a["status"],
                "，".join(f"{c['access_key']}（{c['status']}）" for c in a["credentials"] if c["status"] != "revoked"),
                a["rate_per_s"] or "默认",
                a["daily_quota"] or "默认",
            ]
            for a in rows
        ],
    )


def _show_secret(issued: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(issued)
        return
    console = _console()
    console.print(f"应用 ID：{issued['app_id']}")
    console.print(f"访问密钥（AccessKey）：[bold]{issued['access_key']}[/bold]")
    console.print(f"密钥（Secret）：[bold]{issued['secret']}[/bold]")
    console.print("[yellow]密钥只显示这一次，请立即妥善保存；平台只保存其密文。[/yellow]")
    if issued.get("previous_valid_until"):
        console.print(f"旧密钥在 {issued['previous_valid_until']} 之前继续有效。")


@gateway_app.command("create-app")
def create_app(
    name: Annotated[str, typer.Argument(help="应用（业务系统）名称")],
    as_user: AsUser,
    description: Annotated[str, typer.Option(help="说明")] = "",
    org: Annotated[str | None, typer.Option("--org", help="所属部门 ID（管理员代登记）")] = None,
    as_json: JsonOut = False,
) -> None:
    """登记应用并签发访问密钥（密钥只显示这一次）。"""
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import AppIn

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        app_in = AppIn(name=name, description=description, org_id=org)
        _, issued = gw_service.create_app(session, actor=actor, app_in=app_in)
        from zhengshu.cli import main as cli

        cli._audit(session, actor, "gateway.create_app", "gateway_app", issued["app_id"])
        return issued

    _show_secret(_run(as_user, work, action="gateway.create_app"), as_json)


@gateway_app.command("rotate-secret")
def rotate_secret(
    app_id: Annotated[str, typer.Argument(help="应用 ID")],
    as_user: AsUser,
    overlap_hours: Annotated[
        int | None, typer.Option(min=0, help="旧密钥继续有效的小时数（默认按系统设置；0 为立即失效）")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """轮换应用的密钥；旧密钥在过渡期内继续有效。"""
    from zhengshu.gateway import service as gw_service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        issued = gw_service.rotate_secret(session, actor=actor, app_id=app_id, overlap_hours=overlap_hours)
        from zhengshu.cli import main as cli

        cli._audit(session, actor, "gateway.rotate_secret", "gateway_app", app_id)
        return issued

    _show_secret(_run(as_user, work, action="gateway.rotate_secret", target=("gateway_app", app_id)), as_json)


@gateway_app.command("revoke-key")
def revoke_key(
    app_id: Annotated[str, typer.Argument(help="应用 ID")],
    access_key: Annotated[str, typer.Argument(help="要停用的访问密钥")],
    as_user: AsUser,
) -> None:
    """立即停用一个访问密钥。"""
    from zhengshu.gateway import service as gw_service

    def work(session: Session, actor: Actor) -> None:
        gw_service.revoke_credential(session, actor=actor, app_id=app_id, access_key=access_key)
        from zhengshu.cli import main as cli

        cli._audit(session, actor, "gateway.revoke_key", "gateway_app", app_id, access_key=access_key)

    _run(as_user, work, action="gateway.revoke_key", target=("gateway_app", app_id))
    _console().print(f"访问密钥 {access_key} 已停用。")


# ---- services ---------------------------------------------------------------------------------------------


@gateway_app.command("services")
def services(
    as_user: AsUser,
    entry: Annotated[str | None, typer.Option("--entry", help="只列该目录的服务")] = None,
    as_json: JsonOut = False,
) -> None:
    """接口服务列表。"""
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import ServiceRead

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        found = gw_service.list_services(session, actor=actor, filters=gw_service.ServiceFilters(entry_id=entry))
        return [
            ServiceRead.model_validate(gw_service.to_read(session, s, with_versions=False)).model_dump(mode="json")
            for s in found
        ]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    kinds = {"proxy": "代理", "table": "库表生成"}
    _table(
        "接口服务",
        ["代码", "名称", "目录", "提供部门", "方式", "版本", "状态", "调用地址"],
        [
            [
                s["code"],
                s["name"],
                s["entry_name"],
                s["provider_name"],
                kinds.get(s["kind"], s["kind"]),
                s["current_version"],
                s["status"],
                s["call_url"],
            ]
            for s in rows
        ],
    )


@gateway_app.command("register-service")
def register_service(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="服务定义 JSON（同 POST /gateway/services）")
    ],
    as_user: AsUser,
    as_json: JsonOut = False,
) -> None:
    """按 JSON 定义登记接口服务。"""
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import ServiceIn, ServiceRead

    data = json.loads(file.read_text(encoding="utf-8"))

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        service = gw_service.register_service(session, actor=actor, service_in=ServiceIn.model_validate(data))
        from zhengshu.cli import main as cli

        cli._audit(session, actor, "gateway.register_service", "gateway_service", service.id)
        return ServiceRead.model_validate(gw_service.to_read(session, service)).model_dump(mode="json")

    read = _run(as_user, work, action="gateway.register_service")
    if as_json:
        _print_json(read)
        return
    _console().print(f"已登记接口服务 {read['name']}（{read['code']}），调用地址 {read['call_url']}")


def _set_status(code: str, as_user: str, status: str) -> None:
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import ServiceUpdate

    def work(session: Session, actor: Actor) -> None:
        service = gw_service.update_service(
            session,
            actor=actor,
            service_id=code,
            service_in=ServiceUpdate(status=status),  # type: ignore[arg-type]
        )
        from zhengshu.cli import main as cli

        cli._audit(session, actor, f"gateway.{status}_service", "gateway_service", service.id)

    _run(as_user, work, action=f"gateway.{status}_service", target=("gateway_service", code))
    _console().print(f"接口服务 {code} 已{'启用' if status == 'active' else '停用'}。")


@gateway_app.command("disable-service")
def disable_service(code: Annotated[str, typer.Argument(help="服务代码或 ID")], as_user: AsUser) -> None:
    """停用接口服务（调用立即被拒绝）。"""
    _set_status(code, as_user, "disabled")


@gateway_app.command("enable-service")
def enable_service(code: Annotated[str, typer.Argument(help="服务代码或 ID")], as_user: AsUser) -> None:
    """启用接口服务。"""
    _set_status(code, as_user, "active")


@gateway_app.command("openapi")
def openapi(
    code: Annotated[str, typer.Argument(help="服务代码或 ID")],
    as_user: AsUser,
    version: Annotated[int | None, typer.Option(min=1, help="版本（默认对外版本）")] = None,
) -> None:
    """输出接口服务的 OpenAPI 说明（JSON）。"""
    from zhengshu.gateway import service as gw_service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        return gw_service.openapi(gw_service.get_service(session, actor=actor, service_id=code), version)

    _print_json(_run(as_user, work))


# ---- calls ------------------------------------------------------------------------------------------------


@gateway_app.command("calls")
def calls(
    as_user: AsUser,
    service: Annotated[str | None, typer.Option("--service", help="服务 ID")] = None,
    app: Annotated[str | None, typer.Option("--app", help="应用 ID")] = None,
    errors: Annotated[bool, typer.Option("--errors", help="只看失败的调用")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="最多显示多少条")] = 50,
    as_json: JsonOut = False,
) -> None:
    """调用记录（本部门应用发出的，或调用本部门服务的）。"""
    from zhengshu.gateway import calllog
    from zhengshu.gateway.schemas import CallRead
    from zhengshu.security import authz

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        authz.ensure(actor, "gateway.view_calls")
        filters = calllog.CallFilters(service_id=service, app_id=app, errors_only=errors)
        rows = session.scalars(calllog.list_query(actor, filters).limit(limit))
        return [CallRead.model_validate(r).model_dump(mode="json") for r in rows]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    from zhengshu.cli.workflows import _when

    _table(
        "调用记录",
        ["时间", "路径", "状态", "结果", "行数", "耗时(ms)", "上游(ms)", "来源"],
        [
            [
                _when(r["at"]),
                r["path"],
                r["status"],
                r["code"],
                r["rows"],
                f"{r['latency_ms']:.1f}",
                f"{r['upstream_ms']:.1f}" if r["upstream_ms"] is not None else None,
                r["source_ip"],
            ]
            for r in rows
        ],
    )


@gateway_app.command("stats")
def stats(
    as_user: AsUser,
    service: Annotated[str | None, typer.Option("--service", help="服务 ID")] = None,
    app: Annotated[str | None, typer.Option("--app", help="应用 ID")] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="统计最近多少天")] = 7,
    as_json: JsonOut = False,
) -> None:
    """调用统计：总量、错误率、按应用、按服务、按结果。"""
    from zhengshu.core.db import utcnow
    from zhengshu.gateway import calllog
    from zhengshu.security import authz

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        authz.ensure(actor, "gateway.view_calls")
        filters = calllog.CallFilters(service_id=service, app_id=app, since=utcnow() - timedelta(days=days))
        return calllog.stats(session, actor=actor, filters=filters)

    figures = _run(as_user, work)
    if as_json:
        _print_json(figures)
        return
    console = _console()
    console.print(
        f"最近 {days} 天：调用 {figures['calls']:,} 次，失败 {figures['errors']:,} 次"
        f"（{figures['error_rate']:.2%}），平均耗时 {figures['avg_latency_ms'] or 0} ms"
    )
    _table(
        "按应用",
        ["应用", "部门", "调用", "失败"],
        [[a["app_name"], a["org_name"], a["calls"], a["errors"]] for a in figures["by_app"]],
    )
    _table(
        "按服务",
        ["服务", "调用", "失败"],
        [[s["service_name"], s["calls"], s["errors"]] for s in figures["by_service"]],
    )
    _table("按结果", ["结果", "调用"], [[c["code"], c["calls"]] for c in figures["by_code"]])


@gateway_app.command("sign")
def sign(
    method: Annotated[str, typer.Argument(help="GET 或 POST")],
    url: Annotated[str, typer.Argument(help="完整调用地址")],
    key: Annotated[str, typer.Option("--key", help="访问密钥（AccessKey）")],
    secret: Annotated[str, typer.Option("--secret", envvar="ZHENGSHU_GATEWAY_SECRET", help="密钥")],
    data: Annotated[str, typer.Option("--data", help="请求体（POST）")] = "",
) -> None:
    """为一次调用签名并输出等价的 curl 命令（调试对接用）。"""
    import shlex

    from zhengshu.gateway.signing import sign_request

    headers = sign_request(access_key=key, secret=secret, method=method, url=url, body=data.encode())
    parts = ["curl", "-sS", "-X", method.upper(), url]
    for name, value in headers.items():
        parts += ["-H", f"{name}: {value}"]
    if data:
        parts += ["-H", "Content-Type: application/json", "--data-binary", data]
    print(" ".join(shlex.quote(p) for p in parts))
