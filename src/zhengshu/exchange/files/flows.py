"""Side effects of file exchange, run after commit by the outbox: recipients hear of a new package, the sender
hears of each receipt. Notifications are reached through their service; nothing here changes a package."""

from __future__ import annotations

from sqlalchemy.orm import Session

from zhengshu.core.events import OutboxEvent, consumer
from zhengshu.core.timeutil import to_local
from zhengshu.exchange.files.models import FilePackage, PackageReceipt


@consumer("file_package.sent", "files.notify_recipients")
def notify_recipients(session: Session, event: OutboxEvent) -> None:
    from zhengshu.notify import service as notify_service

    package = session.get(FilePackage, event.payload["package_id"])
    if package is None:
        return
    expires_on = to_local(package.expires_at).date().isoformat()  # the date the recipient's clock shows
    for recipient in package.recipients:
        notify_service.notify(
            session,
            org_id=recipient.org_id,
            title=f"收到文件包：{package.title}",
            body=f"共 {package.file_count} 个文件，请在 {expires_on} 前下载核验并签收。",
            link=f"/exchange/packages/{package.id}",
            kind="files.received",
        )


@consumer("file_package.received", "files.notify_sender")
def notify_sender(session: Session, event: OutboxEvent) -> None:
    from zhengshu.notify import service as notify_service

    receipt = session.get(PackageReceipt, event.payload["receipt_id"])
    if receipt is None:
        return
    package = receipt.package
    org = next((r.org_name for r in package.recipients if r.org_id == receipt.recipient_org_id), "接收部门")
    state = "文件齐全、摘要一致" if receipt.complete else "回执与清单不一致，请核对"
    notify_service.notify(
        session,
        org_id=package.sender_org_id,
        title=f"{org}已签收文件包：{package.title}",
        body=f"回执签名已核验，{state}。",
        link=f"/exchange/packages/{package.id}",
        kind="files.receipt",
    )
