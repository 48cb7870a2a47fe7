"""Open-data portal benchmark, in one run on one machine.

    python bench/opendata.py                       # 10,000,000 rows (the issue's scale)
    python bench/opendata.py --rows 200000         # quick run

Builds a provider's DuckDB table of ``--rows`` rows and publishes it through the real write path (read in
batches, two items masked, one left out, sorted by the key item, written as Parquet) into a fresh SQLite
control database (``publish_rows_per_s``), starts a real ``uvicorn zhengshu.web.asgi:app`` server as a
subprocess (with ``ARROW_DEFAULT_MEMORY_POOL=system`` unless set otherwise), and measures:

(a) the CSV download through the portal (streamed over HTTP, bytes and rows counted by the client) against
    DuckDB's own ``COPY (SELECT … FROM read_parquet(…)) TO … (FORMAT csv)`` of the same rows — the limit;
(b) ``--concurrency`` (20) simultaneous CSV downloads: the server's peak resident memory (its process and any
    children), sampled from ``/proc/<pid>/status`` every 5 ms (VmRSS), and its high-water mark (VmHWM);
(c) the data API (``/api/v1/open/datasets/<name>/data``, 100 rows a page): p50/p95 with a filter on the key
    item (a random existing key each request) and without a filter (first page, and a page deep in the file
    reached by keyset cursor); and CKAN's ``datastore_search`` when the CKAN-compatible API is mounted;
    then the server's resident memory and high-water mark once it has served all of that (DuckDB loaded).

stdout has one ``name: value`` line per figure; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

KEY = "uscc"
DATASET_ID = "bench0dataset0000000000001"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def out(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


def build_source(path: Path, rows: int) -> None:
    """The provider's DuckDB front-end table: raw (unmasked) values, in no particular order."""
    import duckdb

    con = duckdb.connect(str(path), config={"memory_limit": "1GB"})
    con.execute(
        f"""CREATE TABLE qy_djxx AS
          SELECT printf('91360100MA%08dX', i) AS {KEY},
                 '江西测试企业' || i || '有限公司' AS qymc,
                 ['赵', '钱', '孙', '李'][1 + i % 4] || ['建国', '海燕', '志强', '丽'][1 + i % 3] AS fddbr,
                 '138' || lpad(CAST(i % 100000000 AS VARCHAR), 8, '0') AS lxdh,
                 ['制造业', '批发和零售业', '信息技术服务业', '建筑业', '住宿和餐饮业'][1 + i % 5] AS hylx,
                 round(100 + (i * 37) % 100000 / 7.0, 2) AS zczb,
                 DATE '2000-01-01' + CAST(i % 9000 AS INTEGER) AS clrq,
                 'secret-' || i AS mm
          FROM range({rows}) t(i) ORDER BY hash(i)"""
    )
    con.close()


def build_control_db(data_dir: Path, rows: int) -> str:
    """A control database with one catalog entry whose DuckDB table is published through the real write path
    (read in batches, masked, sorted by the key item, written as Parquet): the publish rate is measured too."""
    from zhengshu.bootstrap import load_features
    from zhengshu.catalog.models import CatalogEntry, MountedResource
    from zhengshu.core.db import Base, Database
    from zhengshu.lake.models import DataSource
    from zhengshu.opendata import service as opendata_service
    from zhengshu.opendata.models import OpenDataset, OpenDatasetItem
    from zhengshu.org.models import Organization, Region
    from zhengshu.security.actor import SYSTEM_ACTOR

    load_features()
    url = f"sqlite:///{data_dir / 'zhengshu.db'}"
    db = Database(url)
    Base.metadata.create_all(db.engine)
    source_path = data_dir / "front.duckdb"
    started = time.perf_counter()
    build_source(source_path, rows)
    log(f"built the source table of {rows:,} rows in {time.perf_counter() - started:.1f}s")
    now = datetime.now(UTC)
    with db.session() as s:
        s.add(Region(code="360000", name="江西省", level="province"))
        org = Organization(
            name="江西省市场监督管理局", short_name="省市场监管局", uscc="11360000MB1234567X", region_code="360000"
        )
        s.add(org)
        s.flush()
        entry = CatalogEntry(
            code="102001/00001",
            provider_org_id=org.id,
            region_code="360000",
            status="published",
            name="市场主体登记信息",
            class_code="102001",
            sharing_type="无条件共享",
            opening_type="无条件开放",
            update_cycle="每日",
        )
        s.add(entry)
        s.flush()
        source = DataSource(name="前置库", kind="duckdb", owner_org_id=org.id, options={"path": str(source_path)})
        s.add(source)
        s.flush()
        resource = MountedResource(
            entry_id=entry.id, kind="table", source_id=source.id, table_name="qy_djxx", created_by="bench"
        )
        s.add(resource)
        s.flush()
        dataset = OpenDataset(
            id=DATASET_ID,
            slug="od-bench",
            entry_id=entry.id,
            entry_code=entry.code,
            resource_id=resource.id,
            provider_org_id=org.id,
            region_code="360000",
            title="市场主体登记信息（基准测试）",
            description="基准测试数据",
            field="market",
            licence="GOV-OPEN-1.0",
            update_cycle="每日",
            opening_type="无条件开放",
            status="published",
            created_by="bench",
            published_at=now,
        )
        items = {
            KEY: ("统一社会信用代码", "none"),
            "qymc": ("企业名称", "none"),
            "fddbr": ("法定代表人", "name_first"),
            "lxdh": ("联系电话", "mobile_3_4"),
            "hylx": ("行业类型", "none"),
            "zczb": ("注册资本", "none"),
            "clrq": ("成立日期", "none"),
        }  # "mm" is not opened
        for n, (column, (name, rule)) in enumerate(items.items()):
            dataset.items.append(
                OpenDatasetItem(
                    item_key=f"k{n}",
                    position=n,
                    name=name,
                    column_name=column,
                    data_type="C",
                    masking_rule=rule,
                    is_key=column == KEY,
                )
            )
        s.add(dataset)
        s.flush()
        started = time.perf_counter()
        version = opendata_service._write_version(s, actor=SYSTEM_ACTOR, dataset=dataset, data_dir=data_dir, note="")
        took = time.perf_counter() - started
        opendata_service._reindex(s, dataset)
        out("publish_s", f"{took:.2f}")
        out("publish_rows_per_s", f"{rows / took:,.0f}")
        out("copy_bytes", version.byte_size)
    db.dispose()
    return url


def duckdb_copy_rate(copy: Path, target: Path) -> tuple[float, int]:
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_parquet('{copy}')) TO '{target}' (FORMAT csv, HEADER)")
    elapsed = time.perf_counter() - started
    con.close()
    size = target.stat().st_size
    target.unlink()
    return elapsed, size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "ZHENGSHU_DATA_DIR": str(data_dir),
        "ZHENGSHU_DATABASE_URL": url,
        "ZHENGSHU_SECRET_KEY": "bench-secret-0123456789abcdef0123",
        "ZHENGSHU_EMBEDDED_JOBS": "false",
        "ZHENGSHU_MAX_INFLIGHT_REQUESTS": "64",
        # Arrow's default allocator (mimalloc) keeps freed memory per thread; the system allocator returns it
        "ARROW_DEFAULT_MEMORY_POOL": os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "system"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "zhengshu.web.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/open/datasets/od-bench", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def _proc_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass  # the process (a child) has just ended
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its descendants (threads share the process's memory, so they count once)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


def tree_rss_kb(pid: int) -> int:
    return sum(_proc_kb(p, "VmRSS") for p in _tree(pid))


class RssSampler:
    """Peak resident memory of the server and any children, sampled every 5 ms (VmHWM, the kernel's own
    high-water mark of the server process, is reported beside it and cannot miss a short peak)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


async def download(session: Any, url: str) -> tuple[int, int]:
    size = lines = 0
    async with session.get(url) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_chunked(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines


async def downloads(base: str, n: int) -> tuple[float, list[tuple[int, int]]]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(download(session, f"{base}/api/v1/open/datasets/od-bench/download.csv") for _ in range(n))
        )
        return time.perf_counter() - started, list(results)


def latencies(base: str, paths: list[str]) -> tuple[float, float]:
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    times = []
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, body[:300]
    conn.close()
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200, help="data-API requests per latency figure")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="zs-bench-open-"))
    proc = None
    try:
        out("rows", args.rows)
        url = build_control_db(data_dir, args.rows)
        copy = data_dir / "opendata" / DATASET_ID / "v1.parquet"

        # (a) DuckDB's COPY … TO csv, the best one process can do, vs the portal's streamed download
        elapsed, csv_bytes = duckdb_copy_rate(copy, data_dir / "duckdb.csv")
        duck_rate = args.rows / elapsed
        out("duckdb_copy_s", f"{elapsed:.2f}")
        out("duckdb_copy_rows_per_s", f"{duck_rate:,.0f}")
        proc, base = start_server(data_dir, url)
        time.sleep(1)  # let start-up settle
        idle_kb = tree_rss_kb(proc.pid)
        out("server_idle_rss_mb", f"{idle_kb / 1024:.0f}")
        took, results = asyncio.run(downloads(base, 1))
        size, lines = results[0]
        assert lines == args.rows + 1, f"expected {args.rows + 1} lines, got {lines}"
        portal_rate = args.rows / took
        out("portal_csv_s", f"{took:.2f}")
        out("portal_csv_bytes", size)
        out("duckdb_csv_bytes", csv_bytes)
        out("portal_csv_rows_per_s", f"{portal_rate:,.0f}")
        out("portal_csv_mb_per_s", f"{size / took / 1e6:.1f}")
        out("portal_vs_duckdb_copy", f"{portal_rate / duck_rate:.2f}")

        # (b) concurrent downloads: peak server memory
        log(f"{args.concurrency} concurrent downloads …")
        with RssSampler(proc.pid) as sampler:
            took, results = asyncio.run(downloads(base, args.concurrency))
        assert all(lines == args.rows + 1 for _, lines in results)
        out("concurrent_downloads", args.concurrency)
        out("concurrent_s", f"{took:.2f}")
        out("concurrent_total_rows_per_s", f"{args.rows * args.concurrency / took:,.0f}")
        out("server_peak_rss_mb", f"{sampler.peak_kb / 1024:.0f}")
        out("server_hwm_rss_mb", f"{_proc_kb(proc.pid, 'VmHWM') / 1024:.0f}")

        # (c) data API latency
        rng = random.Random(5)
        data = "/api/v1/open/datasets/od-bench/data?limit=100"
        keys = [f"91360100MA{rng.randrange(args.rows):08d}X" for _ in range(args.requests)]
        latencies(base, [f"{data}&filter={KEY}:eq:{k}" for k in keys[:20]])  # warm-up
        p50, p95 = latencies(base, [f"{data}&filter={KEY}:eq:{k}" for k in keys])
        out("data_api_filtered_p50_ms", f"{p50:.1f}")
        out("data_api_filtered_p95_ms", f"{p95:.1f}")
        p50, p95 = latencies(base, [data] * args.requests)
        out("data_api_first_page_p50_ms", f"{p50:.1f}")
        out("data_api_first_page_p95_ms", f"{p95:.1f}")
        import base64
        import json

        deep = []
        for _ in range(args.requests):
            cursor = base64.urlsafe_b64encode(json.dumps({"r": rng.randrange(args.rows), "s": ""}).encode())
            deep.append(f"{data}&cursor={cursor.decode().rstrip('=')}")
        p50, p95 = latencies(base, deep)
        out("data_api_deep_page_p50_ms", f"{p50:.1f}")
        out("data_api_deep_page_p95_ms", f"{p95:.1f}")
        import urllib.error
        import urllib.request

        ckan = f"{base}/api/3/action/datastore_search?resource_id={DATASET_ID}&limit=100"
        try:
            urllib.request.urlopen(ckan, timeout=30).read()
        except urllib.error.HTTPError:
            log("the CKAN-compatible API is not mounted: datastore_search skipped")
        else:
            prefix = ckan.removeprefix(base)
            filtered = [
                f'{prefix}&filters={{"{KEY}":"{k}"}}'.replace('"', "%22").replace("{", "%7B").replace("}", "%7D")
                for k in keys
            ]
            p50, p95 = latencies(base, filtered)
            out("datastore_search_filtered_p50_ms", f"{p50:.1f}")
            out("datastore_search_filtered_p95_ms", f"{p95:.1f}")
            p50, p95 = latencies(base, [prefix] * args.requests)
            out("datastore_search_p50_ms", f"{p50:.1f}")
            out("datastore_search_p95_ms", f"{p95:.1f}")
        # what the server holds once it has also served the data API (DuckDB loaded): reported beside the peak
        out("server_end_rss_mb", f"{tree_rss_kb(proc.pid) / 1024:.0f}")
        out("server_end_hwm_rss_mb", f"{_proc_kb(proc.pid, 'VmHWM') / 1024:.0f}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if args.keep:
            log(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
