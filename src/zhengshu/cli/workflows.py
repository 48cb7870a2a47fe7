"""``zhengshu application|authorization|request|objection <verb>``: the cross-department workflows on the command
line.

Every command acts as the user named by ``--as`` and calls the same services as the pages and the HTTP API, so
the same named actions decide what it may do (what the user may not see looks missing). A change is one
transaction with one audit record; a refused change is audited as a failure, like a refused request. ``--json``
prints the API's read shape. Scheduled work (``escalate-overdue``, ``expire-due``, ``close-lapsed``) runs as the
system, like the daily jobs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.markup import escape
from rich.table import Table

from zhengshu.core.errors import FieldError, ValidationFailed, ZhengshuError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

application_app = typer.Typer(help="共享申请：申请、合规审查、逐项审核、补充材料、申诉与协调", no_args_is_help=True)
authorization_app = typer.Typer(help="共享授权：查询、暂停、恢复、续期、撤销，谁能看到某信息项", no_args_is_help=True)
request_app = typer.Typer(help="数据需求：提出、推荐提供部门、答复、改派与协调", no_args_is_help=True)
objection_app = typer.Typer(help="数据异议：提出、受理、答复更正、转办、确认、仲裁", no_args_is_help=True)

# The shared helpers (``_database``, ``_actor``, ``_audit``, ``_fail``, ``console``, ``AsUser``…) live in
# ``cli.main``, which registers the apps above: it is imported after they exist so either module may load first.
# Annotations are strings (``from __future__``) that Typer evaluates when the command line is built.
from zhengshu.cli import main as cli  # noqa: E402

T = TypeVar("T")

DateOpt = Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="日期 YYYY-MM-DD")]
Today = Annotated[
    datetime | None, typer.Option("--today", formats=["%Y-%m-%d"], help="按哪一天计算（默认今天，用于补跑）")
]
Comment = Annotated[str, typer.Option("--comment", help="意见或说明（可选）")]
Reason = Annotated[str, typer.Option("--reason", help="理由（必填）")]
States = Annotated[list[str] | None, typer.Option("--state", help="按状态筛选，可重复")]
Query = Annotated[str | None, typer.Option("--q", help="关键词")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="最多显示多少条")]


# ---- the one way a command runs --------------------------------------------------------------------------


def _failed(exc: ZhengshuError) -> NoReturn:
    cli._fail(exc)
    raise typer.Exit(1)  # _fail exits; this line only tells the type checker


def _invalid(exc: ValidationError) -> ValidationFailed:
    """Input rejected by a schema, reported like the API does: Chinese messages per field."""
    from zhengshu.web.errors import pydantic_errors

    errors = [FieldError(e["field"], e["message"]) for e in pydantic_errors(list(exc.errors()))]
    return ValidationFailed("请根据错误提示修改后重新提交", errors=errors)


def _audit_failure(database: Any, actor: Actor, action: str, target: tuple[str, str], exc: ZhengshuError) -> None:
    from zhengshu.audit import service as audit_service

    with database.session() as session:
        audit_service.record(
            session,
            actor=actor,
            action=action,
            target_type=target[0],
            target_id=target[1],
            outcome="failure",
            source_ip="127.0.0.1",
            detail={"error": exc.code},
        )


def _run(
    as_user: str | None,
    work: Callable[[Session, Actor], T],
    *,
    action: str | None = None,
    target: tuple[str, str] = ("", ""),
) -> T:
    """One command, one transaction, acting as ``as_user`` (the system when None). ``work`` renders what it
    needs inside the session. Events the change emitted are delivered in its transaction, as in a web request;
    a refused change (``action`` given) leaves a failure record in the audit log."""
    from zhengshu.core.config import get_settings
    from zhengshu.core.events import deliver_in_transaction, emitted_ids, process_pending

    database = cli._database()
    actor: Actor | None = None
    try:
        try:
            with database.session() as session:
                actor = cli._actor(session, as_user) if as_user else cli._cli_actor()
                assert actor is not None
                result = work(session, actor)
                emitted = emitted_ids(session)
                if emitted and get_settings().process_outbox_inline:
                    emitted = deliver_in_transaction(session, emitted)
        except (ZhengshuError, ValidationError) as exc:
            problem = exc if isinstance(exc, ZhengshuError) else _invalid(exc)
            if action and actor is not None:
                _audit_failure(database, actor, action, target, problem)
            _failed(problem)
        if emitted and get_settings().process_outbox_inline:
            process_pending(database.session_factory, only=emitted)
        return result
    finally:
        database.dispose()


def _run_job(job: Callable[..., int], *, today: str | None, action: str, key: str, as_json: bool, message: str) -> None:
    """A scheduled job run by hand, as the system: counts what it did, audits it, reports it."""

    def work(session: Session, actor: Actor) -> int:
        n = job(session, actor=actor, today=_day(today))
        cli._audit(session, actor, action, **{key: n})
        return n

    n = _run(None, work)
    if as_json:
        _print_json({key: n})
        return
    cli.console.print(message.format(n=n))


def _read(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """The API's read shape as plain JSON values."""
    return model.model_validate(data).model_dump(mode="json")


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


# ---- rendering -------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    return escape(str(value))


def _due(due: Any, provisional: bool) -> str:
    """A due date as the pages show it: marked 暂定 while the year's holiday schedule is not official."""
    if not due:
        return "—"
    return f"{due}（暂定）" if provisional else str(due)


def _when(moment: Any) -> str:
    from zhengshu.core.timeutil import to_local

    if not moment:
        return "—"
    at = datetime.fromisoformat(str(moment)) if not isinstance(moment, datetime) else moment
    return to_local(at).strftime("%Y-%m-%d %H:%M") if at.tzinfo else at.strftime("%Y-%m-%d %H:%M")


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "（无）") -> None:
    if not rows:
        cli.console.print(f"{title}：{empty}")
        return
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*[_text(c) for c in row])
    cli.console.print(table)


def _fields(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("项目", style="bold", no_wrap=True)
    table.add_column("内容")
    for label, value in pairs:
        table.add_row(label, value if isinstance(value, _Raw) else _text(value))
    cli.console.print(table)


class _Raw(str):
    """A cell already rendered (not escaped again)."""


def _timeline(events: Sequence[dict[str, Any]], title: str = "办理时间线") -> None:
    _table(
        title,
        ("时间", "办理人", "单位", "操作", "说明"),
        [(_when(e["at"]), e["actor_name"], e["actor_org_name"], e["action_label"], e["comment"]) for e in events],
    )


def _limited(count: int, limit: int) -> None:
    if count >= limit:
        cli.console.print(f"[dim]仅显示前 {limit} 条，可用 --limit 调整[/dim]")


def _actions(actions: Sequence[str], labels: dict[str, str]) -> _Raw:
    return _Raw("、".join(escape(labels.get(a, a)) for a in actions) or "—")


# ---- references typed by people: codes and names as well as ids -----------------------------------------


def _entry_id(session: Session, actor: Actor, ref: str) -> str:
    """A catalog entry by id or by resource code (``102001/00001``); unresolved references pass through so
    the service reports them in its own words."""
    from zhengshu.catalog import service as catalog_service
    from zhengshu.core.errors import NotFound

    if "/" not in ref:
        return ref
    try:
        return catalog_service.get_by_code(session, actor=actor, code=ref).id
    except NotFound:
        return ref


def _entry_item_keys(session: Session, actor: Actor, entry_id: str) -> dict[str, str]:
    """Item name → key of the version of the entry the actor sees (empty when the entry is not visible)."""
    from zhengshu.catalog import service as catalog_service
    from zhengshu.core.errors import NotFound

    try:
        entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    except NotFound:
        return {}
    return {i.name: i.key for i in catalog_service.display_version(session, entry).items}


def _key(ref: str, names: dict[str, str]) -> str:
    """An item by key or by name: a name known to the entry becomes its key, anything else stays as typed."""
    return ref if ref in names.values() else names.get(ref, ref)


def _org_id(session: Session, ref: str) -> str:
    """An organization by id, full name or short name."""
    from sqlalchemy import or_, select

    from zhengshu.org.models import Organization

    found = session.scalars(
        select(Organization.id).where(
            or_(Organization.id == ref, Organization.name == ref, Organization.short_name == ref)
        )
    ).all()
    return found[0] if len(found) == 1 else ref


# ====================================================================================================== #
# applications                                                                                           #
# ====================================================================================================== #

APPLICATION_ACTIONS = {
    "comply": "合规审查通过（comply）",
    "reject": "合规审查不通过（reject）",
    "decide": "逐项答复（decide）",
    "request_supplement": "要求补充材料（request-supplement）",
    "supplement": "补充材料（supplement）",
    "coordinate": "协调决定（coordinate）",
    "remand": "退回提供方（remand）",
    "appeal": "申诉（appeal）",
    "accept": "接受答复（accept）",
    "withdraw": "撤回（withdraw）",
}
DELIVERY_ALIASES = {"api": "接口", "interface": "接口", "table": "库表", "file": "文件"}


def _application_read(session: Session, app: Any, actor: Actor) -> dict[str, Any]:
    from zhengshu.demand import applications
    from zhengshu.demand.schemas import ApplicationRead

    return _read(ApplicationRead, applications.to_read(session, app, actor=actor))


def _application_change(
    as_user: str,
    verb: str,
    application_id: str,
    change: Callable[[Session, Actor], Any],
    *,
    as_json: bool,
    done: str,
) -> None:
    """Run one move of an application, audit it, and report the new state."""

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        app = change(session, actor)
        cli._audit(session, actor, f"application.{verb}", "data_application", app.id, state=app.state)
        return _application_read(session, app, actor)

    data = _run(as_user, work, action=f"application.{verb}", target=("data_application", application_id))
    if as_json:
        _print_json(data)
        return
    due = _due(data["due_on"], data["due_provisional"])
    cli.console.print(f"{done}：共享申请 {data['id']}，当前状态「{data['state_label']}」，办理期限 {due}")


@application_app.command("list")
def application_list(
    as_user: cli.AsUser,
    box: Annotated[
        str | None, typer.Option(help="applied 我申请的 / provider 申请我部门数据的 / authority 合规审查与协调")
    ] = None,
    state: States = None,
    entry: Annotated[str | None, typer.Option(help="目录 ID 或资源代码")] = None,
    q: Query = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """列出 --as 用户可见的共享申请（最新的在前）。"""
    from zhengshu.demand import applications
    from zhengshu.demand.models import DataApplication
    from zhengshu.demand.schemas import ApplicationSummary

    if box is not None and box not in applications.BOXES:
        raise typer.BadParameter(f"不支持的分组 {box}（可选：{'、'.join(applications.BOXES)}）", param_hint="--box")

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        filters = applications.ApplicationFilters(
            q=q, state=state, entry_id=_entry_id(session, actor, entry) if entry else None, box=box
        )
        stmt = applications.list_query(actor, filters).order_by(
            DataApplication.created_at.desc(), DataApplication.id.desc()
        )
        rows = list(session.scalars(stmt.limit(limit)))
        tickets = applications.tickets_for(session, rows)
        return [_read(ApplicationSummary, applications.to_summary(a, tickets.get(a.ticket_id or ""))) for a in rows]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "共享申请",
        ("编号", "目录", "申请部门", "提供部门", "信息项", "状态", "提交日期", "办理期限"),
        [
            (
                r["id"],
                r["entry_name"],
                r["consumer_name"],
                r["provider_name"],
                r["item_count"],
                r["state_label"],
                r["submitted_on"],
                _due(r["due_on"], r["due_provisional"]),
            )
            for r in rows
        ],
    )
    _limited(len(rows), limit)


@application_app.command("show")
def application_show(application_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """共享申请详情：逐项的决定、授权、可执行的操作与办理时间线。"""
    from zhengshu.demand import applications

    data = _run(
        as_user,
        lambda s, a: _application_read(s, applications.get(s, actor=a, application_id=application_id), a),
    )
    if as_json:
        _print_json(data)
        return
    _fields(
        f"共享申请 {data['id']}",
        [
            ("目录", f"{data['entry_name']}（{data['entry_id']}）"),
            ("申请部门", f"{data['consumer_name']}（{data['applicant_name']}）"),
            ("提供部门", data["provider_name"]),
            ("数据主管部门", data["authority_name"]),
            ("状态", data["state_label"]),
            ("办理期限", _due(data["due_on"], data["due_provisional"])),
            ("用途", data["purpose"]),
            ("申请依据", data["basis"]),
            ("业务系统", data["business_system"]),
            ("使用期限", f"{data['start_on']} 至 {data['end_on']}"),
            ("共享方式", data["delivery_way"]),
            ("联系人", f"{data['contact_name']} {data['contact_phone']}"),
            ("提交日期", data["submitted_on"]),
            ("答复日期", data["decided_on"]),
            ("申诉期限", data["appeal_until"]),
            ("需补充的材料", data["supplement_request"]),
            ("共享授权", "、".join(data["authorization_ids"])),
            ("可执行的操作", _actions(data["actions"], APPLICATION_ACTIONS)),
        ],
    )
    _table(
        "信息项",
        ("标识", "信息项", "共享类型", "分级", "状态", "脱敏规则", "理由", "决定人"),
        [
            (
                i["item_key"],
                i["name"],
                i["sharing_type"],
                i["sensitivity"],
                i["status_label"],
                i["masking_rule"],
                i["reason"],
                i["decided_by"],
            )
            for i in data["items"]
        ],
    )
    _timeline(data["timeline"])


@application_app.command("options")
def application_options(entry: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """列出某目录可申请的信息项（标识、默认脱敏规则；不能申请的注明原因），供 apply 使用。"""
    from zhengshu.demand import applications

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        found, version, options = applications.apply_options(
            session, actor=actor, entry_id=_entry_id(session, actor, entry)
        )
        return {
            "entry_id": found.id,
            "code": found.code,
            "name": version.name,
            "items": [o.__dict__ for o in options],
        }

    data = _run(as_user, work)
    if as_json:
        _print_json(data)
        return
    _table(
        f"{data['name']}（{data['code']}）的信息项",
        ("标识", "信息项", "字段名", "共享类型", "分级", "默认脱敏", "能否申请"),
        [
            (
                o["key"],
                o["name"],
                o["column_name"],
                o["sharing_type"],
                o["sensitivity"],
                o["masking_rule"],
                o["disabled_reason"] or "可申请",
            )
            for o in data["items"]
        ],
    )


@application_app.command("apply")
def application_apply(
    entry: Annotated[str, typer.Argument(help="目录 ID 或资源代码")],
    as_user: cli.AsUser,
    item: Annotated[list[str], typer.Option("--item", help="申请的信息项：标识或名称，可重复")],
    purpose: Annotated[str, typer.Option(help="用途")],
    basis: Annotated[str, typer.Option(help="申请依据：法律法规条款或所履行的职责")],
    system: Annotated[str, typer.Option("--system", help="使用数据的业务系统")],
    end: Annotated[datetime, typer.Option("--end", formats=["%Y-%m-%d"], help="使用期限止 YYYY-MM-DD")],
    contact_name: Annotated[str, typer.Option(help="联系人")],
    contact_phone: Annotated[str, typer.Option(help="联系电话")],
    start: DateOpt = None,
    delivery: Annotated[str, typer.Option(help="共享方式：接口 / 库表 / 文件（或 api / table / file）")] = "接口",
    as_json: cli.JsonOut = False,
) -> None:
    """提交共享申请（进入数据主管部门合规审查）。

    信息项可写标识或名称（见 zhengshu application options）；使用期限起默认今天。
    """
    from zhengshu.core.timeutil import local_today
    from zhengshu.demand import applications
    from zhengshu.demand.schemas import ApplicationIn

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        entry_id = _entry_id(session, actor, entry)
        names = _entry_item_keys(session, actor, entry_id)
        application_in = ApplicationIn.model_validate(
            {
                "entry_id": entry_id,
                "item_keys": [_key(i, names) for i in item],
                "purpose": purpose,
                "basis": basis,
                "business_system": system,
                "start_on": _day(start) or local_today(),
                "end_on": end.date(),
                "delivery_way": DELIVERY_ALIASES.get(delivery.lower(), delivery),
                "contact_name": contact_name,
                "contact_phone": contact_phone,
            }
        )
        app = applications.create(session, actor=actor, application_in=application_in)
        cli._audit(
            session,
            actor,
            "application.apply",
            "data_application",
            app.id,
            entry_id=app.entry_id,
            items=[i.item_key for i in app.items],
        )
        return _application_read(session, app, actor)

    data = _run(as_user, work, action="application.apply", target=("catalog_entry", entry))
    if as_json:
        _print_json(data)
        return
    due = _due(data["due_on"], data["due_provisional"])
    cli.console.print(
        f"已提交共享申请 {data['id']}（{len(data['items'])} 个信息项），「{data['state_label']}」，办理期限 {due}"
    )


@application_app.command("comply")
def application_comply(
    application_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """合规审查通过（数据主管部门审核员）：无条件共享的信息项按规则自动授权，其余转提供部门审核。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "comply",
        application_id,
        lambda s, a: applications.comply(s, actor=a, application_id=application_id, comment=comment),
        as_json=as_json,
        done="合规审查通过",
    )


@application_app.command("reject")
def application_reject(application_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False) -> None:
    """合规审查不通过（数据主管部门审核员，须说明理由）。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "reject",
        application_id,
        lambda s, a: applications.reject(s, actor=a, application_id=application_id, reason=reason),
        as_json=as_json,
        done="合规审查不通过",
    )


def _split(value: str) -> tuple[str, str]:
    key, _, rest = value.partition("=")
    return key.strip(), rest.strip()


def _decision_items(
    approve: list[str] | None, refuse: list[str] | None, approve_rest: bool, file: Path | None, comment: str
) -> tuple[list[dict[str, Any]], str]:
    """The decisions as typed on the command line or read from a JSON file (the API's ``DecisionIn``)."""
    if file is not None:
        if approve or refuse or approve_rest:
            raise typer.BadParameter("--file 不能与 --approve、--refuse、--approve-rest 同时使用", param_hint="--file")
        try:
            body = json.loads(file.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"无法读取决定文件：{exc}", param_hint="--file") from exc
        if isinstance(body, list):
            body = {"items": body}
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise typer.BadParameter(
                '决定文件应为 {"items": [...], "comment": "..."} 或决定的列表', param_hint="--file"
            )
        items = [dict(i) if isinstance(i, dict) else i for i in body["items"]]
        return items, str(body.get("comment") or comment)
    items: list[dict[str, Any]] = []
    for value in approve or []:
        key, rule = _split(value)
        items.append({"item_key": key, "decision": "approve", "masking_rule": rule or None})
    for value in refuse or []:
        key, reason = _split(value)
        items.append({"item_key": key, "decision": "refuse", "reason": reason})
    if not items and not approve_rest:
        raise typer.BadParameter("请用 --approve、--refuse、--approve-rest 或 --file 给出对各信息项的决定")
    return items, comment


def _decision_in(
    session: Session,
    actor: Actor,
    application_id: str,
    items: list[dict[str, Any]],
    comment: str,
    approve_rest: bool,
    open_statuses: set[str],
) -> Any:
    """Names become keys (of the application's items); ``approve_rest`` approves every open item not named."""
    from zhengshu.demand import applications
    from zhengshu.demand.schemas import DecisionIn

    app = applications.get(session, actor=actor, application_id=application_id)
    names = {i.name: i.item_key for i in app.items}
    for d in items:
        if isinstance(d, dict) and isinstance(d.get("item_key"), str):
            d["item_key"] = _key(d["item_key"], names)
    if approve_rest:
        named = {d.get("item_key") for d in items if isinstance(d, dict)}
        items += [
            {"item_key": i.item_key, "decision": "approve"}
            for i in app.items
            if i.status in open_statuses and i.item_key not in named
        ]
    if not items:
        # nothing left to decide: the service says why (not permitted, wrong state, nothing open)
        return DecisionIn.model_construct(items=[], comment=comment)
    return DecisionIn.model_validate({"items": items, "comment": comment})


Approve = Annotated[
    list[str] | None,
    typer.Option(
        "--approve", help="同意的信息项（标识或名称），可重复；KEY=脱敏规则 覆盖默认规则，如 联系电话=mobile_3_4"
    ),
]
Refuse = Annotated[
    list[str] | None, typer.Option("--refuse", help="不同意的信息项及理由：KEY=理由（理由必填），可重复")
]
ApproveRest = Annotated[bool, typer.Option("--approve-rest", help="同意其余所有未列出的待决定信息项")]
DecisionFile = Annotated[
    Path | None,
    typer.Option(
        "--file",
        exists=True,
        dir_okay=False,
        help='JSON 决定文件，与接口相同：{"items": [{"item_key": …, "decision": "approve"|"refuse", '
        '"reason": …, "masking_rule": …}], "comment": …}',
    ),
]


@application_app.command("decide")
def application_decide(
    application_id: str,
    as_user: cli.AsUser,
    approve: Approve = None,
    refuse: Refuse = None,
    approve_rest: ApproveRest = False,
    file: DecisionFile = None,
    comment: Comment = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提供部门数据专员逐项答复：每个待审核的信息项都要有决定，同意的信息项生成一项共享授权。

    例：zhengshu application decide ID --as officer --approve KEY1 --approve 联系电话=mobile_3_4
    --refuse KEY3="涉及个人隐私，依据……"；或 --file decisions.json。
    """
    from zhengshu.demand import applications

    items, note = _decision_items(approve, refuse, approve_rest, file, comment)

    def change(session: Session, actor: Actor) -> Any:
        decision_in = _decision_in(session, actor, application_id, items, note, approve_rest, {"pending"})
        return applications.decide(session, actor=actor, application_id=application_id, decision_in=decision_in)

    _application_change(as_user, "decide", application_id, change, as_json=as_json, done="已逐项答复")


@application_app.command("request-supplement")
def application_request_supplement(
    application_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """提供部门要求申请部门补充材料（--reason 写明需要补充什么）。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "request_supplement",
        application_id,
        lambda s, a: applications.request_supplement(s, actor=a, application_id=application_id, reason=reason),
        as_json=as_json,
        done="已要求补充材料",
    )


@application_app.command("supplement")
def application_supplement(
    application_id: str,
    as_user: cli.AsUser,
    material: Annotated[str, typer.Option(help="补充的材料说明")],
    as_json: cli.JsonOut = False,
) -> None:
    """申请部门补充材料，申请回到提供部门审核（期限重新计算）。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "supplement",
        application_id,
        lambda s, a: applications.supplement(s, actor=a, application_id=application_id, material=material),
        as_json=as_json,
        done="已补充材料",
    )


@application_app.command("withdraw")
def application_withdraw(
    application_id: str,
    as_user: cli.AsUser,
    reason: Annotated[str, typer.Option(help="撤回原因")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """申请部门在答复前撤回申请（已按规则自动授权的信息项保留）。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "withdraw",
        application_id,
        lambda s, a: applications.withdraw(s, actor=a, application_id=application_id, reason=reason),
        as_json=as_json,
        done="已撤回",
    )


@application_app.command("appeal")
def application_appeal(application_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False) -> None:
    """对不同意的答复在申诉期限内申诉，提请数据主管部门协调。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "appeal",
        application_id,
        lambda s, a: applications.appeal(s, actor=a, application_id=application_id, reason=reason),
        as_json=as_json,
        done="已申诉",
    )


@application_app.command("accept")
def application_accept(
    application_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """申请部门接受答复，申请办结。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "accept",
        application_id,
        lambda s, a: applications.accept(s, actor=a, application_id=application_id, comment=comment),
        as_json=as_json,
        done="已接受答复",
    )


@application_app.command("coordinate")
def application_coordinate(
    application_id: str,
    as_user: cli.AsUser,
    approve: Approve = None,
    refuse: Refuse = None,
    approve_rest: ApproveRest = False,
    file: DecisionFile = None,
    comment: Comment = "",
    as_json: cli.JsonOut = False,
) -> None:
    """数据主管部门协调决定（逾期未答复或申诉的申请），逐项决定的写法与 decide 相同。"""
    from zhengshu.demand import applications

    items, note = _decision_items(approve, refuse, approve_rest, file, comment)

    def change(session: Session, actor: Actor) -> Any:
        decision_in = _decision_in(session, actor, application_id, items, note, approve_rest, {"pending", "refused"})
        return applications.coordinate(session, actor=actor, application_id=application_id, decision_in=decision_in)

    _application_change(as_user, "coordinate", application_id, change, as_json=as_json, done="已协调决定")


@application_app.command("remand")
def application_remand(application_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False) -> None:
    """数据主管部门把协调中的申请退回提供部门重新审核（不同意的信息项重新待审）。"""
    from zhengshu.demand import applications

    _application_change(
        as_user,
        "remand",
        application_id,
        lambda s, a: applications.remand(s, actor=a, application_id=application_id, reason=reason),
        as_json=as_json,
        done="已退回提供部门",
    )


@application_app.command("escalate-overdue")
def application_escalate_overdue(today: Today = None, as_json: cli.JsonOut = False) -> None:
    """把逾期未答复的提供部门审核提请数据主管部门协调（每日任务，以系统身份执行）。"""
    from zhengshu.demand import applications

    _run_job(
        applications.escalate_overdue,
        today=today,
        action="application.escalate_overdue",
        key="escalated",
        as_json=as_json,
        message="已将 {n} 件逾期未答复的共享申请提请数据主管部门协调",
    )


@application_app.command("close-lapsed")
def application_close_lapsed(today: Today = None, as_json: cli.JsonOut = False) -> None:
    """逾期未补充材料的申请失效、申诉期满的申请办结（每日任务，以系统身份执行）。"""
    from zhengshu.demand import applications

    _run_job(
        applications.close_lapsed,
        today=today,
        action="application.close_lapsed",
        key="closed",
        as_json=as_json,
        message="已办结或失效 {n} 件共享申请",
    )


# ====================================================================================================== #
# authorizations                                                                                         #
# ====================================================================================================== #

AUTHORIZATION_ACTIONS = {
    "suspend": "暂停（suspend）",
    "resume": "恢复（resume）",
    "renew": "续期（renew）",
    "revoke": "撤销（revoke）",
}


def _authorization_read(auth: Any, actor: Actor) -> dict[str, Any]:
    from zhengshu.demand import authorizations
    from zhengshu.demand.schemas import AuthorizationRead

    return _read(AuthorizationRead, authorizations.to_read(auth, actor=actor))


def _authorization_change(
    as_user: str,
    verb: str,
    authorization_id: str,
    change: Callable[[Session, Actor], Any],
    *,
    as_json: bool,
    done: str,
) -> None:
    def work(session: Session, actor: Actor) -> dict[str, Any]:
        auth = change(session, actor)
        cli._audit(session, actor, f"authorization.{verb}", "share_authorization", auth.id, status=auth.status)
        return _authorization_read(auth, actor)

    data = _run(as_user, work, action=f"authorization.{verb}", target=("share_authorization", authorization_id))
    if as_json:
        _print_json(data)
        return
    cli.console.print(f"{done}：共享授权 {data['id']}，状态「{data['status_label']}」，有效期至 {data['end_on']}")


@authorization_app.command("list")
def authorization_list(
    as_user: cli.AsUser,
    status: Annotated[
        list[str] | None, typer.Option(help="active 有效 / suspended 已暂停 / revoked 已撤销 / expired 已到期，可重复")
    ] = None,
    entry: Annotated[str | None, typer.Option(help="目录 ID 或资源代码")] = None,
    application: Annotated[str | None, typer.Option(help="来自哪件共享申请")] = None,
    item: Annotated[str | None, typer.Option(help="包含某信息项（标识）")] = None,
    q: Query = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """列出 --as 用户可见的共享授权（使用方、提供方与数据主管部门可见）。"""
    from zhengshu.demand import authorizations
    from zhengshu.demand.models import Authorization
    from zhengshu.demand.schemas import AuthorizationSummary

    unknown = set(status or []) - set(authorizations.STATUS_LABELS)
    if unknown:
        raise typer.BadParameter(f"不支持的授权状态 {'、'.join(sorted(unknown))}", param_hint="--status")

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        filters = authorizations.AuthorizationFilters(
            status=status,
            entry_id=_entry_id(session, actor, entry) if entry else None,
            application_id=application,
            item_key=item,
            q=q,
        )
        stmt = authorizations.list_query(actor, filters).order_by(Authorization.created_at.desc(), Authorization.id)
        return [_read(AuthorizationSummary, authorizations.to_summary(a)) for a in session.scalars(stmt.limit(limit))]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "共享授权",
        ("编号", "目录", "使用部门", "业务系统", "提供部门", "信息项", "共享方式", "有效期", "状态"),
        [
            (
                r["id"],
                r["entry_name"],
                r["consumer_name"],
                r["consumer_system"],
                r["provider_name"],
                r["item_count"],
                r["delivery_way"],
                f"{r['start_on']} 至 {r['end_on']}",
                r["status_label"],
            )
            for r in rows
        ],
    )
    _limited(len(rows), limit)


@authorization_app.command("show")
def authorization_show(authorization_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """共享授权详情：授权的信息项及脱敏规则、变更记录。"""
    from zhengshu.demand import authorizations
    from zhengshu.security.masking import RULES

    data = _run(
        as_user,
        lambda s, a: _authorization_read(authorizations.get(s, actor=a, authorization_id=authorization_id), a),
    )
    if as_json:
        _print_json(data)
        return
    _fields(
        f"共享授权 {data['id']}",
        [
            ("目录", f"{data['entry_name']}（{data['entry_id']}）"),
            ("使用部门", data["consumer_name"]),
            ("业务系统", data["consumer_system"]),
            ("提供部门", data["provider_name"]),
            ("共享方式", data["delivery_way"]),
            ("有效期", f"{data['start_on']} 至 {data['end_on']}"),
            ("状态", data["status_label"]),
            ("状态说明", data["status_reason"]),
            ("授权依据", authorizations.BASIS_LABELS.get(data["grant_basis"], data["grant_basis"])),
            ("授权人", data["granted_by"]),
            ("来自申请", data["application_id"]),
            ("可执行的操作", _actions(data["actions"], AUTHORIZATION_ACTIONS)),
        ],
    )
    _table(
        "授权的信息项",
        ("标识", "信息项", "字段名", "脱敏规则"),
        [
            (i["item_key"], i["name"], i["column_name"], f"{i['masking_rule']} {RULES.get(i['masking_rule'], '')}")
            for i in data["items"]
        ],
    )
    _table(
        "变更记录",
        ("时间", "办理人", "单位", "操作", "状态", "理由"),
        [
            (
                _when(e["at"]),
                e["actor_name"],
                e["actor_org_name"],
                e["action_label"],
                authorizations.status_label(e["to_status"]),
                e["reason"],
            )
            for e in data["history"]
        ],
    )


@authorization_app.command("suspend")
def authorization_suspend(
    authorization_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """暂停有效的授权（提供部门数据专员或数据主管部门，须说明理由）。"""
    from zhengshu.demand import authorizations

    _authorization_change(
        as_user,
        "suspend",
        authorization_id,
        lambda s, a: authorizations.suspend(s, actor=a, authorization_id=authorization_id, reason=reason),
        as_json=as_json,
        done="已暂停",
    )


@authorization_app.command("resume")
def authorization_resume(
    authorization_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """恢复已暂停的授权（须说明理由）。"""
    from zhengshu.demand import authorizations

    _authorization_change(
        as_user,
        "resume",
        authorization_id,
        lambda s, a: authorizations.resume(s, actor=a, authorization_id=authorization_id, reason=reason),
        as_json=as_json,
        done="已恢复",
    )


@authorization_app.command("renew")
def authorization_renew(
    authorization_id: str,
    as_user: cli.AsUser,
    until: Annotated[datetime, typer.Option("--until", formats=["%Y-%m-%d"], help="新的到期日 YYYY-MM-DD")],
    reason: Reason,
    as_json: cli.JsonOut = False,
) -> None:
    """续期：新的到期日（自今天起最长 3 年）；已到期的授权恢复有效，已暂停的仍暂停。"""
    from zhengshu.demand import authorizations

    _authorization_change(
        as_user,
        "renew",
        authorization_id,
        lambda s, a: authorizations.renew(
            s, actor=a, authorization_id=authorization_id, end_on=until.date(), reason=reason
        ),
        as_json=as_json,
        done="已续期",
    )


@authorization_app.command("revoke")
def authorization_revoke(
    authorization_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """撤销授权，立即生效（须说明理由）。"""
    from zhengshu.demand import authorizations

    _authorization_change(
        as_user,
        "revoke",
        authorization_id,
        lambda s, a: authorizations.revoke(s, actor=a, authorization_id=authorization_id, reason=reason),
        as_json=as_json,
        done="已撤销",
    )


@authorization_app.command("who-can-see")
def authorization_who_can_see(
    entry: Annotated[str, typer.Argument(help="目录 ID 或资源代码")],
    item: Annotated[str, typer.Argument(help="信息项标识或名称")],
    as_user: cli.AsUser,
    on: Annotated[datetime | None, typer.Option("--on", formats=["%Y-%m-%d"], help="哪一天（默认今天）")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """某目录的某信息项当前授权给了哪些部门及其业务系统、按什么脱敏规则（提供部门数据专员与数据主管部门可查）。"""
    from zhengshu.demand import authorizations

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        entry_id = _entry_id(session, actor, entry)
        key = _key(item, _entry_item_keys(session, actor, entry_id))
        rows = authorizations.who_can_see(session, actor=actor, entry_id=entry_id, item_key=key, on=_day(on))
        return [{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.__dict__.items()} for r in rows]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        f"可使用信息项「{item}」的部门",
        ("使用部门", "业务系统", "信息项", "脱敏规则", "共享方式", "有效期", "授权编号"),
        [
            (
                r["consumer_name"],
                r["consumer_system"],
                r["item_name"],
                r["masking_rule"],
                r["delivery_way"],
                f"{r['start_on']} 至 {r['end_on']}",
                r["authorization_id"],
            )
            for r in rows
        ],
        empty="当前没有部门获得授权",
    )


@authorization_app.command("expire-due")
def authorization_expire_due(today: Today = None, as_json: cli.JsonOut = False) -> None:
    """把已过使用期限的授权标记为已到期（每日任务，以系统身份执行）。"""
    from zhengshu.demand import authorizations

    _run_job(
        authorizations.expire_due,
        today=today,
        action="authorization.expire_due",
        key="expired",
        as_json=as_json,
        message="已将 {n} 项共享授权标记为已到期",
    )


# ====================================================================================================== #
# data requests                                                                                          #
# ====================================================================================================== #

REQUEST_ACTIONS = {
    "link_entry": "关联目录（link-entry）",
    "compile": "编目后提供（compile）",
    "not_held": "无此数据（not-held）",
    "refuse": "不予共享（refuse）",
    "redirect": "改派（redirect）",
    "ask_coordination": "提请协调（ask-coordination）",
    "assign": "指定提供部门（assign）",
    "close": "办结（close）",
    "withdraw": "撤回（withdraw）",
}


def _request_read(session: Session, req: Any, actor: Actor) -> dict[str, Any]:
    from zhengshu.demand import requests as request_service
    from zhengshu.demand.request_schemas import DataRequestRead

    return _read(DataRequestRead, request_service.to_read(session, req, actor=actor))


def _request_change(
    as_user: str, verb: str, request_id: str, change: Callable[[Session, Actor], Any], *, as_json: bool, done: str
) -> None:
    def work(session: Session, actor: Actor) -> dict[str, Any]:
        req = change(session, actor)
        cli._audit(session, actor, f"data_request.{verb}", "data_request", req.id, state=req.state)
        return _request_read(session, req, actor)

    data = _run(as_user, work, action=f"data_request.{verb}", target=("data_request", request_id))
    if as_json:
        _print_json(data)
        return
    due = _due(data["due_on"], data["due_provisional"])
    cli.console.print(f"{done}：数据需求 {data['id']}，当前状态「{data['state_label']}」，办理期限 {due}")


@request_app.command("list")
def request_list(
    as_user: cli.AsUser,
    box: Annotated[
        str | None, typer.Option(help="mine 本部门提出的 / todo 待本部门答复的 / coordination 待本部门协调的")
    ] = None,
    state: States = None,
    q: Query = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """列出 --as 用户可见的数据需求（最新的在前）。"""
    from zhengshu.demand import requests as request_service
    from zhengshu.demand.models import DataRequest

    if box is not None and box not in request_service.BOXES:
        raise typer.BadParameter(f"不支持的列表 {box}（可选：{'、'.join(request_service.BOXES)}）", param_hint="--box")

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        filters = request_service.RequestFilters(box=box, state=state, q=q)
        stmt = request_service.list_query(actor, filters).order_by(DataRequest.created_at.desc(), DataRequest.id)
        return [_request_read(session, r, actor) for r in session.scalars(stmt.limit(limit))]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "数据需求",
        ("编号", "需求名称", "需求部门", "提供部门", "紧急程度", "状态", "办理期限"),
        [
            (
                r["id"],
                r["title"],
                r["requester_name"],
                r["provider_name"] or "未指定",
                r["urgency"],
                r["state_label"],
                _due(r["due_on"], r["due_provisional"]) + ("（已逾期）" if r["overdue"] else ""),
            )
            for r in rows
        ],
    )
    _limited(len(rows), limit)


@request_app.command("show")
def request_show(request_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """数据需求详情与供需对接全流程（需求 → 目录 → 申请 → 授权）。"""
    from zhengshu.demand import requests as request_service
    from zhengshu.demand.request_schemas import TimelineItemRead

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        req = request_service.get(session, actor=actor, request_id=request_id)
        data = _request_read(session, req, actor)
        data["timeline"] = [
            _read(
                TimelineItemRead,
                {
                    "at": i.at,
                    "stage": i.stage,
                    "stage_label": i.stage_label,
                    "title": i.title,
                    "actor_name": i.actor_name,
                    "actor_org_name": i.actor_org_name,
                    "comment": i.comment,
                    "link": i.link,
                },
            )
            for i in request_service.request_timeline(session, actor=actor, request_id=request_id)
        ]
        return data

    data = _run(as_user, work)
    if as_json:
        _print_json(data)
        return
    _fields(
        f"数据需求 {data['id']}",
        [
            ("需求名称", data["title"]),
            ("需求描述", data["description"]),
            ("所需信息项", data["items_text"]),
            ("用途", data["purpose"]),
            ("依据", data["basis"]),
            ("业务系统", data["business_system"]),
            ("紧急程度", data["urgency"]),
            ("需求部门", f"{data['requester_name']}（{data['requester_user_name']}）"),
            ("提供部门", data["provider_name"] or "未指定"),
            ("协调部门", data["authority_name"]),
            ("状态", data["state_label"]),
            ("办理期限", _due(data["due_on"], data["due_provisional"])),
            ("答复", data["answer_label"]),
            ("答复说明", data["answer_note"]),
            ("不予共享依据", data["legal_basis"]),
            ("对接目录", data["entry_id"] or data["pending_entry_id"]),
            ("可执行的操作", _actions(data["actions"], REQUEST_ACTIONS)),
        ],
    )
    _table(
        "供需对接全流程",
        ("时间", "环节", "事项", "办理人", "单位", "说明"),
        [
            (_when(i["at"]), i["stage_label"], i["title"], i["actor_name"], i["actor_org_name"], i["comment"])
            for i in data["timeline"]
        ],
    )


@request_app.command("create")
def request_create(
    as_user: cli.AsUser,
    title: Annotated[str, typer.Option(help="需求名称")],
    description: Annotated[str, typer.Option(help="需求描述：需要什么数据、覆盖范围")],
    items: Annotated[str, typer.Option("--items", help="所需信息项（自由填写）")],
    purpose: Annotated[str, typer.Option(help="用途")],
    basis: Annotated[str, typer.Option(help="依据：所履行的法定职责或法规条款")],
    system: Annotated[str, typer.Option("--system", help="使用数据的业务系统")],
    urgency: Annotated[str, typer.Option(help="一般 / 紧急 / 特急")] = "一般",
    provider: Annotated[
        str | None, typer.Option(help="可能的提供部门（名称、简称或 ID）；不填由数据主管部门协调指定")
    ] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """提出数据需求（目录中找不到的数据）。可先用 `zhengshu request suggest` 查看推荐的提供部门。"""
    from zhengshu.demand import requests as request_service
    from zhengshu.demand.request_schemas import DataRequestIn

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        request_in = DataRequestIn.model_validate(
            {
                "title": title,
                "description": description,
                "items_text": items,
                "purpose": purpose,
                "basis": basis,
                "business_system": system,
                "urgency": urgency,
                "provider_org_id": _org_id(session, provider) if provider else None,
            }
        )
        req = request_service.create(session, actor=actor, request_in=request_in)
        cli._audit(session, actor, "data_request.create", "data_request", req.id, state=req.state)
        return _request_read(session, req, actor)

    data = _run(as_user, work, action="data_request.create", target=("data_request", ""))
    if as_json:
        _print_json(data)
        return
    due = _due(data["due_on"], data["due_provisional"])
    cli.console.print(f"已提出数据需求 {data['id']}，「{data['state_label']}」，办理期限 {due}")


@request_app.command("suggest")
def request_suggest(
    text: Annotated[str, typer.Argument(help="需求名称、描述或所需信息项")],
    as_user: cli.AsUser,
    limit: Annotated[int, typer.Option(min=1, max=20)] = 5,
    as_json: cli.JsonOut = False,
) -> None:
    """根据需求描述检索已发布目录，推荐可能的提供部门。"""
    from zhengshu.demand import requests as request_service

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        return [
            {
                "org_id": s.org.id,
                "org_name": s.org.name,
                "score": s.score,
                "matches": s.matches,
                "entries": [{"id": e.id, "code": e.code, "name": e.name} for e in s.entries],
            }
            for s in request_service.suggest_providers(session, actor=actor, text=text, limit=limit)
        ]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "推荐的提供部门",
        ("部门", "得分", "命中目录数", "示例目录"),
        [
            (
                r["org_name"],
                f"{r['score']:.2f}",
                r["matches"],
                "；".join(f"{e['code']} {e['name']}" for e in r["entries"]),
            )
            for r in rows
        ],
        empty="未找到相关的已发布目录，可不指定提供部门，由数据主管部门协调",
    )


@request_app.command("link-entry")
def request_link_entry(
    request_id: str,
    entry: Annotated[str, typer.Argument(help="本部门的目录 ID 或资源代码")],
    as_user: cli.AsUser,
    comment: Comment = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提供部门答复「已有目录」：关联已发布的目录（需求方随后按共享申请流程申请）；关联编制中的目录则进入编目中。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "link_entry",
        request_id,
        lambda s, a: request_service.link_entry(
            s, actor=a, request_id=request_id, entry_id=_entry_id(s, a, entry), comment=comment
        ),
        as_json=as_json,
        done="已关联目录",
    )


@request_app.command("compile")
def request_compile(
    request_id: str,
    as_user: cli.AsUser,
    entry: Annotated[str | None, typer.Option(help="正在编制的目录 ID（可稍后关联）")] = None,
    comment: Comment = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提供部门答复「编目后提供」：目录发布后需求自动对接。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "compile",
        request_id,
        lambda s, a: request_service.compile_entry(
            s, actor=a, request_id=request_id, entry_id=_entry_id(s, a, entry) if entry else None, comment=comment
        ),
        as_json=as_json,
        done="已答复编目后提供",
    )


@request_app.command("not-held")
def request_not_held(request_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False) -> None:
    """提供部门答复「无此数据」（须说明理由），需求方可改派或提请协调。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "not_held",
        request_id,
        lambda s, a: request_service.answer_not_held(s, actor=a, request_id=request_id, reason=reason),
        as_json=as_json,
        done="已答复无此数据",
    )


@request_app.command("refuse")
def request_refuse(
    request_id: str,
    as_user: cli.AsUser,
    legal_basis: Annotated[str, typer.Option(help="不予共享的法律、法规依据（必填）")],
    reason: Annotated[str, typer.Option(help="补充说明")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提供部门答复「不予共享」（须写明法律依据）。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "refuse",
        request_id,
        lambda s, a: request_service.refuse(s, actor=a, request_id=request_id, legal_basis=legal_basis, reason=reason),
        as_json=as_json,
        done="已答复不予共享",
    )


ToOrg = Annotated[str, typer.Option("--to", help="提供部门（名称、简称或 ID）")]


@request_app.command("redirect")
def request_redirect(
    request_id: str, as_user: cli.AsUser, to: ToOrg, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """需求方把答复「无此数据」或「不予共享」的需求改派给其他提供部门（期限重新计算）。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "redirect",
        request_id,
        lambda s, a: request_service.redirect(
            s, actor=a, request_id=request_id, provider_org_id=_org_id(s, to), comment=comment
        ),
        as_json=as_json,
        done="已改派",
    )


@request_app.command("ask-coordination")
def request_ask_coordination(
    request_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """需求方对「无此数据」或「不予共享」的答复提请数据主管部门协调。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "ask_coordination",
        request_id,
        lambda s, a: request_service.ask_coordination(s, actor=a, request_id=request_id, reason=reason),
        as_json=as_json,
        done="已提请协调",
    )


@request_app.command("assign")
def request_assign(
    request_id: str, as_user: cli.AsUser, to: ToOrg, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """数据主管部门协调：指定答复的提供部门。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "assign",
        request_id,
        lambda s, a: request_service.assign_provider(
            s, actor=a, request_id=request_id, provider_org_id=_org_id(s, to), comment=comment
        ),
        as_json=as_json,
        done="已指定提供部门",
    )


@request_app.command("close")
def request_close(request_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False) -> None:
    """办结：需求方接受答复，或数据主管部门作出协调结论（须在 --comment 写明）。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "close",
        request_id,
        lambda s, a: request_service.close(s, actor=a, request_id=request_id, comment=comment),
        as_json=as_json,
        done="已办结",
    )


@request_app.command("withdraw")
def request_withdraw(
    request_id: str,
    as_user: cli.AsUser,
    reason: Annotated[str, typer.Option(help="撤回原因")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """需求方撤回数据需求。"""
    from zhengshu.demand import requests as request_service

    _request_change(
        as_user,
        "withdraw",
        request_id,
        lambda s, a: request_service.withdraw(s, actor=a, request_id=request_id, reason=reason),
        as_json=as_json,
        done="已撤回",
    )


@request_app.command("escalate-overdue")
def request_escalate_overdue(today: Today = None, as_json: cli.JsonOut = False) -> None:
    """把提供部门逾期未答复的数据需求转数据主管部门协调（每日任务，以系统身份执行）。"""
    from zhengshu.demand import requests as request_service

    _run_job(
        request_service.escalate_overdue,
        today=today,
        action="data_request.escalate_overdue",
        key="escalated",
        as_json=as_json,
        message="已将 {n} 件逾期未答复的数据需求转数据主管部门协调",
    )


# ====================================================================================================== #
# objections                                                                                             #
# ====================================================================================================== #

OBJECTION_ACTIONS = {
    "accept": "受理（accept）",
    "answer": "答复（answer）",
    "forward": "转办（forward）",
    "urge": "督办（urge）",
    "confirm": "确认（confirm）",
    "dispute": "提请仲裁（dispute）",
    "arbitrate": "仲裁（arbitrate）",
    "withdraw": "撤回（withdraw）",
    "attach": "补充材料（attach）",
}
KIND_ALIASES = {
    "错误": "wrong",
    "数据错误": "wrong",
    "缺失": "missing",
    "数据缺失": "missing",
    "过时": "outdated",
    "数据过时": "outdated",
    "不一致": "inconsistent",
    "与其他来源不一致": "inconsistent",
}
Attach = Annotated[
    list[Path] | None,
    typer.Option(
        "--attach",
        exists=True,
        dir_okay=False,
        readable=True,
        help="佐证材料（PDF、OFD、JPG、PNG、XLSX、DOCX、TXT、CSV），可重复",
    ),
]


def _uploads(paths: Sequence[Path] | None) -> list[Any]:
    """Read at most one byte over the size limit, so an oversized file is refused without holding all of it."""
    from zhengshu.objection import attachments as files

    limit = files.max_bytes()
    out = []
    for path in paths or []:
        with path.open("rb") as fh:
            out.append(files.Upload(path.name, fh.read(limit + 1)))
    return out


def _objection_read(session: Session, obj: Any, actor: Actor) -> dict[str, Any]:
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.schemas import ObjectionRead

    return _read(ObjectionRead, objection_service.to_read(session, obj, actor=actor))


def _objection_change(
    as_user: str, verb: str, objection_id: str, change: Callable[[Session, Actor], Any], *, as_json: bool, done: str
) -> None:
    def work(session: Session, actor: Actor) -> dict[str, Any]:
        obj = change(session, actor)
        cli._audit(session, actor, f"objection.{verb}", "objection", obj.id, state=obj.state)
        return _objection_read(session, obj, actor)

    data = _run(as_user, work, action=f"objection.{verb}", target=("objection", objection_id))
    if as_json:
        _print_json(data)
        return
    due = _due(data["due_on"], data["due_provisional"])
    cli.console.print(f"{done}：数据异议 {data['id']}，当前状态「{data['state_label']}」，办理期限 {due}")


@objection_app.command("list")
def objection_list(
    as_user: cli.AsUser,
    box: Annotated[
        str,
        typer.Option(
            help="all 全部可见 / mine 本部门提出 / todo 待本部门处理 / provider 针对本部门数据 / "
            "arbitration 待督办与仲裁"
        ),
    ] = "all",
    state: States = None,
    entry: Annotated[str | None, typer.Option(help="目录 ID 或资源代码")] = None,
    record: Annotated[str | None, typer.Option(help="记录主键值")] = None,
    q: Query = None,
    limit: Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """列出 --as 用户可见的数据异议（最新的在前）。"""
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.models import Objection
    from zhengshu.objection.schemas import ObjectionSummary

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        filters = objection_service.ObjectionFilters(
            box=box,
            q=q,
            state=state,
            entry_id=_entry_id(session, actor, entry) if entry else None,
            record_key=record,
        )
        stmt = objection_service.list_query(actor, filters).order_by(Objection.created_at.desc(), Objection.id)
        rows = list(session.scalars(stmt.limit(limit)))
        tickets = objection_service.tickets_by_id(session, rows)
        return [_read(ObjectionSummary, objection_service.to_summary(o, tickets.get(o.ticket_id or ""))) for o in rows]

    rows = _run(as_user, work)
    if as_json:
        _print_json(rows)
        return
    _table(
        "数据异议",
        ("编号", "异议对象", "类型", "异议方", "办理部门", "状态", "提出日期", "办理期限"),
        [
            (
                r["id"],
                r["title"].removeprefix("数据异议："),
                r["kind_label"],
                r["objector_name"],
                r["handler_name"],
                r["state_label"],
                r["raised_on"],
                _due(r["due_on"], r["due_provisional"]) + ("（已逾期）" if r["overdue"] else ""),
            )
            for r in rows
        ],
    )
    _limited(len(rows), limit)


@objection_app.command("show")
def objection_show(objection_id: str, as_user: cli.AsUser, as_json: cli.JsonOut = False) -> None:
    """数据异议详情：答复、更正记录、佐证材料与办理时间线。"""
    from zhengshu.objection import service as objection_service

    data = _run(
        as_user,
        lambda s, a: _objection_read(s, objection_service.get(s, actor=a, objection_id=objection_id), a),
    )
    if as_json:
        _print_json(data)
        return
    _fields(
        data["title"],
        [
            ("编号", data["id"]),
            ("目录", f"{data['entry_name']}（{data['entry_id']}）"),
            ("信息项", data["item_name"]),
            ("记录", data["record_key"]),
            ("异议类型", data["kind_label"]),
            ("另一数据来源", data["other_source"]),
            ("认为正确的值", data["claimed_value"]),
            ("异议说明", data["description"]),
            ("异议方", f"{data['objector_name']}（{data['raised_by_name']}）"),
            ("办理部门", data["handler_name"]),
            ("状态", data["state_label"]),
            ("办理期限", _due(data["due_on"], data["due_provisional"])),
            ("答复", data["resolution_label"]),
            ("更正后的值", data["corrected_value"]),
            ("生效日期", data["effective_from"]),
            ("答复说明", data["answer_note"]),
            ("仲裁", data["decision_label"]),
            ("同组异议", "、".join(m for m in data["group_members"] if m != data["id"])),
            ("可执行的操作", _actions(data["actions"], OBJECTION_ACTIONS)),
        ],
    )
    _table(
        "佐证材料",
        ("文件", "类型", "大小", "SM3", "上传人"),
        [
            (a["filename"], a["file_type"], a["size"], a["sm3"][:16] + "…", a["uploaded_by"])
            for a in data["attachments"]
        ],
    )
    _table(
        "更正记录",
        ("信息项", "记录", "原值", "更正为", "生效日期", "更正人", "单位"),
        [
            (
                c["item_name"],
                c["record_key"],
                c["old_value"],
                c["corrected_value"],
                c["effective_from"],
                c["corrected_by_name"],
                c["corrected_by_org_name"],
            )
            for c in data["corrections"]
        ],
    )
    _timeline(data["timeline"])


@objection_app.command("raise")
def objection_raise(
    entry: Annotated[str, typer.Argument(help="目录 ID 或资源代码")],
    as_user: cli.AsUser,
    kind: Annotated[
        str, typer.Option(help="wrong 错误 / missing 缺失 / outdated 过时 / inconsistent 与其他来源不一致")
    ],
    description: Annotated[str, typer.Option(help="异议说明")],
    item: Annotated[str | None, typer.Option(help="信息项（标识或名称）")] = None,
    resource: Annotated[str | None, typer.Option(help="挂接资源 ID（针对具体记录时）")] = None,
    record: Annotated[str | None, typer.Option(help="记录主键值，多个主键字段以 | 分隔（须同时给 --resource）")] = None,
    claimed: Annotated[str, typer.Option(help="认为正确的值")] = "",
    other_source: Annotated[str, typer.Option(help="另一数据来源（类型为 inconsistent 时必填）")] = "",
    attach: Attach = None,
    as_json: cli.JsonOut = False,
) -> None:
    """对目录、信息项或挂接资源的具体记录提出数据异议，转提供部门核实。

    附件按内容校验类型与大小，不合格时不提交任何内容。
    """
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.schemas import ObjectionIn

    uploads = _uploads(attach)

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        entry_id = _entry_id(session, actor, entry)
        objection_in = ObjectionIn.model_validate(
            {
                "entry_id": entry_id,
                "item_key": _key(item, _entry_item_keys(session, actor, entry_id)) if item else None,
                "resource_id": resource,
                "record_key": record,
                "kind": KIND_ALIASES.get(kind, kind),
                "other_source": other_source,
                "claimed_value": claimed,
                "description": description,
            }
        )
        obj = objection_service.raise_objection(session, actor=actor, objection_in=objection_in, attachments=uploads)
        cli._audit(
            session,
            actor,
            "objection.raise",
            "objection",
            obj.id,
            entry_id=obj.entry_id,
            attachments=[a.filename for a in obj.attachments],
        )
        return _objection_read(session, obj, actor)

    data = _run(as_user, work, action="objection.raise", target=("catalog_entry", entry))
    if as_json:
        _print_json(data)
        return
    joined = "，已并入同一对象的异议组" if data["group_id"] != data["id"] else ""
    cli.console.print(
        f"已提出数据异议 {data['id']}（附件 {len(data['attachments'])} 个）{joined}，"
        f"由{data['handler_name']}办理，期限 {_due(data['due_on'], data['due_provisional'])}"
    )


@objection_app.command("accept")
def objection_accept(
    objection_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """办理部门数据专员受理异议（同组一并受理），被异议的数据随即标注。"""
    from zhengshu.objection import service as objection_service

    _objection_change(
        as_user,
        "accept",
        objection_id,
        lambda s, a: objection_service.accept(s, actor=a, objection_id=objection_id, comment=comment),
        as_json=as_json,
        done="已受理",
    )


@objection_app.command("answer")
def objection_answer(
    objection_id: str,
    as_user: cli.AsUser,
    corrected: Annotated[str | None, typer.Option(help="已更正：更正后的值")] = None,
    not_error: Annotated[bool, typer.Option("--not-error", help="经核实无误（须在 --note 说明理由）")] = False,
    old_value: Annotated[str | None, typer.Option(help="更正前的值（如已知）")] = None,
    effective: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="更正生效日期，默认答复当日")] = None,
    item: Annotated[str | None, typer.Option(help="更正的信息项（标识或名称），默认取异议指向的信息项")] = None,
    note: Annotated[str, typer.Option(help="核实情况")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """答复受理的异议（同组一并答复）：--corrected 值（记录更正，后来的读者可见何时由谁更正）或 --not-error。"""
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.schemas import AnswerIn

    if (corrected is None) == (not not_error):
        raise typer.BadParameter("请给出 --corrected（已更正）或 --not-error（经核实无误）之一")

    def change(session: Session, actor: Actor) -> Any:
        names: dict[str, str] = {}
        if item:
            obj = objection_service.get(session, actor=actor, objection_id=objection_id)
            names = _entry_item_keys(session, actor, obj.entry_id)
        answer_in = AnswerIn.model_validate(
            {
                "resolution": "not_error" if not_error else "corrected",
                "corrected_value": corrected,
                "old_value": old_value,
                "effective_from": _day(effective),
                "item_key": _key(item, names) if item else None,
                "note": note,
            }
        )
        return objection_service.answer(session, actor=actor, objection_id=objection_id, answer_in=answer_in)

    _objection_change(as_user, "answer", objection_id, change, as_json=as_json, done="已答复")


@objection_app.command("forward")
def objection_forward(
    objection_id: str, as_user: cli.AsUser, to: ToOrg, reason: Reason, as_json: cli.JsonOut = False
) -> None:
    """转办至实际的数据来源部门（答复期限重新计算）。"""
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.schemas import ForwardIn

    def change(session: Session, actor: Actor) -> Any:
        forward_in = ForwardIn.model_validate({"to_org_id": _org_id(session, to), "reason": reason})
        return objection_service.forward(session, actor=actor, objection_id=objection_id, forward_in=forward_in)

    _objection_change(as_user, "forward", objection_id, change, as_json=as_json, done="已转办")


@objection_app.command("urge")
def objection_urge(objection_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False) -> None:
    """数据主管部门督办逾期的异议，退回办理部门并给出新的期限。"""
    from zhengshu.objection import service as objection_service

    _objection_change(
        as_user,
        "urge",
        objection_id,
        lambda s, a: objection_service.urge(s, actor=a, objection_id=objection_id, comment=comment),
        as_json=as_json,
        done="已督办",
    )


@objection_app.command("confirm")
def objection_confirm(
    objection_id: str, as_user: cli.AsUser, comment: Comment = "", as_json: cli.JsonOut = False
) -> None:
    """异议方确认答复，异议办结。"""
    from zhengshu.objection import service as objection_service

    _objection_change(
        as_user,
        "confirm",
        objection_id,
        lambda s, a: objection_service.confirm(s, actor=a, objection_id=objection_id, comment=comment),
        as_json=as_json,
        done="已确认",
    )


@objection_app.command("dispute")
def objection_dispute(objection_id: str, as_user: cli.AsUser, reason: Reason, as_json: cli.JsonOut = False) -> None:
    """异议方对答复有异议，提请数据主管部门仲裁。"""
    from zhengshu.objection import service as objection_service

    _objection_change(
        as_user,
        "dispute",
        objection_id,
        lambda s, a: objection_service.dispute(s, actor=a, objection_id=objection_id, reason=reason),
        as_json=as_json,
        done="已提请仲裁",
    )


@objection_app.command("arbitrate")
def objection_arbitrate(
    objection_id: str,
    as_user: cli.AsUser,
    decision: Annotated[
        str, typer.Option(help="uphold_correction 维持更正 / order_correction 责令更正 / dismiss 驳回异议")
    ],
    reason: Reason,
    corrected: Annotated[str | None, typer.Option(help="责令更正时的正确值")] = None,
    effective: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="更正生效日期")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """数据主管部门审核员仲裁（同组提请仲裁的异议一并裁定并办结）。"""
    from zhengshu.objection import service as objection_service
    from zhengshu.objection.schemas import ArbitrateIn

    def change(session: Session, actor: Actor) -> Any:
        arbitrate_in = ArbitrateIn.model_validate(
            {
                "decision": decision.replace("-", "_"),
                "reason": reason,
                "corrected_value": corrected,
                "effective_from": _day(effective),
            }
        )
        return objection_service.arbitrate(session, actor=actor, objection_id=objection_id, arbitrate_in=arbitrate_in)

    _objection_change(as_user, "arbitrate", objection_id, change, as_json=as_json, done="已裁定")


@objection_app.command("withdraw")
def objection_withdraw(
    objection_id: str,
    as_user: cli.AsUser,
    reason: Annotated[str, typer.Option(help="撤回原因")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """异议方撤回异议。"""
    from zhengshu.objection import service as objection_service

    _objection_change(
        as_user,
        "withdraw",
        objection_id,
        lambda s, a: objection_service.withdraw(s, actor=a, objection_id=objection_id, reason=reason),
        as_json=as_json,
        done="已撤回",
    )


@objection_app.command("attach")
def objection_attach(
    objection_id: str,
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="佐证材料文件")],
    as_user: cli.AsUser,
    as_json: cli.JsonOut = False,
) -> None:
    """异议方或办理部门在办结前补充上传佐证材料。"""
    from zhengshu.objection import service as objection_service

    uploads = _uploads(files)

    def change(session: Session, actor: Actor) -> Any:
        objection_service.add_attachments(session, actor=actor, objection_id=objection_id, attachments=uploads)
        return objection_service.get(session, actor=actor, objection_id=objection_id)

    _objection_change(as_user, "attach", objection_id, change, as_json=as_json, done="已上传材料")


@objection_app.command("escalate-overdue")
def objection_escalate_overdue(today: Today = None, as_json: cli.JsonOut = False) -> None:
    """把逾期未答复的异议提交数据主管部门督办（每日任务，以系统身份执行）。"""
    from zhengshu.objection import service as objection_service

    _run_job(
        objection_service.escalate_overdue,
        today=today,
        action="objection.escalate_overdue",
        key="escalated",
        as_json=as_json,
        message="已将 {n} 件逾期未答复的数据异议提交数据主管部门督办",
    )
