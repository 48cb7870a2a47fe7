"""How the embedded SQLite database opens its transactions, measured under a request-like load.

Modes compared (each on a fresh WAL file database, same load):

- ``legacy``: pysqlite's default (BEGIN only before INSERT/UPDATE/DELETE) — the savepoint bug;
- ``deferred``: SQLAlchemy's documented recipe as is (``BEGIN`` when the transaction starts);
- ``immediate``: the recipe with ``BEGIN IMMEDIATE`` when the transaction starts;
- ``lazy``: what ``zhengshu.core.db.make_engine`` does (``BEGIN IMMEDIATE`` right before the first write).

Load: ``--threads`` request threads for ``--seconds`` each; a request is a GET (three reads) or, one in
``--post-every``, a POST (a read, an insert, an insert in a savepoint, commit). One job thread runs write
transactions that hold the write lock for ``--job-ms`` (a write, then reads and a pause, then commit).

```bash
python bench/sqlite_transactions.py
python bench/sqlite_transactions.py --seconds 3 --threads 4 --job-ms 150
```

stdout: one ``<mode>_<figure>: value`` line per figure: requests done, "database is locked" failures, GET
and POST p50/p95 in ms, the slowest GET and how many GETs took over 50 ms (GETs that queued for the write
lock: a job holds it for longer, but only a few requests per job run are caught, so p95 hides them), and
``savepoint_kept_after_rollback`` (1 = the bug: a rolled-back transaction's savepoint write survived).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from zhengshu.core.db import make_engine

metadata = MetaData()
row = Table("bench_row", metadata, Column("id", Integer, primary_key=True), Column("kind", String(10)))


def engine_for(mode: str, path: Path) -> Engine:
    url = f"sqlite:///{path}"
    if mode == "lazy":
        return make_engine(url)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        if mode != "legacy":
            dbapi_conn.isolation_level = None

    if mode in ("deferred", "immediate"):
        begin = "BEGIN" if mode == "deferred" else "BEGIN IMMEDIATE"

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine


def savepoint_bug(engine: Engine) -> int:
    session = Session(engine)
    with session.begin_nested():
        session.execute(insert(row).values(kind="probe"))
    session.rollback()
    kept = session.scalar(select(func.count()).select_from(row).where(row.c.kind == "probe")) or 0
    session.close()
    return int(kept)


def run(mode: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = engine_for(mode, Path(tmp) / "bench.db")
        metadata.create_all(engine)
        factory = sessionmaker(engine, expire_on_commit=False)
        figures: dict[str, float] = {"savepoint_kept_after_rollback": savepoint_bug(engine)}
        stop = time.monotonic() + args.seconds
        lock = threading.Lock()
        gets: list[float] = []
        posts: list[float] = []
        locked = 0

        def request(seed: int) -> None:
            nonlocal locked
            rnd = random.Random(seed)
            while time.monotonic() < stop:
                is_post = rnd.randrange(args.post_every) == 0
                started = time.perf_counter()
                try:
                    with factory() as s:
                        s.scalar(select(func.count()).select_from(row))
                        if is_post:
                            s.execute(insert(row).values(kind="post"))
                            with s.begin_nested():
                                s.execute(insert(row).values(kind="event"))
                        else:
                            s.scalars(select(row.c.id).order_by(row.c.id.desc()).limit(20)).all()
                            s.scalar(select(func.max(row.c.id)))
                        s.commit()
                except OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    with lock:
                        locked += 1
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    (posts if is_post else gets).append(elapsed)

        def job() -> None:
            nonlocal locked
            while time.monotonic() < stop:
                try:
                    with factory() as s:
                        s.execute(insert(row).values(kind="job"))
                        s.scalar(select(func.count()).select_from(row))
                        time.sleep(args.job_ms / 1000)
                        s.commit()
                except OperationalError:
                    with lock:
                        locked += 1
                time.sleep(args.job_ms / 1000)

        threads = [threading.Thread(target=request, args=(n,)) for n in range(args.threads)]
        threads.append(threading.Thread(target=job))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        engine.dispose()

    def pct(values: list[float], q: int) -> float:
        if len(values) < 2:
            return values[0] if values else 0.0
        return statistics.quantiles(values, n=100)[q - 1]

    figures.update(
        {
            "gets": len(gets),
            "posts": len(posts),
            "locked_errors": locked,
            "get_p50_ms": round(pct(gets, 50), 2),
            "get_p95_ms": round(pct(gets, 95), 2),
            "post_p50_ms": round(pct(posts, 50), 2),
            "post_p95_ms": round(pct(posts, 95), 2),
            "get_max_ms": round(max(gets, default=0.0), 2),
            "gets_over_50ms": sum(1 for g in gets if g > 50),
        }
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--post-every", type=int, default=5, help="one request in N is a POST")
    parser.add_argument("--job-ms", type=int, default=150, help="how long a job transaction holds the write lock")
    parser.add_argument("--modes", default="legacy,deferred,immediate,lazy")
    args = parser.parse_args()
    for mode in args.modes.split(","):
        for name, value in run(mode, args).items():
            print(f"{mode}_{name}: {value}", flush=True)


if __name__ == "__main__":
    main()
