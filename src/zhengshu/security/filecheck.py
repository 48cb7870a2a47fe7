"""Checks every received file goes through: size limit, content sniffing by magic bytes (the extension must agree
with what the bytes really are), an allow list of types, and inspection of archives (path traversal, links,
zip bombs, nested archives).

Used by objection evidence, file exchange packages and the ferry between networks, so a file refused by one is
refused by all with the same reason. Works on bytes (small uploads) and on files on disk (large packages are never
read whole into memory).
"""

from __future__ import annotations

import io
import re
import stat
import tarfile
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from zhengshu.core.errors import FieldError, ValidationFailed

HEAD_BYTES = 8192  # enough to tell text from binary and to read every magic number below


@dataclass(frozen=True)
class FileType:
    code: str
    label: str
    extensions: tuple[str, ...]
    content_type: str
    archive: bool = False


# The types the platform knows; each feature allows a subset (settings may narrow it further).
TYPES: dict[str, FileType] = {
    t.code: t
    for t in (
        FileType("pdf", "PDF", (".pdf",), "application/pdf"),
        FileType("ofd", "OFD", (".ofd",), "application/ofd"),
        FileType("jpg", "JPG", (".jpg", ".jpeg"), "image/jpeg"),
        FileType("png", "PNG", (".png",), "image/png"),
        FileType("gif", "GIF", (".gif",), "image/gif"),
        FileType("bmp", "BMP", (".bmp",), "image/bmp"),
        FileType("xlsx", "XLSX", (".xlsx",), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        FileType("docx", "DOCX", (".docx",), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        FileType(
            "pptx", "PPTX", (".pptx",), "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        ),
        FileType("ole", "DOC/XLS/PPT/WPS/ET", (".doc", ".xls", ".ppt", ".wps", ".et"), "application/x-ole-storage"),
        FileType("txt", "TXT", (".txt",), "text/plain; charset=utf-8"),
        FileType("csv", "CSV", (".csv",), "text/csv; charset=utf-8"),
        FileType("json", "JSON", (".json",), "application/json"),
        FileType("xml", "XML", (".xml",), "application/xml"),
        FileType("parquet", "Parquet", (".parquet",), "application/vnd.apache.parquet"),
        FileType("zip", "ZIP", (".zip",), "application/zip", archive=True),
        FileType("tar", "TAR", (".tar",), "application/x-tar", archive=True),
        FileType("tgz", "TAR.GZ", (".tar.gz", ".tgz"), "application/gzip", archive=True),
    )
}
TEXT_TYPES = frozenset({"txt", "csv", "json", "xml"})
ARCHIVE_TYPES = frozenset(code for code, t in TYPES.items() if t.archive)

# Signatures of things that must never pass as text (executables, containers, documents).
_BINARY_MAGIC = (b"MZ", b"\x7fELF", b"PK\x03\x04", b"%PDF", b"\xd0\xcf\x11\xe0", b"\xca\xfe\xba\xbe", b"\x1f\x8b")


class FileRefused(ValidationFailed):
    """A file refused with a clear reason. ``reason`` is one of ``too_large``, ``empty``, ``extension``,
    ``disguised``, ``not_allowed``, ``archive``; features map it to their own stable codes."""

    code = "file.refused"
    title = "文件未通过检查"

    def __init__(self, message: str, *, reason: str, filename: str, code: str | None = None, field: str = "files"):
        self.reason = reason
        self.filename = filename
        super().__init__(
            message,
            code=code or f"file.{reason}",
            errors=[FieldError(field, message)],
            extra={"filename": filename, "reason": reason},
        )


# ---- names ---------------------------------------------------------------------------------------------


def clean_filename(name: str, default: str = "附件") -> str:
    """A received name for display and storage: no directories, no control characters, at most 200 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not base:
        base = default
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[:190] + dot + ext[:9]) if dot else base[:200]
    return base


def extension_of(name: str) -> str:
    lowered = name.lower()
    for double in (".tar.gz",):
        if lowered.endswith(double):
            return double
    return Path(lowered).suffix


def type_for_extension(name: str) -> FileType | None:
    ext = extension_of(name)
    return next((t for t in TYPES.values() if ext in t.extensions), None)


def allowed_label(codes: Iterable[str]) -> str:
    return "、".join(TYPES[c].label for c in codes if c in TYPES)


# ---- sniffing ------------------------------------------------------------------------------------------


def _is_text(head: bytes) -> bool:
    if b"\x00" in head or head.startswith(_BINARY_MAGIC):
        return False
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            head.decode(encoding)
        except UnicodeDecodeError as exc:
            # a multi-byte character cut by the end of the sniffed head is still text
            if exc.start >= len(head) - 4 and exc.reason.startswith("unexpected end"):
                return True
            continue
        return True
    return False


def _zip_kind(names: set[str]) -> str:
    if "OFD.xml" in names:
        return "ofd"
    if "[Content_Types].xml" in names:
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "word/document.xml" in names:
            return "docx"
        if "ppt/presentation.xml" in names:
            return "pptx"
    return "zip"


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def sniff_head(head: bytes, *, zip_names: set[str] | None = None) -> str | None:
    """What the leading bytes say the file is: a code of ``TYPES`` or ``"text"``; None when unknown.
    ZIP containers need their member names (``zip_names``) to tell a DOCX from a plain ZIP."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) > 14:
        return "bmp"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head.startswith(b"\x1f\x8b"):
        return "tgz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None if zip_names is None else _zip_kind(zip_names)
    if _is_tar(head):
        return "tar"
    if _is_text(head):
        return "text"
    return None


def _zip_names(source: Path | IO[bytes]) -> set[str] | None:
    try:
        with zipfile.ZipFile(source) as zf:
            return set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None


def sniff_bytes(content: bytes) -> str | None:
    head = content[:HEAD_BYTES]
    names = _zip_names(io.BytesIO(content)) if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) else None
    return sniff_head(head, zip_names=names)


def sniff_file(path: Path) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    names = _zip_names(path) if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) else None
    return sniff_head(head, zip_names=names)


def agrees(expected: FileType, actual: str | None) -> bool:
    """Whether sniffed content fits the type the extension claims."""
    if actual == expected.code:
        return True
    if actual == "text":
        return expected.code in TEXT_TYPES
    return False


# ---- one file ----------------------------------------------------------------------------------------


def _mb(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


def check_type(
    filename: str, sniffed: str | None, size: int, *, allowed: Iterable[str], limit: int, noun: str
) -> FileType:
    """The checks every file passes; returns its type. ``sniffed`` from :func:`sniff_bytes` / :func:`sniff_file`."""
    display = clean_filename(filename)
    allowed = tuple(allowed)
    if size > limit:
        raise FileRefused(f"{noun}“{display}”超过 {_mb(limit)} 的大小上限", reason="too_large", filename=display)
    if size == 0:
        raise FileRefused(f"{noun}“{display}”是空文件", reason="empty", filename=display)
    expected = type_for_extension(display)
    if expected is None or expected.code not in allowed:
        raise FileRefused(
            f"{noun}“{display}”的类型不在允许范围内（允许 {allowed_label(allowed)}）",
            reason="extension",
            filename=display,
        )
    if not agrees(expected, sniffed):
        raise FileRefused(
            f"{noun}“{display}”的内容与扩展名 {extension_of(display)} 不符，可能是伪装的文件，已拒收",
            reason="disguised",
            filename=display,
        )
    return expected


# ---- archives ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 100.0  # uncompressed / compressed, per entry and overall
    allow_nested: bool = False


@dataclass(frozen=True)
class ArchiveReport:
    entries: int
    total_bytes: int
    names: tuple[str, ...]


def _unsafe_name(name: str) -> str | None:
    """Why a member name could write outside the extraction directory, or None."""
    if not name or "\x00" in name:
        return "成员名称为空或含控制字符"
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return f"成员“{name}”使用绝对路径"
    if ".." in PurePosixPath(normalized).parts:
        return f"成员“{name}”含上级目录（../），可能覆盖其他文件"
    return None


def _archive_refused(display: str, why: str) -> FileRefused:
    return FileRefused(f"压缩包“{display}”未通过安全检查：{why}", reason="archive", filename=display)


def _check_entry(display: str, name: str, size: int, compressed: int, limits: ArchiveLimits) -> None:
    why = _unsafe_name(name)
    if why:
        raise _archive_refused(display, why)
    if compressed > 0 and size / compressed > limits.max_ratio and size > 1024 * 1024:
        raise _archive_refused(
            display, f"成员“{name}”压缩比 {size // compressed}:1 超过上限 {limits.max_ratio:g}:1，疑似压缩炸弹"
        )
    inner = type_for_extension(name)
    if not limits.allow_nested and inner is not None and inner.archive:
        raise _archive_refused(display, f"含嵌套压缩包“{name}”")


def _totals(display: str, count: int, total: int, compressed: int, limits: ArchiveLimits) -> None:
    if count > limits.max_entries:
        raise _archive_refused(display, f"成员数 {count:,} 超过上限 {limits.max_entries:,}")
    if total > limits.max_total_bytes:
        raise _archive_refused(display, f"解压后共 {_mb(total)}，超过上限 {_mb(limits.max_total_bytes)}，疑似压缩炸弹")
    if compressed > 0 and total > 1024 * 1024 and total / compressed > limits.max_ratio:
        raise _archive_refused(
            display, f"整体压缩比 {total // compressed}:1 超过上限 {limits.max_ratio:g}:1，疑似压缩炸弹"
        )


def _inspect_zip(source: Path | IO[bytes], display: str, limits: ArchiveLimits) -> ArchiveReport:
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _archive_refused(display, "不是有效的 ZIP 文件") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise _archive_refused(display, f"成员数 {len(infos):,} 超过上限 {limits.max_entries:,}")
        total = compressed = 0
        names = []
        for info in infos:
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _archive_refused(display, f"成员“{info.filename}”是符号链接")
            _check_entry(display, info.filename, info.file_size, info.compress_size, limits)
            total += info.file_size
            compressed += info.compress_size
            names.append(info.filename)
        _totals(display, len(infos), total, compressed, limits)
        # The sizes in the directory are claims: one streaming pass checks every member's CRC. zipfile never
        # reads past a member's declared size, so the pass is bounded by the totals checked above; a member
        # whose data does not match its declaration fails the CRC and the archive is refused.
        for info in infos:
            if info.is_dir():
                continue
            try:
                with zf.open(info) as member:
                    while member.read(1024 * 1024):
                        pass
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                raise _archive_refused(display, f"成员“{info.filename}”无法解压（损坏、加密或大小与声明不符）") from exc
        return ArchiveReport(len(infos), total, tuple(names))


def _inspect_tar(path: Path, display: str, limits: ArchiveLimits, compressed_size: int) -> ArchiveReport:
    total = count = 0
    names: list[str] = []
    try:
        with tarfile.open(path, mode="r:*") as tf:
            for member in tf:
                count += 1
                if count > limits.max_entries:
                    raise _archive_refused(display, f"成员数超过上限 {limits.max_entries:,}")
                if member.issym() or member.islnk():
                    raise _archive_refused(display, f"成员“{member.name}”是链接")
                if member.isdev() or member.isfifo():
                    raise _archive_refused(display, f"成员“{member.name}”是设备或管道文件")
                _check_entry(display, member.name, member.size, 0, limits)
                total += member.size
                names.append(member.name)
                if total > limits.max_total_bytes:
                    raise _archive_refused(display, f"解压后超过上限 {_mb(limits.max_total_bytes)}，疑似压缩炸弹")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _archive_refused(display, "不是有效的 TAR 文件或已损坏") from exc
    _totals(display, count, total, compressed_size, limits)
    return ArchiveReport(count, total, tuple(names))


def inspect_archive(path: Path, file_type: str, *, limits: ArchiveLimits, filename: str | None = None) -> ArchiveReport:
    """Refuse an archive that could escape its directory or explode when unpacked (raises :class:`FileRefused`)."""
    display = clean_filename(filename or path.name)
    if file_type == "zip":
        return _inspect_zip(path, display, limits)
    if file_type in ("tar", "tgz"):
        return _inspect_tar(path, display, limits, path.stat().st_size)
    raise ValueError(f"not an archive type: {file_type}")


def inspect_archive_bytes(content: bytes, *, limits: ArchiveLimits, filename: str) -> ArchiveReport:
    return _inspect_zip(io.BytesIO(content), clean_filename(filename), limits)


def check_file(
    path: Path,
    filename: str,
    *,
    allowed: Iterable[str],
    limit: int,
    archive_limits: ArchiveLimits | None = None,
    noun: str = "文件",
) -> FileType:
    """All checks for a file on disk: size, type by extension and content, archive safety."""
    size = path.stat().st_size
    file_type = check_type(filename, sniff_file(path) if size else None, size, allowed=allowed, limit=limit, noun=noun)
    if file_type.archive:
        inspect_archive(path, file_type.code, limits=archive_limits or ArchiveLimits(), filename=filename)
    return file_type


def describe(reason: str) -> str:
    return REASON_LABELS.get(reason, reason)


REASON_LABELS: dict[str, Any] = {
    "too_large": "超过大小上限",
    "empty": "空文件",
    "extension": "类型不在允许范围内",
    "disguised": "内容与扩展名不符",
    "archive": "压缩包未通过安全检查",
}
