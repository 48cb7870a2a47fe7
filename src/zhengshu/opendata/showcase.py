"""优秀应用 (showcase): registered users submit applications built on open data; the data authority or an
administrator moderates them; the public sees the approved ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, FieldError, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.opendata import accounts
from zhengshu.opendata import public_permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import PublicAccount, ShowcaseApp
from zhengshu.opendata.public_schemas import ShowcaseIn
from zhengshu.security import authz
from zhengshu.security.actor import Actor

STATUS_LABELS = {"pending": "待审核", "approved": "已展示", "rejected": "未通过"}
MAX_SCREENSHOT_BYTES = 2 * 1024 * 1024
# content signatures: the file's bytes decide its type, never its name
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}


def _screenshot_kind(data: bytes) -> str:
    for magic, kind in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    raise ValidationFailed(
        "截图须为 PNG 或 JPEG 图片",
        code="opendata.showcase_invalid",
        errors=[FieldError("screenshot", "仅支持 PNG、JPEG")],
    )


def screenshot_dir(data_dir: Path) -> Path:
    return data_dir / "opendata-showcase"


def submit(
    session: Session,
    *,
    account: PublicAccount,
    showcase_in: ShowcaseIn,
    screenshot: bytes | None = None,
    data_dir: Path,
) -> ShowcaseApp:
    errors = ErrorCollector()
    ids = list(dict.fromkeys(showcase_in.dataset_ids))
    found = set(
        session.scalars(select(OpenDataset.id).where(OpenDataset.id.in_(ids), OpenDataset.status == "published"))
    )
    missing = [i for i in ids if i not in found]
    if missing:
        errors.add("dataset_ids", f"有 {len(missing)} 个数据集不存在或未开放")
    if screenshot is not None and len(screenshot) > MAX_SCREENSHOT_BYTES:
        errors.add("screenshot", "截图不能超过 2 MB")
    errors.raise_if_any("应用信息未通过校验", code="opendata.showcase_invalid")
    kind = _screenshot_kind(screenshot) if screenshot else None
    app = ShowcaseApp(
        id=new_id(),
        account_id=account.id,
        name=showcase_in.name,
        description=showcase_in.description,
        link=showcase_in.link,
        dataset_ids=ids,
        status="pending",
    )
    if screenshot is not None and kind is not None:
        folder = screenshot_dir(data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{app.id}.{kind}"
        path.write_bytes(screenshot)
        app.screenshot_path = path.name
    session.add(app)
    session.flush()
    emit(session, "opendata.showcase_submitted", showcase_id=app.id, account_id=account.id)
    return app


def public_query() -> Select[tuple[ShowcaseApp]]:
    return select(ShowcaseApp).where(ShowcaseApp.status == "approved").order_by(ShowcaseApp.moderated_at.desc())


def moderation_query(actor: Actor, *, status: str | None = "pending") -> Select[tuple[ShowcaseApp]]:
    authz.ensure(actor, "opendata.showcase_moderate")
    stmt = select(ShowcaseApp).order_by(ShowcaseApp.created_at.desc())
    return stmt.where(ShowcaseApp.status == status) if status else stmt


def list_for_account(session: Session, *, account: PublicAccount) -> list[ShowcaseApp]:
    return list(
        session.scalars(
            select(ShowcaseApp).where(ShowcaseApp.account_id == account.id).order_by(ShowcaseApp.created_at.desc())
        )
    )


def get_public(session: Session, *, showcase_id: str) -> ShowcaseApp:
    app = session.get(ShowcaseApp, showcase_id)
    if app is None or app.status != "approved":
        raise NotFound("未找到该应用", code="opendata.showcase_not_found")
    return app


def _moderate(session: Session, *, actor: Actor, showcase_id: str, status: str, reason: str) -> ShowcaseApp:
    authz.ensure(actor, "opendata.showcase_moderate")
    app = session.get(ShowcaseApp, showcase_id)
    if app is None:
        raise NotFound("未找到该应用", code="opendata.showcase_not_found")
    if app.status == status:
        raise Conflict(f"该应用已是「{STATUS_LABELS[status]}」", code="opendata.showcase_unchanged")
    app.status = status
    app.moderation_reason = reason
    app.moderated_by = actor.username
    app.moderated_at = utcnow()
    session.flush()
    emit(session, f"opendata.showcase_{status}", showcase_id=app.id)
    return app


def approve(session: Session, *, actor: Actor, showcase_id: str, reason: str = "") -> ShowcaseApp:
    return _moderate(session, actor=actor, showcase_id=showcase_id, status="approved", reason=reason)


def reject(session: Session, *, actor: Actor, showcase_id: str, reason: str) -> ShowcaseApp:
    if not reason.strip():
        raise ValidationFailed(
            "不通过时须说明理由", code="opendata.showcase_invalid", errors=[FieldError("reason", "请填写不通过的理由")]
        )
    return _moderate(session, actor=actor, showcase_id=showcase_id, status="rejected", reason=reason)


def to_read(session: Session, app: ShowcaseApp) -> dict[str, Any]:
    datasets = {
        d.id: d
        for d in session.scalars(
            select(OpenDataset).where(OpenDataset.id.in_(list(app.dataset_ids)), OpenDataset.status == "published")
        )
    }
    return {
        "id": app.id,
        "name": app.name,
        "description": app.description,
        "link": app.link,
        "datasets": [
            {"id": d.id, "title": d.title, "slug": d.slug} for i in app.dataset_ids if (d := datasets.get(str(i)))
        ],
        "submitter": app.account.company_name or app.account.display_name,
        "submitter_account": accounts.label(app.account),
        "status": app.status,
        "status_label": STATUS_LABELS.get(app.status, app.status),
        "moderation_reason": app.moderation_reason,
        "has_screenshot": bool(app.screenshot_path),
        "created_at": app.created_at,
    }
