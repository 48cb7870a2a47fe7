"""Evidence files of objections: checked by extension *and* content signature, stored under a generated name.

A file is refused before anything is written when it is too large, of a type not on the list, or disguised
(a ``.pdf`` that is really a ZIP or an executable). Files written in a transaction that later rolls back are
removed again, so the disk never holds evidence the database does not know.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import after_transaction, new_id
from zhengshu.core.errors import FieldError, NotFound, ValidationFailed
from zhengshu.security import filecheck
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import sm3_hex

MAX_FILES = 10

# The evidence types (the shared checks in ``security.filecheck`` know more; objections accept these).
ALLOWED = ("pdf", "ofd", "jpg", "png", "xlsx", "docx", "txt", "csv")
# type → (extensions, content type, label)
TYPES: dict[str, tuple[tuple[str, ...], str, str]] = {
    code: (filecheck.TYPES[code].extensions, filecheck.TYPES[code].content_type, filecheck.TYPES[code].label)
    for code in ALLOWED
}
EXTENSION_TYPES = {ext: t for t, (exts, _, _) in TYPES.items() for ext in exts}
ALLOWED_LABEL = filecheck.allowed_label(ALLOWED)

_SAFE_ID = re.compile(r"^[0-9a-f]{24,32}$")
_CODES = {"too_large": "objection.attachment_too_large"}
clean_filename = filecheck.clean_filename


class Upload(NamedTuple):
    """A file as received: the uploader's name and its bytes (a plain ``(name, bytes)`` tuple works too)."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class CheckedFile:
    filename: str
    extension: str
    file_type: str
    content_type: str
    content: bytes
    sm3: str


def max_bytes(settings: Settings | None = None) -> int:
    return (settings or get_settings()).max_attachment_mb * 1024 * 1024


def sniff(content: bytes) -> str | None:
    """The file type the bytes really are (one of ``TYPES``, or ``"text"``), or None."""
    found = filecheck.sniff_bytes(content)
    return found if found == "text" or found in TYPES else None


def check(filename: str, content: bytes, *, limit: int) -> CheckedFile:
    """Validate one file; raises ``objection.attachment_too_large`` or ``objection.attachment_type``."""
    display = clean_filename(filename)
    try:
        file_type = filecheck.check_type(
            display, sniff(content) if content else None, len(content), allowed=ALLOWED, limit=limit, noun="附件"
        )
    except filecheck.FileRefused as exc:
        code = _CODES.get(exc.reason, "objection.attachment_type")
        extra = {"filename": display}
        if exc.reason in ("extension", "disguised"):
            extra["reason"] = exc.reason
        raise ValidationFailed(
            exc.detail, code=code, errors=[FieldError("attachments", exc.detail)], extra=extra
        ) from exc
    extension = Path(display).suffix.lower()
    return CheckedFile(display, extension, file_type.code, file_type.content_type, content, sm3_hex(content))


def check_all(files: Sequence[Upload | tuple[str, bytes]], *, limit: int, existing: int = 0) -> list[CheckedFile]:
    if existing + len(files) > MAX_FILES:
        message = f"每件异议最多上传 {MAX_FILES} 个附件"
        raise ValidationFailed(message, code="objection.attachment_count", errors=[FieldError("attachments", message)])
    return [check(name, content, limit=limit) for name, content in files]


# ---- storage ------------------------------------------------------------------------------------------


def root(data_dir: Path | None = None) -> Path:
    return Path(data_dir if data_dir is not None else get_settings().data_dir) / "attachments"


def folder(objection_id: str, data_dir: Path | None = None) -> Path:
    if not _SAFE_ID.match(objection_id):
        raise NotFound("未找到该附件", code="objection.attachment_not_found")
    return root(data_dir) / objection_id


def _track(session: Session, path: Path) -> None:
    """A file written in this transaction: a rollback (of the transaction, or of the savepoint it was written
    in) removes it."""
    after_transaction(session, rolled_back=lambda: path.unlink(missing_ok=True))


def write(session: Session, *, objection_id: str, checked: CheckedFile, data_dir: Path | None) -> str:
    """Write one checked file under a generated name; returns that name."""
    target_dir = folder(objection_id, data_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stored_name = f"{new_id()}{checked.extension}"
    path = target_dir / stored_name
    tmp = target_dir / f".{stored_name}.part"
    tmp.write_bytes(checked.content)
    tmp.replace(path)
    _track(session, path)
    return stored_name


def path_of(*, objection_id: str, stored_name: str, data_dir: Path | None) -> Path:
    base = folder(objection_id, data_dir).resolve()
    path = (base / stored_name).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise NotFound("附件文件不存在或已被移除", code="objection.attachment_not_found")
    return path


def store(
    session: Session,
    *,
    actor: Actor,
    objection: Any,
    files: Sequence[CheckedFile],
    data_dir: Path | None,
) -> list[Any]:
    """Write checked files and their rows (``ObjectionAttachment``); the caller checked permission."""
    from zhengshu.objection.models import ObjectionAttachment

    rows = []
    for checked in files:
        stored_name = write(session, objection_id=objection.id, checked=checked, data_dir=data_dir)
        row = ObjectionAttachment(
            objection_id=objection.id,
            filename=checked.filename,
            stored_name=stored_name,
            file_type=checked.file_type,
            content_type=checked.content_type,
            size=len(checked.content),
            sm3=checked.sm3,
            uploaded_by=actor.username,
            uploaded_by_org_id=actor.org_id,
        )
        objection.attachments.append(row)
        rows.append(row)
    session.flush()
    return rows
