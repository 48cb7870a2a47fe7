"""The shared file checks: sniffing by content, extension agreement, size, archive safety (traversal, links,
zip bombs, nested archives, entry counts) for ZIP and TAR."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from zhengshu.security import filecheck
from zhengshu.security.filecheck import ArchiveLimits, FileRefused

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64
ALL = tuple(filecheck.TYPES)


def _zip(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            # a fixed time stamp: the same bytes in every process (xdist workers must collect the same test ids)
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, compress_type=compression)
    return buf.getvalue()


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (PDF, "pdf"),
        (PNG, "png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "jpg"),
        (b"GIF89a" + b"\x00" * 16, "gif"),
        (b"PAR1" + b"\x00" * 16, "parquet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16, "ole"),
        ("姓名,身份证号\n张三,3601\n".encode("gb18030"), "text"),
        ("统一社会信用代码".encode(), "text"),
        (b"MZ\x90\x00" + b"\x00" * 60, None),
        (b"\x7fELF\x02\x01", None),
        (_zip({"a.txt": b"hello"}), "zip"),
        (_zip({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<w/>"}), "docx"),
        (_zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<w/>"}), "xlsx"),
        (_zip({"OFD.xml": b"<ofd/>"}), "ofd"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_sniffing_tells_what_the_bytes_are(content: bytes, expected: str | None) -> None:
    assert filecheck.sniff_bytes(content) == expected


def test_a_utf8_character_cut_by_the_sniffed_head_is_still_text(tmp_path: Path) -> None:
    content = ("数" * (filecheck.HEAD_BYTES // 3 + 1)).encode()
    path = _write(tmp_path, "a.txt", content)
    assert filecheck.sniff_file(path) == "text"


def test_extension_must_agree_with_content() -> None:
    with pytest.raises(FileRefused) as exc:
        filecheck.check_type("报告.pdf", filecheck.sniff_bytes(PNG), len(PNG), allowed=ALL, limit=10**6, noun="文件")
    assert exc.value.reason == "disguised" and exc.value.code == "file.disguised"
    assert "伪装" in exc.value.detail
    assert filecheck.check_type("图.png", "png", len(PNG), allowed=ALL, limit=10**6, noun="文件").code == "png"
    assert filecheck.check_type("a.csv", "text", 3, allowed=ALL, limit=10**6, noun="文件").code == "csv"


def test_type_not_on_the_allow_list_size_and_empty_are_refused() -> None:
    with pytest.raises(FileRefused) as exc:
        filecheck.check_type("setup.exe", None, 10, allowed=ALL, limit=100, noun="文件")
    assert exc.value.reason == "extension"
    with pytest.raises(FileRefused) as exc:
        filecheck.check_type("a.zip", "zip", 10, allowed=("pdf",), limit=100, noun="文件")
    assert exc.value.reason == "extension" and "PDF" in exc.value.detail
    with pytest.raises(FileRefused) as exc:
        filecheck.check_type("a.pdf", "pdf", 101, allowed=ALL, limit=100, noun="附件")
    assert exc.value.reason == "too_large" and exc.value.detail.startswith("附件")
    with pytest.raises(FileRefused) as exc:
        filecheck.check_type("a.pdf", None, 0, allowed=ALL, limit=100, noun="文件")
    assert exc.value.reason == "empty"


def test_clean_filename_drops_directories_and_control_characters() -> None:
    assert filecheck.clean_filename("../../etc/passwd") == "passwd"
    assert filecheck.clean_filename("C:\\Users\\a\\报告.pdf") == "报告.pdf"
    assert filecheck.clean_filename("a\x00b\n.txt") == "ab.txt"
    assert filecheck.clean_filename("..", default="文件") == "文件"
    assert filecheck.extension_of("data.tar.gz") == ".tar.gz"


@pytest.mark.parametrize("name", ["../evil.sh.txt", "/etc/cron.d/x.txt", "a/../../b.txt", "C:/Windows/x.txt"])
def test_zip_members_escaping_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, "a.zip", _zip({"ok.txt": b"fine", name: b"payload"}))
    with pytest.raises(FileRefused) as exc:
        filecheck.check_file(path, "a.zip", allowed=ALL, limit=10**8)
    assert exc.value.reason == "archive"
    assert "路径" in exc.value.detail or "上级目录" in exc.value.detail


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    path = _write(tmp_path, "a.zip", buf.getvalue())
    with pytest.raises(FileRefused, match="符号链接"):
        filecheck.check_file(path, "a.zip", allowed=ALL, limit=10**8)


def test_zip_bomb_by_ratio_and_by_total_size(tmp_path: Path) -> None:
    bomb = _write(tmp_path, "bomb.zip", _zip({"zeros.txt": b"\x00" * (20 * 1024 * 1024)}))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(FileRefused, match="压缩炸弹"):
        filecheck.check_file(bomb, "bomb.zip", allowed=ALL, limit=10**8)
    many = _write(tmp_path, "many.zip", _zip({f"f{i}.txt": b"x" * 100 for i in range(4)}))
    with pytest.raises(FileRefused, match="超过上限"):
        filecheck.inspect_archive(many, "zip", limits=ArchiveLimits(max_total_bytes=300))
    with pytest.raises(FileRefused, match="成员数"):
        filecheck.inspect_archive(many, "zip", limits=ArchiveLimits(max_entries=3))
    report = filecheck.inspect_archive(many, "zip", limits=ArchiveLimits())
    assert report.entries == 4 and report.total_bytes == 400


def test_zip_lying_about_its_sizes_is_refused(tmp_path: Path) -> None:
    content = bytearray(_zip({"a.txt": b"A" * 5000}, compression=zipfile.ZIP_STORED))
    # corrupt the stored data: the CRC no longer matches what the directory declares
    start = content.index(b"A" * 100)
    content[start : start + 10] = b"B" * 10
    path = _write(tmp_path, "a.zip", bytes(content))
    with pytest.raises(FileRefused, match="无法解压"):
        filecheck.check_file(path, "a.zip", allowed=ALL, limit=10**8)


def test_nested_archives_are_refused_unless_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "outer.zip", _zip({"inner.zip": _zip({"a.txt": b"a"}), "b.txt": b"b"}))
    with pytest.raises(FileRefused, match="嵌套"):
        filecheck.check_file(path, "outer.zip", allowed=ALL, limit=10**8)
    report = filecheck.inspect_archive(path, "zip", limits=ArchiveLimits(allow_nested=True))
    assert report.entries == 2


def _tar(tmp_path: Path, name: str, build: object, mode: str = "w") -> Path:
    path = tmp_path / name
    with tarfile.open(path, mode) as tf:
        build(tf)  # type: ignore[operator]
    return path


def test_tar_traversal_links_and_good_archives(tmp_path: Path) -> None:
    def add(tf: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

    good = _tar(tmp_path, "good.tar.gz", lambda tf: add(tf, "dir/a.csv", b"a,b\n"), "w:gz")
    assert filecheck.check_file(good, "good.tar.gz", allowed=ALL, limit=10**8).code == "tgz"
    evil = _tar(tmp_path, "evil.tar", lambda tf: add(tf, "../../root/.ssh/authorized_keys"))
    with pytest.raises(FileRefused, match="上级目录"):
        filecheck.check_file(evil, "evil.tar", allowed=ALL, limit=10**8)
    link = _tar(tmp_path, "link.tar", lambda tf: add(tf, "x", kind=tarfile.SYMTYPE, link="/etc/passwd"))
    with pytest.raises(FileRefused, match="链接"):
        filecheck.check_file(link, "link.tar", allowed=ALL, limit=10**8)
    bomb = _tar(tmp_path, "bomb.tar.gz", lambda tf: add(tf, "zeros.bin", b"\x00" * (8 * 1024 * 1024)), "w:gz")
    with pytest.raises(FileRefused, match="压缩炸弹"):
        filecheck.check_file(bomb, "bomb.tar.gz", allowed=ALL, limit=10**8)


def test_a_zip_named_pdf_is_disguised(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.pdf", _zip({"a.txt": b"a"}))
    with pytest.raises(FileRefused) as exc:
        filecheck.check_file(path, "a.pdf", allowed=ALL, limit=10**8)
    assert exc.value.reason == "disguised"
