"""Evidence files of objections: checked by extension *and* content signature, stored under a generated name.

A file is refused before anything is written when it is too large, of a type not on the list, or disguised
(a ``.pdf`` that is really a ZIP or an executable). Files written in a transaction that later rolls back are
removed again, so the disk never holds evidence the database does not know.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import event
from sqlalchemy.orm import Session

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.db import new_id
from zhengshu.core.errors import FieldError, NotFound, ValidationFailed
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import sm3_hex

MAX_FILES = 10

# type → (extensions, content type, label)
TYPES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "pdf": ((".pdf",), "application/pdf", "PDF"),
    "ofd": ((".ofd",), "application/ofd", "OFD"),
    "jpg": ((".jpg", ".jpeg"), "image/jpeg", "JPG"),
    "png": ((".png",), "image/png", "PNG"),
    "xlsx": ((".xlsx",), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "XLSX"),
    "docx": ((".docx",), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "DOCX"),
    "txt": ((".txt",), "text/plain; charset=utf-8", "TXT"),
    "csv": ((".csv",), "text/csv; charset=utf-8", "CSV"),
}
EXTENSION_TYPES = {ext: t for t, (exts, _, _) in TYPES.items() for ext in exts}
ALLOWED_LABEL = "PDF、OFD、JPG、PNG、XLSX、DOCX、TXT、CSV"

# signatures of things that must never pass as text
_BINARY_MAGIC = (b"MZ", b"\x7fELF", b"PK\x03\x04", b"%PDF", b"\xd0\xcf\x11\xe0", b"\xca\xfe\xba\xbe")
_SAFE_ID = re.compile(r"^[0-9a-f]{24,32}$")


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


def _refuse(code: str, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError("attachments", message)], extra=extra)


def clean_filename(name: str) -> str:
    """The uploader's file name for display: no directories, no control characters, at most 200 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not base:
        base = "附件"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:190] + dot + ext[:9]) if dot else base[:200]
    return base


def _zip_names(content: bytes) -> set[str] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None


def _is_text(content: bytes) -> bool:
    if b"\x00" in content or content.startswith(_BINARY_MAGIC):
        return False
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content.decode(encoding)
        except UnicodeDecodeError:
            continue
        return True
    return False


def sniff(content: bytes) -> str | None:
    """The file type the bytes really are (one of ``TYPES``), or None."""
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"PK\x03\x04"):
        names = _zip_names(content)
        if names is None:
            return None
        if "OFD.xml" in names:
            return "ofd"
        if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
            return "xlsx"
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
        return None  # a plain ZIP (or another container): not an accepted evidence type
    if _is_text(content):
        return "text"
    return None


def check(filename: str, content: bytes, *, limit: int) -> CheckedFile:
    """Validate one file; raises ``objection.attachment_too_large`` or ``objection.attachment_type``."""
    display = clean_filename(filename)
    if len(content) > limit:
        raise _refuse(
            "objection.attachment_too_large",
            f"附件“{display}”超过 {limit // (1024 * 1024)} MB 的大小上限",
            filename=display,
        )
    if not content:
        raise _refuse("objection.attachment_type", f"附件“{display}”是空文件", filename=display)
    extension = Path(display).suffix.lower()
    expected = EXTENSION_TYPES.get(extension)
    if expected is None:
        raise _refuse(
            "objection.attachment_type",
            f"附件“{display}”的类型不在允许范围内（允许 {ALLOWED_LABEL}）",
            filename=display,
            reason="extension",
        )
    actual = sniff(content)
    matches = actual == expected or (actual == "text" and expected in ("txt", "csv"))
    if not matches:
        raise _refuse(
            "objection.attachment_type",
            f"附件“{display}”的内容与扩展名 {extension} 不符，可能是伪装的文件，已拒收",
            filename=display,
            reason="disguised",
        )
    _, content_type, _ = TYPES[expected]
    return CheckedFile(display, extension, expected, content_type, content, sm3_hex(content))


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


_PENDING = "objection_attachment_files"


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _discard(session: Session) -> None:
    for path in session.info.pop(_PENDING, []):
        Path(path).unlink(missing_ok=True)


def _track(session: Session, path: Path) -> None:
    """Remember a written file until the transaction ends; a rollback removes it."""
    if not session.info.get(_PENDING + "_hooked"):
        event.listen(session, "after_commit", _forget)
        event.listen(session, "after_rollback", _discard)
        session.info[_PENDING + "_hooked"] = True
    session.info.setdefault(_PENDING, []).append(str(path))


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
