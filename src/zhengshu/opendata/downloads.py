"""Downloads of a published copy, streamed with constant memory whatever the size.

- CSV: UTF-8 with a byte-order mark (Excel opens it as UTF-8), ``\\r\\n`` line ends, a header of item columns.
- JSON: one array of objects, streamed row by row; JSON Lines (``jsonl``): one object per line.
- XLSX: openpyxl's write-only mode, capped at Excel's 1,048,576 rows (the header takes one; a second sheet
  "说明" says so when rows were left out). Built once per version and kept beside the copy.
- Parquet: the published file itself (the whole dataset), or DuckDB's own Parquet writer for a filtered subset.
"""

from __future__ import annotations

import collections
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from zhengshu.opendata import query

BOM = "\ufeff".encode()
CHUNK_BYTES = 4 << 20  # a row group's encoded rows usually go out in one piece
# Row groups are decoded and encoded by a small pool of threads, whatever the number of downloads: a waiting
# download holds only the encoded bytes of its current row group, and Arrow's allocator (which keeps freed memory
# per thread) sees two threads, not one per download, so memory stays flat under many concurrent downloads.
ENCODERS = 2
_encoders = ThreadPoolExecutor(max_workers=ENCODERS, thread_name_prefix="zs-open-encode")
EXCEL_MAX_ROWS = 1_048_576
_xlsx_locks: dict[str, threading.Lock] = {}
_xlsx_guard = threading.Lock()


def csv_stream(batches: Iterator[pa.RecordBatch], columns: Sequence[str]) -> Iterator[bytes]:
    """CSV bytes: BOM and header first, then one chunk per record batch."""
    yield csv_header(columns)
    for batch in batches:
        yield csv_body(batch)


def _slices(data: bytes) -> Iterator[bytes]:
    """Views into the encoded bytes (no copies: the request threads allocate nothing)."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_BYTES):
        yield view[start : start + CHUNK_BYTES]  # type: ignore[misc]  # Starlette sends memoryviews as they are


def encoded_row_groups(path: Path, columns: Sequence[str], encode: Callable[[pa.Table], bytes]) -> Iterator[bytes]:
    """The whole copy, one row group at a time: read and encoded under a shared slot, then sent in slices."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)

    def work(index: int) -> bytes:
        return encode(parquet.read_row_group(index, columns=list(columns), use_threads=False))

    groups = parquet.metadata.num_row_groups
    # the next groups are encoded while this one is sent (one per encoder thread)
    pending = collections.deque(_encoders.submit(work, i) for i in range(min(ENCODERS, groups)))
    for index in range(groups):
        data = pending.popleft().result()
        if index + ENCODERS < groups:
            pending.append(_encoders.submit(work, index + ENCODERS))
        yield from _slices(data)


def csv_body(table: pa.Table | pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, eol="\r\n", quoting_style="needed"))
    return sink.getvalue()


def csv_header(columns: Sequence[str]) -> bytes:
    header = io.BytesIO()
    pacsv.write_csv(
        pa.table({c: pa.array([], pa.string()) for c in columns}),
        header,
        pacsv.WriteOptions(include_header=True, eol="\r\n"),
    )
    return BOM + header.getvalue()


def csv_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    """The whole copy as CSV (BOM, header, CRLF), with memory bounded by the encoder slots."""
    yield csv_header(columns)
    yield from encoded_row_groups(path, columns, csv_body)


def jsonl_body(table: pa.Table) -> bytes:
    return b"".join(row + b"\n" for row in _json_rows(iter(table.to_batches())))


def jsonl_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    yield from encoded_row_groups(path, columns, jsonl_body)


def json_file_stream(path: Path, columns: Sequence[str]) -> Iterator[bytes]:
    """A JSON array over the whole copy: each row group's objects joined by commas, row groups likewise.

    Row groups are encoded by several threads in any order, so each encoded group starts with its separator and
    the separator of the first one to be *sent* is dropped here, in order."""

    def encode(table: pa.Table) -> bytes:
        body = b",\n".join(_json_rows(iter(table.to_batches())))
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
