"""The sync engine: one run of a :class:`SyncSpec`, exactly once, resumable from the target's checkpoint.

Modes
- ``full``: the source is read in key order into a shadow table; every batch commits with a checkpoint
  holding the last key; the shadow replaces the target at the end (rows deleted at the source disappear). A
  run killed at any point is resumed by the next one from the last committed key.
- ``incremental``: rows whose cursor (update time or increasing id) is past the checkpoint, in (cursor, key)
  order so rows sharing a cursor value are neither lost nor repeated; upserted by key. A batch may arrive in
  parts read in parallel (see ``readers``); its parts are written in one transaction with its checkpoint.
- ``cdc`` (change detection): the whole authorized source is compared with the target by key and row hash;
  inserts and updates are upserted and deletes applied. Comparing with the target itself makes a re-run after
  a crash converge: nothing is counted twice.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from zhengshu.exchange.tables.plan import (
    Checkpoint,
    SyncSpec,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    quote_ident,
)
from zhengshu.exchange.tables.readers import SourceReader
from zhengshu.exchange.tables.transform import Prepared, Quarantined, convert_column, prepare
from zhengshu.exchange.tables.writers import make_writer


@dataclass
class RunResult:
    rows_read: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    rows_quarantined: int = 0
    bytes: int = 0
    batches: int = 0
    total: int | None = None  # rows the run expects to read, when known
    resumed_from: str | None = None  # the run whose checkpoint this one continued
    columns_added: list[str] = field(default_factory=list)
    cursor: str | None = None
    quarantined: list[Quarantined] = field(default_factory=list)


OnBatch = Callable[[RunResult, list[Quarantined]], None]


_DONE = object()
# rows of an incremental batch's parts written by one upsert: parts arrive in a few thousand rows (parallel range
# reads), and each upsert costs its statements (stage, COPY, INSERT … ON CONFLICT) however few rows it carries
WRITE_ROWS = 20_000
# DuckDB's memory for a change-detection comparison; beyond it the comparison spills to its temporary directory
CDC_MEMORY_LIMIT = "512MB"


def _prefetch(items: Iterator[Any], spec: SyncSpec, depth: int = 2) -> Iterator[tuple[Any, Prepared]]:
    """Read and prepare the next batches (or parts: anything with a ``table``) in a thread while the caller
    writes the current one: the drivers release the GIL, so reading (ConnectorX), converting (Arrow) and
    writing (ADBC COPY) overlap. Batches still commit strictly in order, one checkpoint each."""
    pipe: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                rows = item if isinstance(item, (pa.RecordBatch, pa.Table)) else item.table
                pipe.put((item, prepare(rows, spec.columns)))
            pipe.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it in the run's thread
            pipe.put(exc)

    worker = threading.Thread(target=produce, name="zhengshu-sync-read", daemon=True)
    worker.start()
    try:
        while True:
            item = pipe.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                pipe.get(timeout=0.05)
        worker.join(timeout=1)


def _last_key(batch: pa.RecordBatch, spec: SyncSpec) -> list[Any]:
    return [batch.column(batch.schema.get_field_index(c.source))[-1].as_py() for c in spec.key_columns]


class _Run:
    def __init__(self, spec: SyncSpec, on_batch: OnBatch | None) -> None:
        self.spec = spec
        self.on_batch = on_batch
        self.result = RunResult()
        self.reader = SourceReader(spec)
        self.keys = [c.target for c in spec.key_columns]

    def checkpoint(
        self, phase: str, seq: int, rows: int, *, cursor: str | None = None, key: str | None = None
    ) -> Checkpoint:
        return Checkpoint(self.spec.job_id, self.spec.run_id, self.spec.mode, phase, seq, cursor, key, rows)

    def after_batch(self, prepared: Prepared | list[Prepared], read: int, written: int, deleted: int = 0) -> None:
        """Count a committed batch (given whole, or as the parts it was written in)."""
        parts = prepared if isinstance(prepared, list) else [prepared]
        quarantined = [q for p in parts for q in p.quarantined]
        r = self.result
        r.rows_read += read
        r.rows_written += written
        r.rows_deleted += deleted
        r.rows_quarantined += sum(len(p.bad_keys) for p in parts)
        r.bytes += sum(p.table.nbytes for p in parts)
        r.batches += 1
        r.quarantined.extend(quarantined)
        if self.on_batch is not None:
            self.on_batch(r, quarantined)
        if self.spec.pause_s:
            time.sleep(self.spec.pause_s)

    def full(self, writer: Any, cp: Checkpoint | None) -> None:
        after: list[Any] | None = None
        seq = rows = 0
        resuming = cp is not None and cp.mode == "full" and cp.phase in ("loading", "swapping")
        planned = [c.target for c in self.spec.columns]
        # a load is continued only into a shadow table of the same columns (the authorization may have changed)
        if resuming and cp is not None and (cp.phase == "swapping" or writer.shadow_columns() == planned):
            self.result.resumed_from = cp.run_id
            after = decode_key(cp.last_key) if cp.last_key else None
            seq, rows = cp.batch_seq, cp.rows
            if cp.phase == "swapping":
                writer.swap(self.keys, self.checkpoint("done", seq, rows, key=cp.last_key))
                return
        else:
            writer.begin_shadow(self.spec.columns, self.checkpoint("loading", 0, 0))
        self.result.total = self.reader.estimate() if after is None else None
        last_key: str | None = encode_key(after) if after is not None else None
        for batch, prepared in _prefetch(self.reader.batches(after_key=after), self.spec):
            seq += 1
            rows += prepared.table.num_rows
            last_key = encode_key(_last_key(batch, self.spec))
            writer.append_shadow(prepared.table, self.checkpoint("loading", seq, rows, key=last_key))
            self.after_batch(prepared, batch.num_rows, prepared.table.num_rows)
        writer.swap(self.keys, self.checkpoint("done", seq, rows, key=last_key))

    def incremental(self, writer: Any, cp: Checkpoint | None) -> None:
        assert self.spec.cursor, "incremental mode needs a cursor column"
        added = writer.ensure_table(self.spec.columns)
        self.result.columns_added = added
        after_cursor: Any = None
        after_key: list[Any] | None = None
        # widened by newly authorized items: start over so existing rows receive them
        if cp is not None and cp.mode == "incremental" and cp.cursor and not added:
            after_cursor = decode_value(cp.cursor)
            after_key = decode_key(cp.last_key) if cp.last_key else None
            self.result.resumed_from = cp.run_id
            self.result.cursor = cp.cursor
        seq = cp.batch_seq if cp is not None and cp.mode == "incremental" else 0
        # a batch may arrive in parts (parallel range reads): the parts before its last are written inside the
        # batch's transaction, so writing overlaps reading; the last part commits them with the checkpoint
        in_parts = hasattr(writer, "upsert_part")
        parts: list[Prepared] = []
        waiting: list[pa.Table] = []  # parts read but not yet written: written together, one upsert per ~WRITE_ROWS
        waiting_rows = 0
        read = 0
        for part, prepared in _prefetch(self.reader.changes(after_key=after_key, after_cursor=after_cursor), self.spec):
            parts.append(prepared)
            waiting.append(prepared.table)
            waiting_rows += prepared.table.num_rows
            read += part.table.num_rows
            if part.end is None:
                if in_parts and waiting_rows >= WRITE_ROWS:
                    writer.upsert_part(pa.concat_tables(waiting), self.keys)
                    waiting, waiting_rows = [], 0
                continue
            seq += 1
            cursor, key = encode_value(part.end[0]), encode_key(part.end[1])
            written = sum(p.table.num_rows for p in parts)
            cp_now = self.checkpoint("done", seq, self.result.rows_written + written, cursor=cursor, key=key)
            table = pa.concat_tables(waiting) if in_parts else pa.concat_tables([p.table for p in parts])
            waiting, waiting_rows = [], 0
            writer.upsert(table, self.keys, cp_now)
            self.result.cursor = cursor
            self.after_batch(parts, read, written)
            parts, read = [], 0

    def cdc(self, writer: Any, cp: Checkpoint | None) -> None:
        """Source and target go into a DuckDB file of the run's own (rows of the source, key and row hash of the
        target), batch by batch, and are compared there: memory stays bounded by DuckDB's limit however large
        the table, and what does not fit spills to disk. The changes stream out in batches; deletes follow."""
        import duckdb

        self.result.columns_added = writer.ensure_table(self.spec.columns)
        schema = pa.schema([pa.field(c.target, c.arrow_type) for c in self.spec.columns])
        q = lambda c: quote_ident("duckdb", c)  # noqa: E731
        cols = [c.target for c in self.spec.columns]
        keys = ", ".join(q(k) for k in self.keys)
        row_hash = f"hash({', '.join(q(c) for c in cols)})"
        bad: list[str] = []
        quarantined: list[Quarantined] = []
        with tempfile.TemporaryDirectory(prefix="zhengshu-cdc-") as work:
            con = duckdb.connect(
                os.path.join(work, "compare.duckdb"),
                config={"memory_limit": CDC_MEMORY_LIMIT, "temp_directory": work, "preserve_insertion_order": False},
            )
            try:
                con.register("b", schema.empty_table())
                con.execute("CREATE TABLE s AS SELECT * FROM b")
                con.execute(f"CREATE TABLE t AS SELECT {keys}, {row_hash} AS h FROM b")
                con.unregister("b")
                for batch in self.reader.batches():
                    prepared = prepare(batch, self.spec.columns)
                    self._into(con, "INSERT INTO s SELECT * FROM b", prepared.table.cast(schema))
                    bad.extend(prepared.bad_keys)
                    quarantined.extend(prepared.quarantined)
                    self.result.rows_read += batch.num_rows
                for raw in writer.read_batches(schema.names, max(self.spec.batch_size, 1)):
                    self._into(con, f"INSERT INTO t SELECT {keys}, {row_hash} FROM b", self._target_as(raw, schema))
                con.register("bad", pa.table({"k": pa.array(bad, pa.string())}))
                on = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in self.keys)
                changed = con.sql(
                    f"SELECT s.* FROM s LEFT JOIN t ON {on} WHERE t.h IS NULL OR hash("
                    + ", ".join("s." + q(c) for c in cols)
                    + ") <> t.h"
                ).to_arrow_reader(max(self.spec.batch_size, 1))
                seq = cp.batch_seq if cp is not None else 0  # progress counts on across runs
                empty = schema.empty_table()
                reported = False

                def commit(table: pa.Table, gone: pa.Table | None = None) -> None:
                    nonlocal seq, reported
                    seq += 1
                    written = self.result.rows_written + table.num_rows
                    writer.upsert(table, self.keys, self.checkpoint("done", seq, written), deletes=gone)
                    # the quarantine of the whole comparison is reported with the first committed batch
                    found = Prepared(table, [] if reported else quarantined, [] if reported else bad)
                    self.after_batch(found, 0, table.num_rows, gone.num_rows if gone is not None else 0)
                    reported = True

                for chunk in _rebatch_reader(changed, self.spec.batch_size):
                    commit(pa.Table.from_batches([chunk]).cast(schema))
                key_text = "concat_ws('|', " + ", ".join(f"CAST(t.{q(k)} AS VARCHAR)" for k in self.keys) + ")"
                deletes = con.sql(
                    f"SELECT {', '.join('t.' + q(k) for k in self.keys)} FROM t ANTI JOIN s ON {on} "
                    f"WHERE {key_text} NOT IN (SELECT k FROM bad)"
                ).to_arrow_reader(max(self.spec.batch_size, 1))
                for chunk in _rebatch_reader(deletes, self.spec.batch_size):
                    commit(empty, pa.Table.from_batches([chunk]))
                if not reported:  # nothing changed: the run still commits its checkpoint and reports the quarantine
                    commit(empty)
            finally:
                con.close()

    @staticmethod
    def _into(con: Any, sql: str, table: pa.Table) -> None:
        con.register("b", table)
        try:
            con.execute(sql)
        finally:
            con.unregister("b")

    def _target_as(self, raw: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
        """Rows read back from the target, converted to the delivered types (so their hashes compare with the
        source's)."""
        arrays = []
        for plan in self.spec.columns:
            column = raw.column(plan.target) if plan.target in raw.schema.names else None
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
            if column is None or pa.types.is_null(column.type):
                arrays.append(pa.nulls(raw.num_rows, plan.arrow_type))
                continue
            converted, _ = convert_column(column, plan)
            arrays.append(converted)
        return pa.Table.from_arrays(arrays, schema=schema)


def _rebatch_reader(reader: pa.RecordBatchReader, size: int) -> Iterator[pa.RecordBatch]:
    """The reader's batches regrouped into batches of ``size`` rows (DuckDB hands out vectors of 2,048)."""
    size = max(size, 1)
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= size:
            whole = pa.Table.from_batches(pending).combine_chunks()
            for piece in whole.to_batches(max_chunksize=size):
                if piece.num_rows == size:
                    yield piece
                else:
                    pending, count = [piece], piece.num_rows
                    break
            else:
                pending, count = [], 0
    if pending:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches(max_chunksize=size)


def run(spec: SyncSpec, on_batch: OnBatch | None = None) -> RunResult:
    """Run ``spec`` once against its target; raises a :class:`~zhengshu.core.errors.ZhengshuError` on failure
    (everything committed before the failure stays, with its checkpoint)."""
    if not spec.key_columns:
        raise ValueError("a sync needs at least one key column")
    writer = make_writer(spec.target, spec.target_table)
    job = _Run(spec, on_batch)
    try:
        cp = writer.read_checkpoint(spec.job_id)
        if spec.mode == "full":
            job.full(writer, cp)
        elif spec.mode == "incremental":
            job.incremental(writer, cp)
        elif spec.mode == "cdc":
            job.cdc(writer, cp)
        else:
            raise ValueError(f"unknown mode {spec.mode}")
        if hasattr(writer, "compact"):
            writer.compact(job.keys)
    finally:
        writer.close()
    return job.result


def read_target(spec: SyncSpec) -> pa.Table:
    """The target table's rows in the delivered schema (for comparisons and the job page's preview)."""
    writer = make_writer(spec.target, spec.target_table)
    try:
        schema = pa.schema([pa.field(c.target, c.arrow_type) for c in spec.columns])
        return _Run(spec, None)._target_as(writer.read_table(schema.names), schema)
    finally:
        writer.close()


if __name__ == "__main__":  # ``python -m zhengshu.exchange.tables.engine spec.json``: one run in its own process
    import json
    import sys
    from pathlib import Path

    result = run(SyncSpec.from_json(Path(sys.argv[1]).read_text(encoding="utf-8")))
    print(json.dumps({"rows_written": result.rows_written, "resumed_from": result.resumed_from}))
