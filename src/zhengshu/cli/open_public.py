"""``zhengshu open-public <verb>``: the open portal's public side on the command line — registered accounts and
their quotas, conditional-open applications, showcase moderation, the responsibility list, usage statistics.

Commands that change something act as the government user named by ``--as`` and call the same services as the
pages and the API, so the same named actions decide; reads of public figures need no user. Exit codes: 0 done,
1 refused or failed, 2 usage.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

open_public_app = typer.Typer(
    help="开放平台公众侧：注册账号与额度、有条件开放申请、优秀应用审核、开放责任清单、使用统计", no_args_is_help=True
)

JsonOut = Annotated[bool, typer.Option("--json", help="以 JSON 输出")]
AsUser = Annotated[str, typer.Option("--as", help="以哪个用户的身份执行（权限与审计按该用户）")]


def _run(as_user: str | None, work: Any, *, action: str | None = None, target: tuple[str, str] = ("", "")) -> Any:
    from zhengshu.cli.workflows import _run as run_workflow

    return run_workflow(as_user, work, action=action, target=target)


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    from zhengshu.cli import main as cli

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["—" if v in (None, "") else str(v) for v in row])
    cli.console.print(table)


def _audit(session: Session, actor: Actor, action: str, target_type: str, target_id: str, **detail: Any) -> None:
    from zhengshu.cli import main as cli

    cli._audit(session, actor, action, target_type, target_id, **detail)


# ---- accounts ---------------------------------------------------------------------------------------------


@open_public_app.command("accounts")
def list_accounts(
    as_user: AsUser, q: Annotated[str | None, typer.Option("--q")] = None, as_json: JsonOut = False
) -> None:
    """列出开放平台注册账号（管理员）。"""
    from zhengshu.opendata import accounts
    from zhengshu.opendata.public_schemas import AccountRead

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        return [
            AccountRead.model_validate(a).model_dump(mode="json")
            for a in accounts.list_accounts(session, actor=actor, q=q)
        ]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "开放平台注册账号",
        ["登录名", "类型", "名称", "信用代码", "每日额度", "状态"],
        [
            [
                r["username"],
                r["kind"],
                r["company_name"] or r["display_name"],
                r["uscc"],
                r["daily_quota"] or "默认",
                "正常" if r["active"] else "停用",
            ]
            for r in rows
        ],
    )


@open_public_app.command("quota")
def set_quota(
    username: str,
    quota: Annotated[str, typer.Argument(help="每日额度；default 恢复平台默认")],
    as_user: AsUser,
    key_id: Annotated[str | None, typer.Option("--key-id", help="只设置该账号的某个 API Key")] = None,
) -> None:
    """设置账号（或其某个 API Key）的每日调用额度。"""
    from zhengshu.opendata import accounts

    if quota != "default" and not quota.isdigit():
        raise typer.BadParameter("额度应为非负整数或 default")
    value = None if quota == "default" else int(quota)

    def work(session: Session, actor: Actor) -> str:
        account = accounts.get_by_username(session, username=username)
        accounts.set_quota(session, actor=actor, account_id=account.id, daily_quota=value, key_id=key_id)
        _audit(session, actor, "opendata.account_quota", "open_account", account.id, daily_quota=value)
        return account.id

    _run(as_user, work, action="opendata.account_quota", target=("open_account", username))
    typer.echo(f"{username} 的每日额度已设为 {'平台默认' if value is None else value}")


@open_public_app.command("disable")
def disable(username: str, as_user: AsUser) -> None:
    """停用账号：其登录与 API Key 立即失效。"""
    _set_active(username, as_user, active=False)


@open_public_app.command("enable")
def enable(username: str, as_user: AsUser) -> None:
    """重新启用账号。"""
    _set_active(username, as_user, active=True)


def _set_active(username: str, as_user: str, *, active: bool) -> None:
    from zhengshu.opendata import accounts

    action = "opendata.account_" + ("enable" if active else "disable")

    def work(session: Session, actor: Actor) -> None:
        account = accounts.get_by_username(session, username=username)
        accounts.set_active(session, actor=actor, account_id=account.id, active=active)
        _audit(session, actor, action, "open_account", account.id)

    _run(as_user, work, action=action, target=("open_account", username))
    typer.echo(f"{username} 已{'启用' if active else '停用'}")


# ---- conditional-open applications ------------------------------------------------------------------------


@open_public_app.command("applications")
def applications(
    as_user: AsUser,
    state: Annotated[str | None, typer.Option("--state", help="pending / approved / refused / withdrawn")] = "pending",
    as_json: JsonOut = False,
) -> None:
    """本部门（审核员：全部）的有条件开放申请。"""
    from zhengshu.opendata import conditional

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        stmt = conditional.list_query(actor, state=state or None).limit(500)
        return [conditional.to_read(session, a) for a in session.scalars(stmt)]

    rows = _run(as_user, work)
    if as_json:
        _print_json([{**r, "grant": None if r["grant"] is None else r["grant"].id} for r in rows])
        return
    _table(
        "有条件开放申请",
        ["id", "数据集", "申请人", "信息项", "期限(天)", "答复期限", "状态"],
        [
            [
                r["id"],
                r["dataset_title"],
                r["applicant"],
                "、".join(r["items"]),
                r["requested_days"],
                r["due_on"],
                r["state_label"],
            ]
            for r in rows
        ],
    )


@open_public_app.command("approve")
def approve(
    application_id: str,
    as_user: AsUser,
    days: Annotated[int | None, typer.Option("--days", min=1, help="批准的期限（天），默认按申请")] = None,
    item: Annotated[list[str] | None, typer.Option("--item", help="批准的信息项（列名），可重复；默认按申请")] = None,
    comment: Annotated[str, typer.Option("--comment")] = "",
) -> None:
    """同意有条件开放申请并生成授权。"""
    from zhengshu.opendata import conditional
    from zhengshu.opendata.public_schemas import DecisionIn

    def work(session: Session, actor: Actor) -> str:
        decision = DecisionIn(reason=comment, days=days, items=item or None)
        app = conditional.approve(session, actor=actor, application_id=application_id, decision_in=decision)
        _audit(session, actor, "opendata.access_approve", "open_access_application", app.id)
        return str(app.grant_id)

    grant_id = _run(as_user, work, action="opendata.access_approve", target=("open_access_application", application_id))
    typer.echo(f"已同意，授权 {grant_id}")


@open_public_app.command("refuse")
def refuse(application_id: str, as_user: AsUser, reason: Annotated[str, typer.Option("--reason")]) -> None:
    """不同意有条件开放申请（须说明理由）。"""
    from zhengshu.opendata import conditional

    def work(session: Session, actor: Actor) -> None:
        conditional.refuse(session, actor=actor, application_id=application_id, reason=reason)
        _audit(session, actor, "opendata.access_refuse", "open_access_application", application_id)

    _run(as_user, work, action="opendata.access_refuse", target=("open_access_application", application_id))
    typer.echo("已答复不同意")


# ---- showcase, responsibility list, statistics ------------------------------------------------------------


@open_public_app.command("moderate")
def moderate(
    showcase_id: str,
    verdict: Annotated[str, typer.Argument(help="approve 通过 / reject 不通过")],
    as_user: AsUser,
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """审核优秀应用。"""
    from zhengshu.opendata import showcase

    if verdict not in ("approve", "reject"):
        raise typer.BadParameter("应为 approve 或 reject")

    def work(session: Session, actor: Actor) -> None:
        fn = showcase.approve if verdict == "approve" else showcase.reject
        fn(session, actor=actor, showcase_id=showcase_id, reason=reason)
        _audit(session, actor, f"opendata.showcase_{verdict}", "open_showcase_app", showcase_id)

    _run(as_user, work, action=f"opendata.showcase_{verdict}", target=("open_showcase_app", showcase_id))
    typer.echo("已通过并展示" if verdict == "approve" else "已退回")


@open_public_app.command("responsibility")
def responsibility_progress(
    year: Annotated[int | None, typer.Option("--year")] = None, as_json: JsonOut = False
) -> None:
    """年度开放责任清单各部门完成进度。"""
    from zhengshu.core.timeutil import local_today
    from zhengshu.opendata import responsibility

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        return responsibility.progress(session, year=year or local_today().year)

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    _table(
        f"{data['year']} 年度开放责任清单（完成 {data['done']}/{data['planned']}，{data['percent']}%）",
        ["部门", "计划", "已开放", "逾期", "完成率"],
        [[d["org_name"], d["planned"], d["done"], d["overdue"], f"{d['percent']}%"] for d in data["departments"]],
    )


@open_public_app.command("stats")
def usage_stats(days: Annotated[int, typer.Option("--days", min=1, max=1098)] = 30, as_json: JsonOut = False) -> None:
    """最近若干天各部门的浏览、下载与接口调用量。"""
    from zhengshu.opendata import stats

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        span = stats.period(days=days)
        rows = stats.daily(session, span=span)
        return {
            "start": span.start.isoformat(),
            "end": span.end.isoformat(),
            "totals": stats.totals(rows),
            "departments": stats.by_department(session, span=span),
        }

    data = _run(None, work)
    if as_json:
        _print_json(data)
        return
    totals = data["totals"]
    _table(
        f"{data['start']} 至 {data['end']}：浏览 {totals['views']:,} · 下载 {totals['downloads']:,}"
        f" · 接口调用 {totals['api_calls']:,}",
        ["部门", "开放数据集", "浏览", "下载", "接口调用"],
        [
            [d["org_name"], d["datasets"], f"{d['views']:,}", f"{d['downloads']:,}", f"{d['api_calls']:,}"]
            for d in data["departments"]
        ],
    )
