"""CLI: file exchange (文件交换) and the secure ferry between networks (安全导入导出通道).

``zhengshu files …`` acts as the user named by ``--as`` through the same services and permission checks as the
pages and the API; ``zhengshu ferry import|export|list|keys …`` are operator commands run as the system on the
node that owns the ferry directories.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhengshu.security.actor import Actor

files_app = typer.Typer(help="文件交换", no_args_is_help=True)
ferry_app = typer.Typer(help="内外网安全导入导出通道（摆渡）", no_args_is_help=True)
keys_app = typer.Typer(help="本节点密钥与受信任的对端公钥", no_args_is_help=True)
ferry_app.add_typer(keys_app, name="keys")

# cli.main imports this module while it is being built: its helpers are reached at call time only.
from zhengshu.cli import main as cli  # noqa: E402
from zhengshu.cli import workflows as wf  # noqa: E402

FileArgs = Annotated[
    list[Path], typer.Argument(help="要发送的文件，可多个", exists=True, dir_okay=False, readable=True)
]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class _Progressing:
    """A file object that advances a Rich progress bar as the service reads it."""

    def __init__(self, fh: IO[bytes], advance: Any) -> None:
        self._fh = fh
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        chunk = self._fh.read(n)
        self._advance(len(chunk))
        return chunk


def _incoming(paths: list[Path], stack: ExitStack, *, show: bool = True) -> list[Any]:
    from zhengshu.exchange.files.service import IncomingFile

    if not show:
        return [IncomingFile(p.name, stack.enter_context(p.open("rb"))) for p in paths]
    progress = stack.enter_context(cli.progress())
    task = progress.add_task("上传并校验", total=sum(p.stat().st_size for p in paths))
    return [
        IncomingFile(p.name, _Progressing(stack.enter_context(p.open("rb")), lambda n: progress.advance(task, n)))  # type: ignore[arg-type]
        for p in paths
    ]


def _package_read(session: Session, package: Any, actor: Actor) -> dict[str, Any]:
    from zhengshu.exchange.files import service as files_service
    from zhengshu.exchange.files.schemas import PackageRead

    return wf._read(PackageRead, files_service.to_read(session, package, actor))


def _show_package(data: dict[str, Any]) -> None:
    wf._fields(
        f"文件包 {data['id']}",
        [
            ("标题", data["title"]),
            ("发送部门", data["sender_org_name"]),
            ("发送人", data["sender_username"]),
            ("状态", data["status_label"] + ("（已过期）" if data["expired"] else "")),
            ("发送时间", wf._when(data["created_at"])),
            ("有效期至", wf._when(data["expires_at"])),
            ("签名", f"{data['sig_alg']} · {data['key_id'][:16]}"),
            ("清单 SHA-256", data["manifest_sha256"]),
        ],
    )
    wf._table(
        "文件",
        ("序号", "文件名", "大小", "类型", "SM3"),
        [(f["seq"], f["name"], _size(f["size"]), f["file_type"], f["sm3"][:16] + "…") for f in data["files"]],
    )
    wf._table(
        "接收部门",
        ("部门", "首次下载", "下载次数", "签收"),
        [
            (r["org_name"], wf._when(r["first_download_at"]), r["download_count"], wf._when(r["received_at"]))
            for r in data["recipients"]
        ],
    )


# ====================================================================================================== #
# files                                                                                                  #
# ====================================================================================================== #


@files_app.command("send")
def files_send(
    paths: FileArgs,
    as_user: cli.AsUser,
    to: Annotated[list[str], typer.Option("--to", help="接收部门（ID、全称或简称），可重复")],
    title: Annotated[str, typer.Option(help="文件包标题")],
    note: Annotated[str, typer.Option(help="说明")] = "",
    expires_days: Annotated[
        int | None, typer.Option(help="有效期（天），默认按 ZHENGSHU_FILES_DEFAULT_EXPIRY_DAYS")
    ] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """发送文件包：逐个文件计算 SHA-256 与 SM3、按内容校验类型，清单由本节点签名。"""
    from zhengshu.exchange.files import service as files_service
    from zhengshu.exchange.files.schemas import PackageIn

    with ExitStack() as stack:
        streams = _incoming(paths, stack, show=not as_json)

        def work(session: Session, actor: Actor) -> dict[str, Any]:
            package_in = PackageIn(
                title=title,
                note=note,
                recipient_org_ids=[wf._org_id(session, t) for t in to],
                expires_days=expires_days,
            )
            package = files_service.send(session, actor=actor, package_in=package_in, files=streams)
            cli._audit(session, actor, "files.send", "file_package", package.id, files=package.file_count)
            return _package_read(session, package, actor)

        data = wf._run(as_user, work, action="files.send", target=("file_package", ""))
    if as_json:
        wf._print_json(data)
        return
    names = "、".join(r["org_name"] for r in data["recipients"])
    cli.console.print(
        f"已发送文件包 {data['id']}：{data['file_count']} 个文件，共 {_size(data['total_size'])}，发往 {names}；"
        f"有效期至 {wf._when(data['expires_at'])}"
    )


def _list(as_user: str, box: str, q: str | None, limit: int, as_json: bool) -> None:
    from zhengshu.exchange.files import service as files_service
    from zhengshu.exchange.files.models import FilePackage
    from zhengshu.exchange.files.schemas import PackageSummary

    def work(session: Session, actor: Actor) -> list[dict[str, Any]]:
        stmt = files_service.list_query(actor, box=box, q=q).order_by(FilePackage.created_at.desc()).limit(limit)
        rows = list(session.scalars(stmt))
        names = files_service.org_names(session, list({p.sender_org_id for p in rows}))
        return [wf._read(PackageSummary, files_service.to_summary(p, actor, names)) for p in rows]

    items = wf._run(as_user, work)
    if as_json:
        wf._print_json(items)
        return
    wf._table(
        {"received": "收件箱", "sent": "发件箱"}.get(box, "文件包"),
        ("编号", "标题", "发送部门", "文件数", "大小", "发送时间", "有效期至", "状态"),
        [
            (
                p["id"],
                p["title"],
                p["sender_org_name"],
                p["file_count"],
                _size(p["total_size"]),
                wf._when(p["created_at"]),
                wf._when(p["expires_at"]),
                ("已签收" if p["received"] else p["status_label"]) + ("（已过期）" if p["expired"] else ""),
            )
            for p in items
        ],
        empty="没有文件包",
    )
    wf._limited(len(items), limit)


@files_app.command("inbox")
def files_inbox(as_user: cli.AsUser, q: wf.Query = None, limit: wf.Limit = 50, as_json: cli.JsonOut = False) -> None:
    """收件箱：发给 --as 用户所在部门的文件包。"""
    _list(as_user, "received", q, limit, as_json)


@files_app.command("outbox")
def files_outbox(as_user: cli.AsUser, q: wf.Query = None, limit: wf.Limit = 50, as_json: cli.JsonOut = False) -> None:
    """发件箱：本部门发出的文件包及签收情况。"""
    _list(as_user, "sent", q, limit, as_json)


@files_app.command("show")
def files_show(
    package_id: Annotated[str, typer.Argument(help="文件包编号")], as_user: cli.AsUser, as_json: cli.JsonOut = False
) -> None:
    """文件包详情：文件与摘要、接收部门的下载与签收情况。"""
    from zhengshu.exchange.files import service as files_service

    data = wf._run(
        as_user,
        lambda s, a: _package_read(s, files_service.get_visible(s, actor=a, package_id=package_id), a),
    )
    if as_json:
        wf._print_json(data)
        return
    _show_package(data)


def _copy_resuming(source: Path, target: Path, advance: Any) -> None:
    """Copy into ``target`` continuing a partial ``.part`` file from where it stopped."""
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if offset > source.stat().st_size:
        part.unlink()
        offset = 0
    advance(offset)
    with source.open("rb") as src, part.open("ab") as dst:
        src.seek(offset)
        while chunk := src.read(1024 * 1024):
            dst.write(chunk)
            advance(len(chunk))
    part.replace(target)


@files_app.command("download")
def files_download(
    package_id: Annotated[str, typer.Argument(help="文件包编号")],
    as_user: cli.AsUser,
    out: Annotated[Path, typer.Option("--out", help="保存到的目录", file_okay=False)] = Path("."),
    receipt: Annotated[bool, typer.Option("--receipt/--no-receipt", help="下载并核验后签收（回执）")] = True,
    as_json: cli.JsonOut = False,
) -> None:
    """下载文件包（中断后再次执行会续传），逐个核对签名清单中的 SHA-256 与 SM3，全部一致后签收。"""
    from zhengshu.core.errors import ValidationFailed
    from zhengshu.exchange.files import nodekeys
    from zhengshu.exchange.files import service as files_service
    from zhengshu.exchange.files.schemas import ReceivedFile

    out.mkdir(parents=True, exist_ok=True)

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        package = files_service.get_visible(session, actor=actor, package_id=package_id)
        manifest = files_service.verify_manifest(session, package)
        received = []
        with ExitStack() as stack:
            advance: Any = lambda n: None  # noqa: E731  (no bar when the output is JSON)
            if not as_json:
                progress = stack.enter_context(cli.progress())
                task = progress.add_task("下载", total=package.total_size)
                advance = lambda n: progress.advance(task, n)  # noqa: E731
            for f in package.files:
                _, source = files_service.open_file(session, actor=actor, package_id=package.id, file_id=f.id)
                target = out / f.name
                _copy_resuming(source, target, advance)
                size, sha, sm3 = nodekeys.file_digests(target)
                listed = next(m for m in manifest["files"] if m["name"] == f.name)
                if (size, sha, sm3) != (listed["size"], listed["sha256"], listed["sm3"]):
                    target.unlink()
                    raise ValidationFailed(
                        f"下载的“{f.name}”与签名清单中的摘要不符，已删除", code="files.download_mismatch"
                    )
                received.append(ReceivedFile(name=f.name, sha256=sha, sm3=sm3))
        result: dict[str, Any] = {
            "package_id": package.id,
            "files": [r.model_dump() for r in received],
            "out": str(out),
        }
        if receipt and actor.org_id in {r.org_id for r in package.recipients}:
            row = files_service.receipt(session, actor=actor, package_id=package.id, received=received)
            result["receipt"] = {"id": row.id, "verified": row.verified, "complete": row.complete}
        return result

    data = wf._run(as_user, work, action="files.download", target=("file_package", package_id))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已下载 {len(data['files'])} 个文件到 {data['out']}，摘要与签名清单一致")
    if "receipt" in data:
        cli.console.print(
            f"已签收：回执 {data['receipt']['id']}（发送方核验{'通过' if data['receipt']['verified'] else '未通过'}）"
        )


@files_app.command("receipt")
def files_receipt(
    package_id: Annotated[str, typer.Argument(help="文件包编号")],
    as_user: cli.AsUser,
    digests: Annotated[
        Path | None,
        typer.Option(
            "--digests", help="JSON 文件：[{name, sha256, sm3}]，本方计算的摘要；缺省时以平台核验的存储副本为准"
        ),
    ] = None,
    save: Annotated[Path | None, typer.Option("--save", help="把签名回执另存为 JSON 文件")] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """签收文件包：由本节点密钥签名回执，发送方当即核验。"""
    from zhengshu.exchange.files import service as files_service
    from zhengshu.exchange.files.schemas import ReceiptRead, ReceivedFile

    received = None
    if digests is not None:
        received = [ReceivedFile.model_validate(x) for x in json.loads(digests.read_text(encoding="utf-8"))]

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        row = files_service.receipt(session, actor=actor, package_id=package_id, received=received)
        cli._audit(session, actor, "files.receipt", "file_package", package_id, receipt_id=row.id)
        return {
            **wf._read(ReceiptRead, row),
            "signed": {
                "document": row.document,
                "signature": {"alg": row.sig_alg, "key_id": row.key_id, "value": row.signature},
            },
        }

    data = wf._run(as_user, work, action="files.receipt", target=("file_package", package_id))
    if save is not None:
        save.write_text(json.dumps(data["signed"], ensure_ascii=False, indent=2), encoding="utf-8")
    if as_json:
        wf._print_json(data)
        return
    state = "完整" if data["complete"] else f"不完整：{data['verify_error']}"
    cli.console.print(f"已签收文件包 {package_id}：回执 {data['id']}，发送方核验通过，{state}")


@files_app.command("verify-receipt")
def files_verify_receipt(
    package_id: Annotated[str, typer.Argument(help="文件包编号")],
    receipt_file: Annotated[
        Path, typer.Argument(help="回执 JSON（document 与 signature）", exists=True, dir_okay=False)
    ],
    as_user: cli.AsUser,
    as_json: cli.JsonOut = False,
) -> None:
    """发送方核验一份回执（如对方节点传回的回执）：签名、所属文件包、清单摘要与接收部门。"""
    from zhengshu.exchange.files import service as files_service

    signed = json.loads(receipt_file.read_text(encoding="utf-8"))

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        return files_service.recheck_receipt(
            session, actor=actor, package_id=package_id, document=signed["document"], signature=signed["signature"]
        )

    doc = wf._run(as_user, work)
    if as_json:
        wf._print_json({"valid": True, **doc})
        return
    cli.console.print(
        f"回执有效：{doc['recipient']['org_name']}（{doc['recipient']['user']}）于 {wf._when(doc['received_at'])} "
        f"签收 {len(doc['files'])} 个文件"
    )


@files_app.command("withdraw")
def files_withdraw(
    package_id: Annotated[str, typer.Argument(help="文件包编号")],
    as_user: cli.AsUser,
    reason: wf.Reason,
    as_json: cli.JsonOut = False,
) -> None:
    """撤回本部门发出的文件包：此后不再提供下载。"""
    from zhengshu.exchange.files import service as files_service

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        package = files_service.withdraw(session, actor=actor, package_id=package_id, reason=reason)
        cli._audit(session, actor, "files.withdraw", "file_package", package.id, reason=reason)
        return _package_read(session, package, actor)

    data = wf._run(as_user, work, action="files.withdraw", target=("file_package", package_id))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已撤回文件包 {package_id}")


@files_app.command("purge-expired")
def files_purge_expired(as_json: cli.JsonOut = False) -> None:
    """每日任务（以系统身份）：删除已过期文件包的存储文件，保留清单、签名与回执。"""
    from zhengshu.exchange.files import service as files_service

    def work(session: Session, actor: Actor) -> int:
        n = files_service.purge_expired(session, actor=actor)
        cli._audit(session, actor, "files.purge_expired", purged=n)
        return n

    n = wf._run(None, work)
    if as_json:
        wf._print_json({"purged": n})
        return
    cli.console.print(f"已清理 {n} 个过期文件包的存储文件")


# ====================================================================================================== #
# ferry                                                                                                  #
# ====================================================================================================== #


def _export_read(export: Any) -> dict[str, Any]:
    from zhengshu.exchange.files.api import export_read

    return json.loads(json.dumps(export_read(export), default=str))


@ferry_app.command("request")
def ferry_request(
    paths: FileArgs,
    as_user: cli.AsUser,
    title: Annotated[str, typer.Option(help="导出事项")],
    to: Annotated[str, typer.Option("--to", help="目标节点代码（对方网络的节点）")],
    classification: Annotated[str, typer.Option(help="密级：只能为“非涉密”")] = "非涉密",
    purpose: Annotated[str, typer.Option(help="用途说明")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提交摆渡导出申请（部门数据专员）：文件暂存并校验，待数据主管部门审批。"""
    from zhengshu.exchange.files import ferry
    from zhengshu.exchange.files.schemas import ExportIn

    with ExitStack() as stack:
        streams = _incoming(paths, stack, show=not as_json)

        def work(session: Session, actor: Actor) -> dict[str, Any]:
            export_in = ExportIn(title=title, purpose=purpose, classification=classification, target_node=to)
            export = ferry.request_export(session, actor=actor, export_in=export_in, files=streams)
            cli._audit(session, actor, "ferry.request", "ferry_export", export.id, files=len(export.files))
            return _export_read(export)

        data = wf._run(as_user, work, action="ferry.request", target=("ferry_export", ""))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(
        f"已提交摆渡导出申请 {data['id']}（{len(data['files'])} 个文件，发往 {data['target_node']}），待审批"
    )


@ferry_app.command("request-data")
def ferry_request_data(
    resource_id: Annotated[str, typer.Argument(help="本部门已发布目录挂接的数据表（挂接资源 ID）")],
    as_user: cli.AsUser,
    title: Annotated[str, typer.Option(help="导出事项")],
    to: Annotated[str, typer.Option("--to", help="目标节点代码（对方网络的节点）")],
    classification: Annotated[str, typer.Option(help="密级：只能为“非涉密”")] = "非涉密",
    purpose: Annotated[str, typer.Option(help="用途说明")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """提交数据导出申请：只导出开放的信息项，按脱敏规则处理后写成 Parquet 文件，待数据主管部门审批。"""
    from zhengshu.exchange.files import ferry
    from zhengshu.exchange.files.schemas import ExportIn

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        export_in = ExportIn(title=title, purpose=purpose, classification=classification, target_node=to)
        export = ferry.request_data_export(session, actor=actor, export_in=export_in, resource_id=resource_id)
        cli._audit(session, actor, "ferry.request", "ferry_export", export.id, resource_id=resource_id)
        return _export_read(export)

    data = wf._run(as_user, work, action="ferry.request", target=("ferry_export", ""))
    if as_json:
        wf._print_json(data)
        return
    items = "、".join(i["name"] for i in data["data_source"]["items"])
    cli.console.print(
        f"已提交数据导出申请 {data['id']}：{data['data_source']['rows']:,} 行，信息项 {items}（已按规则脱敏），待审批"
    )


def _decide(as_user: str, export_id: str, approve: bool, comment: str, as_json: bool) -> None:
    from zhengshu.exchange.files import ferry

    verb = "approve" if approve else "refuse"

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        export = ferry.decide(session, actor=actor, export_id=export_id, approve=approve, comment=comment)
        cli._audit(session, actor, f"ferry.{verb}", "ferry_export", export.id, bundle_id=export.bundle_id)
        return _export_read(export)

    data = wf._run(as_user, work, action=f"ferry.{verb}", target=("ferry_export", export_id))
    if as_json:
        wf._print_json(data)
        return
    if approve:
        cli.console.print(f"已批准，摆渡包 {data['bundle_id']} 已写入导出目录：{data['bundle_path']}")
    else:
        cli.console.print(f"已不予批准摆渡导出申请 {export_id}")


@ferry_app.command("approve")
def ferry_approve(
    export_id: Annotated[str, typer.Argument(help="摆渡导出申请编号")],
    as_user: cli.AsUser,
    comment: wf.Comment = "",
    as_json: cli.JsonOut = False,
) -> None:
    """批准摆渡导出（数据主管部门审核员）：摆渡包随即写入导出目录。"""
    _decide(as_user, export_id, True, comment, as_json)


@ferry_app.command("refuse")
def ferry_refuse(
    export_id: Annotated[str, typer.Argument(help="摆渡导出申请编号")],
    as_user: cli.AsUser,
    reason: wf.Reason,
    as_json: cli.JsonOut = False,
) -> None:
    """不予批准摆渡导出（须说明理由）。"""
    _decide(as_user, export_id, False, reason, as_json)


@ferry_app.command("export")
def ferry_export(
    export_id: Annotated[str, typer.Argument(help="已批准的摆渡导出申请编号")],
    as_json: cli.JsonOut = False,
) -> None:
    """（运维，以系统身份）把已批准的申请重新写入导出目录，摆渡包编号不变（对方仍只会导入一次）。"""
    from zhengshu.exchange.files import ferry
    from zhengshu.exchange.files.models import FerryExport

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        export = session.get(FerryExport, export_id)
        if export is None:
            from zhengshu.core.errors import NotFound

            raise NotFound("未找到该摆渡导出申请", code="ferry.not_found")
        path = ferry.write_bundle(session, actor=actor, export=export)
        return {"export_id": export.id, "bundle_id": export.bundle_id, "path": str(path)}

    data = wf._run(None, work, action="ferry.export", target=("ferry_export", export_id))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"摆渡包 {data['bundle_id']} 已写入 {data['path']}")


@ferry_app.command("import")
def ferry_import(
    inbox: Annotated[
        Path | None, typer.Option("--inbox", help="导入目录，默认 ZHENGSHU_FERRY_INBOX_DIR", file_okay=False)
    ] = None,
    as_json: cli.JsonOut = False,
) -> None:
    """导入摆渡包（以系统身份）：逐个验证签名、审批、摘要、允许类型与是否重放；合格的放入接收目录，其余隔离。

    有任何摆渡包被拒收时退出码为 1。
    """
    from zhengshu.core.config import get_settings
    from zhengshu.core.errors import ZhengshuError
    from zhengshu.exchange.files import ferry

    database = cli._database()
    try:
        results = ferry.import_pending(
            database.session_factory, actor=cli._cli_actor(), settings=get_settings(), inbox=inbox
        )
    except ZhengshuError as exc:
        wf._failed(exc)
    finally:
        database.dispose()
    rows = [r.__dict__ for r in results]
    if as_json:
        wf._print_json(
            {
                "imported": sum(r.accepted for r in results),
                "refused": sum(not r.accepted for r in results),
                "results": rows,
            }
        )
    else:
        wf._table(
            "摆渡导入",
            ("摆渡包", "结果", "原因", "位置"),
            [(r.bundle_id or r.name, "已导入" if r.accepted else "已拒收（隔离）", r.reason, r.path) for r in results],
            empty="导入目录中没有待导入的摆渡包",
        )
    if any(not r.accepted for r in results):
        raise typer.Exit(1)


@ferry_app.command("list")
def ferry_list(
    direction: Annotated[str | None, typer.Option(help="export 导出 / import 导入")] = None,
    outcome: Annotated[str | None, typer.Option(help="exported / imported / refused")] = None,
    limit: wf.Limit = 50,
    as_json: cli.JsonOut = False,
) -> None:
    """摆渡台账：本节点导出、导入与拒收的每一个摆渡包。"""
    from zhengshu.exchange.files import ferry
    from zhengshu.exchange.files.schemas import LEDGER_OUTCOME_LABELS, LedgerRead

    rows = wf._run(
        None,
        lambda s, a: [
            wf._read(LedgerRead, r) for r in ferry.ledger(s, actor=a, direction=direction, outcome=outcome, limit=limit)
        ],
    )
    if as_json:
        wf._print_json(rows)
        return
    wf._table(
        "摆渡台账",
        ("时间", "方向", "结果", "摆渡包", "来源→目标", "事项", "文件数", "原因"),
        [
            (
                wf._when(r["at"]),
                "导出" if r["direction"] == "export" else "导入",
                LEDGER_OUTCOME_LABELS.get(r["outcome"], r["outcome"]),
                r["bundle_id"],
                f"{r['source_node']}→{r['target_node']}",
                r["title"],
                r["file_count"],
                r["reason"],
            )
            for r in rows
        ],
        empty="台账为空",
    )


# ---- keys ------------------------------------------------------------------------------------------------


def _key_row(key: Any) -> dict[str, Any]:
    from zhengshu.exchange.files import nodekeys

    return {
        "key_id": key.key_id,
        "fingerprint": nodekeys.fingerprint(key.key_id),
        "node_code": key.node_code,
        "node_name": key.node_name,
        "is_local": key.is_local,
        "sig_alg": key.sig_alg,
        "status": key.status,
    }


@keys_app.command("init")
def keys_init(
    alg: Annotated[
        str | None, typer.Option(help="签名算法 ed25519 或 sm2，默认 ZHENGSHU_FILES_SIGNATURE_ALGORITHM")
    ] = None,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="已有密钥时生成新密钥（旧密钥停用但仍可验证其签名）")
    ] = False,
    as_json: cli.JsonOut = False,
) -> None:
    """生成本节点的签名与密钥协商密钥（私钥以平台主密钥加密保存）。"""
    from zhengshu.core.config import get_settings
    from zhengshu.exchange.files import nodekeys

    settings = get_settings()

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        key = nodekeys.local_key(session)
        if key is None or rotate:
            key = nodekeys.create_local_key(
                session,
                actor=actor,
                node_code=settings.node_code,
                node_name=settings.node_name,
                sig_alg=alg or settings.files_signature_algorithm,
                settings=settings,
            )
            cli._audit(session, actor, "ferry.key_created", "node_key", key.key_id, sig_alg=key.sig_alg)
        return _key_row(key)

    data = wf._run(None, work)
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"本节点密钥（{data['sig_alg']}）指纹：[bold]{data['fingerprint']}[/bold]")


@keys_app.command("export")
def keys_export(
    out: Annotated[Path | None, typer.Option("--out", help="写入文件；缺省打印")] = None,
) -> None:
    """导出本节点公钥文件，交给对方节点的管理员（同时电话或书面告知指纹）。"""
    from zhengshu.exchange.files import nodekeys

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        key = nodekeys.local_key(session)
        if key is None:
            from zhengshu.core.errors import NotFound

            raise NotFound("本节点尚无密钥，请先执行 zhengshu ferry keys init", code="exchange.no_local_key")
        return {**nodekeys.public_document(key), "key_id": key.key_id}

    doc = wf._run(None, work)
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if out is None:
        print(text)
        return
    out.write_text(text, encoding="utf-8")
    cli.err.print(f"公钥已写入 {out}；指纹 {nodekeys.fingerprint(doc['key_id'])}")


@keys_app.command("trust")
def keys_trust(
    key_file: Annotated[Path, typer.Argument(help="对方节点的公钥文件", exists=True, dir_okay=False)],
    fingerprint: Annotated[str, typer.Option("--fingerprint", help="对方管理员告知的指纹（至少前 16 位）")],
    note: Annotated[str, typer.Option(help="备注")] = "",
    as_json: cli.JsonOut = False,
) -> None:
    """信任对方节点的公钥：核对指纹一致后加入信任列表。"""
    from zhengshu.exchange.files import nodekeys

    document = json.loads(key_file.read_text(encoding="utf-8"))

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        key = nodekeys.trust_peer(session, actor=actor, document=document, expected_key_id=fingerprint, note=note)
        cli._audit(session, actor, "ferry.key_trusted", "node_key", key.key_id, node_code=key.node_code)
        return _key_row(key)

    data = wf._run(None, work, action="ferry.key_trusted", target=("node_key", ""))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已信任节点 {data['node_code']}（{data['node_name']}）的公钥，指纹 {data['fingerprint']}")


@keys_app.command("list")
def keys_list(as_json: cli.JsonOut = False) -> None:
    """本节点密钥与受信任的对端公钥。"""
    from zhengshu.exchange.files import nodekeys

    rows = wf._run(None, lambda s, a: [_key_row(k) for k in nodekeys.list_keys(s)])
    if as_json:
        wf._print_json(rows)
        return
    labels = {"active": "有效", "retired": "已停用（仅验证）", "revoked": "已吊销"}
    wf._table(
        "节点密钥",
        ("节点", "名称", "本节点", "算法", "指纹", "状态"),
        [
            (r["node_code"], r["node_name"], r["is_local"], r["sig_alg"], r["fingerprint"], labels.get(r["status"]))
            for r in rows
        ],
        empty="尚无密钥，请执行 zhengshu ferry keys init",
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="密钥指纹（或其前缀）")],
    as_json: cli.JsonOut = False,
) -> None:
    """吊销一个密钥：此后由它签名的清单、回执和摆渡包一律拒收。"""
    from zhengshu.exchange.files import nodekeys

    def work(session: Session, actor: Actor) -> dict[str, Any]:
        key = nodekeys.revoke(session, key_id=key_id)
        cli._audit(session, actor, "ferry.key_revoked", "node_key", key.key_id)
        return _key_row(key)

    data = wf._run(None, work, action="ferry.key_revoked", target=("node_key", key_id))
    if as_json:
        wf._print_json(data)
        return
    cli.console.print(f"已吊销密钥 {data['fingerprint']}（节点 {data['node_code']}）")
