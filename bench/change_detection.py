"""Change detection (cdc mode) on a large table: time and peak memory of the comparison, next to the size of the
data it compares.

    python bench/change_detection.py                   # 2,000,000 rows × 10 columns, MariaDB → PostgreSQL
    python bench/change_detection.py --rows 5000000

Builds the source in MariaDB (the same table as ``table_sync.py``), loads it into PostgreSQL with a first cdc
run, then changes 1% of the rows and deletes 0.1% and times a second run, and a third with nothing changed.
Each run is its own process, so its peak resident memory (``ru_maxrss``) is the run's alone. The reference is the
data itself: the source's rows as Arrow, which a comparison holding both tables in memory needs at least twice.
Prints one ``name: value`` line per figure on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import table_sync as tsb  # the bench next door: source builder, spec, servers


def line(name: str, value: object) -> None:
    print(f"{name}: {value}", flush=True)


def one_run(source: str, schema: str) -> dict[str, float]:
    """A cdc run in this process (the child): its figures as JSON on stdout."""
    import adbc_driver_postgresql.dbapi  # noqa: F401  (a worker has its drivers loaded)
    import connectorx  # noqa: F401

    from zhengshu.exchange.tables.engine import run

    spec = tsb.spec("cdc", source, schema, "t_cdc", 100_000, "bench-cdc")
    started = time.perf_counter()
    result = run(spec)
    return {
        "seconds": time.perf_counter() - started,
        "written": result.rows_written,
        "deleted": result.rows_deleted,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(source: str, schema: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", source, schema], check=True, capture_output=True, text=True
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def arrow_size(source: str) -> float:
    """MB of the source's rows as Arrow (read in batches, so measuring it holds one batch at a time)."""
    import connectorx as cx

    reader = cx.read_sql(
        "mysql://root@127.0.0.1:3306/test", f"SELECT * FROM `{source}`", return_type="arrow_stream", batch_size=100_000
    )
    return sum(batch.nbytes for batch in reader) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "SCHEMA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(*args.child)))
        return 0
    suffix = uuid.uuid4().hex[:8]
    source, schema = f"zs_bench_cdc_{suffix}", f"zs_bench_cdc_{suffix}"
    try:
        tsb.err.print(f"building the source: {args.rows:,} rows")
        tsb.build_source(source, args.rows)
        tsb.pg(f'CREATE SCHEMA "{schema}"')
        line("rows", args.rows)
        line("source_arrow_mb", f"{arrow_size(source):.0f}")
        tsb.settle()
        first = child(source, schema)
        assert first["written"] == args.rows, first
        line("first_load_seconds", f"{first['seconds']:.2f}")
        line("first_load_peak_rss_mb", f"{first['peak_rss_mb']:.0f}")
        tsb.mariadb(f"UPDATE `{source}` SET qty = qty + 1 WHERE id % 100 = 3")
        tsb.mariadb(f"DELETE FROM `{source}` WHERE id % 1000 = 5")
        tsb.settle()
        second = child(source, schema)
        changed = len([i for i in range(3, args.rows + 1, 100) if i % 1000 != 5])
        assert (second["written"], second["deleted"]) == (changed, len(range(5, args.rows + 1, 1000))), second
        line("changes_seconds", f"{second['seconds']:.2f}")
        line("changes_peak_rss_mb", f"{second['peak_rss_mb']:.0f}")
        tsb.settle()
        third = child(source, schema)
        assert (third["written"], third["deleted"]) == (0, 0), third
        line("unchanged_seconds", f"{third['seconds']:.2f}")
        line("unchanged_peak_rss_mb", f"{third['peak_rss_mb']:.0f}")
        line("unchanged_rows_per_s", f"{(args.rows - args.rows // 1000) / third['seconds']:,.0f}")
    finally:
        tsb.mariadb(f"DROP TABLE IF EXISTS `{source}`")
        tsb.pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
