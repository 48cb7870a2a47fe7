"""Downloads of a published copy, streamed with constant memory whatever the size.

- CSV: UTF-8 with a byte-order mark (Excel opens it as UTF-8), ``\\r\\n`` line ends, a header of item columns.
- JSON: one array of objects, streamed row by row; JSON Lines (``jsonl``): one object per line.
- XLSX: openpyxl's write-only mode, capped at Excel's 1,048,576 rows (the header takes one; a second sheet
  "说明" says so when rows were left out). Built once per version and kept beside the copy.
- Parquet: the published file itself (the whole dataset), or DuckDB's own Parquet writer for a filtered subset.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from zhengshu.opendata import query

if TYPE_CHECKING:
    from pyarrow.parquet import FileMetaData

BOM = "\ufeff".encode()
CHUNK_BYTES = 4 << 20  # file downloads (Parquet, XLSX) are read in pieces of this size
# Whole-copy downloads (CSV, JSON, JSON Lines) read and encode row groups on a small pool of threads shared by every
# download: decoded Arrow data lives only there (two at a time, whatever the number of downloads). A row group's
# encoded rows come back as pieces of PIECE_ROWS rows (~0.5 MB of CSV) that are dropped once sent, so a waiting
# download holds at most what is left of one row group. Encoding ahead is limited by a budget shared by all
# downloads (AHEAD row groups): one download alone keeps both threads busy, twenty do not multiply the buffers.
ENCODERS = 2
AHEAD = 4
PIECE_ROWS = 4096
_encoders = ThreadPoolExecutor(max_workers=ENCODERS, thread_name_prefix="zs-open-encode")
_ahead = threading.BoundedSemaphore(AHEAD)
EXCEL_MAX_ROWS = 1_048_576
_xlsx_locks: dict[str, threading.Lock] = {}
_xlsx_guard = threading.Lock()
# Parsed Parquet footers shared by the downloads of the same file: a 10M-row copy's footer (489 row groups with
# statistics) takes several MB once parsed, and each download used to parse its own.
_footers: dict[tuple[str, int, int], list[Any]] = {}  # key -> [footer, downloads using it]
_footers_guard = threading.Lock()


def csv_stream(batches: Iterator[pa.RecordBatch], columns: Sequence[str]) -> Iterator[bytes]:
    """CSV bytes: BOM and header first, then one chunk per record batch."""
    yield csv_header(columns)
    for batch in batches:
        yield csv_body(batch)


@contextlib.contextmanager
def _shared_footer(path: Path) -> Iterator[FileMetaData]:
    """The file's parsed footer, shared while any download of that file is running (a new version is a new
    file, so size and modification time tell a replaced file apart)."""
    import pyarrow.parquet as pq

    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _footers_guard:
        entry = _footers.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        footer = pq.read_metadata(path)
        with _footers_guard:
            entry = _footers.setdefault(key, [footer, 0])
            entry[1] += 1
    try:
        yield entry[0]
    finally:
        with _footers_guard:
            entry[1] -= 1
            if entry[1] == 0 and _footers.get(key) is entry:
                del _footers[key]


def encoded_row_groups(
    path: Path, columns: Sequence[str], encode: Callable[[pa.RecordBatch], bytes]
) -> Iterator[bytes]:
    """The whole copy, one row group at a time, read and encoded by the shared pool, sent piece by piece."""
    import pyarrow.parquet as pq

    with _shared_footer(path) as footer:
        parquet = pq.ParquetFile(path, metadata=footer, pre_buffer=False, buffer_size=1 << 20)
        names = list(columns)

        def work(index: int) -> list[bytes]:
            table = parquet.read_row_group(index, columns=names, use_threads=False)
            pieces = [encode(batch) for batch in table.to_batches(max_chunksize=PIECE_ROWS)]
            pieces.reverse()  # popped from the end, in order
            return pieces

        groups = footer.num_row_groups
        ahead: collections.deque[Future[list[bytes]]] = collections.deque()
        try:
            for index in range(groups):
                if ahead:
                    future = ahead.popleft()
                    _ahead.release()  # this group is the current one now, no longer ahead
                    pieces = future.result()
                else:
                    pieces = _encoders.submit(work, index).result()
                # encode the next groups while this one is sent, as far as the shared budget allows
                while len(ahead) < ENCODERS and index + 1 + len(ahead) < groups and _ahead.acquire(blocking=False):
                    ahead.append(_encoders.submit(work, index + 1 + len(ahead)))
                while pieces:
                    yield pieces.pop()  # the list lets go of each piece as it leaves
        finally:
            # the client went away: wait for the groups already started (they read this file), free the budget
            while ahead:
                future = ahead.popleft()
                if not future.cancel():
                    with contextlib.suppress(Exception):
                        future.result()
                _ahead.release()


def csv_body(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, eol="\r\n", quoting_style="needed"))
    return sink.getvalue()


def csv_header(columns: Sequence[str]) -> bytes:
    """BOM and the header row, every name quoted as Arrow's CSV writer quotes it. Written by hand: building an
    Arrow table from Python values makes pyarrow import pandas (~50 MB per server process)."""
    names = ",".join('"' + c.replace('"', '""') + '"' for c in columns)
    return BOM + (names + "\r\n").encode()


def csv_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    """The whole copy as CSV (BOM, header, CRLF), with memory bounded by the shared encoder pool."""
    yield csv_header(columns)
    yield from encoded_row_groups(path, columns, csv_body)


def jsonl_body(batch: pa.RecordBatch) -> bytes:
    return b"".join(row + b"\n" for row in _json_rows(iter([batch])))


def jsonl_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    yield from encoded_row_groups(path, columns, jsonl_body)


def json_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    """A JSON array over the whole copy: each row group's objects joined by commas, row groups likewise.

    Row groups are encoded by several threads in any order, so each encoded piece starts with its separator and
    the separator of the first one to be *sent* is dropped here, in order."""

    def encode(batch: pa.RecordBatch) -> bytes:
        body = b",\n".join(_json_rows(iter([batch])))
        return SEPARATOR + body if body else b""

    yield b"["
    strip = len(SEPARATOR)
    for chunk in encoded_row_groups(path, columns, encode):
        if strip:
            cut = min(strip, len(chunk))
            chunk, strip = chunk[cut:], strip - cut
        if chunk:
            yield chunk
    yield b"]\n"


SEPARATOR = b",\n"


def _json_default(value: Any) -> Any:
    return query.json_value(value) if not isinstance(value, float | int | str) else value


def _json_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """One encoded object per row, a batch at a time."""
    option = orjson.OPT_PASSTHROUGH_DATETIME
    for batch in batches:
        yield from (orjson.dumps(row, default=_json_default, option=option) for row in batch.to_pylist())


def json_stream(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    """A JSON array, in chunks of about a megabyte."""
    yield b"["
    first = True
    buffer: list[bytes] = []
    size = 0
    for row in _json_rows(batches):
        buffer.append(row if first else b",\n" + row)
        first = False
        size += len(row)
        if size >= CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    buffer.append(b"]\n")
    yield b"".join(buffer)


def jsonl_stream(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    buffer: list[bytes] = []
    size = 0
    for row in _json_rows(batches):
        buffer.append(row + b"\n")
        size += len(row)
        if size >= CHUNK_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def file_stream(path: Path, *, remove: bool = False) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk
    finally:
        if remove:
            path.unlink(missing_ok=True)


def _excel_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never let a cell become a formula
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones
    return query.json_value(value) if isinstance(value, bytes) else value


def write_xlsx(
    batches: Iterator[pa.RecordBatch], target: Path, *, headers: Sequence[str], title: str, note: str = ""
) -> int:
    """Write an XLSX with openpyxl's write-only mode; returns the rows written (at most Excel's limit)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("数据")
    ws.append(list(headers))
    written = 0
    truncated = False
    limit = EXCEL_MAX_ROWS - 1
    for batch in batches:
        for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            if written >= limit:
                truncated = True
                break
            ws.append([_excel_value(v) for v in row])
            written += 1
        if truncated:
            break
    info = wb.create_sheet("说明")
    info.append(["数据集", title])
    info.append(["行数", written])
    if note:
        info.append(["说明", note])
    if truncated:
        info.append(["提示", f"Excel 单表最多 {EXCEL_MAX_ROWS:,} 行，超出部分未包含；完整数据请下载 CSV 或 Parquet"])
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    wb.save(tmp)
    tmp.replace(target)
    return written


def cached_xlsx(published: query.Published, *, headers: Sequence[str], title: str, note: str = "") -> Path:
    """The whole copy as XLSX, built once per version beside the Parquet file (concurrent requests wait)."""
    target = published.path.with_suffix(".xlsx")
    with _xlsx_guard:
        lock = _xlsx_locks.setdefault(str(target), threading.Lock())
    with lock:
        if not target.is_file():
            write_xlsx(query.iter_batches(published), target, headers=headers, title=title, note=note)
    return target


def temp_xlsx(batches: Iterator[pa.RecordBatch], *, headers: Sequence[str], title: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=".xlsx", prefix="zs-open-")
    os.close(fd)
    path = Path(name)
    write_xlsx(batches, path, headers=headers, title=title)
    return path


def parquet_subset(
    published: query.Published, *, columns: list[str], filters: Sequence[query.Filter], q: str | None, sort: str | None
) -> Path:
    """A filtered subset as a temporary Parquet file written by DuckDB (deleted once streamed)."""
    fd, name = tempfile.mkstemp(suffix=".parquet", prefix="zs-open-")
    os.close(fd)
    path = Path(name)
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([published.schema.field(c) for c in columns]),
        query.iter_batches(published, columns=columns, filters=filters, q=q, sort=sort),
    )
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
    return path
